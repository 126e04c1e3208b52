"""Settings: one object, built once at start from `ALPHAGRID_*` variables (and `.env`), passed down."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from relayer.devkeys import OPERATOR_KEY, RELAYER_KEYS

if TYPE_CHECKING:
    from relayer.intents.strikes import StrikePolicy

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """SPEC §4.2. Keys default to Anvil's development accounts, which only a local chain funds."""

    model_config = SettingsConfigDict(env_prefix="ALPHAGRID_", env_file=".env", extra="ignore")

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
    max_price_age_s: int = Field(default=3600, gt=0)
    keeper: bool = True
    # Blocks behind the head the indexer reads, and the depth the sender re-checks mined blocks to
    # (reorgs); 0 on a local Anvil, which never reorganizes by itself.
    confirmations: int = Field(default=0, ge=0, le=256)
    # Submits per agent: a sustained rate and a burst (429 rate_limited beyond them).
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
    artifacts_dir: Path = REPO_ROOT / "out"
    abi_dir: Path = REPO_ROOT / "abi"

    @field_validator("relayer_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        # `ALPHAGRID_RELAYER_KEYS=0xaa,0xbb` as well as a JSON list.
        if isinstance(value, str):
            text = value.strip()
            return (
                json.loads(text)
                if text.startswith("[")
                else [k.strip() for k in text.split(",") if k.strip()]
            )
        return value

    @model_validator(mode="after")
    def _derive_defaults(self) -> Settings:
        if not self.rpc_url:
            self.rpc_url = f"http://127.0.0.1:{self.rpc_port}"
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.home / 'relayer.db').resolve()}"
        return self

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
