"""What the relayer answers, as frozen dataclasses (SPEC §2, §5.1).

Parsing is lenient on purpose: a field the SDK does not know is ignored (it stays in `.raw`), a field
the relayer leaves out is None, so a newer relayer does not break an older SDK. Money and token
amounts are `Decimal`s parsed from the API's decimal strings; ids are `int`s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

Json = Mapping[str, Any]
TriggerName = Literal["StopLoss", "TakeProfit"]
FINAL_STATUSES = frozenset({"confirmed", "failed", "rejected"})


def _dec(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(str(value))
    except ValueError:
        return None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _map(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


# ---------------------------------------------------------------------- exit rules (what the agent writes)


@dataclass(frozen=True)
class ExitRule:
    """One rule of an exit ladder: fire when the price moves `trigger_bps` from entry (−500 is −5 %), and
    sell `exit_bps` of what the position holds then (10 000 = all). The last rule must sell 100 %."""

    trigger_type: TriggerName
    trigger_bps: int
    exit_bps: int = 10_000

    def to_json(self) -> dict[str, Any]:
        return {"triggerType": self.trigger_type, "triggerBps": self.trigger_bps, "exitBps": self.exit_bps}


def StopLoss(trigger_bps: int, exit_bps: int = 10_000) -> ExitRule:  # noqa: N802 (reads as a type)
    """`StopLoss(-500)`: sell everything 5 % below the entry price."""
    return ExitRule("StopLoss", trigger_bps, exit_bps)


def TakeProfit(trigger_bps: int, exit_bps: int = 10_000) -> ExitRule:  # noqa: N802
    """`TakeProfit(1000, 5000)`: sell half 10 % above the entry price."""
    return ExitRule("TakeProfit", trigger_bps, exit_bps)


def exits_json(exits: Sequence[ExitRule | Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rules as the API writes them; a mapping passes through as given (the relayer checks it)."""
    return [e.to_json() if isinstance(e, ExitRule) else dict(e) for e in exits]


# ---------------------------------------------------------------------- answers


@dataclass(frozen=True)
class Fill:
    usdc: Decimal | None
    tokens: Decimal | None
    price: Decimal | None

    @classmethod
    def from_json(cls, d: Json) -> Fill:
        return cls(_dec(d.get("usdc")), _dec(d.get("tokens")), _dec(d.get("price")))


@dataclass(frozen=True)
class Batch:
    """The transaction that carried the intent with others (SPEC §5.1): its hash, the intent's index in it,
    and how many it carried."""

    transaction_hash: str | None
    index: int | None
    size: int | None

    @classmethod
    def from_json(cls, d: Json) -> Batch:
        return cls(_str(d.get("transactionHash")), _int(d.get("index")), _int(d.get("size")))


@dataclass(frozen=True)
class Intent:
    """An intent record (`GET …/intents/{id}`, and what a submit answers). `status` is `received`,
    `submitted`, `confirmed`, `rejected` or `failed` (then `reason` says why)."""

    intent_id: int | None
    status: str
    type: str | None = None
    agent_id: int | None = None
    nonce: int | None = None
    digest: str | None = None
    position_id: int | None = None
    transaction_hash: str | None = None
    block_number: int | None = None
    fill: Fill | None = None
    batch: Batch | None = None
    reason: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    http_status: int | None = None  # 201 mined, 202 still in flight, 200 the record of an earlier submit
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def confirmed(self) -> bool:
        return self.status == "confirmed"

    @classmethod
    def from_json(cls, d: Json, http_status: int | None = None) -> Intent:
        fill, batch = d.get("fill"), d.get("batch")
        return cls(
            intent_id=_int(d.get("intentId")),
            status=str(d.get("status", "")),
            type=_str(d.get("type")),
            agent_id=_int(d.get("agentId")),
            nonce=_int(d.get("nonce")),
            digest=_str(d.get("digest")),
            position_id=_int(d.get("positionId")),
            transaction_hash=_str(d.get("transactionHash")),
            block_number=_int(d.get("blockNumber")),
            fill=Fill.from_json(fill) if isinstance(fill, Mapping) else None,
            batch=Batch.from_json(batch) if isinstance(batch, Mapping) else None,
            reason=_str(d.get("reason")),
            created_at=_str(d.get("createdAt")),
            updated_at=_str(d.get("updatedAt")),
            http_status=http_status,
            raw=dict(d),
        )


