"""Per token, every armed rule's exact trigger price, sorted: a price update finds the positions it
triggers in O(log n + k) instead of scanning them all.

A stop-loss is triggered at prices at or below its threshold, a take-profit at or above, with the
thresholds of `relayer.domain.exits.trigger_threshold` (exact, rounding included). The index only
nominates positions; `decide_exits` then says what the contract will really do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sortedcontainers import SortedList

from relayer.domain.exits import trigger_threshold
from relayer.eip712 import TriggerType
from relayer.state import PositionInfo

Entry = tuple[int, int, int]  # (threshold price, position id, rule index)


@dataclass
class _Book:
    stops: SortedList = field(default_factory=SortedList)
    takes: SortedList = field(default_factory=SortedList)


class TriggerIndex:
    def __init__(self) -> None:
        self._books: dict[str, _Book] = {}
        self._entries: dict[int, tuple[str, list[tuple[bool, Entry]]]] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def update(self, p: PositionInfo, token_decimals: int) -> None:
        """Indexes `p`'s armed rules at its current size and basis (or drops it once closed)."""
        self.remove(p.position_id)
        if not p.open or p.size == 0:
            return
        book = self._books.setdefault(p.token, _Book())
        entries: list[tuple[bool, Entry]] = []
        for i, rule in enumerate(p.rules):
            if p.fired_mask >> i & 1:
                continue
            threshold = trigger_threshold(rule, p.size, p.cost_basis, token_decimals)
            if threshold is None:
                continue
            entry = (threshold, p.position_id, i)
            is_stop = rule.trigger_type == TriggerType.STOP_LOSS
            (book.stops if is_stop else book.takes).add(entry)
            entries.append((is_stop, entry))
        if entries:
            self._entries[p.position_id] = (p.token, entries)
            self._size += len(entries)

    def remove(self, position_id: int) -> None:
        found = self._entries.pop(position_id, None)
        if found is None:
            return
        token, entries = found
        book = self._books[token]
        for is_stop, entry in entries:
            (book.stops if is_stop else book.takes).remove(entry)
        self._size -= len(entries)

    def candidates(self, token: str, price: int) -> list[int]:
        """Positions with an armed rule triggered at `price`, in position-id order."""
        book = self._books.get(token)
        if book is None:
            return []
        hits = {pid for _t, pid, _i in book.stops.irange(minimum=(price, -1, -1))}
        hits.update(pid for _t, pid, _i in book.takes.irange(maximum=(price, 2**256, 2**256)))
        return sorted(hits)
