"""The keeper as APScheduler jobs: `keeper.lead` takes or renews leadership every second, and
`keeper.step` evaluates what the indexer announced.

The step is event-driven, not a poll: the indexer's events wake it (its next run time moved to now),
so a price update is evaluated as soon as its block is indexed. Each step schedules the next: soon
when something no event will announce needs it — an exit in flight to follow, a retry coming due —
else after `idle_s`. (The job's own interval trigger is only a far-off safety net, so it never comes
due while a long step runs.) One step runs at a time; events arriving during a step are handled by
that step looping once more, not by a second instance.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.background import BackgroundScheduler

from relayer.chain.events import DecodedLog
from relayer.keeper.keeper import Keeper
from relayer.state import PositionInfo

log = logging.getLogger("alphagrid.keeper")

STEP = "keeper.step"
LEAD = "keeper.lead"
_SAFETY_NET_S = 3600

# APScheduler logs every run at INFO: a line per price update would drown the service's own logs.
logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)


class KeeperJobs:
    def __init__(self, keeper: Keeper, *, lead_interval_s: float = 1.0, idle_s: float = 1.0) -> None:
        self.keeper = keeper
        self.idle_s = idle_s
        self.lead_interval_s = lead_interval_s
        self.leading = False
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=2)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        self._flags = threading.Lock()
        self._woken = threading.Event()
        self._stepping = False
        self._wake_scheduled = False
        self._closing = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        now = datetime.now(UTC)
        self.scheduler.add_job(
            self._lead, "interval", seconds=self.lead_interval_s, id=LEAD, next_run_time=now
        )
        self.scheduler.add_job(self._step, "interval", seconds=_SAFETY_NET_S, id=STEP, next_run_time=now)
        self.scheduler.start()

    @property
    def running(self) -> bool:
        return bool(self.scheduler.running)

    def shutdown(self) -> None:
        # From here on no job touches the scheduler: its shutdown holds the job store lock while it
        # waits for running jobs, and a job rescheduling itself then would wait for that lock forever.
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
        large batch: the job is rescheduled once until the step starts."""
        self._woken.set()
        with self._flags:
            if self._stepping or self._wake_scheduled:
                return
            self._wake_scheduled = True
        self._run_step_in(0.0)

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
            self._stepping = True
            self._wake_scheduled = False
        try:
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
                again = self._woken.is_set()  # set after the loop's last look: nobody scheduled it
                if again:
                    self._wake_scheduled = True
            self._run_step_in(0.0 if again else self.keeper.next_due(self.idle_s))

    def _run_step_in(self, delay_s: float) -> None:
        with self._flags:
            if self._closing:
                return
            with contextlib.suppress(JobLookupError, SchedulerNotRunningError):
                self.scheduler.modify_job(STEP, next_run_time=datetime.now(UTC) + timedelta(seconds=delay_s))
