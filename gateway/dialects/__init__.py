"""Endpoints that speak another API than OpenAI's, translated onto the one request path."""
