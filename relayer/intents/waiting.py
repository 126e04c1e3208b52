"""Waiting: a submit waits (up to its `Prefer: wait`) for its intent's outcome, woken by events — its
transaction settling, its intent finalized, the indexer reaching its block — not by polling."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from sqlalchemy.orm import Session, sessionmaker

from relayer.errors import RelayerError
from relayer.intents import lifecycle
from relayer.intents.lifecycle import CLOSED, IntentState, intent_json
from relayer.state import ChainState
from relayer.store.models import Intent

# A waiting submit re-reads its intent when it is told something changed; this backstop covers a
# change made elsewhere (another replica) and asks for its transaction to be finalized.
ANSWER_BACKSTOP_S: Final = 1.0
# Once confirmed it waits for this process's indexer: woken by its batches (`indexed`), this in-memory
# look is the backstop.
INDEXED_POLL_S: Final = 0.25
# A submit with no wait (`Prefer: wait=0`) whose intent is next in line is answered once its
# transaction is recorded (`submitted`, SPEC §2.3) — at most this long, if a batch is in flight.
SENT_WAIT_S: Final = 5.0


class Answer(StrEnum):
    """What a submit answers with; the route maps it to an HTTP status."""

    EXISTING = "existing"  # the same signed intent (or Idempotency-Key) was submitted before
    CONFIRMED = "confirmed"  # mined, and this process's view includes its block
    IN_FLIGHT = "in_flight"  # not final within the wait: follow it with GET …/intents/{id}
    PENDING_APPROVAL = "pending_approval"  # above its approval threshold: waits for a human (SPEC §5.5)


@dataclass(frozen=True)
class SubmitResult:
    answer: Answer
    body: dict[str, Any]


@dataclass
class Waiter:
    """A submit waiting for its intent: woken when its transaction (or, while its request id is not
    known yet, any transaction) settles, and when its intent is finalized."""

    woken: threading.Event = field(default_factory=threading.Event)
    request_id: int | None = None
    # Whether its intent's move to `submitted` matters: only once the wait is over and the submit is
    # answered as soon as its transaction is recorded (else that wake-up would only cost a read).
    wants_sent: bool = False
    block_number: int | None = None  # confirmed in this block: waits for the indexer to reach it


class Waiters:
    def __init__(self) -> None:
        self._waiters: dict[int, Waiter] = {}  # intent id → the submit waiting for it
        self._lock = threading.Lock()

    def watch(self, intent_id: int) -> Waiter:
        waiter = Waiter()
        with self._lock:
            self._waiters[intent_id] = waiter
        return waiter

    def unwatch(self, intent_id: int) -> None:
        with self._lock:
            self._waiters.pop(intent_id, None)

    def indexed(self, block_number: int) -> None:
        with self._lock:
            waiters = list(self._waiters.values())
        for waiter in waiters:
            if waiter.block_number is not None and waiter.block_number <= block_number:
                waiter.woken.set()

    def wake(self, intent_ids: list[int]) -> None:
        with self._lock:
            waiters = [self._waiters[i] for i in intent_ids if i in self._waiters]
        for waiter in waiters:
            waiter.woken.set()

    def sent(self, intent_ids: list[int]) -> None:
        """These intents' transaction is recorded: wakes the submits that answer on that."""
        with self._lock:
            waiters = [self._waiters[i] for i in intent_ids if i in self._waiters]
        for waiter in waiters:
            if waiter.wants_sent:
                waiter.woken.set()

    def wake_all(self) -> None:
        with self._lock:
            waiters = list(self._waiters.values())
        for waiter in waiters:
            waiter.woken.set()


def closed_error(row: Intent) -> RelayerError:
    """A submit whose intent was rejected or failed before the answer: the reason's own code."""
    error = row.error or {}
    code = error.get("code") if isinstance(error.get("code"), str) else None
    details: dict[str, Any] = dict(error.get("details") or {})
    details.update(intentId=str(row.id), status=row.status, reason=row.reason)
    message = f"intent {row.id} {row.status}: {row.reason}"
    return RelayerError(code or "simulation_failed", message, details)


def answer(
    *,
    intent_id: int,
    wait_s: float,
    waiter: Waiter,
    sessions: sessionmaker[Session],
    state: ChainState,
    finalize: Callable[[int], object],
    until_sent: bool = False,
) -> SubmitResult:
    """Wait for the intent's outcome: confirmed and indexed → CONFIRMED; rejected or failed → its
    error; still on its way when the wait ends → IN_FLIGHT. With `until_sent`, the wait lasts at
    least until the intent leaves `received` (bounded by SENT_WAIT_S)."""
    start = time.monotonic()
    deadline = start + wait_s
    sent_deadline = start + SENT_WAIT_S if until_sent else start
    waiter.wants_sent = wait_s <= 0
    if wait_s > 0 or until_sent:
        # Just recorded: nothing to read until its batch is sent and settles, which wakes this.
        waiter.woken.wait(timeout=min(ANSWER_BACKSTOP_S, wait_s))
    while True:
        # Set before the read, like the clear below: a move to `submitted` after it wakes the wait.
        waiter.wants_sent = time.monotonic() >= deadline
        woken = waiter.woken.is_set()
        waiter.woken.clear()  # before reading: a change from now on wakes the wait below
        with sessions() as session:
            row = lifecycle.read(session, intent_id)
            assert row is not None
            status = IntentState(row.status)
            if status is IntentState.SUBMITTED and not woken and row.tx_request_id is not None:
                # The backstop: its transaction may have settled where no listener of ours saw it.
                request_id = row.tx_request_id
                session.close()
                finalize(request_id)
                row = lifecycle.read(session, intent_id)
                assert row is not None
                status = IntentState(row.status)
            # Answer once this process's view includes the block too, so the agent's next quote
            # sees the position and the spent nonce (the wait bounds it; the context covers a miss).
            indexed = row.block_number is None or state.block_number >= row.block_number
            if status is IntentState.CONFIRMED and (indexed or time.monotonic() >= deadline):
                return SubmitResult(Answer.CONFIRMED, intent_json(row))
            if status in CLOSED:
                raise closed_error(row)
            now = time.monotonic()
            if now >= deadline and (status is not IntentState.RECEIVED or now >= sent_deadline):
                return SubmitResult(Answer.IN_FLIGHT, intent_json(row))
            block_number = row.block_number
            waiter.request_id = row.tx_request_id
        if status is IntentState.CONFIRMED and block_number is not None:
            # Final on chain: only the indexer is awaited, and its block is in memory.
            waiter.block_number = block_number
            while True:
                waiter.woken.clear()
                if state.block_number >= block_number or time.monotonic() >= deadline:
                    break
                waiter.woken.wait(timeout=min(INDEXED_POLL_S, max(deadline - time.monotonic(), 0)))
            continue
        # Still `received` past the wait: until it is sent (`wants_sent` from the next pass on, so the
        # pass at the deadline comes on time).
        until = max(deadline, sent_deadline) if status is IntentState.RECEIVED else deadline
        if not waiter.wants_sent:
            until = min(until, deadline)
        waiter.woken.wait(timeout=min(ANSWER_BACKSTOP_S, max(until - time.monotonic(), 0)))
