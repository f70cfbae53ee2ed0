"""`gateway demo`: the fake upstream and the gateway on the embedded default, with examples to try."""
