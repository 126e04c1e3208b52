"""Which positions have a keeper exit or an intent on their way, shared by the keeper and the
dispatcher of one process (a claim covers the time from the simulation to the record in the
database), and, across processes, read from the database.

Claims are taken atomically against the other side's: a position the keeper claimed for an exit
cannot be claimed for an intent until the keeper lets go of it, and the reverse. Thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from relayer.chain import calls
from relayer.intents.lifecycle import IntentState
from relayer.store.models import Intent, TxRequest


class PositionClaims:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._exits: set[int] = set()
        self._intents: dict[int, int] = {}  # position → claims (several intents of one batch)

    def claim_exits(self, positions: Iterable[int]) -> set[int]:
        """Claims the positions no intent holds; returns those it could not claim."""
        with self._lock:
            refused = {p for p in positions if p in self._intents}
            self._exits.update(p for p in positions if p not in refused)
        return refused

    def release_exits(self, positions: Iterable[int]) -> None:
        with self._lock:
            self._exits.difference_update(positions)

    def claim_intents(self, positions: Iterable[int]) -> set[int]:
        """Claims the positions no exit holds; returns those it could not claim."""
        positions = list(positions)
        with self._lock:
            refused = {p for p in positions if p in self._exits}
            for p in positions:
                if p not in refused:
                    self._intents[p] = self._intents.get(p, 0) + 1
        return refused

    def release_intents(self, positions: Iterable[int]) -> None:
        with self._lock:
            for p in positions:
                n = self._intents.get(p, 0) - 1
                if n > 0:
                    self._intents[p] = n
                else:
                    self._intents.pop(p, None)

    def exits(self) -> frozenset[int]:
        with self._lock:
            return frozenset(self._exits)

    def intents(self) -> frozenset[int]:
        with self._lock:
            return frozenset(self._intents)


def exits_pending(session: Session) -> frozenset[int]:
    """Positions named by exit transactions not final yet (sent by any process)."""
    out: set[int] = set()
    for data in session.scalars(
        select(TxRequest.data).where(TxRequest.purpose == "exit", TxRequest.status == "pending")
    ):
        try:
            out.update(calls.exit_position_ids(data))
        except ValueError:
            continue
    return frozenset(out)


def intents_settled_after(session: Session, intents: Mapping[int, int], indexed_block: int) -> dict[int, int]:
    """Of `intents` (position → intent id), those mined in a block after `indexed_block`: settled,
    but a reader of the chain up to `indexed_block` still sees the position as it was before them."""
    if not intents:
        return {}
    rows = session.execute(
        select(Intent.id, Intent.block_number).where(Intent.id.in_(list(intents.values())))
    ).all()
    late = {int(i) for i, block in rows if block is not None and int(block) > indexed_block}
    return {p: i for p, i in intents.items() if i in late}


def intents_submitted(session: Session, positions: Iterable[int]) -> dict[int, int]:
    """Of `positions`, those an intent in a transaction not final yet is on: position → intent id."""
    wanted = list(positions)
    if not wanted:
        return {}
    rows = session.execute(
        select(Intent.position_id, Intent.id).where(
            Intent.status == IntentState.SUBMITTED.value, Intent.position_id.in_(wanted)
        )
    ).all()
    return {int(p): int(i) for p, i in rows if p is not None}
