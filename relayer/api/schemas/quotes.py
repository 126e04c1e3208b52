"""Quote parameters (documented query models) and the quote body (SPEC §2.3)."""

# ruff: noqa: N815 - the wire format is camelCase

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from relayer.api.schemas.common import Public, StrictUint
from relayer.api.schemas.reads import (
    MARKET_STATUS_DOC,
    MULTIPLIER_DOC,
    NEXT_OPEN_DOC,
    ExitRulePublic,
    LimitsPublic,
    MarketStatusLabel,
    MultiplierPublic,
)
from relayer.numbers import MAX_DB_ID, MAX_UINT256

# Bounds on the inner int and the strict validator last: that keeps the bounds in the document.
_Strict = StrictUint

_AMOUNT = r"^(0|[1-9][0-9]*)(\.[0-9]+)?$"


def _amount(description: str) -> Any:
    # The pattern documents the form; relayer.amounts enforces it with the asset's decimals and
    # names the reason (syntax, leading_zero, too_many_decimals, too_large) in the error's details.
    return Field(
        default=None, max_length=100, description=description, json_schema_extra={"pattern": _AMOUNT}
    )


_EXITS = (
    "The exit ladder as a JSON array, URL-encoded: "
    '[{"triggerType":"StopLoss","triggerBps":-500,"exitBps":10000}]. Default: a ladder the track accepts.'
)
_BY_SYMBOL = "The open position's symbol, instead of positionId."
_DEADLINE = "Unix seconds the signature is valid until; default now + 300 s."
_SLIPPAGE = "Slippage allowance against the oracle price in bps, 0..10000; default 100."

Slippage = Annotated[
    Annotated[int, Field(ge=0, le=10_000)] | SkipJsonSchema[None],
    Field(default=None, description=_SLIPPAGE),
    _Strict,
]
Deadline = Annotated[
    Annotated[int, Field(ge=0, le=MAX_UINT256)] | SkipJsonSchema[None],
    Field(default=None, description=_DEADLINE),
    _Strict,
]
PositionIdQuery = Annotated[
    Annotated[int, Field(ge=1, le=MAX_DB_ID)] | SkipJsonSchema[None],
    Field(default=None, description="The position; or give `symbol` instead."),
    _Strict,
]
Symbol = Annotated[str, Field(max_length=11, pattern=r"^[A-Z0-9.]{1,11}$", examples=["NVDA"])]


class _Query(BaseModel):
    # Unknown parameters are ignored, as they always were.
    model_config = ConfigDict(extra="ignore")

    def params(self) -> dict[str, str]:
        """The parameters given, as the strings relayer.quotes reads."""
        return {k: str(v) for k, v in self.model_dump(exclude_none=True).items()}


class QuoteOpenQuery(_Query):
    symbol: Symbol = Field(description="The token to buy.")
    usdcAmount: str | SkipJsonSchema[None] = _amount(
        "USDC to spend; without it the quote names it in `missing`."
    )
    exits: str | SkipJsonSchema[None] = Field(default=None, max_length=4096, description=_EXITS)
    minTokenOut: str | SkipJsonSchema[None] = _amount(
        "The least tokens to accept; default: the expected fill less slippage."
    )
    maxSlippageBps: Slippage = None
    deadline: Deadline = None


class QuoteAddQuery(_Query):
    positionId: PositionIdQuery = None
    symbol: Symbol | SkipJsonSchema[None] = Field(default=None, description=_BY_SYMBOL)
    usdcAmount: str | SkipJsonSchema[None] = _amount(
        "USDC to add; without it the quote names it in `missing`."
    )
    minTokenOut: str | SkipJsonSchema[None] = _amount(
        "The least tokens to accept; default: the expected fill less slippage."
    )
    maxSlippageBps: Slippage = None
    deadline: Deadline = None


class QuoteReduceQuery(_Query):
    positionId: PositionIdQuery = None
    symbol: Symbol | SkipJsonSchema[None] = Field(default=None, description=_BY_SYMBOL)
    tokenAmount: str | SkipJsonSchema[None] = _amount("Tokens to sell; default: the whole position.")
    minUsdcOut: str | SkipJsonSchema[None] = _amount(
        "The least USDC to accept; default: the expected fill less slippage."
    )
    maxSlippageBps: Slippage = None
    deadline: Deadline = None


class QuoteLadderQuery(_Query):
    positionId: PositionIdQuery = None
    symbol: Symbol | SkipJsonSchema[None] = Field(default=None, description=_BY_SYMBOL)
    exits: str | SkipJsonSchema[None] = Field(default=None, max_length=4096, description=_EXITS)
    deadline: Deadline = None


class TypedDataFieldPublic(Public):
    name: str
    type: str


class TypedDataDomainPublic(Public):
    name: str
    version: str
    chainId: int
    verifyingContract: str


class TypedDataPublic(Public):
    """`eth_signTypedData_v4` JSON: sign it unchanged (eth-account `encode_typed_data(full_message=…)`)."""

    domain: TypedDataDomainPublic
    types: dict[str, list[TypedDataFieldPublic]]
    primaryType: str
    message: dict[str, str | int] = Field(
        description="uint256 values as decimal strings of base units; uint16 (bps) as integers."
    )


class CheckPublic(Public):
    check: str
    ok: bool
    code: str | None = None
    message: str | None = None
    suggestion: dict[str, Any] | None = Field(
        default=None,
        description="For a failed check, the fields that would make the intent pass (SPEC §5.2): "
        '{"usdcAmount": "412.5"}, {"exits": [...]}, {"notBefore": 1765204200} (market_closed), …',
    )


class ExitBoundsPublic(Public):
    maxStopLossBps: int
    minTakeProfitBps: int
    maxTakeProfitBps: int
    requireStopLoss: bool
    requireTakeProfit: bool
    maxRules: int


class QuotePricePublic(Public):
    price: str | None
    updatedAt: int | None
    roundId: int | None
    stale: bool


class QuotePublic(Public):
    """Everything needed to sign, and the checks that can be made before signing."""

    agentId: str
    symbol: str
    token: str
    vault: str
    nonce: int = Field(description="The next nonce, after the agent's intents in flight.")
    price: QuotePricePublic
    marketStatus: MarketStatusLabel = Field(description=MARKET_STATUS_DOC)
    nextOpen: int | None = Field(description=NEXT_OPEN_DOC)
    multiplier: MultiplierPublic = Field(description=MULTIPLIER_DOC)
    allocation: LimitsPublic
    track: str
    exitBounds: ExitBoundsPublic
    exitRuleType: str
    typedData: TypedDataPublic
    checks: list[CheckPublic]
    positionId: str | None = None
    size: str | None = Field(default=None, description="The position's size (add, reduce, ladder).")
    exits: list[ExitRulePublic] | None = None
    exitsHash: str | None = None
    defaulted: list[str] | None = Field(default=None, description="Parameters filled with a default.")
    missing: list[str] | None = Field(default=None, description="Parameters to give before signing.")
