"""The keeper: hears price updates and position changes from the indexer, asks the trigger index
which positions a price crosses, decides with the contract's own arithmetic what `executeExit`
would fire, simulates, sends, follows the transaction, and writes an audit trail a user can read.

The decision (`decide`) is pure; everything around it is I/O. Spending is bounded: one exit in flight
per position, a stale price never fires, failures retry with back-off up to a cap and are then
reported, not retried forever.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from web3 import Web3

from relayer.chain import calls, rpc
from relayer.chain.events import DecodedLog
from relayer.chain.reverts import RevertDecoder
from relayer.chain.sender import TxSender
from relayer.domain.exits import Fire, PositionState, decide_exits
from relayer.keeper.index import TriggerIndex
from relayer.keeper.leader import Leadership
from relayer.metrics import Metrics
from relayer.state import ChainState, PositionInfo, PriceInfo
from relayer.store.models import KeeperAudit, TxRequest

log = logging.getLogger("alphagrid.keeper")

GAS_MARGIN = 1.3
GAS_HEADROOM = 40_000


@dataclass(frozen=True)
class Hold:
    reason: str


def decide(
    p: PositionInfo, price: PriceInfo, *, now: int, max_price_age_s: int, spread_bps: int, token_decimals: int
) -> list[Fire] | Hold:
    """Fire (what executeExit will do) or hold (and why). Pure."""
    if not p.open:
        return Hold("position closed")
    if now > price.updated_at + max_price_age_s:
        return Hold(f"stale price: updated at {price.updated_at}, older than {max_price_age_s} s")
    fires = decide_exits(
        PositionState(p.size, p.cost_basis, p.fired_mask, token_decimals), p.rules, price.price, spread_bps
    )
    return fires or Hold("not triggered")


@dataclass
class InFlight:
    request_id: int
    exits_hash: str
    fires: list[Fire]
    price: PriceInfo
    observed_at: float  # monotonic time the price update was seen


@dataclass
class RetryState:
    attempts: int = 0
    not_before: float = 0.0
    gave_up: bool = False
    exits_hash: str = ""


@dataclass
class Keeper:
    w3: Web3
    sessions: sessionmaker[Session]
    state: ChainState
    sender: TxSender
    router: str
    reverts: RevertDecoder
    metrics: Metrics
    leader: Leadership
    max_attempts: int = 5
    backoff_s: float = 1.0
    clock: Callable[[], float] = time.time
    index: TriggerIndex = field(default_factory=TriggerIndex)
    _queue: queue.SimpleQueue[tuple[str, Any, float]] = field(default_factory=queue.SimpleQueue)
    _in_flight: dict[int, InFlight] = field(default_factory=dict)
    _retries: dict[int, RetryState] = field(default_factory=dict)
    _held_round: dict[int, int] = field(default_factory=dict)
    _wake: threading.Event = field(default_factory=threading.Event)

    # ------------------------------------------------------------------ inputs (indexer thread)

    def on_event(self, event: DecodedLog, position: PositionInfo | None) -> None:
        """Called by the indexer for every event, in block order; never blocks it."""
        if position is not None:
            self._queue.put(("position", position, time.monotonic()))
        elif event.name == "PriceUpdated":
            self._queue.put(("price", event.args["token"], time.monotonic()))
        else:
            return
        self._wake.set()

    def load(self) -> None:
        """Indexes every open position in the state (after the indexer's bootstrap)."""
        with self.state.read():
            for p in self.state.positions.values():
                if p.open:
                    self.index.update(p, self.state.tokens[p.token].decimals)
        self.metrics.trigger_index_size.set(len(self.index))

    # ------------------------------------------------------------------ loop (keeper thread)

    def run(self, stop: threading.Event, interval_s: float = 0.05) -> None:
        leading = False
        last_try = 0.0
        while not stop.is_set():
            if not leading or time.monotonic() - last_try > 1.0:
                leading, last_try = self.leader.acquire(), time.monotonic()
            try:
                self.step(leading)
            except Exception:
                log.exception("keeper step failed")
            self._wake.wait(timeout=interval_s)
            self._wake.clear()
        if leading:
            self.leader.release()

    def step(self, leading: bool) -> None:
        tokens: dict[str, float] = {}
        positions: dict[int, float] = {}
        while True:
            try:
                kind, item, seen = self._queue.get_nowait()
            except queue.Empty:
                break
            if kind == "price":
                tokens.setdefault(item, seen)
            else:
                p: PositionInfo = item
                with self.state.read():
                    decimals = self.state.tokens[p.token].decimals
                self.index.update(p, decimals)
                positions.setdefault(p.position_id, seen)
        self.metrics.trigger_index_size.set(len(self.index))
        if not leading:
            return
        self.follow()
        for token, seen in tokens.items():
            self.evaluate_token(token, seen)
        for position_id, seen in positions.items():
            self.evaluate_position(position_id, seen)
        for position_id, retry in list(self._retries.items()):
            if not retry.gave_up and retry.not_before <= time.monotonic():
                self.evaluate_position(position_id, time.monotonic())

    # ------------------------------------------------------------------ evaluation

    def evaluate_token(self, token: str, seen: float) -> None:
        with self.state.read():
            price = self.state.prices.get(token)
        if price is None:
            return
        for position_id in self.index.candidates(token, price.price):
            self.evaluate_position(position_id, seen)

    def evaluate_position(self, position_id: int, seen: float) -> None:
        if position_id in self._in_flight:
            return
        with self.state.read():
            p = self.state.positions.get(position_id)
            if p is None or not p.open:
                self._retries.pop(position_id, None)
                return
            price = self.state.prices.get(p.token)
            decimals = self.state.tokens[p.token].decimals
            max_age, spread = self.state.max_price_age_s, self.state.spread_bps
        if price is None:
            return
        retry = self._retries.get(position_id)
        if retry is not None and retry.exits_hash != p.exits_hash:
            self._retries.pop(position_id)  # a new ladder re-arms: failures of the old one don't count
            retry = None
        if retry is not None and (retry.gave_up or retry.not_before > time.monotonic()):
            return
        verdict = decide(
            p,
            price,
            now=int(self.clock()),
            max_price_age_s=max_age,
            spread_bps=spread,
            token_decimals=decimals,
        )
        if isinstance(verdict, Hold):
            if verdict.reason.startswith("stale"):
                self._audit_triggered(p, price, decimals, spread, "held", verdict.reason)
            return
        data = calls.execute_exit(position_id, p.rules)
        response = rpc.request(self.w3, "eth_estimateGas", [{"to": self.router, "data": "0x" + data.hex()}])
        if "error" in response:
            reason = self._revert_reason(response["error"])
            if reason.startswith("ExitNotTriggered"):
                self._audit(p, verdict, price, "held", f"simulation: {reason} (price moved back)")
                return
            self._failed(p, verdict, price, f"simulation reverted: {reason}")
            return
        gas = int(int(response["result"], 16) * GAS_MARGIN) + GAS_HEADROOM
        request = self.sender.submit(to=self.router, data=data, gas_limit=gas, purpose="exit")
        tx_hash = request.attempts[-1].tx_hash if request.attempts else None
        self._in_flight[position_id] = InFlight(request.id, p.exits_hash, verdict, price, seen)
        self._audit(p, verdict, price, "sent", None, tx_hash)

    def follow(self) -> None:
        """Settles exits in flight: confirmed, or failed and scheduled for a bounded retry."""
        for position_id, flight in list(self._in_flight.items()):
            with self.sessions() as session:
                request = session.get(TxRequest, flight.request_id)
                if request is None or request.status == "pending":
                    continue
                status, mined_hash, error = request.status, request.mined_hash, request.error
            del self._in_flight[position_id]
            with self.state.read():
                p = self.state.positions.get(position_id)
            if p is None:
                continue
            if status == "mined":
                self._retries.pop(position_id, None)
                self.metrics.exits_fired.inc(len(flight.fires))
                self.metrics.exit_latency.observe(time.monotonic() - flight.observed_at)
                self._audit(p, flight.fires, flight.price, "confirmed", "mined", mined_hash)
            else:
                self._failed(p, flight.fires, flight.price, f"transaction {status}: {error or mined_hash}")

    def _failed(self, p: PositionInfo, fires: list[Fire], price: PriceInfo, reason: str) -> None:
        self.metrics.exits_failed.inc()
        retry = self._retries.setdefault(p.position_id, RetryState(exits_hash=p.exits_hash))
        retry.attempts += 1
        if retry.attempts >= self.max_attempts:
            retry.gave_up = True
            self._audit(p, fires, price, "failed", f"gave up after {retry.attempts} attempts: {reason}")
            log.error("exit for position %s failed for good: %s", p.position_id, reason)
            return
        delay = self.backoff_s * 2 ** (retry.attempts - 1)
        retry.not_before = time.monotonic() + delay
        self._audit(p, fires, price, "retry", f"{reason}; retrying in {delay:.0f} s")

    def _revert_reason(self, error: dict[str, Any]) -> str:
        data = error.get("data")
        if isinstance(data, dict):
            data = data.get("data")
        if isinstance(data, str) and data.startswith("0x"):
            decoded = self.reverts.decode(bytes.fromhex(data[2:]))
            return f"{decoded.name}{dict(decoded.to_json()['args'])}"
        return str(error.get("message", error))

    # ------------------------------------------------------------------ audit

    def _audit(
        self,
        p: PositionInfo,
        fires: list[Fire],
        price: PriceInfo,
        action: str,
        outcome: str | None,
        tx_hash: str | None = None,
    ) -> None:
        with self.sessions.begin() as session:
            for f in fires:
                session.add(
                    KeeperAudit(
                        position_id=p.position_id,
                        rule_index=f.rule_index,
                        price=price.price,
                        round_id=price.round_id,
                        triggered=True,
                        action=action,
                        outcome=outcome,
                        tx_hash=tx_hash,
                    )
                )

    def _audit_triggered(
        self, p: PositionInfo, price: PriceInfo, decimals: int, spread: int, action: str, outcome: str
    ) -> None:
        """A hold for a rule that would fire at this price (e.g. a stale one): say so once per round."""
        fires = decide_exits(
            PositionState(p.size, p.cost_basis, p.fired_mask, decimals), p.rules, price.price, spread
        )
        retry = self._retries.setdefault(p.position_id, RetryState(exits_hash=p.exits_hash))
        if fires and retry.not_before != float(price.round_id):
            retry.not_before = float(price.round_id)  # reused as "last audited round" for holds
            self._audit(p, fires, price, action, outcome)
