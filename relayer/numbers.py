"""One strict parser for the integers that cross the API as text (ids in paths and queries, the
``Last-Event-ID`` header, quote parameters), and one strict JSON decoder for request bodies and the
``exits`` query parameter (hardening item 8).

Strict on purpose, like ``relayer.amounts``: a number an agent sends is read one way or refused.

- Only ASCII digits: ``str.isdigit()`` and ``int()`` also take ``²``, ``①`` (isdigit only, then
  ``int()`` raises) and ``١`` (read as 1), and ``int()`` takes `` 7``, ``+7`` and ``1_0``.
- Bounded length before ``int()`` ever runs: CPython refuses to convert more than 4300 digits, and
  a bound keeps the conversion cheap.
- Bounded value: a database id never goes past what its column holds (PostgreSQL's INTEGER refuses
  more than int32 with an error, SQLite more than int64 with ``OverflowError``).

The JSON decoder refuses duplicate keys (which of two ``"nonce"`` was signed?), ``NaN`` and
``Infinity`` (not JSON), and integers of more than ``MAX_JSON_INT_DIGITS`` digits.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final, Literal, TypeAlias

# The ids' columns (intents.id, stream_events.seq, agent_id, position_id) are INTEGER: int32 in
# PostgreSQL, which refuses a larger parameter with an error (SQLite's limit is int64). Raise this with a
# migration to BIGINT.
MAX_DB_ID: Final = 2**31 - 1
MAX_UINT256: Final = 2**256 - 1
# 2**256 has 78 digits: every uint256 fits, with room for a client's leading zeros; past this a JSON
# integer is refused as malformed before int() runs.
MAX_JSON_INT_DIGITS: Final = 100

# An id in a body or a query as the OpenAPI document gives it: a JSON integer or a digit string.
ID_JSON_SCHEMA: Final[dict[str, Any]] = {
    "anyOf": [
        {"type": "integer", "minimum": 1, "maximum": MAX_DB_ID},
        {"type": "string", "pattern": "^[0-9]{1,10}$"},
    ],
    "description": "An id: a JSON integer or a string of ASCII digits, 1..2**31-1 (SPEC §2.1).",
}

_DIGITS = re.compile(r"[0-9]+", re.ASCII)

NumberReason: TypeAlias = Literal["type", "syntax", "range"]

_EXPLAIN: Final[dict[NumberReason, str]] = {
    "type": "must be a string of ASCII digits",
    "syntax": "must be ASCII digits 0-9 only",
    "range": "is out of range",
}


class NumberError(ValueError):
    """Text that is not a plain ASCII decimal integer within its bounds; ``reason`` is stable."""

    def __init__(self, reason: NumberReason, low: int, high: int) -> None:
        detail = f" ({low}..{high})" if reason == "range" else ""
        super().__init__(_EXPLAIN[reason] + detail)
        self.reason = reason
        self.low = low
        self.high = high


def parse_uint(text: object, *, high: int, low: int = 0) -> int:
    """``parse_uint("42", high=100) == 42``; leading zeros are accepted (they cannot change the
    value). Raises ``NumberError``; never ``int()``'s own errors, whatever the text."""
    if not isinstance(text, str):
        raise NumberError("type", low, high)
    if not _DIGITS.fullmatch(text):
        raise NumberError("syntax", low, high)
    significant = text.lstrip("0") or "0"
    if len(significant) > len(str(high)):
        raise NumberError("range", low, high)
    value = int(significant)
    if not low <= value <= high:
        raise NumberError("range", low, high)
    return value


def parse_id(text: object) -> int:
    """A database or on-chain id in a path, query, header or body: 1..MAX_DB_ID."""
    return parse_uint(text, low=1, high=MAX_DB_ID)


# ---------------------------------------------------------------------- JSON


def _malformed(message: str) -> json.JSONDecodeError:
    # JSONDecodeError, so every caller that handles malformed JSON handles these too (FastAPI answers
    # it as a `json_invalid` request error, which relayer.api.errors turns into 400 invalid_request).
    return json.JSONDecodeError(message, "", 0)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _malformed(f"duplicate key {key!r}")
        out[key] = value
    return out


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_JSON_INT_DIGITS:
        raise _malformed(f"an integer of more than {MAX_JSON_INT_DIGITS} digits")
    return int(text)


def _constant(name: str) -> Any:
    raise _malformed(f"{name} is not JSON")


def loads_strict(data: str | bytes) -> Any:
    """``json.loads`` that raises ``json.JSONDecodeError`` for duplicate keys, NaN/Infinity and
    over-long integers (and for everything ``json.loads`` refuses)."""
    return json.loads(data, object_pairs_hook=_object, parse_int=_integer, parse_constant=_constant)
