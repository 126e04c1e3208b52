"""The intent pipeline's pure decisions, case by case (relayer/intents/decisions.py)."""

from __future__ import annotations

import pytest

from relayer.intents.decisions import (
    AgentQueue,
    BehindRefused,
    Candidate,
    Confirm,
    Fail,
    Gap,
    HeldForExit,
    ItemEvidence,
    LookUpNonce,
    Orphaned,
    Refused,
    Send,
    Spent,
    TxOutcome,
    Wait,
    dispatch_step,
    gap_step,
    hold_on_exits,
    plan_batch,
    screen,
    settle_item,
)
from relayer.intents.lifecycle import IntentState


def queue(
    waiting: tuple[int, ...], chain_next: int, *, in_flight: bool = False, max_confirmed: int | None = None
) -> AgentQueue:
    return AgentQueue(7, waiting, chain_next, in_flight, max_confirmed)


# ---------------------------------------------------------------------- dispatch_step

NEXT_IN_LINE = queue((3,), 3)
PIPELINED_RUN = queue((3, 4, 5), 3)
RUN_WITH_A_HOLE = queue((3, 4, 6), 3)
BEHIND_AN_IN_FLIGHT_ONE = queue((4,), 3, in_flight=True)
CONFIRMED_NOT_INDEXED = queue((4, 5), 3, max_confirmed=3)
SPENT_ELSEWHERE = queue((2, 3), 3)
BEYOND_A_GAP = queue((5,), 3)
NOTHING_WAITING = queue((), 3)


def test_dispatch_step_next_in_line_is_sent() -> None:
    assert dispatch_step(NEXT_IN_LINE) == Send((3,))


def test_dispatch_step_pipelined_nonces_go_in_one_run() -> None:
    assert dispatch_step(PIPELINED_RUN) == Send((3, 4, 5))


def test_dispatch_step_a_run_stops_at_a_hole() -> None:
    assert dispatch_step(RUN_WITH_A_HOLE) == Send((3, 4))


def test_dispatch_step_waits_behind_an_intent_in_flight() -> None:
    assert isinstance(dispatch_step(BEHIND_AN_IN_FLIGHT_ONE), Wait)


def test_dispatch_step_counts_confirmed_nonces_the_view_has_not_indexed() -> None:
    assert dispatch_step(CONFIRMED_NOT_INDEXED) == Send((4, 5))


def test_dispatch_step_a_nonce_the_chain_is_past_is_spent() -> None:
    assert dispatch_step(SPENT_ELSEWHERE) == Spent(2)


def test_dispatch_step_spent_is_seen_even_while_another_is_in_flight() -> None:
    assert dispatch_step(queue((2,), 3, in_flight=True)) == Spent(2)


def test_dispatch_step_beyond_a_gap() -> None:
    assert dispatch_step(BEYOND_A_GAP) == Gap(5, 3)


def test_dispatch_step_nothing_waiting() -> None:
    assert isinstance(dispatch_step(NOTHING_WAITING), Wait)


# ---------------------------------------------------------------------- gap_step


def test_gap_step_orphaned_when_the_predecessor_was_rejected() -> None:
    assert gap_step((11, IntentState.REJECTED), live_between=False) == Orphaned(11, IntentState.REJECTED)


def test_gap_step_orphaned_when_the_predecessor_failed() -> None:
    assert gap_step((11, IntentState.FAILED), live_between=False) == Orphaned(11, IntentState.FAILED)


@pytest.mark.parametrize(
    "state",
    [IntentState.PENDING_APPROVAL, IntentState.RECEIVED, IntentState.SUBMITTED, IntentState.CONFIRMED],
)
def test_gap_step_waits_for_a_live_predecessor(state: IntentState) -> None:
    assert isinstance(gap_step((11, state), live_between=False), Wait)


def test_dispatch_step_a_successor_of_an_intent_pending_approval_is_beyond_a_gap() -> None:
    """The pending intent (nonce 3) is not `received`, so it is not in the queue: its successor (4)
    is beyond the next nonce, and `gap_step` makes it wait (below) rather than orphan it."""
    assert dispatch_step(queue((4, 5), 3)) == Gap(4, 3)


def test_gap_step_waits_behind_a_pending_approval_even_with_nothing_live_in_between() -> None:
    assert gap_step((11, IntentState.PENDING_APPROVAL), live_between=False) == Wait(
        "the predecessor intent is pending approval"
    )


def test_gap_step_orphaned_once_the_pending_predecessor_is_rejected() -> None:
    assert gap_step((11, IntentState.REJECTED), live_between=False) == Orphaned(11, IntentState.REJECTED)


def test_gap_step_waits_while_a_live_intent_holds_a_nonce_in_between() -> None:
    assert isinstance(gap_step((11, IntentState.REJECTED), live_between=True), Wait)


def test_gap_step_waits_with_no_predecessor_recorded() -> None:
    assert isinstance(gap_step(None, live_between=False), Wait)


# ---------------------------------------------------------------------- plan_batch


def run(agent: int, *nonces: int, kind: str = "OpenPosition") -> list[Candidate]:
    return [Candidate(agent * 100 + n, agent, n, kind) for n in nonces]


def test_plan_batch_takes_every_run_within_bounds() -> None:
    runs = [run(1, 0, 1), run(2, 5)]
    assert plan_batch(runs, max_items=10, max_gas=10_000_000) == [*runs[0], *runs[1]]


