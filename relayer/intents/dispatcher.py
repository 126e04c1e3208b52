"""The batching dispatcher: waiting intents of any agents go out together.

One pass: finalize what settled, follow reorgs, then — unless `max_in_flight` batches are already on
their way — take every agent's run of consecutive ready nonces (`decisions.dispatch_step`), bound
them by items and gas (`plan_batch`), simulate the whole batch with eth_call (`executeIntents`
returns each item's revert data), reject the items that would fail with their reason (`screen`),
measure the rest's gas, and record the transaction and every item's move to `submitted` in one
database transaction (group commit) before broadcasting it. One ready intent goes alone, through
its single-intent function. What becomes ready while a batch is in flight waits for the next one;
when nothing is in flight, a new intent is sent at once (the submit wakes the dispatcher).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from relayer.chain import calls
from relayer.chain.router import Revert, RevertKind, RouterClient, RouterRevertedError
from relayer.errors import RelayerError
from relayer.intents import decisions
from relayer.intents.build import Built
from relayer.intents.checks import DEADLINE_MARGIN_S
from relayer.intents.claims import PositionClaims, exits_pending
from relayer.intents.decisions import (
    AgentQueue,
    BehindRefused,
    Candidate,
    Gap,
    Orphaned,
    Send,
    Spent,
    Wait,
)
from relayer.intents.finalize import Finalizer
from relayer.intents.lifecycle import HOLDS_NONCE, IntentState, for_transition, transition_all
from relayer.intents.prepare import Preparer, gas_limit
from relayer.store.models import Intent, TxRequest

log = logging.getLogger("alphagrid.intents.dispatcher")

PURPOSE: Final = "intent"
# Under load the dispatcher passes many times a second; its backstop scans need not.
BACKSTOP_SCAN_S: Final = 0.25


@dataclass(frozen=True)
class BatchPolicy:
    max_items: int = 64  # items per transaction
    max_gas: int = 12_000_000  # the items' budgets (decisions.GAS_BUDGET_BY_TYPE) per transaction
    max_in_flight: int = 1  # batches sent and not final yet; what becomes ready meanwhile waits
    enabled: bool = True  # False: one intent per transaction (the single-intent functions only)


class _ConflictError(Exception):
    """An item was no longer `received` when its batch was recorded: the pass is redone."""


class Sender(Protocol):
    """What the dispatcher needs of `chain.sender.TxSender`."""

    def prepare(self, session: Session, to: str, data: bytes, gas_limit: int, purpose: str) -> TxRequest: ...

    def broadcast(self, request_id: int) -> None: ...

    def check(self, request_id: int) -> object: ...


class Dispatcher:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        prepare: Preparer,
        router: RouterClient,
        finalizer: Finalizer,
        sender: Sender,
        policy: BatchPolicy | None = None,
        built_cache: Callable[[int], Built | None] = lambda _id: None,
        on_sent: Callable[[list[int]], None] = lambda _ids: None,
        claims: PositionClaims | None = None,
    ) -> None:
        self.sessions = sessions
        self.prepare = prepare
        self.router = router
        self.finalizer = finalizer
        self.sender = sender
        self.policy = policy or BatchPolicy()
        self.built_cache = built_cache  # intents this process built at submit: no rebuild needed
        self.on_sent = on_sent  # told the intents a recorded transaction now carries
        # Positions with a keeper exit on its way (shared with this process's keeper): intents on them
        # wait (`decisions.hold_on_exits`), and the keeper waits for ours.
        self.claims = claims or PositionClaims()
        self._wake = threading.Condition()
        self._reasons: set[str] = set()
        self._pass_lock = threading.Lock()
        # Transactions this dispatcher recorded that are not final yet (its in-flight bound).
        self._sent: set[int] = set()

    # ------------------------------------------------------------------ loop

    def wake(self, reason: str = "changed") -> None:
        """`received`: a new intent waits (only a dispatch may be due); anything else (a transaction
        settled, an intent was finalized, a block was indexed): look at everything."""
        with self._wake:
            self._reasons.add(reason)
            self._wake.notify_all()

    def run(self, stop: threading.Event, interval_s: float = 0.1) -> None:
        reasons: set[str] = {"start"}
        scanned = -BACKSTOP_SCAN_S
        while not stop.is_set():
            full = reasons != {"received"}
            scans = time.monotonic() - scanned >= BACKSTOP_SCAN_S
            if full and scans:
                scanned = time.monotonic()
            try:
                self.pass_once(full=full, scans=scans)
            except Exception:
                log.exception("intent dispatcher pass failed")
            with self._wake:
                if not self._reasons:
                    self._wake.wait(timeout=interval_s)
                reasons, self._reasons = self._reasons or {"timer"}, set()

    def pass_once(self, *, full: bool = True, scans: bool = True) -> None:
        """A full pass finalizes what settled and follows reorgs before dispatching; a pass for a new
        intent only dispatches, and not even that while this dispatcher's batches are all in flight.
        `scans`: also the table scans that are backstops (reorged confirmations, approvals past their
        deadline), which `run` does at most every `BACKSTOP_SCAN_S` under load."""
        with self._pass_lock:
            if full:
                self.finalizer.finalize_settled()
                if scans:
                    self.finalizer.follow_reorgs()
                self._forget_final()
                if scans:
                    self.expire_approvals()
            elif len(self._sent) >= self.policy.max_in_flight:
                return
            self.dispatch()

    # ------------------------------------------------------------------ approvals past their deadline

    def expire_approvals(self) -> int:
        """Silence is never consent (SPEC §5.5): an intent still pending approval when its deadline can
        no longer be met is rejected `deadline_expired` (one indexed query per pass)."""
        from relayer.operators import approvals  # the operators layer sits above the pipeline

        now = self.prepare.chain_now()
        with self.sessions() as session:
            ids = session.scalars(
                select(Intent.id).where(
                    Intent.status == IntentState.PENDING_APPROVAL.value,
                    Intent.deadline < now + DEADLINE_MARGIN_S,
                )
            ).all()
        expired: list[int] = []
        for intent_id in ids:
            with self.sessions.begin() as session:
                row = session.get(Intent, intent_id)
                if (
                    row is not None
                    and row.status == IntentState.PENDING_APPROVAL
                    and approvals.expire(session, row, now)
                ):
                    expired.append(intent_id)
        if expired:
            log.info("approvals expired undecided: intents %s", expired)
            self.finalizer.on_final(expired)
        return len(expired)

    def _forget_final(self) -> None:
        if not self._sent:
            return
        with self.sessions() as session:
            pending = set(
                session.scalars(
                    select(TxRequest.id).where(TxRequest.id.in_(self._sent), TxRequest.status == "pending")
                ).all()
            )
            settled = self._sent - pending
            if settled:
                # Final, but are its intents recorded? Until then it still counts as in flight.
                open_ids = set(
                    session.scalars(
                        select(Intent.tx_request_id).where(
                            Intent.tx_request_id.in_(settled), Intent.status == IntentState.SUBMITTED.value
                        )
                    ).all()
                )
                settled -= open_ids
        self._sent -= settled

    # ------------------------------------------------------------------ one batch

    def in_flight(self, session: Session) -> int:
        return int(
            session.scalar(
                select(func.count(func.distinct(Intent.tx_request_id))).where(
                    Intent.status == IntentState.SUBMITTED.value
                )
            )
            or 0
        )

    def dispatch(self) -> None:
        with self.sessions() as session:
            if self.in_flight(session) >= self.policy.max_in_flight:
                return
            waiting = session.execute(
                select(
                    Intent.id,
                    Intent.agent_id,
                    Intent.nonce,
                    Intent.primary_type,
                    Intent.position_id,
                    Intent.approval,
                )
                .where(Intent.status == IntentState.RECEIVED.value, Intent.tx_request_id.is_(None))
                .order_by(Intent.id)
            ).all()
            if not waiting:
                return
            approved = {r.id for r in waiting if r.approval is not None}
            agents = sorted({r.agent_id for r in waiting})
            facts = session.execute(
                select(Intent.agent_id, Intent.status, func.max(Intent.nonce))
                .where(
                    Intent.agent_id.in_(agents),
                    Intent.status.in_((IntentState.SUBMITTED.value, IntentState.CONFIRMED.value)),
                )
                .group_by(Intent.agent_id, Intent.status)
            ).all()
            exits = self.claims.exits()
            if any(r.position_id is not None for r in waiting):
                exits = exits | exits_pending(session)  # sent by a keeper in any process
        submitted = {a for a, s, _n in facts if s == IntentState.SUBMITTED.value}
        confirmed = {a: int(n) for a, s, n in facts if s == IntentState.CONFIRMED.value}
        by_agent: dict[int, list[Candidate]] = defaultdict(list)
        for r in waiting:
            by_agent[r.agent_id].append(
                Candidate(r.id, r.agent_id, int(r.nonce), r.primary_type, r.position_id)
            )
        now = self.prepare.chain_now()
        runs: list[list[Candidate]] = []
        for agent_id, candidates in by_agent.items():  # oldest first: `waiting` is in id order
            candidates.sort(key=lambda c: c.nonce)
            queue = AgentQueue(
                agent_id,
                tuple(c.nonce for c in candidates),
                self.prepare.state.counters_on(agent_id, now).next_nonce,
                agent_id in submitted,
                confirmed.get(agent_id),
            )
            step = decisions.dispatch_step(queue)
            if isinstance(step, Send):
                run, held = decisions.hold_on_exits(candidates[: len(step.nonces)], exits)
                if held is not None:
                    log.info(
                        "intent %s held: an exit on position %s is in flight",
                        held.candidate.intent_id,
                        held.position_id,
                    )
                if run:
                    runs.append(run)
            elif isinstance(step, Spent):
                self._spent(candidates[0])
            elif isinstance(step, Gap):
                self._gap(candidates[0], step.next_nonce)
            else:
                assert isinstance(step, Wait)
        if not runs:
            return
        if not self.policy.enabled:
            runs = [run[:1] for run in runs[:1]]
        chosen = decisions.plan_batch(runs, max_items=self.policy.max_items, max_gas=self.policy.max_gas)
        try:
            self.prepare.ensure_chain()
        except RelayerError:
            return  # kept `received`: sent once the node is back on our chain
        self._send(chosen, approved)

    def _built_all(self, chosen: Sequence[Candidate]) -> list[Built | RelayerError]:
        """Each intent as its submit built it (this process's cache), else rebuilt from its stored
        body: those read in one query (an API process built them: `--api-processes`)."""
        built: list[Built | RelayerError | None] = [self.built_cache(c.intent_id) for c in chosen]
        missing = [c.intent_id for c, b in zip(chosen, built, strict=True) if b is None]
        requests: dict[int, Any] = {}
        if missing:
            with self.sessions() as session:
                rows = session.execute(select(Intent.id, Intent.request).where(Intent.id.in_(missing)))
                requests = {intent_id: request for intent_id, request in rows}
        for i, c in enumerate(chosen):
            if built[i] is None:
                try:
                    built[i] = self.prepare.built(c.agent_id, c.primary_type, requests[c.intent_id])
                except RelayerError as exc:
                    built[i] = exc
        return [b for b in built if b is not None]

    def _send(self, chosen: Sequence[Candidate], approved: frozenset[int] | set[int] = frozenset()) -> None:
        # The positions are ours from here until the transaction is recorded (then the database says
        # so): the keeper holds its exits on them, and we drop what it claimed meanwhile.
        positions = [c.position_id for c in chosen if c.position_id is not None]
        refused = self.claims.claim_intents(positions)
        try:
            if refused:
                chosen = _without_claimed(chosen, refused)
            if chosen:
                self._send_claimed(chosen, approved)
        finally:
            self.claims.release_intents(p for p in positions if p not in refused)

    def _send_claimed(
        self, chosen: Sequence[Candidate], approved: frozenset[int] | set[int] = frozenset()
    ) -> None:
        # Funds first: nothing slow (a balance check is several calls to the node) sits between the
        # final simulation and the broadcast, so the price the simulation saw is as fresh as it can be.
        try:
            self.prepare.ensure_funded(gas_limit(sum(c.gas_budget for c in chosen)))
        except RelayerError:
            return  # kept `received`: sent once the relayer's keys are funded again
        items: list[tuple[Candidate, Built]] = []
        for c, b in zip(chosen, self._built_all(chosen), strict=True):
            if not isinstance(b, RelayerError) and c.intent_id in approved:
                b = self._checked_again(c, b)
            if isinstance(b, RelayerError):
                self._reject(c, b)
                continue
            items.append((c, b))
        # Simulate; drop what would fail (each item's own reason), until what is left passes.
        while items:
            try:
                if len(items) == 1 or not self.policy.enabled:
                    c, b = items[0]
                    items = items[:1]
                    data = self.prepare.calldata(b)
                    # Alone it would revert whole: simulated in the next block, as the estimate ran it.
                    gas = self.router.gas_needed(data, self.router.simulate(data, block="pending"))
                else:
                    data = calls.execute_intents([self.prepare.batch_item(b) for _c, b in items])
                    simulation = self.router.simulate(data)
                    results = calls.batch_results(simulation.output)
                    keep, drop = decisions.screen([c for c, _b in items], results)
                    if drop:
                        for c, why in drop:
                            if isinstance(why, BehindRefused):
                                self._reject_behind(c, why.predecessor)
                            else:
                                self._refused(c, self.router.decode_revert(why.revert))
                        kept = {c.intent_id for c in keep}
                        items = [(c, b) for c, b in items if c.intent_id in kept]
                        continue
                    gas = self.router.gas_needed(data, simulation)
            except RouterRevertedError as exc:
                if len(items) == 1:
                    self._refused(items[0][0], exc.revert)
                    return
                # The whole batch would revert (e.g. paused): every item is refused for that reason.
                for c, _b in items:
                    self._refused(c, exc.revert)
                return
            except RelayerError:
                return  # the node is away: kept `received`, sent on a later pass
            break
        if not items:
            return
        try:
            request_id = self._record(items, data, gas)
        except _ConflictError:
            return  # another dispatcher (or a finalizer) moved an item: the next pass redoes it
        self._sent.add(request_id)
        self.sender.broadcast(request_id)
        self.on_sent([c.intent_id for c, _b in items])
        self.sender.check(request_id)  # mined already (automine)? then settled now, not at the next poll

    def _checked_again(self, c: Candidate, b: Built) -> Built | RelayerError:
        """An intent that waited for a human approval is judged on the state of the moment it is sent
        (behind its predecessors only), whoever approved it and however long ago."""
        with self.sessions() as session:
            ctx = self.prepare.context(session, b.agent, self.prepare.chain_now(), before_nonce=c.nonce)
        error = self.prepare.first_failure(b, ctx)
        return b if error is None else error

    def _record(self, items: Sequence[tuple[Candidate, Built]], data: bytes, gas: int) -> int:
        """One database transaction: the transaction request and every item's move to `submitted`."""
        batched = len(items) > 1
        with self.sessions.begin() as session:
            request = self.sender.prepare(
                session, to=self.router.address, data=data, gas_limit=gas_limit(gas), purpose=PURPOSE
            )
            tx_hash = request.attempts[-1].tx_hash if request.attempts else None
            ids = [c.intent_id for c, _b in items]
            found = {r.id: r for r in for_transition(session, ids)}
            rows = [found[i] for i in ids if i in found]
            if len(rows) != len(ids) or any(r.status != IntentState.RECEIVED.value for r in rows):
                raise _ConflictError()
            fields: dict[str, Any] = {"tx_request_id": request.id, "tx_hash": tx_hash}
            each: dict[int, dict[str, Any]] = {}
            if batched:
                fields["batch_size"] = len(items)
                each = {intent_id: {"batch_index": index} for index, intent_id in enumerate(ids)}
            # One UPDATE for every item (a compare-and-set on each), then their history and stream.
            if len(transition_all(session, rows, IntentState.SUBMITTED, each=each, **fields)) != len(rows):
                raise _ConflictError()
            request_id = request.id
        log.info("sent %s intent(s) in request %s (gas %s)", len(items), request_id, gas)
        return request_id

    # ------------------------------------------------------------------ closing what cannot go

    def _reject(self, c: Candidate, error: RelayerError) -> None:
        self.finalizer.close_now(
            c.intent_id, IntentState.REJECTED, f"{error.code}: {error.message}", error.to_json()
        )

    def _refused(self, c: Candidate, revert: Revert) -> None:
        # A nonce the chain is past: perhaps this very intent was just relayed by someone else (the
        # block is not indexed yet). Then it executed: confirm it.
        if revert.kind is RevertKind.NONCE and self._relayed_elsewhere(c):
            return
        self._reject(c, revert.error())

    def _reject_behind(self, c: Candidate, predecessor: Candidate) -> None:
        self.finalizer.close_now(
            c.intent_id,
            IntentState.REJECTED,
            f"its predecessor intent {predecessor.intent_id} (nonce {predecessor.nonce}) was rejected",
            None,
        )

    def _relayed_elsewhere(self, c: Candidate) -> bool:
        found = self.router.nonce_used(c.agent_id, c.nonce)
        if found is None:
            return False
        with self.sessions() as session:
            digest = session.scalar(select(Intent.digest).where(Intent.id == c.intent_id))
        if digest is None or found.digest.lower() != digest.lower():
            return False
        return self.finalizer.confirm_relayed(c.intent_id, found)

    def _spent(self, c: Candidate) -> None:
        """The chain moved past a waiting intent's nonce without us: someone relayed it, or another one."""
        if self._relayed_elsewhere(c):
            return
        self.finalizer.close_now(
            c.intent_id,
            IntentState.REJECTED,
            f"nonce {c.nonce} was used by another intent",
            None,
            nonce_unused=False,
        )

    def _gap(self, c: Candidate, next_nonce: int) -> None:
        """A waiting intent whose predecessor nonce nothing will use: the intent that held it was closed
        and nothing else holds a nonce in between. `close` rejects the successors it sees, but one
        recorded concurrently (its submit still counted the predecessor as live) is committed after
        that sweep and would wait for ever, and with it every later intent of the agent."""
        with self.sessions() as session:
            live_between = (
                session.scalar(
                    select(Intent.id)
                    .where(
                        Intent.agent_id == c.agent_id,
                        Intent.nonce >= next_nonce,
                        Intent.nonce < c.nonce,
                        Intent.status.in_([s.value for s in HOLDS_NONCE]),
                    )
                    .limit(1)
                )
                is not None
            )
            predecessor = session.execute(
                select(Intent.id, Intent.status)
                .where(Intent.agent_id == c.agent_id, Intent.nonce == c.nonce - 1)
                .order_by(Intent.id.desc())
                .limit(1)
            ).first()
        pred = (int(predecessor[0]), IntentState(predecessor[1])) if predecessor is not None else None
        step = decisions.gap_step(pred, live_between)
        if isinstance(step, Orphaned):
            self.finalizer.close_now(
                c.intent_id,
                IntentState.REJECTED,
                f"its predecessor intent {step.predecessor_id} (nonce {c.nonce - 1}) was "
                f"{step.predecessor_state}",
                None,
            )


def _without_claimed(chosen: Sequence[Candidate], exits: set[int]) -> list[Candidate]:
    """The batch without the intents on positions an exit claimed since the pass began (and the same
    agent's later items, whose nonces come after them)."""
    out: list[Candidate] = []
    stopped: set[int] = set()
    for c in chosen:
        if c.agent_id in stopped or (c.position_id is not None and c.position_id in exits):
            stopped.add(c.agent_id)
            continue
        out.append(c)
    return out
