"""`relayer.supervisor`: the restart decision (pure) and what a child is given."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from relayer.config import Settings
from relayer.supervisor import (
    RestartPolicy,
    child_environment,
    child_settings,
    restart_delay,
    settings_doc,
)

POLICY = RestartPolicy(max_restarts=3, window_s=60, first_delay_s=0.2, max_delay_s=1.0)


@pytest.mark.parametrize(
    ("deaths", "now", "delay"),
    [
        ([100.0], 100.0, 0.2),  # the first death: the first delay
        ([90.0, 100.0], 100.0, 0.4),  # doubled for each death within the window
        ([80.0, 90.0, 100.0], 100.0, 0.8),
        ([10.0, 20.0, 30.0, 100.0], 100.0, 0.2),  # deaths out of the window are forgotten
        ([95.0, 96.0, 97.0, 100.0], 100.0, None),  # the 4th within the window: give up
    ],
)
def test_restart_delay(deaths: list[float], now: float, delay: float | None) -> None:
    assert restart_delay(deaths, now, POLICY) == delay


def test_the_delay_is_capped() -> None:
    policy = RestartPolicy(max_restarts=10, first_delay_s=0.5, max_delay_s=2.0)
    assert restart_delay([1.0, 2.0, 3.0, 4.0, 5.0], 5.0, policy) == 2.0


def test_a_child_gets_the_same_settings_with_its_keys_resolved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = tmp_path / "relayer-keys"
    keys.write_text("0x" + "11" * 32 + ",0x" + "22" * 32)
    monkeypatch.setenv("ALPHAGRID_RELAYER_KEYS_FILE", str(keys))
    monkeypatch.setenv("ALPHAGRID_DATABASE_URL", "postgresql+psycopg://u@h/db")
    parent = Settings(home=tmp_path, api_port=8123, batch_max_items=7, api_processes=2)
    doc = settings_doc(parent)
    assert "relayer_keys_file" not in doc  # the keys themselves travel, not where they came from
    assert not any(k.upper().startswith("ALPHAGRID_") for k in child_environment())
    monkeypatch.delenv("ALPHAGRID_RELAYER_KEYS_FILE")
    monkeypatch.delenv("ALPHAGRID_DATABASE_URL")
    child = child_settings(doc)
    assert [k.get_secret_value() for k in child.relayer_keys] == ["0x" + "11" * 32, "0x" + "22" * 32]
    assert child.operator_key.get_secret_value() == parent.operator_key.get_secret_value()
    for name in ("home", "api_port", "batch_max_items", "database_url", "rpc_url", "api_processes"):
        assert getattr(child, name) == getattr(parent, name), name
    assert isinstance(child.relayer_keys[0], SecretStr)
