"""Submit bodies (SPEC §2.3): the signed struct in human units, with the symbol instead of addresses.
Unknown fields are rejected; amounts are decimal strings, bps and nonces JSON integers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

Bps = Annotated[StrictInt, Field(ge=0, le=65_535)]
Uint = Annotated[StrictInt, Field(ge=0, lt=2**256)]
Amount = Annotated[StrictStr, Field(min_length=1, max_length=100)]
Id = Annotated[StrictInt | StrictStr, Field(union_mode="left_to_right")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    deadline: Uint
    nonce: Uint
    signature: Annotated[StrictStr, Field(max_length=200)]


class OpenBody(_Body):
    symbol: Annotated[StrictStr, Field(max_length=32)]
    usdcAmount: Amount  # noqa: N815 - the wire format is camelCase
    minTokenOut: Amount  # noqa: N815
    maxSlippageBps: Bps  # noqa: N815
    exits: list[Any]


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
    exits: list[Any]


SubmitBody = OpenBody | AddBody | ReduceBody | LadderBody

PrimaryType = Literal["OpenPosition", "AddToPosition", "ReducePosition", "UpdateExitLadder"]

BODY_BY_TYPE: dict[str, type[_Body]] = {
    "OpenPosition": OpenBody,
    "AddToPosition": AddBody,
    "ReducePosition": ReduceBody,
    "UpdateExitLadder": LadderBody,
}
