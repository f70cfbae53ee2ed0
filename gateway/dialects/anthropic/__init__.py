"""Anthropic's Messages API, served from any configured model through the OpenAI-format path."""