@dataclass(frozen=True)
class Multiplier:
    """A token's share multiplier (SPEC §5.6): shares per token in force, and a scheduled change."""

    current: Decimal
    next: Decimal | None = None
    effective_at: int | None = None
    epoch: int | None = None

    @classmethod
    def from_json(cls, value: Any) -> Multiplier | None:
        if not isinstance(value, Mapping):
            return None
        current = _dec(value.get("current"))
        if current is None:
            return None
        return cls(current, _dec(value.get("next")), _int(value.get("effectiveAt")), _int(value.get("epoch")))


@dataclass(frozen=True)
class Market:
    """What the market allows now (SPEC §5.6): the oracle's status (``Regular``, ``Closed``, ``Halted``,
    …), the next regular open while it is not Regular (unix s, when known) and the multiplier."""

    status: str | None = None
    next_open: int | None = None
    multiplier: Multiplier | None = None

    @property
    def regular(self) -> bool:
        return self.status == "Regular"

    @classmethod
    def from_json(cls, d: Json) -> Market | None:
        if "marketStatus" not in d and "multiplier" not in d:
            return None  # a relayer from before markets
        return cls(
            _str(d.get("marketStatus")), _int(d.get("nextOpen")), Multiplier.from_json(d.get("multiplier"))
        )


@dataclass(frozen=True)
class Price:
    symbol: str
    price: Decimal | None
    token: str | None = None
    updated_at: int | None = None
    stale: bool = False
    share_price: Decimal | None = None  # USD per share as quoted: price = share_price × multiplier
    market: Market | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, d: Json) -> Price:
        return cls(
            symbol=str(d.get("symbol", "")),
            price=_dec(d.get("price")),
            token=_str(d.get("token")),
            updated_at=_int(d.get("updatedAt")),
            stale=bool(d.get("stale", False)),
            share_price=_dec(d.get("sharePrice")),
            market=Market.from_json(d),
            raw=dict(d),
        )


@dataclass(frozen=True)
class LadderRule:
    trigger_type: str
    trigger_bps: int
    exit_bps: int
    index: int | None = None
    fired: bool = False
    trigger_price: Decimal | None = None

    @classmethod
    def from_json(cls, d: Json) -> LadderRule:
        return cls(
            trigger_type=str(d.get("triggerType", "")),
            trigger_bps=_int(d.get("triggerBps")) or 0,
            exit_bps=_int(d.get("exitBps")) or 0,
            index=_int(d.get("index")),
            fired=bool(d.get("fired", False)),
            trigger_price=_dec(d.get("triggerPrice")),
        )


@dataclass(frozen=True)
class Position:
    """A position with its ladder; `history` and `audit` (the keeper's trail) only on `position(id)`."""

    position_id: int
    status: str
    symbol: str | None = None
    token: str | None = None
    size: Decimal | None = None
    cost_basis: Decimal | None = None
    entry_price: Decimal | None = None
    current_price: Decimal | None = None
    value: Decimal | None = None
    unrealized_pnl: Decimal | None = None
    realized_pnl: Decimal | None = None
    opened_at: int | None = None
    open_tx: str | None = None
    closed_at: int | None = None
    close_tx: str | None = None
    exits_hash: str | None = None
    ladder: tuple[LadderRule, ...] = ()
    history: tuple[dict[str, Any], ...] = ()
    audit: tuple[dict[str, Any], ...] = ()
    market: Market | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def open(self) -> bool:
        return self.status == "open"

    @classmethod
    def from_json(cls, d: Json) -> Position:
        return cls(
            position_id=_int(d.get("id", d.get("positionId"))) or 0,
            status=str(d.get("status", "")),
            symbol=_str(d.get("symbol")),
            token=_str(d.get("token")),
            size=_dec(d.get("size")),
            cost_basis=_dec(d.get("costBasis")),
            entry_price=_dec(d.get("entryPrice")),
            current_price=_dec(d.get("currentPrice")),
            value=_dec(d.get("value")),
            unrealized_pnl=_dec(d.get("unrealizedPnl")),
            realized_pnl=_dec(d.get("realizedPnl")),
            opened_at=_int(d.get("openedAt")),
            open_tx=_str(d.get("openTx")),
            closed_at=_int(d.get("closedAt")),
            close_tx=_str(d.get("closeTx")),
            exits_hash=_str(d.get("exitsHash")),
            ladder=tuple(LadderRule.from_json(r) for r in _list(d.get("ladder")) if isinstance(r, Mapping)),
            history=tuple(_map(h) for h in _list(d.get("history"))),
            audit=tuple(_map(a) for a in _list(d.get("audit"))),
            market=Market.from_json(d),
            raw=dict(d),
        )