def test_plan_batch_cuts_at_the_item_cap_without_reordering_an_agent() -> None:
    runs = [run(1, 0, 1, 2), run(2, 5)]
    assert plan_batch(runs, max_items=2, max_gas=10_000_000) == runs[0][:2]


def test_plan_batch_cuts_at_the_gas_budget() -> None:
    runs = [run(1, 0), run(2, 0), run(3, 0)]  # 260k each
    assert plan_batch(runs, max_items=10, max_gas=600_000) == [*runs[0], *runs[1]]


def test_plan_batch_always_takes_one_item() -> None:
    assert plan_batch([run(1, 0)], max_items=10, max_gas=1) == run(1, 0)


# ---------------------------------------------------------------------- screen

FAIL = b"\xde\xad\xbe\xef"


def test_screen_keeps_items_that_pass() -> None:
    items = [*run(1, 0), *run(2, 0)]
    assert screen(items, [b"", b""]) == (items, [])


def test_screen_drops_a_failing_item_with_its_revert() -> None:
    a, b, c = [*run(1, 0), *run(2, 0), *run(3, 0)]
    assert screen([a, b, c], [b"", FAIL, b""]) == ([a, c], [(b, Refused(FAIL))])


def test_screen_drops_an_agents_later_items_behind_a_refused_one() -> None:
    a0, a1, a2 = run(1, 0, 1, 2)
    (b0,) = run(2, 0)
    keep, drop = screen([a0, b0, a1, a2], [FAIL, b"", FAIL, FAIL])
    assert keep == [b0]
    assert drop == [(a0, Refused(FAIL)), (a1, BehindRefused(a0)), (a2, BehindRefused(a0))]


def test_screen_a_failing_later_item_keeps_the_earlier_ones() -> None:
    a0, a1 = run(1, 0, 1)
    assert screen([a0, a1], [b"", FAIL]) == ([a0], [(a1, Refused(FAIL))])


def test_screen_needs_one_result_per_item() -> None:
    with pytest.raises(ValueError):
        screen(run(1, 0, 1), [b""])


# ---------------------------------------------------------------------- settle_item

TX = "0x" + "ab" * 32


def test_settle_item_executed_in_a_mined_transaction_is_confirmed() -> None:
    assert settle_item(TxOutcome.MINED, TX, ItemEvidence(True, None)) == Confirm(TX)


def test_settle_item_failed_in_its_batch_looks_up_the_nonce_then_fails_with_the_revert() -> None:
    step = settle_item(TxOutcome.MINED, TX, ItemEvidence(False, FAIL))
    assert isinstance(step, LookUpNonce)
    assert step.otherwise.revert == FAIL and "failed" in step.otherwise.reason


def test_settle_item_missing_from_a_mined_transaction_looks_up_the_nonce() -> None:
    step = settle_item(TxOutcome.MINED, TX, ItemEvidence(False, None))
    assert isinstance(step, LookUpNonce) and step.otherwise.revert is None


def test_settle_item_whole_transaction_reverted() -> None:
    step = settle_item(TxOutcome.FAILED, TX, ItemEvidence(False, None))
    assert step == LookUpNonce(Fail(f"the transaction reverted on chain ({TX})"))


def test_settle_item_dropped_names_why() -> None:
    step = settle_item(TxOutcome.DROPPED, None, ItemEvidence(False, None), "nonce consumed by 0x12")
    assert step == LookUpNonce(Fail("the transaction was dropped: nonce consumed by 0x12"))


def test_settle_item_refuses_a_status_that_is_not_final() -> None:
    with pytest.raises(ValueError):
        settle_item("pending", None, ItemEvidence(False, None))


# ---------------------------------------------------------------------- hold_on_exits


def c(intent_id: int, agent_id: int, nonce: int, position_id: int | None) -> Candidate:
    kind = "OpenPosition" if position_id is None else "ReducePosition"
    return Candidate(intent_id, agent_id, nonce, kind, position_id)


def test_hold_on_exits_nothing_in_flight_sends_the_whole_run() -> None:
    run = [c(1, 7, 0, None), c(2, 7, 1, 5)]
    assert hold_on_exits(run, frozenset()) == (run, None)


def test_hold_on_exits_other_positions_do_not_hold() -> None:
    run = [c(1, 7, 0, 4), c(2, 7, 1, 6)]
    assert hold_on_exits(run, frozenset({5})) == (run, None)


def test_hold_on_exits_first_intent_on_the_position_holds_the_run() -> None:
    run = [c(1, 7, 0, 5), c(2, 7, 1, None)]
    assert hold_on_exits(run, frozenset({5})) == ([], HeldForExit(run[0], 5))


def test_hold_on_exits_cuts_the_run_at_the_first_conflict() -> None:
    # The open (nonce 0) goes; the reduce on position 5 and everything after it (nonces) wait.
    run = [c(1, 7, 0, None), c(2, 7, 1, 5), c(3, 7, 2, 4)]
    assert hold_on_exits(run, frozenset({5})) == ([run[0]], HeldForExit(run[1], 5))


def test_hold_on_exits_an_open_never_waits_for_an_exit() -> None:
    run = [c(1, 7, 0, None)]
    assert hold_on_exits(run, frozenset({1, 2, 3})) == (run, None)
