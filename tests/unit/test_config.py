"""Settings from ALPHAGRID_* variables (SPEC §4.2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from relayer.config import Settings
from relayer.devkeys import RELAYER_KEYS

KEYS = RELAYER_KEYS


@pytest.mark.parametrize(
    "raw", [f"{KEYS[0]},{KEYS[1]}", f" {KEYS[0]} , {KEYS[1]} ", f'["{KEYS[0]}", "{KEYS[1]}"]']
)
def test_relayer_keys_from_a_list_or_json(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHAGRID_RELAYER_KEYS", raw)
    assert [k.get_secret_value() for k in Settings().relayer_keys] == list(KEYS[:2])


def test_defaults_derive_from_home_and_ports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ALPHAGRID_HOME", str(tmp_path))
    monkeypatch.setenv("ALPHAGRID_RPC_PORT", "9545")
    monkeypatch.setenv("ALPHAGRID_API_PORT", "9000")
    s = Settings()
    assert s.rpc_url == "http://127.0.0.1:9545"
    assert s.api_url == "http://127.0.0.1:9000"
    assert s.database_url == f"sqlite:///{(tmp_path / 'relayer.db').resolve()}"
    assert s.manifest_path == tmp_path / "deployment.json"


def test_keys_never_print(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHAGRID_OPERATOR_KEY", KEYS[0])
    assert KEYS[0] not in repr(Settings())
