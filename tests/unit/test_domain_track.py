"""`relayer.domain.track`: the Track mirror of IAgentRegistry.Track, its encodings and JSON."""

from __future__ import annotations

import dataclasses

import pytest

from relayer.domain.market import ExitsWhenClosed, MarketStatus
from relayer.domain.track import DEFAULT_TRACKS, Track

FUNDED = DEFAULT_TRACKS["funded"]


def test_defaults_are_regular_and_hold() -> None:
    for track in DEFAULT_TRACKS.values():
        assert track.sessions == frozenset({MarketStatus.REGULAR})
        assert track.exits_when_closed is ExitsWhenClosed.HOLD


def test_as_tuple_encodes_mask_and_policy_in_struct_order() -> None:
    assert FUNDED.as_tuple() == (2_000, 40_000, 500, 1_500, 100, 5_000, True, True, 0b100, 0)
    wide = dataclasses.replace(
        FUNDED,
        sessions=frozenset({MarketStatus.PRE_MARKET, MarketStatus.REGULAR, MarketStatus.POST_MARKET}),
        exits_when_closed=ExitsWhenClosed.FIRE,
    )
    assert wide.as_tuple()[8:] == (0b1110, 1)


@pytest.mark.parametrize("mask", [1, 0b100, 0b111110, 0b111111])
@pytest.mark.parametrize("policy", [ExitsWhenClosed.HOLD, ExitsWhenClosed.FIRE])
def test_from_tuple_round_trips(mask: int, policy: ExitsWhenClosed) -> None:
    code = 0 if policy is ExitsWhenClosed.HOLD else 1
    t = (1_000, 20_000, 300, 1_000, 100, 3_000, True, False, mask, code)
    track = Track.from_tuple(t)
    assert track.as_tuple() == t
    assert track.exits_when_closed is policy
    assert {int(s) for s in track.sessions} == {s for s in range(7) if mask >> s & 1}


def test_from_tuple_refuses_a_short_tuple() -> None:
    with pytest.raises(ValueError, match="10 fields"):
        Track.from_tuple((1_000, 20_000, 300, 1_000, 100, 3_000, True, False))


def test_from_event_reads_solidity_names() -> None:
    event = {
        "maxTradeSizeBps": 2_000,
        "maxDailyTurnoverBps": 40_000,
        "maxDailyLossBps": 500,
        "maxStopLossBps": 1_500,
        "minTakeProfitBps": 100,
        "maxTakeProfitBps": 5_000,
        "requireStopLoss": True,
        "requireTakeProfit": True,
        "sessions": 0b110,
        "exitsWhenClosed": 1,
    }
    track = Track.from_event(event)
    assert track.sessions == frozenset({MarketStatus.PRE_MARKET, MarketStatus.REGULAR})
    assert track.exits_when_closed is ExitsWhenClosed.FIRE
    assert track.max_trade_size_bps == 2_000


def test_to_json_labels_sessions_in_status_order() -> None:
    doc = dataclasses.replace(
        FUNDED, sessions=frozenset({MarketStatus.POST_MARKET, MarketStatus.PRE_MARKET, MarketStatus.REGULAR})
    ).to_json()
    assert doc == {
        "maxTradeSizeBps": 2_000,
        "maxDailyTurnoverBps": 40_000,
        "maxDailyLossBps": 500,
        "maxStopLossBps": 1_500,
        "minTakeProfitBps": 100,
        "maxTakeProfitBps": 5_000,
        "requireStopLoss": True,
        "requireTakeProfit": True,
        "sessions": ["PreMarket", "Regular", "PostMarket"],
        "exitsWhenClosed": "hold",
    }
