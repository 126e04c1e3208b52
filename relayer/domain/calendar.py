"""Exchange calendars: the trading days of a real exchange (NYSE by default) from `exchange-calendars`
(sessions, holidays and early closes by rule, offline), as `TradingDay`s for `relayer.domain.market`.

Deterministic: the library computes the calendar from its rules, with no network and no clock (the
span is fixed here, not "20 years back from today" as the library's default). Loading takes a few
seconds (pandas), so it happens once per process, on first use.
"""

from __future__ import annotations

import logging
import threading
import warnings
from bisect import bisect_left
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Final

from relayer.domain.market import (
    DEFAULT_SESSIONS,
    NYSE_HOURS,
    MarketStatus,
    SessionHours,
    TradingDay,
    next_open,
    status_at,
)

log = logging.getLogger("alphagrid.calendar")

FIRST_DAY: Final = date(2000, 1, 1)
LAST_DAY: Final = date(2045, 12, 31)
_LOOKAHEAD: Final = timedelta(days=21)  # longer than any closure the exchange has had since 2001


class ExchangeCalendar:
    """Trading days of ``code`` (an ISO MIC: XNYS) between `FIRST_DAY` and `LAST_DAY`; outside that
    span the calendar knows nothing (`status_at` answers Unknown, `next_open` None)."""

    def __init__(self, code: str = "XNYS", hours: SessionHours = NYSE_HOURS) -> None:
        self.code = code
        self.hours = hours
        self._days: list[TradingDay] | None = None
        self._dates: list[date] = []
        self._lock = threading.Lock()
        # (statuses, local date) → (asked at, the next open then): the last answer of `next_open`.
        self._next_open_memo: dict[tuple[frozenset[MarketStatus], date], tuple[datetime, datetime]] = {}

    def _load(self) -> list[TradingDay]:
        with self._lock:
            if self._days is None:
                import exchange_calendars  # pandas: seconds to import, so only when used

                with warnings.catch_warnings():  # the library's own pandas deprecations
                    warnings.simplefilter("ignore")
                    cal = exchange_calendars.get_calendar(
                        self.code, start=FIRST_DAY.isoformat(), end=LAST_DAY.isoformat()
                    )
                    sessions, opens, closes = list(cal.sessions), list(cal.opens), list(cal.closes)
                days = [
                    TradingDay(
                        session.date(),
                        opened.to_pydatetime().astimezone(UTC),
                        closed.to_pydatetime().astimezone(UTC),
                    )
                    for session, opened, closed in zip(sessions, opens, closes, strict=True)
                ]
                self._dates = [d.day for d in days]
                self._days = days
            return self._days

    @property
    def loaded(self) -> bool:
        return self._days is not None

    def trading_days(self, start: date, end: date) -> list[TradingDay]:
        """The sessions with ``start ≤ day ≤ end``, in order."""
        days = self._load()
        lo = bisect_left(self._dates, start)
        hi = bisect_left(self._dates, end + timedelta(days=1))
        return days[lo:hi]

    def knows(self, now: datetime) -> bool:
        local = now.astimezone(self.hours.tz).date()
        return FIRST_DAY < local < LAST_DAY

    def status_at(self, now: datetime) -> MarketStatus:
        if not self.knows(now):
            return MarketStatus.UNKNOWN
        local = now.astimezone(self.hours.tz).date()
        days = self.trading_days(local - timedelta(days=1), local + timedelta(days=1))
        return status_at(now, days, self.hours)

    def next_open(
        self, now: datetime, statuses: frozenset[MarketStatus] = DEFAULT_SESSIONS
    ) -> datetime | None:
        """The next start of a window of ``statuses`` after ``now`` (the next regular open by default)."""
        if not self.knows(now):
            return None
        local = now.astimezone(self.hours.tz).date()
        # Every quote asks this: the answer for an earlier moment of the same day holds until that open
        # (no window starts between them, over the same days), so it is kept instead of recomputed.
        memo = self._next_open_memo.get((statuses, local))
        if memo is not None and memo[0] <= now < memo[1]:
            return memo[1]
        days = self.trading_days(local, local + _LOOKAHEAD)
        opens = next_open(now, days, statuses, self.hours)
        if opens is not None:
            self._next_open_memo = {(statuses, local): (now, opens)}
        return opens


@cache
def exchange_calendar(code: str = "XNYS") -> ExchangeCalendar:
    """One calendar per exchange per process."""
    return ExchangeCalendar(code)


def calendar_or_none(code: str) -> ExchangeCalendar | None:
    """The calendar ``code`` loaded (blocking, once per process), or None for "" or a code the library
    does not know (logged once): an answer without ``nextOpen`` beats no answer."""
    code = code.strip().upper()
    if not code:
        return None
    cal = exchange_calendar(code)
    try:
        cal.trading_days(FIRST_DAY, FIRST_DAY)
    except Exception:  # exchange_calendars' own errors (InvalidCalendarName, ...)
        if code not in _WARNED:
            _WARNED.add(code)
            log.warning("no exchange calendar %s: nextOpen stays null", code, exc_info=True)
        return None
    return cal


def warm(code: str) -> None:
    """Loads the calendar ``code`` in a background thread (once), so no request waits seconds for it."""
    code = code.strip().upper()
    with _WARMING_LOCK:
        if not code or code in _WARMING:
            return
        _WARMING.add(code)
    threading.Thread(target=calendar_or_none, args=(code,), name=f"calendar-{code}", daemon=True).start()


def calendar_if_loaded(code: str) -> ExchangeCalendar | None:
    """The calendar ``code`` if it is loaded already, without waiting; else starts loading it (`warm`)
    and answers None. For request paths: ``nextOpen`` is null for the first seconds of a process."""
    code = code.strip().upper()
    if not code:
        return None
    cal = exchange_calendar(code)
    if cal.loaded:
        return cal
    warm(code)
    return None


_WARNED: set[str] = set()
_WARMING: set[str] = set()
_WARMING_LOCK = threading.Lock()
