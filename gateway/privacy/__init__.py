"""What the gateway holds about one end user or one key: exported as JSON Lines, or erased.

    subject.py   who is asked about (`user:<id>` or `key:<id>`) and the pseudonym the audit log names
    sources.py   the SQL per table and per database: ledger rows, the rollup, stored responses
    service.py   export (a manifest, then one line per record) and erase (counts per source)
    command.py   `gateway privacy export | erase`

Cache entries the exact cache attributed to an end user or key: gateway/plugins/cache/attribution.py.
"""
