"""The soak of issue 7 (bench/soak): intents from several agents while `alphagrid serve` is SIGKILLed at
random moments and restarted on the same database. Afterwards every 2xx intent is on chain exactly
once or failed with a reason, nothing is pending, and the database equals a rebuild from events.

A short run is part of the default suite; the full one (1,000 intents, 20 agents, 10 kills) runs with
`python -m pytest tests/soak -m slow` (or `python -m bench.soak`, which also writes the figures)."""

from __future__ import annotations

from typing import Literal

import pytest

from bench.soak.run import SoakConfig, SoakResult, run

DATABASES: list[Literal["sqlite", "postgres"]] = ["sqlite", "postgres"]


def check(result: SoakResult) -> None:
    f = result.findings
    assert not result.client_errors, result.client_errors
    assert f.ok, {name: items[:10] for name, items in f.problems().items()}
    c = result.config
    assert result.kills == c.kills + result.start_kills and result.restarts == result.kills
    assert len(result.submissions) == c.intents
    # The audit looked at real traffic: most intents were accepted and every accepted one is accounted for.
    assert f.accepted >= c.intents // 2
    assert f.confirmed + f.failed_with_reason == f.accepted
    assert result.chain_counts["NonceUsed"] == f.confirmed


@pytest.mark.parametrize("db", DATABASES)
def test_short_soak_with_kills(db: Literal["sqlite", "postgres"]) -> None:
    check(
        run(
            SoakConfig(intents=80, agents=4, kills=3, seed=11, db=db, start_kill_chance=0.34),
            progress=lambda _msg: None,
        )
    )


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("db", DATABASES)
def test_full_soak_1000_intents_20_agents_10_kills(db: Literal["sqlite", "postgres"]) -> None:
    check(
        run(
            SoakConfig(intents=1000, agents=20, kills=10, seed=7, db=db, start_kill_chance=0.2),
            progress=lambda _msg: None,
        )
    )
