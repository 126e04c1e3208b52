"""relayer/intents/strikes.py `standing`: when an agent that front-runs its own intents is throttled,
then suspended, and until when — case by case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from relayer.intents.strikes import RelayerStatus, StrikePolicy, standing

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
POLICY = StrikePolicy(throttle_after=3, throttle_window_s=3600, suspend_after=10, suspend_window_s=86_400)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def test_no_strikes_good_standing() -> None:
    assert standing([], NOW, POLICY) is None


def test_below_the_throttle_threshold_good_standing() -> None:
    assert standing([ago(10), ago(20)], NOW, POLICY) is None


def test_three_in_the_hour_throttled_until_the_oldest_ages_out() -> None:
    s = standing([ago(10), ago(20), ago(600)], NOW, POLICY)
    assert s is not None and s.status is RelayerStatus.THROTTLED
    assert s.until == ago(600) + timedelta(hours=1)
    assert "3 of its relayed intents" in s.reason


def test_strikes_older_than_the_window_do_not_throttle() -> None:
    assert standing([ago(10), ago(20), ago(3600)], NOW, POLICY) is None


def test_more_strikes_throttle_until_enough_aged_out() -> None:
    # Four in the hour: still three left once the oldest goes; free when the second oldest goes.
    times = [ago(60), ago(120), ago(1800), ago(3000)]
    s = standing(times, NOW, POLICY)
    assert s is not None and s.until == ago(1800) + timedelta(hours=1)


def test_ten_in_the_day_suspended() -> None:
    times = [ago(7200 + i * 60) for i in range(10)]  # none in the last hour
    s = standing(times, NOW, POLICY)
    assert s is not None and s.status is RelayerStatus.SUSPENDED
    assert s.until == min(times) + timedelta(days=1)  # nine left once the oldest of the ten goes


def test_suspension_wins_over_throttling() -> None:
    times = [ago(i * 60) for i in range(10)]
    s = standing(times, NOW, POLICY)
    assert s is not None and s.status is RelayerStatus.SUSPENDED


def test_zero_turns_a_threshold_off() -> None:
    policy = StrikePolicy(throttle_after=0, suspend_after=0)
    assert standing([ago(i) for i in range(50)], NOW, policy) is None


def test_the_refusal_is_rate_limited_with_the_reason_and_when_to_retry() -> None:
    s = standing([ago(10), ago(20), ago(600)], NOW, POLICY)
    assert s is not None
    error = s.error(7, NOW)
    assert error.code == "rate_limited" and error.status == 429
    assert error.details["reason"] == "throttled"
    assert error.details["suggestion"]["retryAfterS"] == 3000
    assert error.details["relayerStatus"]["until"] == s.until.isoformat()
