"""Settings: one object, built once at start from `ALPHAGRID_*` variables (and `.env`), passed down.

Keys (the operator's, the relayer's gas wallets) come from one of, per role:
- the environment: `ALPHAGRID_OPERATOR_KEY`, `ALPHAGRID_RELAYER_KEYS` (comma-separated or JSON);
- files: `ALPHAGRID_OPERATOR_KEY_FILE`, `ALPHAGRID_RELAYER_KEYS_FILE` (one key a line, or comma/JSON),
  or a secrets directory (`ALPHAGRID_SECRETS_DIR`, pydantic-settings' `secrets_dir`: a file named
  `alphagrid_operator_key` / `alphagrid_relayer_keys`);
- encrypted keystores (eth-account's JSON): `ALPHAGRID_OPERATOR_KEYSTORE`, `ALPHAGRID_RELAYER_KEYSTORES`
  (comma-separated), with the password in `ALPHAGRID_KEYSTORE_PASSWORD_FILE`.
Unset, they are Anvil's public development keys, which `relayer.devkeys.unsafe_keys` refuses on any
chain but the local development chain. An `ALPHAGRID_*KEY*` variable that names no setting (a typo
such as `ALPHAGRID_RELAYER_KEYS_FILES`) is an error rather than silently ignored.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

from relayer.devkeys import LOCAL_CHAIN_ID, OPERATOR_KEY, RELAYER_KEYS

if TYPE_CHECKING:
    from relayer.intents.strikes import StrikePolicy

REPO_ROOT = Path(__file__).resolve().parent.parent
PREFIX = "ALPHAGRID_"
_HEX_KEY = re.compile(r"(?:0x)?[0-9a-fA-F]{64}")


def _split(text: str) -> list[str]:
    text = text.strip()
    if text.startswith("["):
        loaded = json.loads(text)
        if not isinstance(loaded, list):
            raise ValueError("expected a JSON list")
        return [str(k).strip() for k in loaded]
    return [k.strip() for k in re.split(r"[,\s]+", text) if k.strip()]


def normalized_key(value: str, name: str) -> str:
    """`0x` + 64 lower-case hex digits; the error names the variable, never the value."""
    text = value.strip()
    if not _HEX_KEY.fullmatch(text) or int(text, 16) == 0:
        raise ValueError(f"{name}: not a 32-byte hex private key")
    return "0x" + text.removeprefix("0x").lower()


def _read_secret_file(path: Path, name: str) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise ValueError(f"{name}: cannot read {path}: {exc.strerror or exc}") from None


def _decrypt_keystore(path: Path, password: str, name: str) -> str:
    from eth_account import Account  # only here: commands that must start fast import this module
    try:
        keystore = json.loads(_read_secret_file(path, name))
    except json.JSONDecodeError:
        raise ValueError(f"{name}: {path} is not a JSON keystore") from None
    try:
        return "0x" + bytes(Account.decrypt(keystore, password)).hex()
    except ValueError:
        raise ValueError(f"{name}: cannot decrypt {path} (wrong password?)") from None
    except (KeyError, TypeError):
        raise ValueError(f"{name}: {path} is not an eth-account keystore") from None


class Settings(BaseSettings):
    """SPEC §4.2. Keys default to Anvil's development accounts, which only a local chain funds."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX, env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    home: Path = Path(".alphagrid")
    rpc_port: int = Field(default=8545, ge=1, le=65535)
    rpc_url: str = ""
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    database_url: str = ""
    operator_key: SecretStr = SecretStr(OPERATOR_KEY)
    # NoDecode: the env value reaches `_split_keys` as written, so "0xaa,0xbb" works as well as JSON.
    relayer_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=lambda: [SecretStr(k) for k in RELAYER_KEYS]
    )
    operator_key_file: Path | None = None
    relayer_keys_file: Path | None = None
    operator_keystore: Path | None = None
    relayer_keystores: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    keystore_password_file: Path | None = None
    secrets_dir: Path | None = None  # read in `settings_customise_sources`; here so it is a known name
    # The chain on which Anvil's public keys (and unset keys, which default to them) may sign.
    dev_chain_id: int = LOCAL_CHAIN_ID
    max_price_age_s: int = Field(default=3600, gt=0)
    # The exchange calendar behind `nextOpen` (GET /prices); empty: no calendar, `nextOpen` is null.
    market_calendar: str = "XNYS"
    keeper: bool = True
    # `alphagrid serve`: 0 runs the relayer as one process; N ≥ 1 (PostgreSQL only) as N API processes
    # on one port beside one engine process (`relayer.supervisor`), to use more than one core.
    api_processes: int = Field(default=0, ge=0, le=64)
    # Blocks behind the head the indexer reads, and the depth the sender re-checks mined blocks to
    # (reorgs); 0 on a local Anvil, which never reorganizes by itself.
    confirmations: int = Field(default=0, ge=0, le=256)
    # Submits per agent (verified intents only): a sustained rate and a burst (429 rate_limited).
    submit_rate_per_s: float = Field(default=20.0, gt=0)
    submit_burst: int = Field(default=100, ge=1)
    # Intents per transaction (SPEC §5.1; 1 sends each through its single-intent function), and how
    # many such transactions may be on their way at once (what becomes ready meanwhile waits).
    batch_max_items: int = Field(default=64, ge=1, le=256)
    batch_max_in_flight: int = Field(default=1, ge=1, le=16)
    # Front-running strikes (relayed intents that failed because the agent used their nonce for
    # another intent): throttled past `strikes_throttle_after` within the hour, suspended past
    # `strikes_suspend_after` within the day; 0 turns either off. `alphagrid agent clear-strikes`.
    strikes_throttle_after: int = Field(default=3, ge=0)
    strikes_throttle_window_s: int = Field(default=3600, gt=0)
    strikes_suspend_after: int = Field(default=10, ge=0)
    strikes_suspend_window_s: int = Field(default=86_400, gt=0)
    # Unauthenticated failed submits (malformed, unknown ids, bad signatures) per client address.
    unauthenticated_rate_per_s: float = Field(default=2.0, gt=0)
    unauthenticated_burst: int = Field(default=20, ge=1)
    # Slow clients: the request headers, the body, an idle keep-alive connection (seconds), and the
    # open connections (default: the descriptor limit minus a reserve, `relayer.server`).
    header_timeout_s: float = Field(default=10.0, gt=0)
    body_timeout_s: float = Field(default=10.0, gt=0)
    keepalive_timeout_s: float = Field(default=5.0, ge=1)
    max_connections: int | None = Field(default=None, ge=1)
    # Worker threads for the API's blocking routes (a submit holds one while it waits for its outcome).
    api_threads: int = Field(default=256, ge=8, le=4096)
    # Open SSE streams: in total, and per client address (429 rate_limited beyond).
    max_streams: int = Field(default=1_000, ge=1)
    max_streams_per_client: int = Field(default=8, ge=1)
    # Webhook outbox rows that are final (delivered, given up, cancelled) are deleted with their
    # attempts this many days after their last attempt (SPEC §5.5); pending rows are never deleted.
    webhook_retention_days: float = Field(default=7.0, gt=0)
    artifacts_dir: Path = REPO_ROOT / "out"
    abi_dir: Path = REPO_ROOT / "abi"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings, dotenv_settings)
        secrets_dir = os.environ.get(f"{PREFIX}SECRETS_DIR")
        if secrets_dir and Path(secrets_dir).is_dir():  # otherwise `_secrets_dir_exists` says so
            sources += (SecretsSettingsSource(settings_cls, secrets_dir=secrets_dir),)
        return sources

    @field_validator("relayer_keys", "relayer_keystores", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        # `ALPHAGRID_RELAYER_KEYS=0xaa,0xbb` as well as a JSON list.
        return _split(value) if isinstance(value, str) else value

    @field_validator("secrets_dir")
    @classmethod
    def _secrets_dir_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{value} is not a directory")
        return value

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_key_variables(cls, data: Any) -> Any:
        known = {f"{PREFIX}{name}".upper() for name in cls.model_fields}
        names = {n for n in os.environ if n.upper().startswith(PREFIX) and "KEY" in n.upper()}
        env_file = Path(".env")
        if env_file.is_file():
            from dotenv import dotenv_values

            names |= {
                n for n in dotenv_values(env_file) if n.upper().startswith(PREFIX) and "KEY" in n.upper()
            }
        unknown = sorted(n for n in names if n.upper() not in known)
        if unknown:
            raise ValueError(
                f"unknown variable {', '.join(unknown)} (key settings: {PREFIX}OPERATOR_KEY[_FILE], "
                f"{PREFIX}OPERATOR_KEYSTORE, {PREFIX}RELAYER_KEYS[_FILE], {PREFIX}RELAYER_KEYSTORES, "
                f"{PREFIX}KEYSTORE_PASSWORD_FILE)"
            )
        return data

    @model_validator(mode="after")
    def _resolve_keys(self) -> Settings:
        given = self.model_fields_set
        operator_sources = [
            n for n in ("operator_key", "operator_key_file", "operator_keystore") if n in given
        ]
        relayer_sources = [
            n for n in ("relayer_keys", "relayer_keys_file", "relayer_keystores") if n in given
        ]
        for sources in (operator_sources, relayer_sources):
            if len(sources) > 1:
                names = " and ".join(f"{PREFIX}{n.upper()}" for n in sources)
                raise ValueError(f"{names} are both set: choose one")
        password: str | None = None
        if self.operator_keystore is not None or self.relayer_keystores:
            if self.keystore_password_file is None:
                raise ValueError(f"a keystore needs {PREFIX}KEYSTORE_PASSWORD_FILE")
            name = f"{PREFIX}KEYSTORE_PASSWORD_FILE"
            password = _read_secret_file(self.keystore_password_file, name).rstrip("\r\n")

        name = f"{PREFIX}OPERATOR_KEY"
        operator = self.operator_key.get_secret_value()
        if self.operator_key_file is not None:
            name = f"{PREFIX}OPERATOR_KEY_FILE"
            operator = _read_secret_file(self.operator_key_file, name)
        elif self.operator_keystore is not None:
            assert password is not None
            name = f"{PREFIX}OPERATOR_KEYSTORE"
            operator = _decrypt_keystore(self.operator_keystore, password, name)
        self.operator_key = SecretStr(normalized_key(operator, name))

        name = f"{PREFIX}RELAYER_KEYS"
        relayer = [k.get_secret_value() for k in self.relayer_keys]
        if self.relayer_keys_file is not None:
            name = f"{PREFIX}RELAYER_KEYS_FILE"
            try:
                relayer = _split(_read_secret_file(self.relayer_keys_file, name))
            except json.JSONDecodeError:
                raise ValueError(f"{name}: not a list of keys") from None
        elif self.relayer_keystores:
            assert password is not None
            name = f"{PREFIX}RELAYER_KEYSTORES"
            relayer = [_decrypt_keystore(p, password, name) for p in self.relayer_keystores]
        if not relayer:
            raise ValueError(f"{name}: no key")
        self.relayer_keys = [SecretStr(normalized_key(k, name)) for k in relayer]
        return self

    @model_validator(mode="after")
    def _derive_defaults(self) -> Settings:
        if not self.rpc_url:
            self.rpc_url = f"http://127.0.0.1:{self.rpc_port}"
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.home / 'relayer.db').resolve()}"
        return self

    def signing_keys(self, *, operator: bool, relayer: bool) -> dict[str, list[str]]:
        """The keys a command signs with, by the variable that sets them (for `devkeys.unsafe_keys`)."""
        keys: dict[str, list[str]] = {}
        if operator:
            keys[f"{PREFIX}OPERATOR_KEY"] = [self.operator_key.get_secret_value()]
        if relayer:
            keys[f"{PREFIX}RELAYER_KEYS"] = [k.get_secret_value() for k in self.relayer_keys]
        return keys

    @property
    def strike_policy(self) -> StrikePolicy:
        from relayer.intents.strikes import StrikePolicy

        return StrikePolicy(
            throttle_after=self.strikes_throttle_after,
            throttle_window_s=self.strikes_throttle_window_s,
            suspend_after=self.strikes_suspend_after,
            suspend_window_s=self.strikes_suspend_window_s,
        )

    @property
    def manifest_path(self) -> Path:
        return self.home / "deployment.json"

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"
