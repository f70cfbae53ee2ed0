"""The response cache: exact match (`exact.py`, in Redis or an in-process LRU) and the optional
semantic cache (`semantic.py`, embeddings through the gateway itself)."""
