"""The keeper as APScheduler jobs: `keeper.lead` takes or renews leadership every second,
`keeper.tick` looks at the keeper's work every `idle_s`, and one-off `keeper.step` jobs run it the
moment something happens.

The step is event-driven, not a poll: each indexer event that gives the keeper work adds a one-off
run for now (unless one is already due), so a price update is evaluated as soon as its block is
indexed; a step that leaves work no event will announce — an exit in flight to follow, a retry
coming due — adds one for then. One step runs at a time (a lock; a run that finds it taken asks the
running step to loop once more). One-off runs are separate jobs rather than one job moved earlier:
APScheduler recomputes a job's next run time after submitting it, and a run that finished before
that (a quick step) would have its rescheduling overwritten.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.background import BackgroundScheduler

from relayer.chain.events import DecodedLog
from relayer.keeper.keeper import Keeper
from relayer.state import PositionInfo

log = logging.getLogger("alphagrid.keeper")

LEAD = "keeper.lead"
TICK = "keeper.tick"
STEP = "keeper.step"

# APScheduler logs every run at INFO: a line per price update would drown the service's own logs.
logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)
logging.getLogger("apscheduler.scheduler").setLevel(logging.WARNING)


class KeeperJobs:
    def __init__(self, keeper: Keeper, *, lead_interval_s: float = 1.0, idle_s: float = 1.0) -> None:
        self.keeper = keeper
        self.idle_s = idle_s
        self.lead_interval_s = lead_interval_s
        self.leading = False
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=3)},
            # Runs that overlap a running step return at once (the step lock); none is ever skipped.
            job_defaults={"coalesce": True, "max_instances": 3, "misfire_grace_time": None},
            timezone=UTC,
        )
        self._flags = threading.Lock()
        self._step_lock = threading.Lock()
        self._woken = threading.Event()
        self._stepping = False
        self._pending: tuple[float, Job] | None = None  # the earliest one-off run and its time
        self._closing = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        now = datetime.now(UTC)
        self.scheduler.add_job(
            # One at a time: the advisory lock's connection is not shared between threads.
            self._lead,
            "interval",
            seconds=self.lead_interval_s,
            id=LEAD,
            next_run_time=now,
            max_instances=1,
        )
        self.scheduler.add_job(self._step, "interval", seconds=self.idle_s, id=TICK, next_run_time=now)
        self.scheduler.start()

    @property
    def running(self) -> bool:
        return bool(self.scheduler.running)

    def shutdown(self) -> None:
        # From here on no job touches the scheduler: its shutdown holds the job store lock while it
        # waits for running jobs, and a step scheduling its follow-up then would wait forever.
        with self._flags:
            self._closing = True
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        if self.leading:
            self.leading = False
            try:
                self.keeper.leader.release()
            except Exception:
                log.exception("releasing the keeper's leadership failed")

    # ------------------------------------------------------------------ inputs (indexer thread)

    def on_event(self, event: DecodedLog, position: PositionInfo | None) -> None:
        if self.keeper.on_event(event, position):
            self.wake()

    def wake(self) -> None:
        """Runs the step now, or once more if one is running. Cheap when called for every event of a
        large batch: once a run is due, further wakes only mark that there is something to do."""
        self._woken.set()
        with self._flags:
            if not self._stepping:
                self._run_in(0.0)

    # ------------------------------------------------------------------ jobs

    def _lead(self) -> None:
        was_leading = self.leading
        try:
            self.leading = self.keeper.leader.acquire()
        except Exception:  # the database is unreachable: follow, and ask again next time
            log.exception("keeper leadership check failed")
            self.leading = False
        if self.leading and not was_leading:
            self.keeper.resync()
            self.wake()

    def _step(self) -> None:
        with self._flags:
            self._pending = None  # this is that run, or it comes after this one
        if not self._step_lock.acquire(blocking=False):
            self._woken.set()  # a step is running: it loops once more
            return
        try:
            with self._flags:
                self._stepping = True
            while True:
                self._woken.clear()
                try:
                    self.keeper.step(self.leading)
                except Exception:
                    log.exception("keeper step failed")
                    self.keeper.resync()
                if not self._woken.is_set():
                    break
        finally:
            with self._flags:
                self._stepping = False
            self._step_lock.release()
            # Looked at after the release: a run that found the lock taken has said so by now.
            with self._flags:
                delay = 0.0 if self._woken.is_set() else self.keeper.next_due(self.idle_s)
                if delay < self.idle_s:  # else the tick comes first
                    self._run_in(delay)

    def _run_in(self, delay_s: float) -> None:
        """Adds a one-off step run `delay_s` from now unless one is due no later; the caller holds
        `_flags`."""
        if self._closing:
            return
        at = time.monotonic() + delay_s
        if self._pending is not None and self._pending[0] <= at:
            return
        if self._pending is not None:
            with contextlib.suppress(JobLookupError):
                self._pending[1].remove()  # a later one-off run, superseded by this one
        with contextlib.suppress(SchedulerNotRunningError):
            job = self.scheduler.add_job(
                self._step, "date", run_date=datetime.now(UTC) + timedelta(seconds=delay_s), name=STEP
            )
            self._pending = (at, job)
