"""The approval gate's pure decisions (relayer/operators/approvals.py), case by case."""

from __future__ import annotations

import pytest

from relayer.intents.checks import DEADLINE_MARGIN_S
from relayer.operators.approvals import effective_threshold, expired, needs_approval

USDC = 10**6


@pytest.mark.parametrize(
    ("primary_type", "usdc", "threshold", "waits"),
    [
        ("OpenPosition", 1_001 * USDC, 1_000 * USDC, True),
        ("OpenPosition", 1_000 * USDC, 1_000 * USDC, False),  # "above": at the threshold it goes
        ("AddToPosition", 1_001 * USDC, 1_000 * USDC, True),  # an add is a buy: it waits like an open
        ("OpenPosition", 1, 0, True),  # 0: every open and add
        ("AddToPosition", 1, 0, True),
        ("ReducePosition", 0, 0, False),  # reduces, exits and ladder updates never wait
        ("UpdateExitLadder", 0, 0, False),
        ("OpenPosition", 10**12 * USDC, None, False),  # no policy
    ],
)
def test_needs_approval(primary_type: str, usdc: int, threshold: int | None, waits: bool) -> None:
    assert needs_approval(primary_type, usdc, threshold) is waits


@pytest.mark.parametrize(
    ("agent", "track", "result"),
    [(None, None, None), (None, 5, 5), (7, 5, 7), (0, 5, 0), (7, None, 7)],
)
def test_an_agents_policy_overrides_its_tracks(
    agent: int | None, track: int | None, result: int | None
) -> None:
    assert effective_threshold(agent, track) == result


def test_expired_once_the_deadline_cannot_be_met() -> None:
    now = 1_000
    assert not expired(now + DEADLINE_MARGIN_S, now)
    assert expired(now + DEADLINE_MARGIN_S - 1, now)
    assert not expired(None, now)
