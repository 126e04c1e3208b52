"""The submit pipeline (SPEC §2.4) — parse → rebuild → checks → simulate → persist → send → confirm —
composed from its roles:

- `prepare`: rebuild the signed intent, run the checks on the relayer's view, calldata;
- `lifecycle`: the states, their transitions, the one function that moves an intent;
- `dispatcher`: waiting intents of any agents go out together in one transaction (SPEC §5.1);
- `finalize`: outcomes from receipts, reorgs, what can never be mined;
- `waiting`: a submit waits for its outcome, woken by events.

Durability: an intent is committed as `received` before it is answered, and its transaction is
recorded (with every item's move to `submitted`) before it is broadcast, so a 2xx intent is mined or
reported failed even across restarts. Ordering: an agent's intent is sent only once its predecessor
nonce is used (or in the same batch, right after it). Identity is the EIP-712 digest, so the same
intent, however often (or however malleated) it is posted, executes once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from relayer import eip712
from relayer.chain.router import RouterClient, RouterRevertedError
from relayer.errors import RelayerError, invalid_request
from relayer.intents import checks, decisions, lifecycle, strikes
from relayer.intents.build import Built
from relayer.intents.claims import PositionClaims
from relayer.intents.dispatcher import BatchPolicy, Dispatcher
from relayer.intents.finalize import Finalizer
from relayer.intents.lifecycle import IntentState, intent_json
from relayer.intents.prepare import Preparer, gas_limit, parse_body
from relayer.intents.strikes import Standing, StrikePolicy
from relayer.intents.waiting import Answer, SubmitResult, Waiters, answer
from relayer.metrics import Metrics
from relayer.operators import approvals
from relayer.state import AgentInfo, ChainState
from relayer.store.models import Intent, TxRequest, utcnow
from relayer.store.signals import Signal, Signals

__all__ = ["Answer", "BatchPolicy", "IntentService", "SubmitResult", "intent_json", "parse_body"]

# Every submit asks these: built once, with bound parameters (building a statement per call cost
# more CPU than running it).
_ID_BY_DIGEST: Final = select(Intent.id).where(Intent.digest == bindparam("digest"))
_ID_BY_KEY: Final = select(Intent.id).where(
    Intent.agent_id == bindparam("agent_id"), Intent.idempotency_key == bindparam("key")
)

# Intents this process built at submit, kept for the dispatcher (no rebuild from the stored body).
_BUILT_CACHE_MAX: Final = 10_000


class Sender(Protocol):
    def prepare(self, session: Session, to: str, data: bytes, gas_limit: int, purpose: str) -> TxRequest: ...

    def broadcast(self, request_id: int) -> None: ...

    def check(self, request_id: int) -> object: ...

    def can_pay(self, gas_limit: int) -> bool: ...

    def add_listener(self, on_settled: Callable[[int], None]) -> None: ...


class IntentService:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        state: ChainState,
        domain: eip712.Domain,
        sender: Sender,
        router: RouterClient,
        policy: BatchPolicy | None = None,
        clock: Callable[[], float] = time.time,
        claims: PositionClaims | None = None,
        metrics: Metrics | None = None,
        strike_policy: StrikePolicy | None = None,
        market_calendar: str = "XNYS",
        signals: Signals | None = None,
    ) -> None:
        """`signals`: the relayer's other processes (`alphagrid serve --api-processes`), on PostgreSQL.
        A recorded or approved intent is announced to the engine's dispatcher; a sent or final one to
        the API processes, whose submits wait for it."""
        self.sessions = sessions
        self.signals = signals
        self.strike_policy = strike_policy or StrikePolicy()
        self.state = state
        self.domain = domain
        self.sender = sender
        self.client = router
        self.router = router.address  # the router's address (as tests and tools expect)
        self.prepare = Preparer(
            state=state,
            domain=domain,
            router=router,
            can_pay=sender.can_pay,
            clock=clock,
            market_calendar=market_calendar,
        )
        self.waiters = Waiters()
        self.finalizer = Finalizer(
            sessions=sessions, state=state, router=router, on_final=self._on_final, metrics=metrics
        )
        self._built: dict[int, Built] = {}
        self._built_lock = threading.Lock()
        self.dispatcher = Dispatcher(
            sessions=sessions,
            prepare=self.prepare,
            router=router,
            finalizer=self.finalizer,
            sender=sender,
            policy=policy,
            built_cache=self._take_built,
            on_sent=self._on_sent,
            claims=claims,
        )
        sender.add_listener(self.tx_settled)

    # ------------------------------------------------------------------ for quotes and verify

    def chain_now(self) -> int:
        return self.prepare.chain_now()

    def context(self, session: Session, agent: AgentInfo, now: int) -> checks.Context:
        return self.prepare.context(session, agent, now)

    def built(self, agent_id: int | str, primary_type: str, raw: Any, *, signed: bool = True) -> Built:
        return self.prepare.built(agent_id, primary_type, raw, signed=signed)

    def calldata(self, b: Built) -> bytes:
        return self.prepare.calldata(b)

    # ------------------------------------------------------------------ submit

    def submit(
        self,
        agent_id: int | str,
        primary_type: str,
        raw: Any,
        *,
        idempotency_key: str | None,
        wait_s: float,
        built: Built | None = None,
        signature_ok: bool = False,
    ) -> SubmitResult:
        """`built`: the intent as the caller already built it from the same `raw` (the route does, to
        key the rate limit), with `signature_ok` if the caller found it signed by the agent's signer
        (then the checks do not recover the signature a second time)."""
        b = built if built is not None else self.built(agent_id, primary_type, raw)
        signature_ok = signature_ok and built is not None
        digest = "0x" + b.digest(self.domain).hex()
        with self.sessions() as session:
            existing = self._existing(session, b.agent.agent_id, digest, idempotency_key)
            if existing is not None:
                return SubmitResult(Answer.EXISTING, intent_json(existing))
            # An agent that keeps front-running its own intents is throttled, then suspended.
            now = utcnow()
            standing = strikes.standing_of(session, b.agent.agent_id, now, self.strike_policy)
            if standing is not None and (signature_ok or checks.signature_error(b, self.domain) is None):
                raise standing.error(b.agent.agent_id, now)  # (a stranger's post gets its own answer)
            ctx = self.context(session, b.agent, self.chain_now())
            gated = b.primary_type in approvals.GATED_TYPES and approvals.needs_approval(
                b.primary_type,
                int(b.usdc_amount),
                approvals.threshold_for(session, b.agent.agent_id, self.state.tracks[b.agent.track_id][0]),
            )
        try:
            self.prepare.ensure_chain()
            error = self.prepare.first_failure(b, ctx, signature_ok=signature_ok)
            if error is not None:
                raise error
            first_in_line = b.intent.nonce == self.state.counters_on(b.agent.agent_id, ctx.now).next_nonce
            if first_in_line:
                # Simulated alone first, so what would revert is refused now and never recorded; the
                # dispatcher simulates its batch again right before sending, and measures its gas then.
                # One eth_call on the pending block (the next block's time, as an estimate runs it): an
                # estimate would run the intent several times over for a number nothing here uses.
                try:
                    self.client.call(self.calldata(b), block="pending")
                except RouterRevertedError as exc:
                    raise exc.revert.error() from None
            self.prepare.ensure_funded(gas_limit(decisions.GAS_BUDGET_BY_TYPE[b.primary_type]))
        except RelayerError:
            # A concurrent submit of this same intent may have been recorded (and even mined) since the
            # lookup above, which is why its nonce looks used: answer with that record, not a 409.
            with self.sessions() as session:
                existing = self._existing(session, b.agent.agent_id, digest, idempotency_key)
            if existing is not None:
                return SubmitResult(Answer.EXISTING, intent_json(existing))
            raise

        try:
            with self.sessions.begin() as session:
                row = self._record(session, b, digest, idempotency_key, raw, gated=gated)
                intent_id = row.id
                if self.signals is not None and not gated:
                    self.signals.within(session, Signal.RECEIVED)  # delivered with this commit
                pending = intent_json(row) if gated else None
        except IntegrityError:
            return self._after_conflict(b, digest, idempotency_key)
        if pending is not None:
            # Above its threshold: recorded after every check, and nothing is sent until approved.
            return SubmitResult(Answer.PENDING_APPROVAL, pending)
        # Watched before the dispatcher hears of it, so no outcome can come before anyone listens.
        waiter = self.waiters.watch(intent_id)
        with self._built_lock:
            if len(self._built) < _BUILT_CACHE_MAX:
                self._built[intent_id] = b
        try:
            self.dispatcher.wake("received")
            return answer(
                intent_id=intent_id,
                wait_s=wait_s,
                waiter=waiter,
                sessions=self.sessions,
                state=self.state,
                finalize=self.finalizer.finalize_settled,
                until_sent=first_in_line,
            )
        finally:
            self.waiters.unwatch(intent_id)

    def standing(self, agent_id: int) -> Standing | None:
        """Whether the relayer throttles or suspends the agent (its front-running strikes)."""
        with self.sessions() as session:
            return strikes.standing_of(session, agent_id, utcnow(), self.strike_policy)

    def _take_built(self, intent_id: int) -> Built | None:
        with self._built_lock:
            return self._built.pop(intent_id, None)

    def _existing(self, session: Session, agent_id: int, digest: str, key: str | None) -> Intent | None:
        # Asked for every submit, and nearly always absent: the id first, the record only if found.
        found = session.scalar(_ID_BY_DIGEST, {"digest": digest})
        if found is not None:
            return lifecycle.read(session, found)
        if key is None:
            return None
        found = session.scalar(_ID_BY_KEY, {"agent_id": agent_id, "key": key})
        row = lifecycle.read(session, found) if found is not None else None
        if row is not None and row.digest != digest:
            raise invalid_request(
                "this Idempotency-Key was already used for a different intent", intentId=str(row.id)
            )
        return row

    def _after_conflict(self, b: Built, digest: str, key: str | None) -> SubmitResult:
        """A concurrent submit won the race: the same intent (its record) or its nonce (409)."""
        with self.sessions() as session:
            existing = self._existing(session, b.agent.agent_id, digest, key)
            if existing is not None:
                return SubmitResult(Answer.EXISTING, intent_json(existing))
            expected = self.context(session, b.agent, self.chain_now()).expected_nonce
        raise RelayerError(
            "nonce_mismatch",
            f"nonce {b.intent.nonce} is taken by another intent in flight",
            {"expected": expected},
        )

    def _record(
        self, session: Session, b: Built, digest: str, key: str | None, raw: Any, *, gated: bool = False
    ) -> Intent:
        assert b.signature is not None
        message = eip712.typed_data(self.domain, b.intent)["message"]
        if b.exits is not None:
            rules = [[int(r.trigger_type), r.trigger_bps, r.exit_bps] for r in b.exits]
            message = {**message, "exits": rules}
        row = Intent(
            agent_id=b.agent.agent_id,
            primary_type=b.primary_type,
            nonce=b.intent.nonce,
            digest=digest,
            idempotency_key=key,
            request=raw,
            message=message,
            signature=b.signature.to_hex(),
            position_id=b.position.position_id if b.position else None,
            deadline=b.intent.deadline,
        )
        return lifecycle.record(session, row, IntentState.PENDING_APPROVAL if gated else IntentState.RECEIVED)

    # ------------------------------------------------------------------ approvals (SPEC §5.5)

    def approve(self, approval_id: int, by: str) -> dict[str, Any]:
        """Every check again, on the state of this moment (a failure rejects the intent with that
        check's code, answered as that error), then received: the dispatcher sends it as any other.
        Past its deadline it is rejected `deadline_expired` and refused; decided already → 409."""
        now = self.chain_now()
        refusal: RelayerError | None = None
        built: Built | None = None
        with self.sessions.begin() as session:
            row = approvals.find(session, approval_id)
            if row.status != IntentState.PENDING_APPROVAL:
                raise approvals.decided_error(row)
            if approvals.expired(row.deadline, now):
                done = approvals.expire(session, row, now)
                refusal = approvals.expiry_error(row, now)
            else:
                try:
                    built = self.built(row.agent_id, row.primary_type, row.request)
                    refusal = self.prepare.first_failure(
                        built, self.prepare.context(session, built.agent, now, before_nonce=row.nonce)
                    )
                except RelayerError as exc:
                    refusal = exc
                if refusal is not None:
                    done = approvals.refuse_on_check(session, row, by, refusal)
                else:
                    done = approvals.approve(session, row, by)
            intent_id = row.id
            doc = approvals.approval_json(row) if done else None
        if doc is None:
            with self.sessions() as session:
                raise approvals.decided_error(approvals.find(session, approval_id))
        if refusal is not None:
            self.finalizer.on_final([intent_id])  # its later intents were rejected with it
            raise RelayerError(
                refusal.code,
                refusal.message,
                {
                    **refusal.details,
                    "intentId": str(intent_id),
                    "approvalId": approval_id,
                    "status": "rejected",
                },
            )
        if built is not None:
            with self._built_lock:
                if len(self._built) < _BUILT_CACHE_MAX:
                    self._built[intent_id] = built
        self.dispatcher.wake()
        if self.signals is not None:
            self.signals.send(Signal.RECEIVED)
        return doc

    def reject(self, approval_id: int, by: str, reason: str) -> dict[str, Any]:
        text = approvals.check_reason(reason)
        with self.sessions.begin() as session:
            row = approvals.find(session, approval_id)
            if row.status != IntentState.PENDING_APPROVAL:
                raise approvals.decided_error(row)
            done = approvals.reject(session, row, by, text)
            intent_id = row.id
            doc = approvals.approval_json(row) if done else None
        if doc is None:
            with self.sessions() as session:
                raise approvals.decided_error(approvals.find(session, approval_id))
        self.finalizer.on_final([intent_id])
        return doc

    # ------------------------------------------------------------------ wakes

    def _on_final(self, intent_ids: list[int]) -> None:
        self.waiters.wake(intent_ids)
        self.dispatcher.wake()
        if self.signals is not None and intent_ids:
            self.signals.send(Signal.FINAL, intent_ids)

    def _on_sent(self, intent_ids: list[int]) -> None:
        self.waiters.sent(intent_ids)
        if self.signals is not None and intent_ids:
            self.signals.send(Signal.SENT, intent_ids)

    def signalled(self, kind: Signal, intent_ids: Sequence[int]) -> None:
        """Another process's signal (`relayer.store.signals`); no ids: it may have missed some."""
        if kind is Signal.RECEIVED:
            self.dispatcher.wake("received")  # (its own timer passes cover a missed one)
        elif not intent_ids:
            self.waiters.wake_all()
        elif kind is Signal.SENT:
            self.waiters.sent(list(intent_ids))
        elif kind is Signal.FINAL:
            self.waiters.wake(list(intent_ids))

    def tx_settled(self, request_id: int) -> None:
        """The sender's listener: a transaction is final; the dispatcher records its intents' outcomes
        (and wakes the submits waiting for them)."""
        self.dispatcher.wake()

    def indexed(self, block_number: int) -> None:
        """For the indexer, after each batch it applied: wakes the submits waiting for that block, and
        the dispatcher (agents' next nonces moved)."""
        self.waiters.indexed(block_number)
        self.dispatcher.wake()

    def notify(self) -> None:
        """Something changed: the dispatcher and every waiting submit look again."""
        self.waiters.wake_all()
        self.dispatcher.wake()

    def close(self, intent_id: int, to: IntentState, reason: str, error: dict[str, Any] | None) -> bool:
        """Reject or fail an intent that has not settled (operators and tests)."""
        return self.finalizer.close_now(intent_id, to, reason, error)

    # ------------------------------------------------------------------ the worker

    def run(self, stop: threading.Event, interval_s: float = 0.1) -> None:
        self.dispatcher.run(stop, interval_s)
