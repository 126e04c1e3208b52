"""Settings from ALPHAGRID_* variables (SPEC §4.2)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from eth_account import Account
from pydantic import ValidationError

from relayer.config import Settings
from relayer.devkeys import LOCAL_CHAIN_ID, OPERATOR_KEY, RELAYER_KEYS, unsafe_keys
from relayer.manifest import Demo

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


# ------------------------------------------------------------------ keys (issue 13, High 4)

OWN_OPERATOR = "0x" + "a1" * 32
OWN_RELAYERS = ("0x" + "b2" * 32, "0x" + "c3" * 32)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.startswith("ALPHAGRID_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no `.env` from the working directory
    return tmp_path


def _message(exc: pytest.ExceptionInfo[ValidationError]) -> str:
    return str(exc.value.errors()[0]["msg"])


def test_keys_from_files(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_env / "operator").write_text(OWN_OPERATOR + "\n")
    (clean_env / "relayers").write_text("\n".join(OWN_RELAYERS) + "\n")
    monkeypatch.setenv("ALPHAGRID_OPERATOR_KEY_FILE", str(clean_env / "operator"))
    monkeypatch.setenv("ALPHAGRID_RELAYER_KEYS_FILE", str(clean_env / "relayers"))
    s = Settings()
    assert s.operator_key.get_secret_value() == OWN_OPERATOR
    assert [k.get_secret_value() for k in s.relayer_keys] == list(OWN_RELAYERS)
    assert OWN_OPERATOR not in repr(s) and OWN_RELAYERS[0] not in repr(s)


def test_keys_from_a_secrets_dir(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = clean_env / "secrets"
    secrets.mkdir()
    (secrets / "alphagrid_operator_key").write_text(OWN_OPERATOR)
    (secrets / "alphagrid_relayer_keys").write_text(",".join(OWN_RELAYERS))
    monkeypatch.setenv("ALPHAGRID_SECRETS_DIR", str(secrets))
    s = Settings()
    assert s.operator_key.get_secret_value() == OWN_OPERATOR
    assert [k.get_secret_value() for k in s.relayer_keys] == list(OWN_RELAYERS)


def test_keys_from_encrypted_keystores(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = []
    for i, key in enumerate((OWN_OPERATOR, *OWN_RELAYERS)):
        path = clean_env / f"keystore-{i}.json"
        path.write_text(json.dumps(Account.encrypt(key, "hunter2", kdf="pbkdf2", iterations=1_000)))
        paths.append(str(path))
    (clean_env / "password").write_text("hunter2\n")
    monkeypatch.setenv("ALPHAGRID_OPERATOR_KEYSTORE", paths[0])
    monkeypatch.setenv("ALPHAGRID_RELAYER_KEYSTORES", ",".join(paths[1:]))
    monkeypatch.setenv("ALPHAGRID_KEYSTORE_PASSWORD_FILE", str(clean_env / "password"))
    s = Settings()
    assert s.operator_key.get_secret_value() == OWN_OPERATOR
    assert [k.get_secret_value() for k in s.relayer_keys] == list(OWN_RELAYERS)
    (clean_env / "password").write_text("wrong\n")
    with pytest.raises(ValidationError) as exc:
        Settings()
    assert "cannot decrypt" in _message(exc) and "ALPHAGRID_OPERATOR_KEYSTORE" in _message(exc)


@pytest.mark.parametrize(
    "name", ["ALPHAGRID_RELAYER_KEY", "ALPHAGRID_OPERATOR_KEYFILE", "ALPHAGRID_relayer_keys_files"]
)
def test_an_unknown_key_variable_is_an_error(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Today a misspelt key variable was ignored and the Anvil keys were used instead."""
    monkeypatch.setenv(name, OWN_RELAYERS[0])
    with pytest.raises(ValidationError) as exc:
        Settings()
    assert f"unknown variable {name}" in _message(exc)
    assert OWN_RELAYERS[0] not in str(exc.value)


def test_an_unknown_key_variable_in_dotenv_is_an_error(clean_env: Path) -> None:
    (clean_env / ".env").write_text(f"ALPHAGRID_RELAYER_KEY={OWN_RELAYERS[0]}\n")
    with pytest.raises(ValidationError) as exc:
        Settings()
    assert "unknown variable ALPHAGRID_RELAYER_KEY" in _message(exc)


@pytest.mark.parametrize("bad", ["0x1234", "0x" + "zz" * 32, "0x" + "00" * 32, "not a key"])
def test_a_bad_relayer_key_is_one_clean_line_without_the_value(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    monkeypatch.setenv("ALPHAGRID_RELAYER_KEYS", f"{OWN_RELAYERS[0]},{bad}")
    with pytest.raises(ValidationError) as exc:
        Settings()
    assert _message(exc).endswith("ALPHAGRID_RELAYER_KEYS: not a 32-byte hex private key")
    assert bad not in str(exc.value) and OWN_RELAYERS[0] not in str(exc.value)


def test_two_sources_for_one_key_are_an_error(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_env / "operator").write_text(OWN_OPERATOR)
    monkeypatch.setenv("ALPHAGRID_OPERATOR_KEY", OWN_OPERATOR)
    monkeypatch.setenv("ALPHAGRID_OPERATOR_KEY_FILE", str(clean_env / "operator"))
    with pytest.raises(ValidationError) as exc:
        Settings()
    assert "are both set" in _message(exc)


def test_unsafe_keys_only_off_the_development_chain() -> None:
    dev = {"ALPHAGRID_OPERATOR_KEY": [OPERATOR_KEY]}
    assert unsafe_keys(LOCAL_CHAIN_ID, LOCAL_CHAIN_ID, dev) is None
    problem = unsafe_keys(1, LOCAL_CHAIN_ID, dev)
    assert problem is not None and "ALPHAGRID_OPERATOR_KEY" in problem and "chain 1" in problem
    assert unsafe_keys(1, LOCAL_CHAIN_ID, {"ALPHAGRID_OPERATOR_KEY": [OWN_OPERATOR]}) is None
    # One development key among the relayer's is enough to refuse; the dev chain id is configurable.
    mixed = {"ALPHAGRID_RELAYER_KEYS": [OWN_RELAYERS[0], RELAYER_KEYS[1].upper().replace("0X", "")]}
    assert unsafe_keys(1, LOCAL_CHAIN_ID, mixed) is not None
    assert unsafe_keys(1337, 1337, mixed) is None


def test_a_custom_operator_key_never_reaches_the_manifest() -> None:
    assert Demo(operatorKey=OPERATOR_KEY).operator_key == OPERATOR_KEY  # the local stack's, public
    custom = Demo(operatorKey=OWN_OPERATOR)
    assert custom.operator_key is None
    assert OWN_OPERATOR not in custom.model_dump_json(by_alias=True)
