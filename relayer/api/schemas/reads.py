"""Bodies of the read endpoints (SPEC §2.2): the JSON that `relayer.views` and the routes build, named
field by field. Ids are strings, money and token amounts human decimal strings (SPEC §2.1)."""

# ruff: noqa: N815 - the wire format is camelCase

from __future__ import annotations

from typing import Literal

from pydantic import Field

from relayer.api.schemas.common import Public

Decimal = str  # a human decimal string: "100", "0.25", "-12.5" (signed figures only)


class HealthPublic(Public):
    status: Literal["ok"]


class ReadyPublic(Public):
    status: Literal["ready"]
    block: int = Field(description="The last block the indexer applied.")


class NotReadyPublic(Public):
    status: Literal["unavailable"]
    reasons: list[str]


class MultiplierPublic(Public):
    current: Decimal = Field(description="Tokens' shares per token in force now (1 before any split).")
    next: Decimal | None = Field(description="The scheduled multiplier while it is pending.")
    effectiveAt: int | None = Field(description="Unix seconds the scheduled multiplier takes effect.")
    epoch: int


MarketStatusLabel = Literal["Unknown", "PreMarket", "Regular", "PostMarket", "Overnight", "Closed", "Halted"]
MARKET_STATUS_DOC = "The oracle's market status for the token (SPEC §5.6)."
NEXT_OPEN_DOC = "Unix seconds of the next regular open while the market is not Regular (calendar)."
MULTIPLIER_DOC = "The share multiplier in force, and the next one."


class PricePublic(Public):
    symbol: str
    token: str = Field(description="The token's address.")
    price: Decimal | None = Field(description="USD per token, 8 decimals at most; null before any round.")
    updatedAt: int | None = Field(description="Unix seconds of the oracle round.")
    roundId: int | None
    stale: bool = Field(description="Older than the router's maximum price age at chain time.")
    marketStatus: MarketStatusLabel = Field(description=MARKET_STATUS_DOC)
    nextOpen: int | None = Field(description=NEXT_OPEN_DOC)
    multiplier: MultiplierPublic = Field(description=MULTIPLIER_DOC)
    sharePrice: Decimal | None = Field(
        description="USD per share as quoted (price = sharePrice × multiplier)."
    )


class PricesPublic(Public):
    prices: list[PricePublic]


class VaultTokenPublic(Public):
    symbol: str
    address: str
    decimals: int


class VaultTokensPublic(Public):
    vaultId: str
    vault: str = Field(description="The vault's address.")
    tokens: list[VaultTokenPublic] = Field(description="The tokens the vault may buy, by symbol.")


class LimitsPublic(Public):
    """An agent's limits and their use, in USDC (SPEC §1.5)."""

    allocation: Decimal
    deployed: Decimal
    headroom: Decimal
    maxTradeSize: Decimal
    turnoverToday: Decimal
    maxDailyTurnover: Decimal
    realizedPnlToday: Decimal
    maxDailyLoss: Decimal


class TrackLimitsPublic(Public):
    """The track's policy in bps (of the allocation for the first three)."""

    maxTradeSizeBps: int
    maxDailyTurnoverBps: int
    maxDailyLossBps: int
    maxStopLossBps: int
    minTakeProfitBps: int
    maxTakeProfitBps: int
    requireStopLoss: bool
    requireTakeProfit: bool
    sessions: list[str] = Field(
        description='Market statuses in which opens and adds are allowed (SPEC §5.6), e.g. ["Regular"].'
    )
    exitsWhenClosed: Literal["hold", "fire"] = Field(
        description="hold: a crossed rule waits for a price quoted in the track's sessions; "
        "fire: it fires on the last price."
    )


class TrackPublic(Public):
    id: int
    name: str
    limits: TrackLimitsPublic


class AgentPublic(Public):
    agentId: str
    signer: str
    vaultId: int
    vault: str
    active: bool
    track: TrackPublic
    allocation: Decimal
    deployed: Decimal
    headroom: Decimal
    turnoverToday: Decimal
    realizedPnlToday: Decimal
    limits: LimitsPublic
    nextNonce: int = Field(description="The nonce to sign next, counting intents in flight.")
    relayerStatus: RelayerStatusPublic | None = Field(
        default=None,
        description="Set while the relayer throttles or suspends the agent (its relayed intents kept "
        "failing because it used their nonces for other intents); null in good standing.",
    )


class RelayerStatusPublic(Public):
    status: Literal["throttled", "suspended"]
    reason: str
    until: str = Field(description="ISO 8601 time the refusal ends unless more strikes come.")


class LadderRulePublic(Public):
    triggerType: Literal["StopLoss", "TakeProfit"]
    triggerBps: int
    exitBps: int
    index: int
    fired: bool
    triggerPrice: Decimal | None = Field(description="The oracle price at which the rule fires.")


class PositionPublic(Public):
    id: str
    agentId: str
    status: Literal["open", "closed"]
    symbol: str
    token: str
    size: Decimal
    costBasis: Decimal
    entryPrice: Decimal | None
    openedAt: int
    openTx: str
    closedAt: int | None
    closeTx: str | None
    currentPrice: Decimal | None
    realizedPnl: Decimal
    exitsHash: str
    value: Decimal
    unrealizedPnl: Decimal
    ladder: list[LadderRulePublic]
    marketStatus: MarketStatusLabel = Field(description=MARKET_STATUS_DOC)
    nextOpen: int | None = Field(description=NEXT_OPEN_DOC)
    multiplier: MultiplierPublic = Field(description=MULTIPLIER_DOC)


class PositionsPublic(Public):
    positions: list[PositionPublic]


class ExitRulePublic(Public):
    triggerType: Literal["StopLoss", "TakeProfit"]
    triggerBps: int = Field(description="Signed bps from the entry price: negative for a stop-loss.")
    exitBps: int = Field(description="Share of what is left to sell, 1..10000.")


class PositionEventPublic(Public):
    """One entry of a position's history; which optional fields appear depends on `kind`."""

    kind: str = Field(description="opened, increased, reduced, exit or ladder.")
    blockNumber: int
    timestamp: int
    transactionHash: str
    usdc: Decimal | None = None
    tokens: Decimal | None = None
    oraclePrice: Decimal | None = None
    realizedPnl: Decimal | None = None
    ruleIndex: int | None = None
    oracleRoundId: int | None = None
    exitsHash: str | None = None
    rules: list[ExitRulePublic] | None = None
    triggerPrice: Decimal | None = Field(
        default=None,
        description="exit: the rule's exact trigger price for the ladder, size and basis in force then.",
    )
    fillPrice: Decimal | None = Field(default=None, description="exit: usdc / tokens, rounded down.")
    slippageBps: int | None = Field(
        default=None,
        description="exit: (fillPrice − triggerPrice) / triggerPrice in bps, signed, rounded toward −∞.",
    )
    gapBps: int | None = Field(
        default=None,
        description="exit: (oraclePrice − triggerPrice) / triggerPrice in bps, rounded toward −∞.",
    )


class AuditPublic(Public):
    """One evaluation of a rule by the keeper (SPEC §3)."""

    ruleIndex: int
    oraclePrice: Decimal
    roundId: int
    triggered: bool
    action: str
    outcome: str | None
    transactionHash: str | None
    at: str = Field(description="ISO 8601 with its UTC offset.")


class PositionDetailPublic(PositionPublic):
    history: list[PositionEventPublic]
    audit: list[AuditPublic]
