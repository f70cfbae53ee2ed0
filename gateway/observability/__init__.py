"""Metrics, request logs and traces: each a `Recorder` of finished requests, built in `setup.py`.

Nothing here is imported by `gateway.cli` before it has prepared prometheus_client's
multiprocess directory (`multiproc.py`), because the library picks its storage at import.
"""
