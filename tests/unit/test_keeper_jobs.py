"""The keeper's APScheduler jobs: an event runs the step at once (not at the next idle tick), an event
during a step runs it once more, leadership gained asks for a resync, and shutting down while a step
runs returns (the scheduler's shutdown holds its job store lock while it waits for that step)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, cast

from relayer.keeper.jobs import KeeperJobs
from relayer.keeper.keeper import Keeper


class Leader:
    def __init__(self) -> None:
        self.grant = True

    def acquire(self) -> bool:
        return self.grant

    def release(self) -> None:
        pass


class FakeKeeper:
    """The part of `Keeper` the jobs drive; `step` can be held inside to act during a step."""

    def __init__(self) -> None:
        self.leader = Leader()
        self.steps: list[tuple[float, bool]] = []
        self.resyncs = 0
        self.hold = threading.Event()
        self.hold.set()
        self.inside = threading.Event()
        self.due: float | None = None

    def step(self, leading: bool) -> None:
        self.inside.set()
        self.hold.wait(timeout=10)
        self.steps.append((time.monotonic(), leading))

    def next_due(self, idle_s: float) -> float:
        return idle_s if self.due is None else self.due

    def resync(self) -> None:
        self.resyncs += 1

    def on_event(self, event: Any, position: Any) -> bool:
        return True


def _wait(predicate: Callable[[], bool], what: str, timeout_s: float = 5) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def _jobs(keeper: FakeKeeper) -> KeeperJobs:
    return KeeperJobs(cast(Keeper, keeper), lead_interval_s=0.05, idle_s=30)


def test_a_wake_runs_the_step_at_once_not_at_the_idle_tick() -> None:
    keeper = FakeKeeper()
    jobs = _jobs(keeper)
    jobs.start()
    try:
        _wait(lambda: len(keeper.steps) >= 1 and jobs.leading, "the first step and leadership")
        _wait(lambda: not jobs._stepping, "the step to end")
        time.sleep(0.1)  # the wake of the leadership gained has run its step too
        before = len(keeper.steps)
        woke_at = time.monotonic()
        jobs.wake()
        _wait(lambda: len(keeper.steps) > before, "the woken step", timeout_s=2)
        assert keeper.steps[-1][0] - woke_at < 0.5  # the idle tick is 30 s away
        assert keeper.resyncs == 1  # leadership gained once
        assert keeper.steps[-1][1] is True
    finally:
        jobs.shutdown()


def test_an_event_during_a_step_runs_it_once_more() -> None:
    keeper = FakeKeeper()
    jobs = _jobs(keeper)
    jobs.start()
    try:
        _wait(lambda: len(keeper.steps) >= 1, "the first step")
        _wait(lambda: not jobs._stepping, "the step to end")
        keeper.hold.clear()
        keeper.inside.clear()
        jobs.wake()
        _wait(keeper.inside.is_set, "a step to start")
        before = len(keeper.steps)
        jobs.on_event(None, None)  # arrives while the step runs
        keeper.hold.set()
        _wait(lambda: len(keeper.steps) >= before + 2, "the step to run again for the event", timeout_s=2)
    finally:
        jobs.shutdown()


def test_shutdown_while_a_step_runs_returns() -> None:
    keeper = FakeKeeper()
    jobs = _jobs(keeper)
    jobs.start()
    _wait(lambda: len(keeper.steps) >= 1, "the first step")
    _wait(lambda: not jobs._stepping, "the step to end")
    keeper.hold.clear()
    keeper.inside.clear()
    jobs.wake()
    _wait(keeper.inside.is_set, "a step to start")
    closer = threading.Thread(target=jobs.shutdown, daemon=True)
    closer.start()
    time.sleep(0.1)
    keeper.hold.set()  # the step ends while the scheduler is shutting down
    closer.join(timeout=5)
    assert not closer.is_alive(), "shutdown deadlocked with the step rescheduling itself"
    assert not jobs.running


def test_leadership_lost_and_regained_asks_for_a_resync_each_time() -> None:
    keeper = FakeKeeper()
    jobs = _jobs(keeper)
    jobs.start()
    try:
        _wait(lambda: jobs.leading, "leadership")
        keeper.leader.grant = False
        _wait(lambda: not jobs.leading, "leadership lost")
        keeper.leader.grant = True
        _wait(lambda: jobs.leading, "leadership regained")
        _wait(lambda: keeper.resyncs == 2, "a resync per gain")
    finally:
        jobs.shutdown()


def test_no_wake_is_lost_when_it_lands_as_a_step_ends() -> None:
    """Wakes in quick succession, many landing while the previous step is finishing: each must be
    followed by a step within a fraction of the 30 s idle interval."""
    keeper = FakeKeeper()
    jobs = _jobs(keeper)
    jobs.start()
    try:
        _wait(lambda: len(keeper.steps) >= 1, "the first step")
        for i in range(300):
            woke_at = time.monotonic()
            jobs.wake()
            _wait(lambda w=woke_at: any(t >= w for t, _ in keeper.steps), f"the step after wake {i}", 2)
            time.sleep(0.0005 * (i % 4))
    finally:
        jobs.shutdown()


def test_a_step_that_asks_to_run_again_at_once_keeps_running() -> None:
    """What an exit in flight does (follow it again shortly): the run scheduled after the step must
    not be refused as a second instance of it."""
    keeper = FakeKeeper()
    jobs = _jobs(keeper)
    jobs.start()
    try:
        _wait(lambda: len(keeper.steps) >= 1, "the first step")
        keeper.due = 0.0
        start = len(keeper.steps)
        jobs.wake()
        time.sleep(0.5)
        assert len(keeper.steps) - start >= 20
    finally:
        keeper.due = None
        jobs.shutdown()
