"""The deployment manifest, `$ALPHAGRID_HOME/deployment.json` (SPEC §4.3): where everything is."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from relayer.devkeys import is_dev_key


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Contracts(_Model):
    trade_router: str = Field(alias="TradeRouter")
    agent_registry: str = Field(alias="AgentRegistry")
    token_registry: str = Field(alias="TokenRegistry")
    price_oracle: str = Field(alias="PriceOracle")
    usdc: str = Field(alias="USDC")
    venue: str = Field(alias="Venue")


class VaultEntry(_Model):
    vault_id: int = Field(alias="vaultId")
    address: str


class DemoAgent(_Model):
    agent_id: int = Field(alias="agentId")
    signer_key: str = Field(alias="signerKey")
    track: str


class Demo(_Model):
    # Only ever one of Anvil's public keys: a custom operator key is never written to the manifest.
    operator_key: str | None = Field(default=None, alias="operatorKey")
    agents: list[DemoAgent] = Field(default_factory=list)

    @field_validator("operator_key")
    @classmethod
    def _only_a_dev_key(cls, value: str | None) -> str | None:
        return value if value is not None and is_dev_key(value) else None


class Manifest(_Model):
    chain_id: int = Field(alias="chainId")
    rpc_url: str = Field(alias="rpcUrl")
    api_url: str = Field(alias="apiUrl")
    start_block: int = Field(alias="startBlock")
    contracts: Contracts
    tokens: dict[str, str] = Field(default_factory=dict)
    vaults: list[VaultEntry] = Field(default_factory=list)
    demo: Demo | None = None

    def to_json(self) -> str:
        return json.dumps(self.model_dump(by_alias=True, exclude_none=True), indent=2) + "\n"

    def write(self, path: Path) -> None:
        """Atomically: a reader never sees half a manifest."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".deployment.", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            fh.write(self.to_json())
        os.replace(tmp, path)

    @classmethod
    def read(cls, path: Path) -> Manifest:
        return cls.model_validate_json(path.read_text())
