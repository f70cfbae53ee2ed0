"""Every path and query parameter of the admin API, read by the handlers and listed in the OpenAPI document."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from starlette.requests import Request

from admin.inputs import (
    ID_PATTERN,
    Param,
    bool_param,
    check_id,
    choice_param,
    day_param,
    id_param,
    instant_param,
    integer_param,
    number_param,
    text_param,
)
from gateway.accounting.ledger.queries import GROUPS, MAX_PAGE, Cursor, QueryError
from gateway.accounting.ledger.row import EPOCH
from gateway.core.errors import InvalidRequest
from gateway.prompts.store import LABEL_PATTERN, MAX_VERSION

# The times a ledger row may carry: what a datetime can hold.
FIRST_US = (datetime.min.replace(tzinfo=UTC) - EPOCH) // (datetime.resolution)
LAST_US = (datetime.max.replace(tzinfo=UTC) - EPOCH) // (datetime.resolution)
GROUP_NAMES = "|".join(GROUPS)
_GROUP_BY = re.compile(f"({GROUP_NAMES})(,({GROUP_NAMES}))*")
_CURSOR = re.compile(r"[A-Za-z0-9_\-]{1,1024}")
# Ids in one `teams=` or `keys=`: a page of the admin UI's lists (50) with room to spare.
MAX_IDS = 100


def _group_by(raw: str) -> tuple[str, ...]:
    if not _GROUP_BY.fullmatch(raw):
        raise ValueError(f"any of {', '.join(GROUPS)}, comma-separated")
    return tuple(dict.fromkeys(raw.split(",")))


def id_list_param(name: str, description: str) -> Param[tuple[str, ...]]:
    def parse(raw: str) -> tuple[str, ...]:
        ids = raw.split(",")
        if len(ids) > MAX_IDS:
            raise ValueError(f"at most {MAX_IDS} ids")
        return tuple(dict.fromkeys(check_id(one) for one in ids))

    one = ID_PATTERN.removeprefix("^").removesuffix("$")
    return Param(name, description, {"type": "string", "pattern": f"^{one}(,{one}){{0,{MAX_IDS - 1}}}$"}, parse)


def _label(raw: str) -> str:
    if len(raw) > 64 or not re.fullmatch(LABEL_PATTERN, raw):
        raise ValueError("1 to 64 letters, digits, '-' or '_', not only digits (a number names a version)")
    return raw


def _cursor(raw: str) -> Cursor:
    try:
        cursor = Cursor.decode(raw) if _CURSOR.fullmatch(raw) else None
    except QueryError:
        cursor = None
    # Decoded, it is the client's to forge: its time must be one a datetime holds, its id storable text.
    if cursor is None or not FIRST_US <= cursor.ts_us <= LAST_US or "\x00" in cursor.request_id:
        raise ValueError("not a cursor this API returned")
    return cursor


# Path parameters
TEAM_ID = id_param("team_id", "a team's id", where="path")
KEY_ID = id_param("key_id", "a key's id", where="path")

# Lists of teams, keys and audit entries
LIMIT = integer_param("limit", 1, 1000, "1 to 1000, default 100")
AFTER = id_param("after", "the last id of the previous page")
KEYS_OF_TEAM = id_param("team_id", "only this team's keys")
INCLUDE_REVOKED = bool_param("include_revoked", "default true")
BEFORE = integer_param("before", 1, 2**62, "only entries older than this id")
TARGET_TYPE = choice_param("target_type", ("key", "team", "privacy_subject", "prompt"),
                           "key, team, privacy_subject or prompt")
TARGET_ID = id_param("target_id", "one key's or team's entries")

# The ledger: filters compare with what rows recorded, so they are any text a row may hold.
TEAM = text_param("team", 128, "one team's id")
KEY = text_param("key", 128, "one key's id")
TEAMS = id_list_param("teams", f"any of these teams' ids, comma-separated (up to {MAX_IDS})")
KEYS = id_list_param("keys", f"any of these keys' ids, comma-separated (up to {MAX_IDS})")
MODEL = text_param("model", 256, "the model as requested")
PROVIDER = text_param("provider", 64, "one provider")
FORMAT = choice_param("format", ("json", "csv"), "json (the default) or csv")
FIRST_DAY = day_param("start", "the first day, UTC; default: 29 days before `end`")
LAST_DAY = day_param("end", "the last day, UTC, included; default: today")
GROUP_BY = Param(
    "group_by", f"comma-separated, any of {', '.join(GROUPS)}",
    {"type": "string", "pattern": f"^({GROUP_NAMES})(,({GROUP_NAMES}))*$"},
    _group_by,
)
FROM = instant_param("start", "from this time (a date: its midnight, UTC); default: 30 days before `end`")
UNTIL = instant_param("end", "until this time, excluded (a date: its midnight, UTC); default: now")
STATUS = integer_param("status", 100, 599, "only rows with this HTTP status")
ROWS = integer_param("limit", 1, MAX_PAGE, f"1 to {MAX_PAGE}, default 100")
CURSOR = Param(
    "cursor", "the `next_cursor` of the previous page, as it was returned",
    {"type": "string", "pattern": "^[A-Za-z0-9_\\-]{1,1024}$"}, _cursor,
)

# Prompt templates (admin/prompts_api.py)
TEMPLATE_ID = id_param("template_id", "a prompt template's id", where="path")
VERSION = replace(integer_param("version", 1, MAX_VERSION, "a version's number"), where="path")
LABEL = Param("label", "a label: letters, digits, '-' or '_', not only digits",
              {"type": "string", "minLength": 1, "maxLength": 64, "pattern": LABEL_PATTERN}, _label,
              where="path")
DIFF_FROM = replace(integer_param("from", 1, MAX_VERSION, "the older version"), required=True)
DIFF_TO = replace(integer_param("to", 1, MAX_VERSION, "the newer version"), required=True)

# A `complexity` model's report: the document lists the names configured (admin/openapi.py).
COMPLEXITY_MODEL = replace(text_param("model", 256, "a `complexity` model's name"), required=True)


MAX_RANGE_DAYS = 3660


def day_range(request: Request, default_days: int = 30) -> tuple[date, date]:
    """`start` and `end` (whole UTC days, both included): by default the `default_days` up to today.

    The `end` returned stops a day short of the last one a date holds, so that the day after it,
    where a query's range ends, exists; no row is from 31 December 9999 anyway."""
    end = LAST_DAY.get(request, datetime.now(UTC).date())
    back = timedelta(days=default_days - 1)
    start = FIRST_DAY.get(request, max(end, date.min + back) - back)
    if start > end:
        raise InvalidRequest("'start' must not be after 'end'.", param="start", code="invalid_value")
    if (end - start).days > MAX_RANGE_DAYS:
        raise InvalidRequest(f"The range may span at most {MAX_RANGE_DAYS} days.", param="start",
                             code="invalid_value")
    return start, min(end, date.max - timedelta(days=1))


# Recommendations (admin/recommendations_api.py; gateway/accounting/recommend.py says what each means)
REC_DAYS = integer_param("days", 1, MAX_RANGE_DAYS, "the days of ledger to read, up to now; default 28")
MIN_REQUESTS = integer_param("min_requests", 1, 10**9, "requests each deployment must have served to be "
                                                       "compared; default 100")
MAX_ERROR_RATE_INCREASE = number_param("max_error_rate_increase", 0, 1, "how much higher (absolute: 0.01 is "
                                       "one percentage point) the cheaper deployment's error rate may be; default 0.01")
MAX_LATENCY_RATIO = number_param("max_latency_ratio", 1, 100, "how many times the dearer deployment's mean latency "
                                 "the cheaper one's may be; default 1.2")
CACHE_TTL = number_param("cache_ttl_s", 1, 10**7, "how long the cache would keep an answer; default 3600")
IDLE_WEEKS = integer_param("idle_weeks", 1, 520, "weeks without a request that make a key idle; default 4")
