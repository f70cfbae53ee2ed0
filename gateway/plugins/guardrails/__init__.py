"""Built-in guardrails: PII redaction, prompt-injection heuristics, content rules, request limits."""
