"""relayer/keeper/index.py `TriggerIndex`: for any set of positions and any oracle price, the
candidates are exactly the positions a brute-force scan with the contract's arithmetic finds
triggered; and the index follows fills, fired rules, ladder updates and closes."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from relayer.domain.exits import (
    MAX_PRICE,
    MIN_PRICE,
    PositionState,
    decide_exits,
    first_triggered,
    position_value,
    trigger_threshold,
)
from relayer.eip712 import ExitRule, TriggerType
from relayer.keeper.index import TriggerIndex
from relayer.state import PositionInfo

SL, TP = TriggerType.STOP_LOSS, TriggerType.TAKE_PROFIT
TOKEN = 10**18
USDC = 10**6
PRICE = 10**8
NVDA = "0x" + "11" * 20
AAPL = "0x" + "22" * 20
DECIMALS = {NVDA: 18, AAPL: 6}


def position(
    position_id: int,
    *,
    token: str = NVDA,
    size: int = 10 * TOKEN,
    cost_basis: int = 1000 * USDC,
    rules: tuple[ExitRule, ...] = (ExitRule(TP, 1000, 5000), ExitRule(SL, -1000, 10_000)),
    fired_mask: int = 0,
    open_: bool = True,
) -> PositionInfo:
    return PositionInfo(
        position_id=position_id,
        agent_id=1,
        token=token,
        size=size,
        cost_basis=cost_basis,
        exits_hash="0x" + f"{position_id:064x}",
        rules=rules,
        fired_mask=fired_mask,
        open=open_,
        opened_at=0,
        open_tx="0x" + "00" * 32,
    )


def brute_force(positions: list[PositionInfo], token: str, price: int) -> list[int]:
    """Every open position of `token` with an armed rule the contract would find triggered."""
    hits = []
    for p in positions:
        if not p.open or p.token != token or p.size == 0:
            continue
        value = position_value(p.size, price, DECIMALS[p.token])
        if first_triggered(p.rules, p.fired_mask, value, p.cost_basis) is not None:
            hits.append(p.position_id)
    return sorted(hits)


def build(positions: list[PositionInfo]) -> TriggerIndex:
    index = TriggerIndex()
    for p in positions:
        index.update(p, DECIMALS[p.token])
    return index


# --- the property ------------------------------------------------------------------------------------

rules = st.builds(
    ExitRule,
    trigger_type=st.sampled_from(TriggerType),
    trigger_bps=st.one_of(
        st.integers(-10_000, -1),
        st.integers(1, 20_000),
        st.integers(-12_000, 60_000),  # also 0 and stops below −100 % (factor floored at 0)
    ),
    exit_bps=st.integers(1, 10_000),
)
random_positions = st.lists(
    st.builds(
        lambda i, token, size, cost, ladder, mask, is_open: position(
            i,
            token=token,
            size=size,
            cost_basis=cost,
            rules=tuple(ladder),
            fired_mask=mask,
            open_=is_open,
        ),
        st.integers(0, 0),  # renumbered below
        st.sampled_from([NVDA, NVDA, AAPL]),
        st.integers(1, 10**24) | st.integers(0, 100),
        st.integers(1, 10**12),
        st.lists(rules, min_size=0, max_size=8),
        st.integers(0, 255),
        st.booleans() | st.just(True),
    ),
    max_size=25,
).map(lambda ps: [replace(p, position_id=i + 1) for i, p in enumerate(ps)])


@settings(max_examples=300, deadline=None)
@given(random_positions, st.data())
def test_candidates_equal_a_brute_force_scan(positions: list[PositionInfo], data: st.DataObject) -> None:
    index = build(positions)
    # Probe at random prices and right at (and next to) the exact thresholds, where rounding decides.
    thresholds = [
        t
        for p in positions
        for r in p.rules
        if (t := trigger_threshold(r, p.size, p.cost_basis, DECIMALS[p.token])) is not None
    ]
    near = st.sampled_from(thresholds).flatmap(
        lambda t: st.integers(max(MIN_PRICE, t - 1), min(MAX_PRICE, t + 1))
    )
    anywhere = st.integers(MIN_PRICE, 10**13) | st.integers(MIN_PRICE, MAX_PRICE)
    for token in (NVDA, AAPL):
        for _ in range(5):
            price = data.draw(near | anywhere if thresholds else anywhere, label="price")
            assert index.candidates(token, price) == brute_force(positions, token, price)


@settings(max_examples=100, deadline=None)
@given(random_positions, st.integers(MIN_PRICE, 10**13))
def test_index_after_each_fill_equals_a_fresh_one(positions: list[PositionInfo], price: int) -> None:
    """Replaying what executeExit does at `price` (new size, basis, fired rules) through `update`
    leaves the same index as building it from the resulting positions."""
    index = build(positions)
    after = []
    for p in positions:
        if p.open and p.size > 0:
            fires = decide_exits(
                PositionState(p.size, p.cost_basis, p.fired_mask, DECIMALS[p.token]), p.rules, price, 10
            )
            for f in fires:
                p = replace(
                    p,
                    size=f.size_after,
                    cost_basis=f.cost_basis_after,
                    fired_mask=p.fired_mask | 1 << f.rule_index,
                    open=f.size_after != 0,
                )
                index.update(p, DECIMALS[p.token])
        after.append(p)
    fresh = build(after)
    assert len(index) == len(fresh)
    for token in (NVDA, AAPL):
        for probe in (price, price // 2 + 1, price * 2, MIN_PRICE, MAX_PRICE):
            assert index.candidates(token, probe) == fresh.candidates(token, probe)
            assert index.candidates(token, probe) == brute_force(after, token, probe)


# --- cases -----------------------------------------------------------------------------------------


def test_len_counts_armed_rules() -> None:
    index = build(
        [
            position(1),
            position(2, fired_mask=0b01),
            position(3, token=AAPL, size=10 * 10**6),
            position(4, rules=(ExitRule(SL, -500, 10_000),)),
        ]
    )
    assert len(index) == 2 + 1 + 2 + 1


def test_stop_and_take_profit_candidates() -> None:
    index = build([position(1), position(2, cost_basis=2000 * USDC)])  # entries 100 and 200 USD
    assert index.candidates(NVDA, 100 * PRICE) == [2]  # −50 % for position 2
    assert index.candidates(NVDA, 150 * PRICE) == [1, 2]  # +50 % for 1, −25 % for 2
    assert index.candidates(NVDA, 200 * PRICE) == [1]  # +100 % for 1, 0 % for 2
    assert index.candidates(NVDA, 105 * PRICE) == [2]
    assert build([position(1)]).candidates(NVDA, 105 * PRICE) == []
    assert index.candidates(AAPL, 100 * PRICE) == []
    assert index.candidates("0x" + "99" * 20, 1) == []


def test_thresholds_are_exact() -> None:
    p = position(1, size=3 * TOKEN + 1, cost_basis=1000 * USDC + 7)
    index = build([p])
    stop = trigger_threshold(p.rules[1], p.size, p.cost_basis, 18)
    take = trigger_threshold(p.rules[0], p.size, p.cost_basis, 18)
    assert stop is not None and take is not None
    assert index.candidates(NVDA, stop) == [1]
    assert index.candidates(NVDA, stop + 1) == []
    assert index.candidates(NVDA, take) == [1]
    assert index.candidates(NVDA, take - 1) == []


def test_update_after_a_partial_fill_recomputes_the_thresholds() -> None:
    # Odd size and basis: selling half rounds, so the stop's exact threshold moves with the fill.
    before = position(1, size=7 * TOKEN + 3, cost_basis=1_000_000_003)
    index = build([before])
    [fill] = decide_exits(PositionState(before.size, before.cost_basis, 0, 18), before.rules, 160 * PRICE, 10)
    assert fill.rule_index == 0
    after = replace(before, size=fill.size_after, cost_basis=fill.cost_basis_after, fired_mask=0b01)
    old_stop = trigger_threshold(before.rules[1], before.size, before.cost_basis, 18)
    new_stop = trigger_threshold(after.rules[1], after.size, after.cost_basis, 18)
    assert old_stop is not None and new_stop is not None and new_stop != old_stop

    index.update(after, 18)
    assert len(index) == 1  # the take-profit fired and left
    assert index.candidates(NVDA, 160 * PRICE) == []
    assert index.candidates(NVDA, new_stop) == [1]
    assert index.candidates(NVDA, new_stop + 1) == []
    # Between the two thresholds only the new figures answer.
    high = max(old_stop, new_stop)
    expected = [1] if high == new_stop else []
    assert index.candidates(NVDA, high) == expected


def test_fired_rules_leave_the_index() -> None:
    index = build([position(1)])
    index.update(position(1, fired_mask=0b10), 18)  # the stop fired (it would have closed; say it did not)
    assert len(index) == 1
    assert index.candidates(NVDA, 50 * PRICE) == []
    assert index.candidates(NVDA, 120 * PRICE) == [1]
    index.update(position(1, fired_mask=0b11), 18)
    assert len(index) == 0
    assert index.candidates(NVDA, 120 * PRICE) == []


def test_ladder_update_rearms() -> None:
    index = build([position(1, fired_mask=0b01)])
    assert index.candidates(NVDA, 120 * PRICE) == []
    new_ladder = (ExitRule(TP, 500, 10_000), ExitRule(SL, -2000, 10_000))
    index.update(position(1, rules=new_ladder, fired_mask=0), 18)
    assert len(index) == 2
    assert index.candidates(NVDA, 106 * PRICE) == [1]
    assert index.candidates(NVDA, 85 * PRICE) == []  # the old −10 % stop is gone
    assert index.candidates(NVDA, 80 * PRICE) == [1]


def test_remove() -> None:
    index = build([position(1), position(2), position(3, token=AAPL, size=10 * 10**6)])
    index.remove(2)
    assert len(index) == 4
    assert index.candidates(NVDA, 50 * PRICE) == [1]
    index.remove(2)  # twice is harmless
    index.remove(99)  # unknown is harmless
    index.remove(1)
    index.remove(3)
    assert len(index) == 0
    assert index.candidates(NVDA, 50 * PRICE) == []
    assert index.candidates(AAPL, 50 * PRICE) == []


def test_closed_positions_are_dropped() -> None:
    index = build([position(1), position(2)])
    index.update(position(1, open_=False), 18)
    assert len(index) == 2
    assert index.candidates(NVDA, 50 * PRICE) == [2]
    index.update(position(2, size=0, cost_basis=0), 18)  # sold out, close not seen yet
    assert len(index) == 0
    assert index.candidates(NVDA, 50 * PRICE) == []


def test_position_without_a_ladder_is_not_indexed() -> None:
    # PositionOpened arrives before its ExitLadderSet: nothing to index until the ladder comes.
    index = build([position(1, rules=())])
    assert len(index) == 0
    index.update(position(1), 18)
    assert len(index) == 2


def test_rule_triggered_at_no_price_is_not_indexed() -> None:
    # A take-profit of +600 % on a position worth far more than any oracle price can express never
    # triggers; a stop of −100 % on 1 wei of basis triggers only at a worthless price.
    huge = position(1, size=1, cost_basis=2**64 - 1, rules=(ExitRule(TP, 60_000, 10_000),))
    index = build([huge])
    assert trigger_threshold(huge.rules[0], 1, 2**64 - 1, 18) is None
    assert len(index) == 0
    assert index.candidates(NVDA, MAX_PRICE) == []
