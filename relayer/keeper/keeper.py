"""The keeper: hears price updates and position changes from the indexer, asks the trigger index
which positions a price crosses, decides with the contract's own arithmetic what `executeExit`
would fire, simulates, sends, follows the transaction, and writes an audit trail a user can read.

The decision (`decide`) is pure; everything around it is I/O. Spending is bounded: one exit in flight
per position, a stale price never fires, failures retry with back-off up to a cap and are then
reported, not retried forever.

Retry semantics. A simulation revert that only says the chain is ahead of the keeper's view (the
price moved back or went stale, the ladder was replaced, the position closed) is a hold, not a
failure: the indexer brings the change and the keeper looks again. Anything else (the venue cannot
pay, the node is unreachable, the transaction reverted) is a failure: retried after
`backoff_s·2^(n−1)` up to `max_attempts`, then reported `failed`. A given-up rule gets a fresh budget
on a later oracle round for its token, at most `max_rounds` budgets per ladder (a venue short of
funds for a while does not leave a stop dead for good), and then only from a new ladder: never
retried forever (SPEC §3). A paused router holds exits without spending the budget; unpausing
re-evaluates every token. A rule whose retry finds it no longer triggered is reported `held` and not
retried. An exit that reverts because the ladder was replaced or the position closed before it was
included is `superseded`.

Market sessions (SPEC §5.6). The keeper holds what the router's gate would refuse (`market_hold`, the
contract's rule in `relayer.domain.market.exit_policy`): a halt holds every exit; a ``hold`` track's
crossed rule waits until the status now and the status its price was quoted in are both in the
track's sessions; a ``fire`` track fires on the last price; a token with no status is not gated. The
hold is audited once per position and market state ("market closed until Mon 7 Dec 09:30 ET") and
costs no retry budget; a status change or a new price looks at the token again, so the exit fires at
the first tradable price.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from relayer.chain import calls
from relayer.chain.events import DecodedLog
from relayer.chain.router import Revert, RouterClient, RouterRevertedError
from relayer.chain.sender import TxSender
from relayer.domain.calendar import ExchangeCalendar, calendar_if_loaded
from relayer.domain.exits import Fire, PositionState, decide_exits
from relayer.domain.market import ExitsWhenClosed, MarketStatus, exit_policy
from relayer.domain.market import Hold as MarketHold
from relayer.errors import ChainUnavailableError
from relayer.intents.claims import PositionClaims, intents_settled_after, intents_submitted
from relayer.keeper.index import TriggerIndex
from relayer.keeper.leader import Leadership
from relayer.metrics import Metrics
from relayer.state import ChainState, PositionInfo, PriceInfo
from relayer.store.models import KeeperAudit, PositionEvent, TxAttempt, TxRequest, utcnow

log = logging.getLogger("alphagrid.keeper")

GAS_MARGIN = 1.3
GAS_HEADROOM = 40_000
FOLLOW_INTERVAL_S = 0.05
# What one exit may cost inside executeExits (bench/gas.md: ~64k for a stop that closes, a few tens
# of thousands more per extra rule), with room to spare: a batch's gas limit is the sum of its items'
# budgets, so no estimate (a binary search re-running the whole batch) sits between the simulation
# and the broadcast. An exit is deterministic (no signatures, no third-party code but the venue's).
EXIT_GAS_BASE = 110_000
EXIT_GAS_PER_RULE = 50_000


def exit_gas_budget(fires: Sequence[Fire]) -> int:
    return EXIT_GAS_BASE + EXIT_GAS_PER_RULE * max(len(fires), 1)


# An exit in flight that another process sent (found in the database after a takeover) is checked on
# the node at most this often; once the node no longer knows any of its hashes, it is let go.
FOREIGN_CHECK_S = 1.0

# Simulation reverts meaning the chain is ahead of the keeper's view, not that the exit failed.
_HOLD_REVERTS = {
    "ExitNotTriggered": "price moved back",
    "OraclePriceStale": "the price is stale on chain",
    "LadderMismatch": "the ladder was replaced",
    "PositionNotOpen": "the position was closed",
    "EnforcedPause": "the router is paused",
    "MarketClosed": "the market is closed on chain",
    "MarketHalted": "the market is halted on chain",
}
# Events after which every token is evaluated again: exits the chain refused may now go through.
_RESYNC_EVENTS = {"Unpaused", "MaxPriceAgeSet", "TrackSet", "AgentTrackSet"}


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


def market_hold(
    status: MarketStatus,
    quoted_status: MarketStatus,
    exits_when_closed: ExitsWhenClosed,
    sessions: frozenset[MarketStatus],
    now: int,
    calendar: ExchangeCalendar | None,
) -> MarketHold | None:
    """Whether the router's market gate holds a crossed rule now (None: it may fire), with the next
    open of a session the track trades when the calendar knows it. Pure but for the calendar lookup."""
    verdict = exit_policy(status, exits_when_closed, sessions, quoted_status=quoted_status)
    if not isinstance(verdict, MarketHold):
        return None
    if verdict.next_open is None and calendar is not None and verdict.status is not MarketStatus.HALTED:
        opens = calendar.next_open(datetime.fromtimestamp(now, UTC), sessions)
        if opens is not None:
            return MarketHold(verdict.reason, verdict.status, int(opens.timestamp()))
    return verdict


def hold_for_intents(positions: Sequence[int], intents: Mapping[int, int | None]) -> dict[int, Hold]:
    """The exits to hold because an intent on their position is on its way (`intents`: position → the
    intent's id, None while it is being sent): the two would race, and one would revert. The exit
    goes once the intent settled, judged on the state it leaves behind. Pure."""
    held: dict[int, Hold] = {}
    for position_id in positions:
        if position_id not in intents:
            continue
        intent_id = intents[position_id]
        which = f"intent {intent_id}" if intent_id is not None else "an intent being sent"
        held[position_id] = Hold(f"an intent on the position is in flight ({which}): fired once it settles")
    return held


@dataclass
class InFlight:
    request_id: int
    exits_hash: str
    fires: list[Fire]
    price: PriceInfo
    observed_at: float  # monotonic time the price update was seen
    # Sent before this process led (found in the database): no latency to report, and if another
    # process's key sent it, nobody here follows its receipt.
    recovered: bool = False
    foreign: bool = False
    next_check: float = 0.0
    batched: bool = False  # an item of an executeExits transaction


@dataclass
class RetryState:
    """A position whose exit failed, under the ladder `exits_hash`."""

    exits_hash: str
    rules: tuple[int, ...] = ()  # the rules the failed exit was to fire
    attempts: int = 0
    not_before: float = 0.0  # monotonic time of the next attempt
    gave_up_round: int | None = None  # the oracle round in which the budget ran out
    rounds: int = 1  # budgets spent under this ladder

    @property
    def gave_up(self) -> bool:
        return self.gave_up_round is not None


@dataclass(frozen=True)
class Ready:
    """An exit decided and due: simulated and sent with the others of the same step."""

    position: PositionInfo
    fires: list[Fire]
    price: PriceInfo
    seen: float
    retry: RetryState | None


@dataclass
class Keeper:
    sessions: sessionmaker[Session]
    state: ChainState
    sender: TxSender
    client: RouterClient
    metrics: Metrics
    leader: Leadership
    max_attempts: int = 5
    max_rounds: int = 3
    backoff_s: float = 1.0
    # Exits per executeExits transaction: every exit one price update crosses goes out together,
    # split by items and by gas (SPEC §5.1). 1: one executeExit per position.
    batch_max_items: int = 250
    batch_max_gas: int = 24_000_000
    clock: Callable[[], float] = time.time
    index: TriggerIndex = field(default_factory=TriggerIndex)
    _queue: queue.SimpleQueue[tuple[str, Any, float]] = field(default_factory=queue.SimpleQueue)
    _in_flight: dict[int, InFlight] = field(default_factory=dict)
    _retries: dict[int, RetryState] = field(default_factory=dict)
    _held_round: dict[int, int] = field(default_factory=dict)  # position → stale round audited
    # Position → the market state (status now, status quoted, round) whose hold was audited.
    _held_market: dict[int, tuple[MarketStatus, MarketStatus]] = field(default_factory=dict)
    market_calendar: str = "XNYS"  # for "market closed until …" in the audit
    # Positions whose exit waits for an intent in flight on them → the hold audited (once per intent).
    _held_for_intent: dict[int, str] = field(default_factory=dict)
    # Shared with the intent dispatcher of this process: a position is claimed for an exit from its
    # simulation until it settles; the dispatcher holds the intents on it, and the keeper its exits on
    # positions the dispatcher claimed.
    claims: PositionClaims = field(default_factory=PositionClaims)
    # Look at every token's current price on the next leading step: set on taking leadership (what
    # happened while following was drained unevaluated) and after a failed step.
    _resync: bool = True

    # ------------------------------------------------------------------ inputs (indexer thread)

    def on_event(self, event: DecodedLog, position: PositionInfo | None) -> bool:
        """Called by the indexer for every event, in block order; never blocks it. True when the event
        gives the keeper something to look at (the caller then wakes its step)."""
        if position is not None:
            self._queue.put(("position", position, time.monotonic()))
        elif event.name in ("PriceUpdated", "MarketStatusSet"):
            # A status change alone may release a held exit (a halt lifted, a fire track reopening).
            self._queue.put(("price", event.args["token"], time.monotonic()))
        elif event.name in _RESYNC_EVENTS:
            self._queue.put(("resync", None, time.monotonic()))
        else:
            return False
        return True

    def resync(self) -> None:
        """On the next leading step, look at every token's current price and at the exits the database
        says are in flight: what happened while this process was not leading (or a step failed)."""
        self._resync = True

    def load(self) -> None:
        """Indexes every open position in the state (after the indexer's bootstrap). The first leading
        step then evaluates every token at its current price (`_resync`), so a stop crossed while no
        keeper ran fires at once."""
        with self.state.read():
            for p in self.state.positions.values():
                if p.open:
                    self.index.update(p, self.state.tokens[p.token].decimals)
        self.metrics.trigger_index_size.set(len(self.index))

    # ------------------------------------------------------------------ step (a scheduler job)

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
            elif kind == "resync":
                self._resync = True
            else:
                p: PositionInfo = item
                with self.state.read():
                    decimals = self.state.tokens[p.token].decimals
                self.index.update(p, decimals)
                positions.setdefault(p.position_id, seen)
        self.metrics.trigger_index_size.set(len(self.index))
        if not leading:
            return
        if self._resync:
            self._resync = False
            self._recover_in_flight()
            now = time.monotonic()
            with self.state.read():
                for token in self.state.prices:
                    tokens.setdefault(token, now)
        for position_id in self.follow():
            positions.setdefault(position_id, time.monotonic())
        ready: dict[int, Ready] = {}
        for token, seen in tokens.items():
            for r in self.evaluate_token(token, seen):
                ready.setdefault(r.position.position_id, r)
        for position_id, seen in positions.items():
            due = self.evaluate_position(position_id, seen) if position_id not in ready else None
            if due is not None:
                ready[position_id] = due
        for position_id in list(self._held_for_intent):  # waiting for an intent: looked at again
            if position_id not in ready and position_id not in positions:
                due = self.evaluate_position(position_id, time.monotonic())
                if due is None:
                    del self._held_for_intent[position_id]  # nothing to fire any more
                else:
                    ready[position_id] = due
        for position_id, retry in list(self._retries.items()):
            if position_id in ready or retry.gave_up or retry.not_before > time.monotonic():
                continue
            due = self.evaluate_position(position_id, time.monotonic())
            if due is not None:
                ready[position_id] = due
        if ready:
            self.fire(list(ready.values()))

    def next_due(self, idle_s: float) -> float:
        """Seconds until the next step has work that no event will announce: exits in flight to
        follow (a revert leaves no event), or a retry coming due; `idle_s` otherwise."""
        if self._in_flight or self._held_for_intent:
            return min(FOLLOW_INTERVAL_S, idle_s)
        due = [r.not_before for r in self._retries.values() if not r.gave_up]
        if due:
            return max(0.0, min(min(due) - time.monotonic(), idle_s))
        return idle_s

    # ------------------------------------------------------------------ evaluation

    def evaluate_token(self, token: str, seen: float) -> list[Ready]:
        with self.state.read():
            price = self.state.prices.get(token)
        if price is None:
            return []
        out: list[Ready] = []
        for position_id in self.index.candidates(token, price.price):
            r = self.evaluate_position(position_id, seen)
            if r is not None:
                out.append(r)
        return out

    def evaluate_position(self, position_id: int, seen: float) -> Ready | None:
        """What the position's rules call for at the current price: an exit to send (with the others
        of this step), or nothing (held, audited where it matters)."""
        if position_id in self._in_flight:
            return None
        with self.state.read():
            p = self.state.positions.get(position_id)
            if p is None or not p.open:
                self._retries.pop(position_id, None)
                self._held_round.pop(position_id, None)
                self._held_market.pop(position_id, None)
                return None
            price = self.state.prices.get(p.token)
            status = self.state.status_of(p.token)
            share = self.state.share_prices.get(p.token)
            quoted = share.status if share is not None else MarketStatus.UNKNOWN
            agent = self.state.agents.get(p.agent_id)
            track = self.state.tracks[agent.track_id][1] if agent is not None else None
            decimals = self.state.tokens[p.token].decimals
            max_age, spread = self.state.max_price_age_s, self.state.spread_bps
            chain_time = self.state.block_timestamp
            paused = self.state.paused
        if price is None:
            return None
        retry = self._retries.get(position_id)
        if retry is not None and retry.exits_hash != p.exits_hash:
            self._retries.pop(position_id)  # a new ladder: a fresh start
            retry = None
        elif (
            retry is not None
            and retry.gave_up
            and retry.gave_up_round != price.round_id
            and retry.rounds < self.max_rounds
        ):
            retry.rounds += 1
            retry.attempts, retry.gave_up_round, retry.not_before = 0, None, 0.0
        if retry is not None and (retry.gave_up or retry.not_before > time.monotonic()):
            return None
        if paused:  # exits wait; the Unpaused event brings the keeper back to every token
            self._audit_held_once(p, price, decimals, spread, "the router is paused")
            return None
        if track is not None:
            # The router's market gate answers before its price-age check: so does the keeper.
            now = max(int(self.clock()), chain_time)
            held = market_hold(status, quoted, track.exits_when_closed, track.sessions, now, self._calendar())
            if held is not None:
                fires = decide_exits(
                    PositionState(p.size, p.cost_basis, p.fired_mask, decimals), p.rules, price.price, spread
                )
                if fires:
                    self._audit_market_hold(p, fires, price, status, quoted, held)
                return None
        verdict = decide(
            p,
            price,
            # The router compares with block.timestamp: never judge by a wall clock behind the chain.
            now=max(int(self.clock()), chain_time),
            max_price_age_s=max_age,
            spread_bps=spread,
            token_decimals=decimals,
        )
        self._held_market.pop(position_id, None)
        if isinstance(verdict, Hold):
            if verdict.reason.startswith("stale"):
                self._audit_held_once(p, price, decimals, spread, verdict.reason)
            elif retry is not None:
                del self._retries[position_id]
                outcome = f"{verdict.reason} at this price any more: not retried"
                self._audit_rules(p, retry.rules, price, "held", outcome, triggered=False)
            return None
        return Ready(p, verdict, price, seen, retry)

    def _calendar(self) -> ExchangeCalendar | None:
        return calendar_if_loaded(self.market_calendar) if self.market_calendar else None

    def _audit_market_hold(
        self,
        p: PositionInfo,
        fires: list[Fire],
        price: PriceInfo,
        status: MarketStatus,
        quoted: MarketStatus,
        held: MarketHold,
    ) -> None:
        """Once per position and market state (the status now, the one the price was quoted in): prices
        pushed while it lasts (a pre-market for a Regular track) do not repeat it."""
        key = (status, quoted)
        if self._held_market.get(p.position_id) == key:
            return
        self._held_market[p.position_id] = key
        self._audit(p, fires, price, "held", held.message)

    # ------------------------------------------------------------------ firing

    def fire(self, ready: Sequence[Ready]) -> None:
        """Simulates and sends the step's exits: one alone through executeExit, several together
        through executeExits, split by items and gas; an item the simulation refuses is held or
        failed on its own (its reason), the rest go. An exit on a position an intent is in flight on
        is held until the intent settles (`hold_for_intents`)."""
        claimed = [r.position.position_id for r in ready]
        busy: dict[int, int | None] = dict.fromkeys(self.claims.claim_exits(claimed))
        with self.state.read():
            indexed_block = self.state.block_number
        # An intent held for: still busy once mined, until the index has read its block (the
        # ladder or size it leaves behind), else the exit would be judged on the state before it.
        waited = {
            p: int(key) for p in claimed if (key := self._held_for_intent.get(p)) not in (None, "sending")
        }
        with self.sessions() as session:
            busy.update(intents_submitted(session, claimed))
            busy.update(
                intents_settled_after(
                    session, {p: i for p, i in waited.items() if p not in busy}, indexed_block
                )
            )
        try:
            holds = hold_for_intents(claimed, busy)
            for r in ready:
                hold = holds.get(r.position.position_id)
                if hold is not None:
                    self._hold_for_intent(r, hold, busy[r.position.position_id])
            for r in ready:
                if r.position.position_id not in holds:
                    self._held_for_intent.pop(r.position.position_id, None)
            self._fire([r for r in ready if r.position.position_id not in holds])
        finally:
            self.claims.release_exits(p for p in claimed if p not in self._in_flight)

    def _hold_for_intent(self, r: Ready, hold: Hold, intent_id: int | None) -> None:
        """Audited once per intent; the step looks at the position again until the intent settled."""
        position_id = r.position.position_id
        key = str(intent_id) if intent_id is not None else "sending"
        before = self._held_for_intent.get(position_id)
        if before is None or (before != key and key != "sending" and before != "sending"):
            self._audit(r.position, r.fires, r.price, "held", hold.reason)
        self._held_for_intent[position_id] = key

    def _fire(self, ready: Sequence[Ready]) -> None:
        if not ready:
            return
        if len(ready) == 1 or self.batch_max_items <= 1:
            for r in ready:
                self._fire_one(r)
            return
        chunk: list[Ready] = []
        gas = 0
        for r in ready:
            budget = exit_gas_budget(r.fires)
            if chunk and (len(chunk) >= self.batch_max_items or gas + budget > self.batch_max_gas):
                self._fire_chunk(chunk)
                chunk, gas = [], 0
            chunk.append(r)
            gas += budget
        if chunk:
            self._fire_chunk(chunk)

    def _fire_chunk(self, chunk: list[Ready]) -> None:
        if len(chunk) == 1:
            self._fire_one(chunk[0])
        else:
            self._fire_batch(chunk)

    def _fire_one(self, r: Ready) -> None:
        data = calls.execute_exit(r.position.position_id, r.position.rules)
        try:
            gas = self.client.estimate_gas(data)
        except ChainUnavailableError as exc:
            self._failed(r.position, r.fires, r.price, f"simulation impossible: {exc.message}")
            return
        except RouterRevertedError as exc:
            self._refused(r, exc.revert)
            return
        self._send([r], data, gas)

    def _fire_batch(self, chunk: list[Ready]) -> None:
        data = calls.execute_exits([(r.position.position_id, r.position.rules) for r in chunk])
        try:
            results = self.client.simulate_batch(data)
            keep = [r for r, result in zip(chunk, results, strict=True) if not result]
            for r, result in zip(chunk, results, strict=True):
                if result:
                    self._refused(r, self.client.decode_revert(result))
            if not keep:
                return
            if len(keep) == 1:
                self._fire_one(keep[0])
                return
            if len(keep) < len(chunk):
                data = calls.execute_exits([(r.position.position_id, r.position.rules) for r in keep])
        except ChainUnavailableError as exc:
            for r in chunk:
                self._failed(r.position, r.fires, r.price, f"simulation impossible: {exc.message}")
            return
        except RouterRevertedError as exc:  # the whole batch (paused, say)
            for r in chunk:
                self._refused(r, exc.revert)
            return
        self._send(keep, data, sum(exit_gas_budget(r.fires) for r in keep), budgeted=True)

    def _refused(self, r: Ready, revert: Revert) -> None:
        """The simulation says no: the chain ahead of the keeper's view is a hold, the rest a failure."""
        why = _HOLD_REVERTS.get(revert.name)
        if why is not None:
            self._audit(r.position, r.fires, r.price, "held", f"simulation: {revert.describe()} ({why})")
            if r.retry is not None:
                r.retry.not_before = time.monotonic() + self.backoff_s  # until the indexer catches up
            return
        self._failed(r.position, r.fires, r.price, f"simulation reverted: {revert.describe()}")

    def _send(self, items: Sequence[Ready], data: bytes, gas: int, *, budgeted: bool = False) -> None:
        gas_limit = gas if budgeted else int(gas * GAS_MARGIN) + GAS_HEADROOM
        try:
            request = self.sender.submit(
                to=self.client.address, data=data, gas_limit=gas_limit, purpose="exit"
            )
        except ChainUnavailableError as exc:  # raised before anything was recorded: nothing was sent
            for r in items:
                self._failed(r.position, r.fires, r.price, f"not sent: {exc.message}")
            return
        tx_hash = request.attempts[-1].tx_hash if request.attempts else None
        for r in items:
            p = r.position
            self._in_flight[p.position_id] = InFlight(
                request.id, p.exits_hash, r.fires, r.price, r.seen, batched=len(items) > 1
            )
            self._audit(p, r.fires, r.price, "sent", None, tx_hash)

    def follow(self) -> list[int]:
        """Settles exits in flight, each once the indexer has read its block: confirmed; superseded
        (reverted because the ladder was replaced or the position closed before it was included);
        or failed and scheduled for a bounded retry. Returns the positions settled: the caller looks
        at them again, since the price may have moved on while their exit was in flight."""
        settled: list[int] = []
        for position_id, flight in list(self._in_flight.items()):
            outcome = self._outcome(flight)
            if outcome is None:
                continue
            status, mined_hash, error, block = outcome
            with self.state.read():
                if block is not None and self.state.block_number < block:
                    continue  # judge it by the state its block leaves behind
                p = self.state.positions.get(position_id)
            del self._in_flight[position_id]
            self.claims.release_exits([position_id])
            settled.append(position_id)
            if p is None:
                continue
            skipped = self._skipped(mined_hash, position_id) if status == "mined" else None
            if skipped is not None:
                # Its item in the batch was skipped on chain (ExitSkipped): judged as a simulation is.
                self._count_after_simulation(flight, skipped.name)
                self._refused(
                    Ready(p, flight.fires, flight.price, flight.observed_at, self._retries.get(position_id)),
                    skipped,
                )
            elif status == "mined":
                self._retries.pop(position_id, None)
                rules = self._rules_fired_by(mined_hash, position_id)
                self.metrics.exits_fired.inc(len(rules))
                if not flight.recovered:
                    self.metrics.exit_latency.observe(time.monotonic() - flight.observed_at)
                self._audit_rules(p, rules, flight.price, "confirmed", "mined", mined_hash)
            elif status == "released":  # nothing to audit: the next evaluation decides afresh
                log.info("exit for position %s let go: %s", position_id, error)
            elif not p.open or p.exits_hash != flight.exits_hash:
                self._count_after_simulation(flight, self._reverted_with(status, mined_hash))
                self._retries.pop(position_id, None)
                why = "the position was closed" if not p.open else "the ladder was replaced (LadderMismatch)"
                outcome_text = f"transaction {status}: {why} before it was included"
                self._audit(p, flight.fires, flight.price, "superseded", outcome_text, mined_hash)
            else:
                self._count_after_simulation(flight, self._reverted_with(status, mined_hash))
                self._failed(p, flight.fires, flight.price, f"transaction {status}: {error or mined_hash}")
        return settled

    def _count_after_simulation(self, flight: InFlight, reason: str) -> None:
        """An exit this keeper simulated and sent that did not execute on chain, by reason."""
        if not flight.recovered:
            self.metrics.exits_failed_after_simulation.labels(reason).inc()

    def _reverted_with(self, status: str, mined_hash: str | None) -> str:
        if status != "failed" or mined_hash is None:
            return status  # dropped
        try:
            cause = self.client.replay(mined_hash)
        except ChainUnavailableError:
            cause = None
        return cause.name if cause is not None else "reverted"

    def _outcome(self, flight: InFlight) -> tuple[str, str | None, str | None, int | None] | None:
        """(status, mined hash, error, block) once the exit's transaction is settled; None while not."""
        with self.sessions() as session:
            request = session.get(TxRequest, flight.request_id)
            if request is None:
                return ("released", None, "its transaction request is gone", None)
            if request.status != "pending":
                return (request.status, request.mined_hash, request.error, request.block_number)
            if not flight.foreign:
                return None  # our sender follows it and will settle the request
            hashes = [a.tx_hash for a in request.attempts if a.tx_hash]
        return self._foreign_outcome(flight, hashes)

    def _foreign_outcome(
        self, flight: InFlight, hashes: list[str]
    ) -> tuple[str, str | None, str | None, int | None] | None:
        """An exit another process sent and may no longer follow: ask the node. Mined → settled by
        its receipt; still known to the node → wait; unknown → never going to be mined from here, so
        the keeper looks at the position afresh (a simulation decides whether to send again)."""
        now = time.monotonic()
        if now < flight.next_check:
            return None
        flight.next_check = now + FOREIGN_CHECK_S
        try:
            for tx_hash in hashes:
                receipt = self.client.receipt(tx_hash)
                if receipt is not None:
                    status = "mined" if int(receipt["status"], 16) == 1 else "failed"
                    return (status, tx_hash, None, int(receipt["blockNumber"], 16))
            for tx_hash in hashes:
                if self.client.transaction_known(tx_hash):
                    return None
        except ChainUnavailableError:
            return None
        return ("released", None, "sent by another keeper that no longer follows it; not on the node", None)

    def _rules_fired_by(self, tx_hash: str | None, position_id: int) -> list[int]:
        """The rules an exit transaction actually fired for the position, from its indexed
        ExitExecuted events: the chain's answer, not the keeper's prediction."""
        if tx_hash is None:
            return []
        with self.sessions() as session:
            rows = session.scalars(
                select(PositionEvent.data)
                .where(
                    PositionEvent.tx_hash == tx_hash,
                    PositionEvent.position_id == position_id,
                    PositionEvent.kind == "exit",
                )
                .order_by(PositionEvent.log_index)
            ).all()
        return [int(data["fill"]["ruleIndex"]) for data in rows]

    def _skipped(self, tx_hash: str | None, position_id: int) -> Revert | None:
        """Why a mined executeExits skipped this position's item (its ExitSkipped event), if it did."""
        if tx_hash is None:
            return None
        try:
            receipt = self.client.receipt(tx_hash)
        except ChainUnavailableError:
            return None
        if receipt is None:
            return None
        for event in self.client.router_logs(receipt):
            if event.name == "ExitSkipped" and event.args["positionId"] == position_id:
                return self.client.decode_revert(bytes(event.args["reason"]))
        return None

    def _recover_in_flight(self) -> None:
        """Exits the database says are pending (sent by this process before a restart, or by the
        keeper this one took over from) count as in flight: the same rule is not sent twice. So do
        exits settled since with no outcome in the audit: `follow` records it."""
        mine = {s.lower() for s in self.sender.senders}
        with self.sessions() as session:
            # An exit whose audit ends at `sent` was settled while no keeper followed it (mined while
            # the relayer was down, say): following it again records how it ended.
            last_audits = select(func.max(KeeperAudit.id)).group_by(KeeperAudit.position_id)
            unsettled = (
                select(TxAttempt.request_id)
                .join(KeeperAudit, KeeperAudit.tx_hash == TxAttempt.tx_hash)
                .where(KeeperAudit.id.in_(last_audits), KeeperAudit.action == "sent")
            )
            rows = session.execute(
                select(TxRequest.id, TxRequest.sender, TxRequest.data).where(
                    TxRequest.purpose == "exit",
                    or_(TxRequest.status == "pending", TxRequest.id.in_(unsettled)),
                )
            ).all()
        for request_id, sender, data in rows:
            position_ids = calls.exit_position_ids(data)
            for position_id in position_ids:
                if position_id in self._in_flight:
                    continue
                with self.state.read():
                    p = self.state.positions.get(position_id)
                    price = self.state.prices.get(p.token) if p is not None else None
                if p is None or price is None:
                    continue
                self._in_flight[position_id] = InFlight(
                    request_id,
                    p.exits_hash,
                    [],
                    price,
                    time.monotonic(),
                    recovered=True,
                    foreign=sender.lower() not in mine,
                    batched=len(position_ids) > 1,
                )
                log.info("exit for position %s already in flight (request %s)", position_id, request_id)

    def _failed(self, p: PositionInfo, fires: list[Fire], price: PriceInfo, reason: str) -> None:
        self.metrics.exits_failed.inc()
        retry = self._retries.get(p.position_id)
        if retry is None or retry.exits_hash != p.exits_hash:
            retry = self._retries[p.position_id] = RetryState(exits_hash=p.exits_hash)
        retry.rules = tuple(f.rule_index for f in fires)
        retry.attempts += 1
        if retry.attempts >= self.max_attempts:
            retry.gave_up_round = price.round_id
            if retry.rounds < self.max_rounds:
                again = f"tried again on a later oracle round ({retry.rounds} of {self.max_rounds}) or ladder"
            else:
                again = f"that was the last of {self.max_rounds} rounds: tried again only for a new ladder"
            outcome = f"gave up after {retry.attempts} attempts: {reason}; {again}"
            self._audit(p, fires, price, "failed", outcome)
            log.error("exit for position %s failed for good: %s", p.position_id, reason)
            return
        delay = self.backoff_s * 2 ** (retry.attempts - 1)
        retry.not_before = time.monotonic() + delay
        self._audit(p, fires, price, "retry", f"{reason}; retrying in {delay:g} s")

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
        self._audit_rules(p, [f.rule_index for f in fires], price, action, outcome, tx_hash)

    def _audit_rules(
        self,
        p: PositionInfo,
        rules: Sequence[int],
        price: PriceInfo,
        action: str,
        outcome: str | None,
        tx_hash: str | None = None,
        *,
        triggered: bool = True,
    ) -> None:
        # When the keeper decided, not when the row reached the database (a wait for a pooled
        # connection or SQLite's write lock would move it, and the back-off between attempts with it).
        at = utcnow()
        with self.sessions.begin() as session:
            for rule_index in rules:
                session.add(
                    KeeperAudit(
                        position_id=p.position_id,
                        rule_index=rule_index,
                        price=price.price,
                        round_id=price.round_id,
                        triggered=triggered,
                        action=action,
                        outcome=outcome,
                        tx_hash=tx_hash,
                        at=at,
                    )
                )

    def _audit_held_once(
        self, p: PositionInfo, price: PriceInfo, decimals: int, spread: int, reason: str
    ) -> None:
        """A stale price or a paused router holds rules that would fire: say so once per oracle round."""
        if self._held_round.get(p.position_id) == price.round_id:
            return
        fires = decide_exits(
            PositionState(p.size, p.cost_basis, p.fired_mask, decimals), p.rules, price.price, spread
        )
        if fires:
            self._held_round[p.position_id] = price.round_id
            self._audit(p, fires, price, "held", reason)
