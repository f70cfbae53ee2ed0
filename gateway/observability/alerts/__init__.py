"""Budget alerts: when a key or team crosses a threshold of its budget, webhooks are told once per period."""