@dataclass(frozen=True)
class Account:
    """`GET /agents/{agentId}`: the agent's registration, track, allocation and what it has used today."""

    agent_id: int
    signer: str | None = None
    vault_id: int | None = None
    vault: str | None = None
    active: bool = True
    track: str | None = None
    allocation: Decimal | None = None
    deployed: Decimal | None = None
    headroom: Decimal | None = None
    turnover_today: Decimal | None = None
    realized_pnl_today: Decimal | None = None
    next_nonce: int | None = None
    limits: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, d: Json) -> Account:
        track = d.get("track")
        return cls(
            agent_id=_int(d.get("agentId")) or 0,
            signer=_str(d.get("signer")),
            vault_id=_int(d.get("vaultId")),
            vault=_str(d.get("vault")),
            active=bool(d.get("active", True)),
            track=_str(track.get("name")) if isinstance(track, Mapping) else _str(track),
            allocation=_dec(d.get("allocation")),
            deployed=_dec(d.get("deployed")),
            headroom=_dec(d.get("headroom")),
            turnover_today=_dec(d.get("turnoverToday")),
            realized_pnl_today=_dec(d.get("realizedPnlToday")),
            next_nonce=_int(d.get("nextNonce")),
            limits=_map(d.get("limits")),
            raw=dict(d),
        )


@dataclass(frozen=True)
class Check:
    check: str
    ok: bool
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def code(self) -> str | None:
        return _str(self.raw.get("code"))

    @property
    def suggestion(self) -> dict[str, Any] | None:
        """For a failed check, what would make the intent pass: ``{"usdcAmount": …}``,
        ``{"notBefore": unix_s}`` while the market is closed, …"""
        value = self.raw.get("suggestion")
        return dict(value) if isinstance(value, Mapping) else None


@dataclass(frozen=True)
class Quote:
    """A quote: the typed data to sign (unchanged) and the relayer's pre-check of the same intent."""

    primary_type: str
    typed_data: dict[str, Any]
    symbol: str | None = None
    token: str | None = None
    vault: str | None = None
    nonce: int | None = None
    position_id: int | None = None
    price: Price | None = None
    exits: tuple[dict[str, Any], ...] = ()
    checks: tuple[Check, ...] = ()
    defaulted: tuple[str, ...] = ()
    market: Market | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    @property
    def message(self) -> dict[str, Any]:
        return dict(self.typed_data.get("message", {}))

    @classmethod
    def from_json(cls, d: Json) -> Quote:
        typed = _map(d.get("typedData"))
        price = d.get("price")
        symbol = _str(d.get("symbol"))
        return cls(
            primary_type=str(typed.get("primaryType", "")),
            typed_data=typed,
            symbol=symbol,
            token=_str(d.get("token")),
            vault=_str(d.get("vault")),
            nonce=_int(d.get("nonce")),
            position_id=_int(d.get("positionId")),
            price=Price.from_json({"symbol": symbol, **price}) if isinstance(price, Mapping) else None,
            exits=tuple(_map(e) for e in _list(d.get("exits"))),
            checks=tuple(
                Check(str(c.get("check", "")), bool(c.get("ok", False)), dict(c))
                for c in _list(d.get("checks"))
                if isinstance(c, Mapping)
            ),
            defaulted=tuple(str(x) for x in _list(d.get("defaulted"))),
            market=Market.from_json(d),
            raw=dict(d),
        )


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event of `GET /agents/{agentId}/events`: its sequence id, type and JSON data."""

    id: int | None
    type: str
    data: Any
