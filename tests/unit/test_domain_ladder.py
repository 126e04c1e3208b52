"""relayer/domain/ladder.py: ExitLadder.validate's verdicts case by case, and the API's JSON form."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relayer.domain.ladder import (
    MAX_RULES,
    ExitsFormatError,
    LadderError,
    LadderInvalid,
    LadderRule,
    exits_to_json,
    parse_exits,
    validate_ladder,
)
from relayer.domain.track import DEFAULT_TRACKS, Track
from relayer.eip712 import ExitRule, TriggerType

SL, TP = TriggerType.STOP_LOSS, TriggerType.TAKE_PROFIT
# maxStopLoss 1500, take-profit 100..5000, requires a stop-loss and a take-profit
FUNDED = DEFAULT_TRACKS["funded"]
# requires a stop-loss only
EVALUATION = DEFAULT_TRACKS["evaluation"]
NOTHING_REQUIRED = replace(FUNDED, require_stop_loss=False, require_take_profit=False)


@dataclass(frozen=True)
class RawRule:
    """A rule as raw ABI values: the contract takes any uint8 trigger type, ExitRule cannot hold one."""

    trigger_type: int
    trigger_bps: int
    exit_bps: int


def sl(bps: int, exit_bps: int = 10_000) -> ExitRule:
    return ExitRule(SL, bps, exit_bps)


def tp(bps: int, exit_bps: int = 10_000) -> ExitRule:
    return ExitRule(TP, bps, exit_bps)


def test_enum_is_the_solidity_enum() -> None:
    # contracts/src/interfaces/ITradeRouter.sol, in declaration order
    solidity = [
        "Empty",
        "TooManyRules",
        "InvalidTriggerType",
        "StopLossNotNegative",
        "TakeProfitNotPositive",
        "ExitBpsOutOfRange",
        "LastRuleNotFull",
        "StopLossBeyondTrack",
        "TakeProfitBelowTrack",
        "TakeProfitAboveTrack",
        "StopLossRequired",
        "TakeProfitRequired",
    ]
    assert [(e.name, e.value) for e in LadderError] == [(n, i) for i, n in enumerate(solidity)]
    assert MAX_RULES == 8


VALID: list[Any] = [
    pytest.param([sl(-500), tp(1000)], FUNDED, id="stop_then_take"),
    pytest.param([tp(1000, 5000), sl(-1000)], FUNDED, id="spec_example_take_half_then_stop"),
    pytest.param([sl(-1500), tp(5000)], FUNDED, id="both_at_track_bounds"),
    pytest.param([sl(-1), tp(100)], FUNDED, id="smallest_triggers"),
    pytest.param([sl(-500, 1), tp(1000, 1), sl(-1000)], FUNDED, id="exit_bps_one"),
    pytest.param([sl(-500)], EVALUATION, id="evaluation_needs_only_a_stop"),
    pytest.param([tp(1000)], NOTHING_REQUIRED, id="nothing_required_take_only"),
    pytest.param([sl(-500), tp(1000), sl(-800)], FUNDED, id="full_exit_in_the_middle_is_allowed"),
    pytest.param([tp(100 + i, 1000) for i in range(7)] + [sl(-500)], FUNDED, id="eight_rules"),
]


@pytest.mark.parametrize(("rules", "track"), VALID)
def test_valid_ladder(rules: list[ExitRule], track: Track) -> None:
    validate_ladder(rules, track)


INVALID: list[Any] = [
    pytest.param([], FUNDED, 0, LadderError.Empty, id="empty"),
    pytest.param([sl(-500)] * 9, FUNDED, 8, LadderError.TooManyRules, id="nine_rules"),
    pytest.param([RawRule(7, 0, 0)] * 9, FUNDED, 8, LadderError.TooManyRules, id="length_before_any_rule"),
    pytest.param([RawRule(2, -500, 10_000)], FUNDED, 0, LadderError.InvalidTriggerType, id="trigger_type_2"),
    pytest.param([RawRule(255, 0, 0)], FUNDED, 0, LadderError.InvalidTriggerType, id="type_before_exit_bps"),
    pytest.param([sl(0), tp(1000)], FUNDED, 0, LadderError.StopLossNotNegative, id="stop_at_zero"),
    pytest.param([sl(500), tp(1000)], FUNDED, 0, LadderError.StopLossNotNegative, id="stop_positive"),
    pytest.param([sl(-1501), tp(1000)], FUNDED, 0, LadderError.StopLossBeyondTrack, id="stop_beyond_track"),
    pytest.param([sl(-(2**31)), tp(1000)], FUNDED, 0, LadderError.StopLossBeyondTrack, id="stop_int32_min"),
    pytest.param([sl(-500), tp(0)], FUNDED, 1, LadderError.TakeProfitNotPositive, id="take_at_zero"),
    pytest.param([sl(-500), tp(-5)], FUNDED, 1, LadderError.TakeProfitNotPositive, id="take_negative"),
    pytest.param([sl(-500), tp(99)], FUNDED, 1, LadderError.TakeProfitBelowTrack, id="take_below_track"),
    pytest.param([sl(-500), tp(5001)], FUNDED, 1, LadderError.TakeProfitAboveTrack, id="take_above_track"),
    pytest.param([sl(-500), tp(2**31 - 1)], FUNDED, 1, LadderError.TakeProfitAboveTrack, id="take_int32_max"),
    pytest.param([sl(-500, 0), tp(1000)], FUNDED, 0, LadderError.ExitBpsOutOfRange, id="exit_bps_zero"),
    pytest.param([sl(-500, 10_001), tp(1000)], FUNDED, 0, LadderError.ExitBpsOutOfRange, id="exit_bps_10001"),
    pytest.param([sl(-500), tp(1000, 65_535)], FUNDED, 1, LadderError.ExitBpsOutOfRange, id="exit_bps_max"),
    pytest.param(
        [sl(0, 0), tp(1000)], FUNDED, 0, LadderError.StopLossNotNegative, id="trigger_before_exit_bps"
    ),
    pytest.param(
        [sl(-500), tp(99), sl(0)], FUNDED, 1, LadderError.TakeProfitBelowTrack, id="first_bad_rule_wins"
    ),
    pytest.param(
        [tp(1000, 10_001), sl(-9999)], FUNDED, 0, LadderError.ExitBpsOutOfRange, id="index_order_wins"
    ),
    pytest.param([sl(-500), tp(1000, 5000)], FUNDED, 1, LadderError.LastRuleNotFull, id="last_rule_half"),
    pytest.param([sl(-500, 9999)], FUNDED, 0, LadderError.LastRuleNotFull, id="last_before_required"),
    pytest.param(
        [sl(-500), tp(1000), tp(99, 1)],
        FUNDED,
        2,
        LadderError.TakeProfitBelowTrack,
        id="rule_checks_before_last_rule",
    ),
    pytest.param([tp(1000)], FUNDED, 1, LadderError.StopLossRequired, id="stop_required"),
    pytest.param([tp(1000)], EVALUATION, 1, LadderError.StopLossRequired, id="evaluation_stop_required"),
    pytest.param([sl(-500), sl(-1000)], FUNDED, 2, LadderError.TakeProfitRequired, id="take_required"),
    pytest.param(
        [RawRule(int(SL), -500, 10_000)] * 3,
        FUNDED,
        3,
        LadderError.TakeProfitRequired,
        id="required_index_is_rule_count",
    ),
]


@pytest.mark.parametrize(("rules", "track", "index", "reason"), INVALID)
def test_invalid_ladder(rules: list[LadderRule], track: Track, index: int, reason: LadderError) -> None:
    with pytest.raises(LadderInvalid) as info:
        validate_ladder(rules, track)
    assert (info.value.rule_index, info.value.reason) == (index, reason)
    assert info.value.details() == {"ruleIndex": index, "reason": reason.name}


MESSAGES: list[Any] = [
    pytest.param(
        [sl(-500), tp(6000)],
        "rule 1: take-profit +6000 bps is above the track's maximum of +5000",
        id="take_above",
    ),
    pytest.param(
        [sl(-2000), tp(1000)],
        "rule 0: stop-loss -2000 bps is beyond the track's maximum of -1500",
        id="stop_beyond",
    ),
    pytest.param([], "the ladder is empty: at least one rule is required", id="empty"),
    pytest.param(
        [sl(-500), tp(1000, 5000)],
        "rule 1: the last rule must exit 10000 bps (all that is left), got 5000",
        id="last",
    ),
    pytest.param([tp(1000)], "the track requires at least one stop-loss rule", id="required"),
]


@pytest.mark.parametrize(("rules", "message"), MESSAGES)
def test_message_names_the_rule_and_the_bound(rules: list[ExitRule], message: str) -> None:
    with pytest.raises(LadderInvalid) as info:
        validate_ladder(rules, FUNDED)
    assert str(info.value) == info.value.message == message


# --- an independent reading of SPEC §1.4: accepted ⇔ every stated condition holds -------------------

tracks = st.builds(
    Track,
    max_trade_size_bps=st.just(1000),
    max_daily_turnover_bps=st.just(1000),
    max_daily_loss_bps=st.just(100),
    max_stop_loss_bps=st.integers(1, 10_000),
    min_take_profit_bps=st.integers(1, 3000),
    max_take_profit_bps=st.integers(3000, 2**31 - 1),
    require_stop_loss=st.booleans(),
    require_take_profit=st.booleans(),
)
raw_rules = st.builds(
    RawRule,
    trigger_type=st.sampled_from([0, 0, 1, 1, 2, 255]),
    trigger_bps=st.one_of(st.integers(-12_000, 12_000), st.integers(-(2**31), 2**31 - 1)),
    exit_bps=st.sampled_from([0, 1, 5000, 9999, 10_000, 10_000, 10_001, 65_535]),
)


def spec_accepts(rules: list[RawRule], track: Track) -> bool:
    def rule_ok(r: RawRule) -> bool:
        if not 1 <= r.exit_bps <= 10_000:
            return False
        if r.trigger_type == 0:
            return -track.max_stop_loss_bps <= r.trigger_bps < 0
        if r.trigger_type == 1:
            return (
                r.trigger_bps > 0 and track.min_take_profit_bps <= r.trigger_bps <= track.max_take_profit_bps
            )
        return False

    return (
        1 <= len(rules) <= 8
        and all(rule_ok(r) for r in rules)
        and rules[-1].exit_bps == 10_000
        and (not track.require_stop_loss or any(r.trigger_type == 0 for r in rules))
        and (not track.require_take_profit or any(r.trigger_type == 1 for r in rules))
    )


@given(st.lists(raw_rules, max_size=10), tracks)
def test_validation_accepts_exactly_what_spec_allows(rules: list[RawRule], track: Track) -> None:
    try:
        validate_ladder(rules, track)
    except LadderInvalid as exc:
        assert not spec_accepts(rules, track)
        assert 0 <= exc.rule_index <= 8
    else:
        assert spec_accepts(rules, track)


# --- JSON ------------------------------------------------------------------------------------------


def test_parse_exits_reads_the_api_form() -> None:
    raw = [
        {"triggerType": "StopLoss", "triggerBps": -500, "exitBps": 10_000},
        {"exitBps": 2500, "triggerBps": 1000, "triggerType": "TakeProfit"},
    ]
    assert parse_exits(raw) == [sl(-500), tp(1000, 2500)]
    assert exits_to_json(parse_exits(raw)) == [
        {"triggerType": "StopLoss", "triggerBps": -500, "exitBps": 10_000},
        {"triggerType": "TakeProfit", "triggerBps": 1000, "exitBps": 2500},
    ]


def test_parse_exits_leaves_policy_to_validation() -> None:
    # Format only: the empty and over-long ladders are validate_ladder's (Empty, TooManyRules).
    assert parse_exits([]) == []
    nine = [{"triggerType": "StopLoss", "triggerBps": 0, "exitBps": 0}] * 9
    assert len(parse_exits(nine)) == 9


def test_parse_exits_takes_the_full_int32_and_uint16_ranges() -> None:
    raw = [
        {"triggerType": "StopLoss", "triggerBps": -(2**31), "exitBps": 0},
        {"triggerType": "TakeProfit", "triggerBps": 2**31 - 1, "exitBps": 2**16 - 1},
    ]
    assert parse_exits(raw) == [sl(-(2**31), 0), tp(2**31 - 1, 2**16 - 1)]


def rule(**override: object) -> dict[str, object]:
    return {"triggerType": "StopLoss", "triggerBps": -500, "exitBps": 10_000, **override}


BAD_JSON: list[Any] = [
    pytest.param({"triggerType": "StopLoss"}, "exits", "type", id="object_not_list"),
    pytest.param("[]", "exits", "type", id="json_text_not_list"),
    pytest.param(None, "exits", "type", id="null"),
    pytest.param((rule(),), "exits", "type", id="tuple_not_list"),
    pytest.param([rule(), 5], "exits[1]", "type", id="item_not_object"),
    pytest.param([rule(), [1, -500, 10_000]], "exits[1]", "type", id="item_as_array"),
    pytest.param([{**rule(), "note": "x"}], "exits[0].note", "unexpected", id="unknown_key"),
    pytest.param([{**rule(), "trigger_bps": -5}], "exits[0].trigger_bps", "unexpected", id="snake_case_key"),
    pytest.param([{"triggerType": "StopLoss", "exitBps": 1}], "exits[0].triggerBps", "missing", id="missing"),
    pytest.param([{"exitBps": 1, "x": 1}], "exits[0].x", "unexpected", id="unexpected_before_missing"),
    pytest.param([rule(triggerType=0)], "exits[0].triggerType", "type", id="type_as_int"),
    pytest.param([rule(triggerType="stopLoss")], "exits[0].triggerType", "unknown", id="type_wrong_case"),
    pytest.param([rule(triggerType="StopLoss ")], "exits[0].triggerType", "unknown", id="type_with_space"),
    pytest.param([rule(triggerType="STOP_LOSS")], "exits[0].triggerType", "unknown", id="type_python_name"),
    pytest.param([rule(triggerBps=True)], "exits[0].triggerBps", "type", id="bool_as_int"),
    pytest.param([rule(exitBps=False)], "exits[0].exitBps", "type", id="false_as_int"),
    pytest.param([rule(triggerBps=-500.0)], "exits[0].triggerBps", "type", id="float"),
    pytest.param([rule(exitBps=1e4)], "exits[0].exitBps", "type", id="float_exponent"),
    pytest.param([rule(triggerBps="-500")], "exits[0].triggerBps", "type", id="string_for_int"),
    pytest.param([rule(exitBps=None)], "exits[0].exitBps", "type", id="null_for_int"),
    pytest.param([rule(triggerBps=2**31)], "exits[0].triggerBps", "range", id="above_int32"),
    pytest.param([rule(triggerBps=-(2**31) - 1)], "exits[0].triggerBps", "range", id="below_int32"),
    pytest.param([rule(exitBps=-1)], "exits[0].exitBps", "range", id="negative_uint16"),
    pytest.param([rule(exitBps=2**16)], "exits[0].exitBps", "range", id="above_uint16"),
    pytest.param([rule(), rule(exitBps=10**80)], "exits[1].exitBps", "range", id="huge_second_rule"),
]


@pytest.mark.parametrize(("raw", "path", "reason"), BAD_JSON)
def test_parse_exits_rejects(raw: object, path: str, reason: str) -> None:
    with pytest.raises(ExitsFormatError) as info:
        parse_exits(raw)
    assert (info.value.path, info.value.reason) == (path, reason)
    assert str(info.value).startswith(path + " ")
    assert isinstance(info.value, ValueError)


rules_strategy = st.builds(
    ExitRule,
    trigger_type=st.sampled_from(TriggerType),
    trigger_bps=st.integers(-(2**31), 2**31 - 1),
    exit_bps=st.integers(0, 2**16 - 1),
)


@given(st.lists(rules_strategy, max_size=10))
def test_json_round_trip(rules: list[ExitRule]) -> None:
    assert parse_exits(exits_to_json(rules)) == rules
