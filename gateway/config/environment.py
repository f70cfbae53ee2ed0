"""`GATEWAY_*` environment variables that nothing reads: a typo must not pass in silence.

pydantic-settings ignores a variable it has no field for, so `GATEWAY_DATABSE_URL=...` would leave
the gateway on its embedded SQLite without a word. The commands warn instead, naming the closest
known variable.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from gateway.config.settings import Settings
from gateway.secrets import KEY_ENV, OLD_KEYS_ENV

PREFIX = "GATEWAY_"
# The config file's path, for the workers of `gateway serve --workers N` (gateway/app.py).
CONFIG_FILE_ENV = "GATEWAY_CONFIG_FILE"
# The test suite's own variables (tests/dbs.py) share the prefix but are not the gateway's to read.
TEST_PREFIX = "GATEWAY_TEST_"


def known_variables() -> set[str]:
    """One variable per `Settings` field, and the few read outside the settings."""
    return {PREFIX + name.upper() for name in Settings.model_fields} | {CONFIG_FILE_ENV, KEY_ENV, OLD_KEYS_ENV}


def unknown_variables(environ: Mapping[str, str], known: Iterable[str] | None = None) -> dict[str, str | None]:
    """Each `GATEWAY_*` variable of `environ` that nothing reads, with the closest known name (or None).

    Names are compared without case, as pydantic-settings reads them.
    """
    names = {name.upper() for name in (known_variables() if known is None else known)}
    # Compared after the prefix, which every name shares and which would make any two look alike.
    suffixes = sorted(name.removeprefix(PREFIX) for name in names)
    found: dict[str, str | None] = {}
    for variable in sorted(environ):
        upper = variable.upper()
        if not upper.startswith(PREFIX) or upper.startswith(TEST_PREFIX) or upper in names:
            continue
        close = difflib.get_close_matches(upper.removeprefix(PREFIX), suffixes, n=1, cutoff=0.75)
        found[variable] = PREFIX + close[0] if close else None
    return found


def warning(variable: str, close: str | None) -> str:
    return f"{variable} is not a setting; " + (f"did you mean {close}?" if close else "it is ignored")
