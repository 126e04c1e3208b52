"""The submit pipeline (SPEC §2.4): parse → rebuild → checks → simulate → persist → send → confirm.

Durability: an intent is committed (with its signed transaction, when it is sent at once) before the
answer, so a 2xx intent is mined or reported failed even across restarts. Ordering: an agent's intent
is sent only once its predecessor nonce is mined, so lanes never reorder an agent's nonces; later
intents wait as `received` and the dispatcher sends them. Identity is the EIP-712 digest, so the same
intent, however often (or however malleated) it is posted, executes once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from web3 import Web3
from web3.exceptions import TransactionNotFound

from relayer import eip712
from relayer.amounts import format_amount
from relayer.chain import calls, rpc
from relayer.chain.events import EventDecoder
from relayer.chain.reverts import RevertDecoder
from relayer.domain.limits import AgentBook, apply_buy
from relayer.errors import CODE_BY_REVERT, RelayerError, invalid_request
from relayer.intents import checks
from relayer.intents.bodies import BODY_BY_TYPE, SubmitBody
from relayer.intents.build import USDC_DECIMALS, Built, agent_of, build
from relayer.state import AgentInfo, ChainState
from relayer.store import mirror
from relayer.store.models import Intent, IntentStatus, TxRequest

log = logging.getLogger("alphagrid.intents")

LIVE = ("received", "submitted")
# A waiting submit re-reads its intent when it is told something changed (its transaction settled,
# it was confirmed or closed); this backstop covers a change made elsewhere (another replica).
ANSWER_BACKSTOP_S = 1.0
# Once confirmed it waits for this process's indexer: woken by its batches (`indexed`), this in-memory
# look is the backstop.
INDEXED_POLL_S = 0.25
GAS_MARGIN = 1.25
GAS_HEADROOM = 30_000  # keeps the 63/64 rule from starving the venue/vault calls
UNSIMULATED_GAS = 400_000  # funds check for an intent that waits for its turn (simulated when sent)


class Sender(Protocol):
    def prepare(
        self, session: Session, *, to: str, data: bytes, gas_limit: int, purpose: str
    ) -> TxRequest: ...

    def broadcast(self, request_id: int) -> object: ...

    def can_pay(self, gas_limit: int) -> bool: ...

    def add_listener(self, on_settled: Callable[[int], None]) -> None: ...


@dataclass
class _Waiter:
    """A submit waiting for its intent: woken when its transaction (or, while its request id is not
    known yet, any transaction) settles, and when its intent is confirmed or closed."""

    woken: threading.Event = field(default_factory=threading.Event)
    request_id: int | None = None
    block_number: int | None = None  # confirmed in this block: waits for the indexer to reach it


# Every quote runs this: built once, on the table (Core, no ORM entities), with bound parameters,
# it skips the statement building and ORM row machinery that were ~15 % of a quote's CPU.
_INTENTS = Intent.__table__.c
_IN_FLIGHT = (
    select(_INTENTS.nonce, _INTENTS.primary_type, _INTENTS.message)
    .where(
        _INTENTS.agent_id == bindparam("agent_id"),
        _INTENTS.status.in_((*LIVE, "confirmed")),
        _INTENTS.nonce >= bindparam("next_nonce"),
    )
    .order_by(_INTENTS.nonce)
)


@dataclass(frozen=True)
class SubmitResult:
    status_code: int
    body: dict[str, Any]


def parse_body(primary_type: str, raw: Any) -> SubmitBody:
    model = BODY_BY_TYPE[primary_type]
    try:
        return model.model_validate(raw)  # type: ignore[return-value]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise invalid_request(f"{where}: {first['msg']}", field=where) from None


class IntentService:
    def __init__(
        self,
        *,
        w3: Web3,
        sessions: sessionmaker[Session],
        state: ChainState,
        domain: eip712.Domain,
        sender: Sender,
        router: str,
        simulate_from: str,
        revert_decoder: RevertDecoder,
        event_decoder: EventDecoder,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.w3 = w3
        self.sessions = sessions
        self.state = state
        self.domain = domain
        self.sender = sender
        self.router = Web3.to_checksum_address(router)
        self.simulate_from = simulate_from
        self.reverts = revert_decoder
        self.events = event_decoder
        self.clock = clock
        self._wake = threading.Condition()  # the dispatcher's
        self._waiters: dict[int, _Waiter] = {}  # intent id → the submit waiting for it
        self._waiters_lock = threading.Lock()
        sender.add_listener(self.tx_settled)

    # ------------------------------------------------------------------ context

    def chain_now(self) -> int:
        """When a transaction sent now executes: the next block, never before the last one + 1."""
        return max(int(self.clock()), self.state.block_timestamp + 1)

    def context(self, session: Session, agent: AgentInfo, now: int) -> checks.Context:
        counters = self.state.counters_on(agent.agent_id, now)
        # In flight, or confirmed in a block this process's indexer has not applied yet (another
        # replica's submit, or ours a moment ago): both move the nonce on and count against limits.
        live = session.execute(
            _IN_FLIGHT, {"agent_id": agent.agent_id, "next_nonce": counters.next_nonce}
        ).all()
        book = AgentBook(
            agent.allocation, counters.deployed, counters.turnover_today, counters.realized_pnl_today
        )
        expected = counters.next_nonce
        for nonce, primary_type, message in live:
            expected = max(expected, nonce + 1)
            if primary_type in ("OpenPosition", "AddToPosition"):
                book = apply_buy(book, int(message["usdcAmount"]))
        _name, track = self.state.tracks[agent.track_id]
        return checks.Context(self.state, self.domain, now, expected, book, track)

    # ------------------------------------------------------------------ building

    def built(self, agent_id: int | str, primary_type: str, raw: Any, *, signed: bool = True) -> Built:
        body = parse_body(primary_type, raw)
        with self.state.read():
            agent = agent_of(self.state, agent_id)
            return build(body, agent, self.state, signed=signed)

    def calldata(self, b: Built) -> bytes:
        assert b.signature is not None
        sig = b.signature.to_bytes()
        intent = b.intent
        if isinstance(intent, eip712.OpenPosition):
            return calls.open_position(intent, b.exits or (), sig)
        if isinstance(intent, eip712.AddToPosition):
            return calls.add_to_position(intent, sig)
        if isinstance(intent, eip712.ReducePosition):
            return calls.reduce_position(intent, sig)
        return calls.update_exit_ladder(intent, b.exits or (), sig)

    def simulate(self, data: bytes) -> int:
        """eth_estimateGas as the simulation: the gas it needs, or the decoded revert as a RelayerError."""
        params = {"from": self.simulate_from, "to": self.router, "data": "0x" + data.hex()}
        response = rpc.request(self.w3, "eth_estimateGas", [params])
        if "error" in response:
            raise self.revert_error(response["error"])
        return int(response["result"], 16)

    def ensure_chain(self) -> None:
        """503 while the node serves another chain than the one the relayer signs for: the EIP-712 domain
        (and the relayer's own transactions) carry the chain id, so neither an intent signed for the old
        id nor one for the new id can be relayed correctly until the two agree again."""
        actual = int(rpc.call(self.w3, "eth_chainId", []), 16)
        if actual != self.domain.chain_id:
            raise RelayerError(
                "chain_unavailable",
                f"the node now serves chain {actual}, but this relayer is configured for chain "
                f"{self.domain.chain_id}",
                {"reason": "chain_id_changed", "chainId": actual, "expectedChainId": self.domain.chain_id},
            )

    def ensure_funded(self, gas: int) -> None:
        """503 while the relayer's keys cannot pay for the transaction: nothing is recorded, so the agent
        retries later, rather than an intent accepted that cannot be sent."""
        if not self.sender.can_pay(gas):
            raise RelayerError(
                "chain_unavailable",
                "the relayer cannot pay for gas at the moment; try again later",
                {"reason": "relayer_unfunded"},
            )

    def revert_error(self, error: Mapping[str, Any]) -> RelayerError:
        data = error.get("data")
        if isinstance(data, dict):
            data = data.get("data")
        raw = bytes.fromhex(data[2:]) if isinstance(data, str) and data.startswith("0x") else b""
        decoded = self.reverts.decode(raw)
        code = CODE_BY_REVERT.get(decoded.name, "simulation_failed")
        details = {"revert": decoded.to_json()}
        if code == "nonce_mismatch" and "expected" in decoded.args:
            details["expected"] = decoded.args["expected"]
        return RelayerError(code, f"the router would revert: {decoded.name}", details)

    # ------------------------------------------------------------------ submit

    def submit(
        self, agent_id: int | str, primary_type: str, raw: Any, *, idempotency_key: str | None, wait_s: float
    ) -> SubmitResult:
        b = self.built(agent_id, primary_type, raw)
        digest = "0x" + b.digest(self.domain).hex()
        with self.sessions() as session:
            existing = self._existing(session, b.agent.agent_id, digest, idempotency_key)
            if existing is not None:
                return SubmitResult(200, intent_json(existing))
            ctx = self.context(session, b.agent, self.chain_now())
        try:
            self.ensure_chain()
            with self.state.read():
                error = checks.first_failure(b, ctx)
            if error is not None:
                raise error
            data = self.calldata(b)
            first_in_line = b.intent.nonce == self.state.counters_on(b.agent.agent_id, ctx.now).next_nonce
            gas = self.simulate(data) if first_in_line else 0
            self.ensure_funded(gas_limit(gas) if first_in_line else UNSIMULATED_GAS)
        except RelayerError:
            # A concurrent submit of this same intent may have been recorded (and even mined) since the
            # lookup above, which is why its nonce looks used: answer with that record, not a 409.
            with self.sessions() as session:
                existing = self._existing(session, b.agent.agent_id, digest, idempotency_key)
            if existing is not None:
                return SubmitResult(200, intent_json(existing))
            raise

        try:
            with self.sessions.begin() as session:
                row = self._record(session, b, digest, idempotency_key, raw)
                if first_in_line:
                    self._attach_tx(session, row, data, gas)
                intent_id, request_id = row.id, row.tx_request_id
        except IntegrityError:
            return self._after_conflict(b, digest, idempotency_key)
        # Watched before the broadcast, so its settling cannot come before anyone listens for it.
        waiter = self._watch(intent_id, request_id)
        try:
            if request_id is not None:
                self.sender.broadcast(request_id)
            else:
                self._wake_dispatcher()  # `received`: the dispatcher sends it once its turn comes
            return self._answer(intent_id, wait_s, waiter)
        finally:
            self._unwatch(intent_id)

    def _existing(self, session: Session, agent_id: int, digest: str, key: str | None) -> Intent | None:
        row = session.scalar(select(Intent).where(Intent.digest == digest))
        if row is not None:
            return row
        if key is None:
            return None
        row = session.scalar(select(Intent).where(Intent.agent_id == agent_id, Intent.idempotency_key == key))
        if row is not None and row.digest != digest:
            raise invalid_request(
                "this Idempotency-Key was already used for a different intent", intentId=str(row.id)
            )
        return row

    def _after_conflict(self, b: Built, digest: str, key: str | None) -> SubmitResult:
        """A concurrent submit won the race: the same intent (its record, 200) or its nonce (409)."""
        with self.sessions() as session:
            existing = self._existing(session, b.agent.agent_id, digest, key)
            if existing is not None:
                return SubmitResult(200, intent_json(existing))
            expected = self.context(session, b.agent, self.chain_now()).expected_nonce
        raise RelayerError(
            "nonce_mismatch",
            f"nonce {b.intent.nonce} is taken by another intent in flight",
            {"expected": expected},
        )

    def _record(self, session: Session, b: Built, digest: str, key: str | None, raw: Any) -> Intent:
        assert b.signature is not None
        message = eip712.typed_data(self.domain, b.intent)["message"]
        if b.exits is not None:
            message = {**message, "exits": [list(r) for r in _rules(b)]}
        row = Intent(
            agent_id=b.agent.agent_id,
            primary_type=b.primary_type,
            nonce=b.intent.nonce,
            digest=digest,
            idempotency_key=key,
            request=raw,
            message=message,
            signature=b.signature.to_hex(),
            status="received",
            position_id=b.position.position_id if b.position else None,
        )
        session.add(row)
        session.flush()
        _set_status(session, row, "received")
        return row

    def _attach_tx(self, session: Session, row: Intent, data: bytes, gas: int) -> None:
        request = self.sender.prepare(
            session,
            to=self.router,
            data=data,
            gas_limit=gas_limit(gas),
            purpose="intent",
        )
        row.tx_request_id = request.id
        _set_status(session, row, "submitted")

    def _answer(self, intent_id: int, wait_s: float, waiter: _Waiter) -> SubmitResult:
        deadline = time.monotonic() + wait_s
        if wait_s > 0:
            # Just sent (or queued): nothing to read until its transaction settles, which wakes this.
            waiter.woken.wait(timeout=min(ANSWER_BACKSTOP_S, wait_s))
        while True:
            waiter.woken.clear()  # before reading: a change from now on wakes the wait below
            self.finalize_pending(intent_id)
            with self.sessions() as session:
                row = session.get(Intent, intent_id)
                assert row is not None
                # Answer once this process's view includes the block too, so the agent's next quote
                # sees the position and the spent nonce (the wait bounds it; the context covers a miss).
                indexed = row.block_number is None or self.state.block_number >= row.block_number
                if row.status == "confirmed" and (indexed or time.monotonic() >= deadline):
                    return SubmitResult(201, intent_json(row))
                if row.status in ("failed", "rejected"):
                    raise RelayerError(
                        "simulation_failed",
                        f"intent {row.id} {row.status}: {row.reason}",
                        {"intentId": str(row.id), "status": row.status, "reason": row.reason},
                    )
                if time.monotonic() >= deadline:
                    return SubmitResult(202, intent_json(row))
                status, block_number = row.status, row.block_number
                waiter.request_id = row.tx_request_id
            if status == "confirmed" and block_number is not None:
                # Final on chain: only the indexer is awaited, and its block is in memory (`indexed`
                # wakes this at once when the indexer reports its batches; the poll is the fallback).
                waiter.block_number = block_number
                while True:
                    waiter.woken.clear()  # before looking: a wake from now on ends the wait below
                    if self.state.block_number >= block_number or time.monotonic() >= deadline:
                        break
                    waiter.woken.wait(timeout=min(INDEXED_POLL_S, max(deadline - time.monotonic(), 0)))
                continue
            waiter.woken.wait(timeout=min(ANSWER_BACKSTOP_S, max(deadline - time.monotonic(), 0)))

    def _watch(self, intent_id: int, request_id: int | None) -> _Waiter:
        waiter = _Waiter(request_id=request_id)
        with self._waiters_lock:
            self._waiters[intent_id] = waiter
        return waiter

    def _unwatch(self, intent_id: int) -> None:
        with self._waiters_lock:
            self._waiters.pop(intent_id, None)

    def tx_settled(self, request_id: int) -> None:
        """The sender's listener: a transaction is final, so its waiting submit can record the outcome."""
        with self._waiters_lock:
            waiters = [w for w in self._waiters.values() if w.request_id in (request_id, None)]
        for waiter in waiters:
            waiter.woken.set()
        if not waiters:
            self._wake_dispatcher()  # nobody waits for it: the dispatcher's finalizer records it

    def indexed(self, block_number: int) -> None:
        """For the indexer, after each batch it applied: wakes the submits waiting for that block."""
        with self._waiters_lock:
            waiters = list(self._waiters.values())
        for waiter in waiters:
            if waiter.block_number is not None and waiter.block_number <= block_number:
                waiter.woken.set()

    def _wake_intent(self, intent_id: int) -> None:
        with self._waiters_lock:
            waiter = self._waiters.get(intent_id)
        if waiter is not None:
            waiter.woken.set()

    def _wake_dispatcher(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def notify(self) -> None:
        """Something changed: the dispatcher and every waiting submit look again."""
        with self._waiters_lock:
            waiters = list(self._waiters.values())
        for waiter in waiters:
            waiter.woken.set()
        self._wake_dispatcher()

    # ------------------------------------------------------------------ dispatcher and finalizer

    def run(self, stop: threading.Event, interval_s: float = 0.1) -> None:
        while not stop.is_set():
            try:
                self.dispatch_waiting()
                self.follow_reorgs()
                self.finalize_pending()
            except Exception:
                log.exception("intent dispatcher pass failed")
            with self._wake:
                self._wake.wait(timeout=interval_s)

    def dispatch_waiting(self) -> None:
        """Sends each agent's lowest `received` intent once its nonce is the chain's next one."""
        with self.sessions() as session:
            rows = session.execute(
                select(Intent.agent_id, func.min(Intent.nonce))
                .where(Intent.status == "received", Intent.tx_request_id.is_(None))
                .group_by(Intent.agent_id)
            ).all()
        for agent_id, nonce in rows:
            next_nonce = self.state.counters_on(agent_id, self.chain_now()).next_nonce
            if nonce == next_nonce:
                self._dispatch(agent_id, nonce)
            elif nonce < next_nonce:
                self._nonce_spent(agent_id, nonce)
            else:
                self._behind_gap(agent_id, next_nonce, nonce)

    def _dispatch(self, agent_id: int, nonce: int) -> None:
        with self.sessions() as session:
            row = session.scalar(
                select(Intent).where(
                    Intent.agent_id == agent_id, Intent.nonce == nonce, Intent.status == "received"
                )
            )
            if row is None:
                return
            intent_id, primary_type, request, digest = row.id, row.primary_type, row.request, row.digest
        try:
            self.ensure_chain()
            b = self.built(agent_id, primary_type, request)
            with self.sessions() as session:
                ctx = self.context(session, b.agent, self.chain_now())
            with self.state.read():
                error = checks.first_failure(b, ctx)
            if error is not None and error.code != "nonce_mismatch":
                raise error
            data = self.calldata(b)
            gas = self.simulate(data)
            self.ensure_funded(gas_limit(gas))
        except RelayerError as exc:
            if exc.code == "chain_unavailable":
                return  # kept `received`: sent once the node (or the relayer's funding) is back
            if exc.code == "nonce_mismatch":
                # The chain is ahead of our view of it: perhaps this very intent was just relayed by
                # someone else (the block is not indexed yet). Then it executed: confirm it.
                found = self._nonce_used(agent_id, nonce)
                if found is not None and found[0] == digest:
                    self._confirm(intent_id, found[1])
                    return
            self._close(intent_id, "rejected", f"{exc.code}: {exc.message}", exc.to_json())
            return
        with self.sessions.begin() as session:
            row = session.get(Intent, intent_id)
            if row is None or row.status != "received":
                return
            self._attach_tx(session, row, data, gas)
            request_id = row.tx_request_id
        assert request_id is not None
        self.sender.broadcast(request_id)

    def _nonce_spent(self, agent_id: int, nonce: int) -> None:
        """The chain moved past a waiting intent's nonce without us: someone relayed it, or another one."""
        with self.sessions() as session:
            row = session.scalar(
                select(Intent).where(
                    Intent.agent_id == agent_id, Intent.nonce == nonce, Intent.status == "received"
                )
            )
            if row is None:
                return
            intent_id, digest = row.id, row.digest
        found = self._nonce_used(agent_id, nonce)
        if found is not None and found[0] == digest:
            self._confirm(intent_id, found[1])
        else:
            self._close(
                intent_id, "rejected", f"nonce {nonce} was used by another intent", None, nonce_unused=False
            )

    def follow_reorgs(self) -> None:
        """A confirmed intent whose transaction's block left the chain (the sender reopened it to send
        it again) is `submitted` again until it is mined again — or `failed`, with the reason, if the
        re-sent transaction reverts. Intents confirmed by someone else's transaction (ours reverted
        against the used nonce) are left alone: their request's hash is not theirs."""
        with self.sessions() as session:
            ids = session.scalars(
                select(Intent.id)
                .join(TxRequest, Intent.tx_request_id == TxRequest.id)
                .where(
                    Intent.status == "confirmed",
                    or_(
                        TxRequest.status == "pending",
                        and_(TxRequest.status == "failed", Intent.tx_hash == TxRequest.mined_hash),
                    ),
                )
            ).all()
        for intent_id in ids:
            with self.sessions.begin() as session:
                reopened = session.execute(
                    update(Intent)
                    .where(Intent.id == intent_id, Intent.status == "confirmed")
                    .values(status="submitted")
                )
                if reopened.rowcount != 1:  # type: ignore[attr-defined]
                    continue
                row = session.get(Intent, intent_id)
                assert row is not None
                reason = f"the block of {row.tx_hash} left the canonical chain: following it again"
                _set_status(session, row, "submitted", reason)
            log.warning("intent %s back to submitted: %s", intent_id, reason)
        if ids:
            self.notify()

    def _behind_gap(self, agent_id: int, next_nonce: int, nonce: int) -> None:
        """A waiting intent whose predecessor nonce nothing will use: the intent that held it was closed
        (rejected or failed) and nothing else holds a nonce in between. `_close` rejects the successors
        it sees, but a successor recorded concurrently (its submit's context still counted the
        predecessor as live) is committed after that sweep and would wait for ever, and with it every
        later intent of the agent, since quotes count it as in flight."""
        with self.sessions() as session:
            # The usual case, pipelining: the predecessor is in flight. One query, then done.
            held = session.scalar(
                select(Intent.id)
                .where(
                    Intent.agent_id == agent_id,
                    Intent.nonce >= next_nonce,
                    Intent.nonce < nonce,
                    Intent.status.in_(("submitted", "confirmed")),
                )
                .limit(1)
            )
            if held is not None:
                return
            closed = session.scalar(
                select(Intent)
                .where(
                    Intent.agent_id == agent_id,
                    Intent.nonce == nonce - 1,
                    Intent.status.in_(("rejected", "failed")),
                )
                .order_by(Intent.id.desc())
                .limit(1)
            )
            waiting = session.scalar(
                select(Intent.id).where(
                    Intent.agent_id == agent_id, Intent.nonce == nonce, Intent.status == "received"
                )
            )
        if closed is None or waiting is None:
            return
        self._close(
            waiting,
            "rejected",
            f"its predecessor intent {closed.id} (nonce {closed.nonce}) was {closed.status}",
            None,
        )

    def finalize_pending(self, intent_id: int | None = None) -> None:
        """Records the outcome of every submitted intent whose transaction is final (or just one)."""
        query = (
            select(Intent.id, TxRequest.status, TxRequest.mined_hash, TxRequest.error)
            .join(TxRequest, Intent.tx_request_id == TxRequest.id)
            .where(Intent.status == "submitted", TxRequest.status != "pending")
        )
        if intent_id is not None:
            query = query.where(Intent.id == intent_id)
        with self.sessions() as session:
            rows = session.execute(query).all()
        for row_id, tx_status, mined_hash, error in rows:
            if tx_status == "mined" and mined_hash:
                self._confirm(row_id, mined_hash)
            elif tx_status == "failed":
                self._reverted(row_id, mined_hash)
            elif tx_status == "dropped":
                self._dropped(row_id, error)

    def _dropped(self, intent_id: int, error: str | None) -> None:
        with self.sessions() as session:
            row = session.get(Intent, intent_id)
            assert row is not None
            agent_id, nonce, digest = row.agent_id, row.nonce, row.digest
        found = self._nonce_used(agent_id, nonce)
        if found is not None and found[0] == digest:
            self._confirm(intent_id, found[1])  # relayed by someone else first
        else:
            self._close(
                intent_id, "failed", f"the transaction was dropped: {error or 'nonce consumed'}", None
            )

    def _reverted(self, intent_id: int, tx_hash: str | None) -> None:
        """Our transaction reverted. If the intent executed anyway — someone relayed the same signed
        intent directly to the router first, so ours hit a used nonce — it is confirmed with their
        transaction; otherwise it failed, named by the router's error where a replay can tell."""
        with self.sessions() as session:
            row = session.get(Intent, intent_id)
            assert row is not None
            agent_id, nonce, digest = row.agent_id, row.nonce, row.digest
        found = self._nonce_used(agent_id, nonce)
        if found is not None and found[0] == digest:
            log.info("intent %s was relayed by someone else first (%s); ours reverted", intent_id, found[1])
            self._confirm(intent_id, found[1])
            return
        cause = self._revert_cause(tx_hash) if tx_hash else None
        reason = f"the transaction reverted on chain ({tx_hash})"
        if cause is not None:
            reason += f": {cause.code} ({cause.details['revert'].get('error')})"
        self._close(intent_id, "failed", reason, cause.to_json() if cause else None)

    def _revert_cause(self, tx_hash: str) -> RelayerError | None:
        """The router's error for a reverted transaction, by replaying its call on the state and block
        it was mined in (receipts carry no revert data). None when the replay does not revert."""
        try:
            tx = rpc.call(self.w3, "eth_getTransactionByHash", [tx_hash])
            if not tx or tx.get("blockNumber") is None:
                return None
            call = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "gas": tx["gas"]}
            response = rpc.request(self.w3, "eth_call", [call, tx["blockNumber"]])
        except (RelayerError, rpc.RpcError):
            return None
        if "error" not in response:
            return None
        return self.revert_error(response["error"])

    def _nonce_used(self, agent_id: int, nonce: int) -> tuple[str, str] | None:
        """(digest, tx hash) of the NonceUsed event for this agent and nonce, if the chain has one."""
        topic = self.events.topic("NonceUsed")
        logs: list[dict[str, Any]] = rpc.call(
            self.w3,
            "eth_getLogs",
            [
                {
                    "fromBlock": "0x0",
                    "toBlock": "latest",
                    "address": self.router,
                    "topics": [topic, "0x" + agent_id.to_bytes(32, "big").hex()],
                }
            ],
        )
        for raw in logs:
            event = self.events.decode(raw)
            if event is not None and event.args["nonce"] == nonce:
                return event.args["digest"], event.tx_hash
        return None

    def _confirm(self, intent_id: int, tx_hash: str) -> None:
        # The raw receipt: web3's formatting of it cost more than the rest of this method, and the
        # event decoder reads the raw logs (as the indexer's) directly.
        tx_hash = tx_hash if tx_hash.startswith("0x") else "0x" + tx_hash
        receipt = rpc.call(self.w3, "eth_getTransactionReceipt", [tx_hash])
        if receipt is None:
            raise TransactionNotFound(f"Transaction with hash: {tx_hash!r} not found.")
        fill, position_id = self._fill(receipt)
        with self.sessions.begin() as session:
            row = _claim(session, intent_id)
            if row is None:
                return
            row.tx_hash = tx_hash
            row.block_number = int(receipt["blockNumber"], 16)
            row.fill = fill
            if position_id is not None:
                row.position_id = position_id
            _set_status(session, row, "confirmed")
        self._wake_intent(intent_id)
        self._wake_dispatcher()

    def _fill(self, receipt: Mapping[str, Any]) -> tuple[dict[str, str] | None, int | None]:
        for raw in receipt["logs"]:
            event = self.events.decode(dict(raw))
            if event is None or event.name not in ("PositionOpened", "PositionIncreased", "PositionReduced"):
                continue
            a = event.args
            token = self.state.tokens.get(a["token"]) if "token" in a else None
            if token is None:
                p = self.state.positions.get(a["positionId"])
                token = self.state.tokens.get(p.token) if p else None
            decimals = token.decimals if token else 18
            if event.name == "PositionReduced":
                usdc, tokens = a["usdcOut"], a["tokensIn"]
            else:
                usdc, tokens = a["usdcIn"], a["tokensOut"]
            fill = {
                "usdc": format_amount(usdc, USDC_DECIMALS),
                "tokens": format_amount(tokens, decimals),
                "price": _fill_price(usdc, tokens, decimals),
            }
            return fill, a["positionId"]
        for raw in receipt["logs"]:
            event = self.events.decode(dict(raw))
            if event is not None and event.name == "ExitLadderSet":
                return None, event.args["positionId"]
        return None, None

    def _close(
        self,
        intent_id: int,
        status: str,
        reason: str,
        error: dict[str, Any] | None,
        *,
        nonce_unused: bool = True,
    ) -> None:
        with self.sessions.begin() as session:
            row = _claim(session, intent_id)
            if row is None:
                return
            row.reason = reason
            row.error = error
            _set_status(session, row, status, reason)
            if nonce_unused:
                # Its nonce stays unused, so the agent's later intents waiting behind it can never be
                # mined: report them now instead of leaving them `received` for ever.
                later = session.scalars(
                    select(Intent).where(
                        Intent.agent_id == row.agent_id, Intent.nonce > row.nonce, Intent.status == "received"
                    )
                ).all()
                for successor in later:
                    successor.reason = f"its predecessor intent {row.id} (nonce {row.nonce}) was {status}"
                    _set_status(session, successor, "rejected", successor.reason)
        log.info("intent %s %s: %s", intent_id, status, reason)
        self.notify()


def gas_limit(estimate: int) -> int:
    return int(estimate * GAS_MARGIN) + GAS_HEADROOM


def _claim(session: Session, intent_id: int) -> Intent | None:
    """Takes a live intent for a final status exactly once: a compare-and-set on its status, so two
    finalizers (a waiting request and the dispatcher, or two relayers) cannot both record it."""
    claimed = session.execute(
        update(Intent).where(Intent.id == intent_id, Intent.status.in_(LIVE)).values(status=Intent.status)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return session.get(Intent, intent_id)


def _rules(b: Built) -> list[tuple[int, int, int]]:
    return [(int(r.trigger_type), r.trigger_bps, r.exit_bps) for r in b.exits or ()]


def _fill_price(usdc: int, tokens: int, decimals: int) -> str:
    if tokens == 0:
        return "0"
    # USD per whole token, to 6 decimals, rounded down.
    return format_amount(usdc * 10**decimals // tokens, USDC_DECIMALS)


def _set_status(session: Session, row: Intent, status: str, reason: str | None = None) -> None:
    row.status = status
    session.add(IntentStatus(intent_id=row.id, status=status, reason=reason))
    mirror.append_stream(
        session,
        row.agent_id,
        "intent_status",
        {
            "intentId": str(row.id),
            "status": status,
            "nonce": row.nonce,
            "primaryType": row.primary_type,
            "reason": reason,
            "transactionHash": row.tx_hash,
        },
    )


def intent_json(row: Intent) -> dict[str, Any]:
    out: dict[str, Any] = {
        "intentId": str(row.id),
        "agentId": str(row.agent_id),
        "type": row.primary_type,
        "nonce": row.nonce,
        "digest": row.digest,
        "status": row.status,
        "positionId": str(row.position_id) if row.position_id is not None else None,
        "transactionHash": row.tx_hash,
        "blockNumber": row.block_number,
        "createdAt": row.created_at.isoformat(),
        "updatedAt": row.updated_at.isoformat(),
    }
    if row.fill is not None:
        out["fill"] = row.fill
    if row.reason is not None:
        out["reason"] = row.reason
    return out
