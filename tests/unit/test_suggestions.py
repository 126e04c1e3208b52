"""details.suggestion (SPEC §5.2) as pure functions: a suggested ladder always validates against the
track, and a suggested buy amount is the largest that passes every track limit."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relayer import eip712
from relayer.api.errors import with_suggestion
from relayer.domain.ladder import MAX_RULES, LadderInvalid, validate_ladder
from relayer.domain.limits import AgentBook, LimitExceeded, check_buy
from relayer.domain.track import DEFAULT_TRACKS, Track
from relayer.intents.checks import largest_buy, suggest_buy, suggest_ladder

SL, TP = eip712.TriggerType.STOP_LOSS, eip712.TriggerType.TAKE_PROFIT

rules = st.builds(
    eip712.ExitRule,
    st.sampled_from([SL, TP]),
    st.integers(min_value=-(2**31), max_value=2**31 - 1),
    st.integers(min_value=0, max_value=2**16 - 1),
)
tracks = st.builds(
    Track,
    st.integers(0, 10_000),
    st.integers(0, 100_000),
    st.integers(0, 10_000),
    st.integers(0, 10_000),
    st.integers(0, 10_000),
    st.integers(0, 10_000),
    st.booleans(),
    st.booleans(),
)


@given(st.lists(rules, max_size=12), tracks)
def test_a_suggested_ladder_always_validates(ladder: list[eip712.ExitRule], track: Track) -> None:
    fixed = suggest_ladder(ladder, track)
    if fixed is None:
        # Only a track that admits no ladder at all gets no suggestion.
        stop_ok = track.max_stop_loss_bps >= 1
        take_ok = 1 <= max(track.min_take_profit_bps, 1) <= track.max_take_profit_bps
        impossible = (
            (track.require_stop_loss and not stop_ok)
            or (track.require_take_profit and not take_ok)
            or not (stop_ok or take_ok)
        )
        assert impossible, (ladder, track)
        return
    validate_ladder(fixed, track)
    assert 1 <= len(fixed) <= MAX_RULES


@pytest.mark.parametrize(
    ("ladder", "expected"),
    [
        # Clamped into the funded track's bounds (stop ≤ 1500, take-profit 100..5000).
        ([(TP, 2000, 5000), (SL, -1501, 10000)], [(TP, 2000, 5000), (SL, -1500, 10000)]),
        ([(TP, 5001, 5000), (SL, -1000, 10000)], [(TP, 5000, 5000), (SL, -1000, 10000)]),
        # The last rule exits everything; a zero exitBps becomes 1.
        ([(TP, 2000, 0), (SL, -1000, 9999)], [(TP, 2000, 1), (SL, -1000, 10000)]),
        # A required take-profit is added, a stop-loss that is not negative gets the default level.
        ([(SL, 0, 10000)], [(TP, 2000, 5000), (SL, -1000, 10000)]),
        # Empty: the default ladder.
        ([], [(TP, 2000, 5000), (SL, -1000, 10000)]),
    ],
)
def test_suggested_ladders_on_the_funded_track(
    ladder: list[tuple[eip712.TriggerType, int, int]], expected: list[tuple[eip712.TriggerType, int, int]]
) -> None:
    track = DEFAULT_TRACKS["funded"]
    given_rules = [eip712.ExitRule(*r) for r in ladder]
    with pytest.raises(LadderInvalid):
        validate_ladder(given_rules, track)
    assert suggest_ladder(given_rules, track) == tuple(eip712.ExitRule(*r) for r in expected)


def test_nine_rules_are_cut_to_eight_keeping_the_stop() -> None:
    track = DEFAULT_TRACKS["funded"]
    ladder = [eip712.ExitRule(TP, 2000, 1000)] * 8 + [eip712.ExitRule(SL, -1000, 10000)]
    fixed = suggest_ladder(ladder, track)
    assert fixed is not None and len(fixed) == MAX_RULES and fixed[-1].exit_bps == 10_000
    validate_ladder(fixed, track)


books = st.builds(
    AgentBook,
    st.integers(0, 10**12),
    st.integers(0, 10**12),
    st.integers(0, 10**12),
    st.integers(-(10**11), 10**11),
)


@given(books, tracks)
def test_the_largest_buy_passes_and_one_unit_more_does_not(book: AgentBook, track: Track) -> None:
    largest = largest_buy(book, track)
    loss_reached = book.realized_pnl_today <= -(book.allocation * track.max_daily_loss_bps // 10_000)
    if largest > 0 and not loss_reached:
        check_buy(book, track, largest)
    if not loss_reached:
        with pytest.raises(LimitExceeded) as exc:
            check_buy(book, track, largest + 1)
        assert exc.value.code in ("trade_size_exceeded", "headroom_exceeded", "daily_turnover_exceeded")


def test_buy_suggestions() -> None:
    track = DEFAULT_TRACKS["funded"]  # max trade 20% of the allocation
    book = AgentBook(allocation=100_000 * 10**6, deployed=0, turnover_today=0, realized_pnl_today=0)
    assert suggest_buy(book, track, 0, "trade_size_exceeded") == {"usdcAmount": "20000"}
    full = AgentBook(allocation=10**6, deployed=10**6, turnover_today=0, realized_pnl_today=0)
    assert suggest_buy(full, track, 0, "headroom_exceeded") is None  # nothing fits: no suggestion
    assert suggest_buy(book, track, 86_400 * 3 + 5, "daily_loss_limit_reached") == {"notBefore": 86_400 * 4}


def test_suggestions_computed_from_an_errors_own_details() -> None:
    assert with_suggestion("nonce_mismatch", {"expected": 4})["suggestion"] == {"nonce": 4}
    assert with_suggestion("rate_limited", {"retryAfterS": 0.2})["suggestion"] == {"retryAfterS": 0.2}
    assert with_suggestion("chain_unavailable", {})["suggestion"]["retryAfterS"] > 0
    kept = {"expected": 4, "suggestion": {"nonce": 9}}
    assert with_suggestion("nonce_mismatch", kept) is kept
    assert "suggestion" not in with_suggestion("position_exists", {"positionId": "1"})
