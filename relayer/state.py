"""The relayer's in-memory projection of the contracts' events: agents, tracks, tokens, allowlists,
prices, positions and agent counters. Quotes and pre-checks read it without an RPC round trip.

The indexer is the only writer (`apply`), in block order; readers take consistent snapshots under
the lock. Each event's effect mirrors what the contract did when it emitted it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace

from relayer.chain.events import DecodedLog
from relayer.domain.limits import utc_day
from relayer.domain.market import MarketStatus, MultiplierSchedule
from relayer.domain.track import Track
from relayer.eip712 import ExitRule, TriggerType


@dataclass(frozen=True)
class AgentInfo:
    agent_id: int
    signer: str
    vault_id: int
    vault: str
    track_id: int
    allocation: int
    active: bool


@dataclass(frozen=True)
class TokenInfo:
    symbol: str
    address: str
    decimals: int


@dataclass(frozen=True)
class PriceInfo:
    price: int
    updated_at: int
    round_id: int


@dataclass(frozen=True)
class SharePriceInfo:
    """The latest round as quoted: per share, and the multiplier (epoch) it was quoted under."""

    share_price: int
    multiplier: int
    epoch: int
    round_id: int
    status: MarketStatus  # the market status the price was quoted in


@dataclass(frozen=True)
class Counters:
    next_nonce: int = 0
    deployed: int = 0
    day: int = 0
    turnover_today: int = 0
    realized_pnl_today: int = 0

    def on_day(self, day: int) -> Counters:
        """The counters as the contract sees them on `day`: a new UTC day starts at zero."""
        if day == self.day:
            return self
        return replace(self, day=day, turnover_today=0, realized_pnl_today=0)


@dataclass(frozen=True)
class PositionInfo:
    position_id: int
    agent_id: int
    token: str
    size: int
    cost_basis: int
    exits_hash: str
    rules: tuple[ExitRule, ...]
    fired_mask: int
    open: bool
    opened_at: int
    open_tx: str
    realized_pnl: int = 0
    closed_at: int | None = None
    close_tx: str | None = None


@dataclass
class ChainState:
    agents: dict[int, AgentInfo] = field(default_factory=dict)
    tracks: dict[int, tuple[str, Track]] = field(default_factory=dict)
    track_ids: dict[str, int] = field(default_factory=dict)
    vaults: dict[int, str] = field(default_factory=dict)
    tokens: dict[str, TokenInfo] = field(default_factory=dict)  # by checksum address
    symbols: dict[str, str] = field(default_factory=dict)  # symbol → address
    allowed: set[tuple[int, str]] = field(default_factory=set)
    prices: dict[str, PriceInfo] = field(default_factory=dict)  # per token
    share_prices: dict[str, SharePriceInfo] = field(default_factory=dict)
    market_status: dict[str, MarketStatus] = field(default_factory=dict)  # absent: Unknown
    multipliers: dict[str, MultiplierSchedule] = field(default_factory=dict)  # absent: never scheduled
    positions: dict[int, PositionInfo] = field(default_factory=dict)
    open_positions: dict[tuple[int, str], int] = field(default_factory=dict)
    counters: dict[int, Counters] = field(default_factory=dict)
    paused: bool = False
    max_price_age_s: int = 0
    spread_bps: int = 0
    block_number: int = -1
    block_timestamp: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def replace_with(self, other: ChainState) -> None:
        """Takes `other`'s contents (a projection rebuilt aside), keeping this object and its lock, so
        readers holding a reference see the old projection or the new one, never a mix."""
        with self.lock:
            for f in fields(self):
                if f.name != "lock":
                    setattr(self, f.name, getattr(other, f.name))

    @contextmanager
    def read(self) -> Iterator[ChainState]:
        with self.lock:
            yield self

    def observe_block(self, number: int, timestamp: int) -> None:
        """Every block up to `number` has been read, with or without events: the head and its time."""
        with self.lock:
            if number >= self.block_number:
                self.block_number = number
                self.block_timestamp = timestamp

    def counters_on(self, agent_id: int, now: int) -> Counters:
        return self.counters.get(agent_id, Counters()).on_day(utc_day(now))

    def token_by_symbol(self, symbol: str) -> TokenInfo | None:
        address = self.symbols.get(symbol)
        return self.tokens.get(address) if address else None

    # ------------------------------------------------------------------ projection

    def apply(self, log: DecodedLog, block_timestamp: int) -> PositionInfo | None:
        """Applies one event; returns the position it changed, if any."""
        with self.lock:
            if log.block_number >= self.block_number:
                self.block_number = log.block_number
                self.block_timestamp = block_timestamp
            handler = getattr(self, f"_on_{log.name}", None)
            if handler is None:
                return None
            result: PositionInfo | None = handler(log, block_timestamp)
            return result

    def _on_Paused(self, _log: DecodedLog, _ts: int) -> None:  # noqa: N802
        self.paused = True

    def _on_Unpaused(self, _log: DecodedLog, _ts: int) -> None:  # noqa: N802
        self.paused = False

    def _on_MaxPriceAgeSet(self, log: DecodedLog, _ts: int) -> None:  # noqa: N802
        self.max_price_age_s = log.args["maxPriceAge"]

    def _on_SpreadSet(self, log: DecodedLog, _ts: int) -> None:  # noqa: N802
        self.spread_bps = log.args["spreadBps"]

    def _on_TrackSet(self, log: DecodedLog, _ts: int) -> None:  # noqa: N802
        a = log.args
        t = a["track"]
        track = Track.from_event(t)
        self.tracks[a["trackId"]] = (a["name"], track)
        self.track_ids[a["name"]] = a["trackId"]

    def _on_VaultRegistered(self, log: DecodedLog, _ts: int) -> None:  # noqa: N802
        self.vaults[log.args["vaultId"]] = log.args["vault"]

    def _on_AgentRegistered(self, log: DecodedLog, _ts: int) -> None:  # noqa: N802
        a = log.args
        self.agents[a["agentId"]] = AgentInfo(
            agent_id=a["agentId"],
            signer=a["signer"],
            vault_id=a["vaultId"],
            vault=self.vaults[a["vaultId"]],
            track_id=a["trackId"],
            allocation=a["allocation"],
            active=True,
        )

    def _update_agent(self, agent_id: int, **changes: object) -> None:
        agent = self.agents.get(agent_id)
        if agent is not None:
            self.agents[agent_id] = replace(agent, **changes)  # type: ignore[arg-type]

    def _on_AgentSignerSet(self, log: DecodedLog, _ts: int) -> None:  # noqa: N802
        self._update_agent(log.args["agentId"], signer=log.args["signer"])

    def _on_AgentTrackSet(self, log: DecodedLog, _ts: int) -> None:  # noqa: N802
        self._update_agent(log.args["agentId"], track_id=log.args["trackId"])

    def _on_AgentAllocationSet(self, log: DecodedLog, _ts: int) -> None:  # noqa: N802
        self._update_agent(log.args["agentId"], allocation=log.args["allocation"])

    def _on_AgentActiveSet(self, log: DecodedLog, _ts: int) -> None:  # noqa: N802
        self._update_agent(log.args["agentId"], active=log.args["active"])

    def _on_TokenRegistered(self, log: DecodedLog, _ts: int) -> None:  # noqa: N802
        a = log.args
        self.tokens[a["token"]] = TokenInfo(a["symbol"], a["token"], a["decimals"])
        self.symbols[a["symbol"]] = a["token"]

    def _on_TokenAllowed(self, log: DecodedLog, _ts: int) -> None:  # noqa: N802
        key = (log.args["vaultId"], log.args["token"])
        if log.args["allowed"]:
            self.allowed.add(key)
        else:
            self.allowed.discard(key)

    def _on_PriceUpdated(self, log: DecodedLog, _ts: int) -> None:  # noqa: N802
        a = log.args
        self.prices[a["token"]] = PriceInfo(a["price"], a["updatedAt"], a["roundId"])

    def _on_SharePriceUpdated(self, log: DecodedLog, _ts: int) -> None:  # noqa: N802
        a = log.args
        self.share_prices[a["token"]] = SharePriceInfo(
            a["sharePrice"], a["multiplier"], a["epoch"], a["roundId"], MarketStatus(a["status"])
        )

    def _on_MarketStatusSet(self, log: DecodedLog, _ts: int) -> None:  # noqa: N802
        self.market_status[log.args["token"]] = MarketStatus(log.args["status"])

    def _on_MultiplierScheduled(self, log: DecodedLog, _ts: int) -> None:  # noqa: N802
        a = log.args
        self.multipliers[a["token"]] = MultiplierSchedule(
            a["epoch"], a["oldMultiplier"], a["newMultiplier"], a["effectiveAt"]
        )

    def status_of(self, token: str) -> MarketStatus:
        return self.market_status.get(token, MarketStatus.UNKNOWN)

    def schedule_of(self, token: str) -> MultiplierSchedule:
        return self.multipliers.get(token, MultiplierSchedule())

    def _on_NonceUsed(self, log: DecodedLog, ts: int) -> None:  # noqa: N802
        agent_id = log.args["agentId"]
        c = self.counters.get(agent_id, Counters()).on_day(utc_day(ts))
        self.counters[agent_id] = replace(c, next_nonce=log.args["nonce"] + 1)

    def _bump(self, agent_id: int, ts: int, *, deployed: int = 0, turnover: int = 0, pnl: int = 0) -> None:
        c = self.counters.get(agent_id, Counters()).on_day(utc_day(ts))
        self.counters[agent_id] = replace(
            c,
            deployed=c.deployed + deployed,
            turnover_today=c.turnover_today + turnover,
            realized_pnl_today=c.realized_pnl_today + pnl,
        )

    def _on_PositionOpened(self, log: DecodedLog, ts: int) -> PositionInfo:  # noqa: N802
        a = log.args
        # The ladder arrives in the ExitLadderSet event that follows in the same transaction.
        p = PositionInfo(
            position_id=a["positionId"],
            agent_id=a["agentId"],
            token=a["token"],
            size=a["tokensOut"],
            cost_basis=a["usdcIn"],
            exits_hash="0x" + "00" * 32,
            rules=(),
            fired_mask=0,
            open=True,
            opened_at=ts,
            open_tx=log.tx_hash,
        )
        self.positions[p.position_id] = p
        self.open_positions[(p.agent_id, p.token)] = p.position_id
        self._bump(p.agent_id, ts, deployed=a["usdcIn"], turnover=a["usdcIn"])
        return p

    def _on_PositionIncreased(self, log: DecodedLog, ts: int) -> PositionInfo | None:  # noqa: N802
        a = log.args
        p = self.positions.get(a["positionId"])
        if p is None:
            return None
        self._bump(p.agent_id, ts, deployed=a["usdcIn"], turnover=a["usdcIn"])
        p = replace(p, size=a["size"], cost_basis=a["costBasis"])
        self.positions[p.position_id] = p
        return p

    def _sale(
        self, position_id: int, ts: int, size: int, cost_basis: int, pnl: int, turnover: int
    ) -> PositionInfo | None:
        p = self.positions.get(position_id)
        if p is None:
            return None
        self._bump(p.agent_id, ts, deployed=cost_basis - p.cost_basis, turnover=turnover, pnl=pnl)
        p = replace(p, size=size, cost_basis=cost_basis, realized_pnl=p.realized_pnl + pnl)
        self.positions[position_id] = p
        return p

    def _on_PositionReduced(self, log: DecodedLog, ts: int) -> PositionInfo | None:  # noqa: N802
        a = log.args
        return self._sale(
            a["positionId"], ts, a["size"], a["costBasis"], a["realizedPnl"], turnover=a["usdcOut"]
        )

    def _on_ExitExecuted(self, log: DecodedLog, ts: int) -> PositionInfo | None:  # noqa: N802
        f = log.args["fill"]
        p = self._sale(log.args["positionId"], ts, f["size"], f["costBasis"], f["realizedPnl"], turnover=0)
        if p is not None:
            p = replace(p, fired_mask=p.fired_mask | (1 << f["ruleIndex"]))
            self.positions[p.position_id] = p
        return p

    def _on_ExitLadderSet(self, log: DecodedLog, _ts: int) -> PositionInfo | None:  # noqa: N802
        a = log.args
        p = self.positions.get(a["positionId"])
        if p is None:
            return None
        rules = tuple(
            ExitRule(TriggerType(r["triggerType"]), r["triggerBps"], r["exitBps"]) for r in a["rules"]
        )
        p = replace(p, exits_hash=a["exitsHash"], rules=rules, fired_mask=0)
        self.positions[p.position_id] = p
        return p

    def _on_PositionClosed(self, log: DecodedLog, ts: int) -> PositionInfo | None:  # noqa: N802
        p = self.positions.get(log.args["positionId"])
        if p is None:
            return None
        p = replace(p, open=False, closed_at=ts, close_tx=log.tx_hash)
        self.positions[p.position_id] = p
        self.open_positions.pop((p.agent_id, p.token), None)
        return p
