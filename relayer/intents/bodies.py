"""Submit bodies (SPEC §2.3): the signed struct in human units, with the symbol instead of addresses.
Unknown fields are rejected; amounts are decimal strings, bps and nonces JSON integers, ids JSON
integers or strings of ASCII digits (`relayer.numbers`: no `²`, no `١`, nothing past int64)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, StrictInt, StrictStr, WithJsonSchema

from relayer.numbers import ID_JSON_SCHEMA, MAX_DB_ID, parse_id

Bps = Annotated[StrictInt, Field(ge=0, le=65_535)]
Uint = Annotated[StrictInt, Field(ge=0, lt=2**256)]
Amount = Annotated[
    StrictStr,
    Field(
        min_length=1,
        max_length=100,
        # Documented, and enforced (with the asset's decimals) by relayer.amounts, whose refusals name
        # their reason.
        json_schema_extra={"pattern": r"^(0|[1-9][0-9]*)(\.[0-9]+)?$"},
        description='A human decimal string: "100" is 100 USDC; no sign, exponent or separators.',
    ),
]


def _id(raw: object) -> int | str:
    """A JSON integer or a string of ASCII digits, 1..MAX_DB_ID; the value is kept as sent."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        if not 1 <= raw <= MAX_DB_ID:
            raise ValueError(f"an id is out of range (1..{MAX_DB_ID})")
        return raw
    if isinstance(raw, str):
        parse_id(raw)  # raises NumberError, a ValueError: pydantic reports it on the field
        return raw
    raise ValueError("an id must be a JSON integer or a string of ASCII digits")


Id = Annotated[int | str, PlainValidator(_id), WithJsonSchema(ID_JSON_SCHEMA)]

EXITS_JSON_SCHEMA: dict[str, Any] = {
    "type": "array",
    "description": "The exit ladder, as signed (its hash is in the typed data). Each rule: "
    '{"triggerType": "StopLoss"|"TakeProfit", "triggerBps": int32, "exitBps": 1..10000}; the last '
    "rule exits 10000 bps.",
    "items": {
        "type": "object",
        "properties": {
            "triggerType": {"type": "string", "enum": ["StopLoss", "TakeProfit"]},
            "triggerBps": {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
            "exitBps": {"type": "integer", "minimum": 0, "maximum": 65_535},
        },
        "required": ["triggerType", "triggerBps", "exitBps"],
        "additionalProperties": False,
    },
}
# Validated by relayer.domain.ladder.parse_exits, which names the offending path (exits[2].exitBps).
Exits = Annotated[list[Any], WithJsonSchema(EXITS_JSON_SCHEMA)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    deadline: Uint
    nonce: Uint
    signature: Annotated[StrictStr, Field(max_length=200, description="65 bytes r‖s‖v as 0x-hex.")]


class OpenBody(_Body):
    symbol: Annotated[StrictStr, Field(max_length=32)]
    usdcAmount: Amount  # noqa: N815 - the wire format is camelCase
    minTokenOut: Amount  # noqa: N815
    maxSlippageBps: Bps  # noqa: N815
    exits: Exits


class AddBody(_Body):
    positionId: Id  # noqa: N815
    usdcAmount: Amount  # noqa: N815
    minTokenOut: Amount  # noqa: N815
    maxSlippageBps: Bps  # noqa: N815


class ReduceBody(_Body):
    positionId: Id  # noqa: N815
    tokenAmount: Amount  # noqa: N815
    minUsdcOut: Amount  # noqa: N815
    maxSlippageBps: Bps  # noqa: N815


class LadderBody(_Body):
    positionId: Id  # noqa: N815
    exits: Exits


SubmitBody = OpenBody | AddBody | ReduceBody | LadderBody

PrimaryType = Literal["OpenPosition", "AddToPosition", "ReducePosition", "UpdateExitLadder"]

BODY_BY_TYPE: dict[str, type[_Body]] = {
    "OpenPosition": OpenBody,
    "AddToPosition": AddBody,
    "ReducePosition": ReduceBody,
    "UpdateExitLadder": LadderBody,
}
