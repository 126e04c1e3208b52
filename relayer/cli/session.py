"""What a command works against: the settings, the manifest, a connected chain and the operator's `Admin`,
built when the command asks for them (never at import time), and checked so that a missing manifest,
an unreachable chain or a chain that was reset each fail with one clear line.

`Deployment` also resolves what operators type — a symbol, a track name, a vault or agent id — into
what the chain has, or a `BadInput` that lists what does exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from eth_typing import ChecksumAddress
from pydantic import ValidationError
from web3 import Web3

from relayer.chain.admin import Admin, CoreAddresses
from relayer.cli.errors import BadInput, ChainUnreachable, CliError, NoManifest
from relayer.cli.rpc import explicit_rpc_url
from relayer.cli.views import read_tracks
from relayer.config import Settings
from relayer.devkeys import LOCAL_CHAIN_ID, unsafe_keys
from relayer.manifest import Manifest

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"

# The keys a command signs with: the operator's (admin transactions), the relayer's (gas wallets of
# `serve` and `keeper`), or none (reads).
Signs = Literal["operator", "relayer", "nothing"]


def require_safe_keys(settings: Settings, chain_id: int, signs: Signs) -> None:
    """Exit 2 with one line before anything is signed on a chain other than the development chain
    with a key that is unset or one of Anvil's public keys."""
    if signs == "nothing":
        return
    keys = settings.signing_keys(operator=signs == "operator", relayer=signs == "relayer")
    problem = unsafe_keys(chain_id, settings.dev_chain_id, keys)
    if problem is not None:
        raise BadInput(problem)


def connect(url: str, timeout_s: float = 30.0) -> Web3:
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout_s}))
    if not w3.is_connected():
        raise ChainUnreachable(url)
    return w3


def make_admin(w3: Web3, key: str, core: CoreAddresses | None = None) -> Admin:
    try:
        return Admin(w3, key, core)
    except (ValueError, TypeError) as exc:
        if "key" in str(exc).lower() or "hex" in str(exc).lower():
            raise BadInput(
                "invalid operator key (ALPHAGRID_OPERATOR_KEY): not a 32-byte hex private key"
            ) from None
        raise


def core_of(manifest: Manifest) -> CoreAddresses:
    c = manifest.contracts
    cs = Web3.to_checksum_address
    return CoreAddresses(
        cs(c.trade_router),
        cs(c.agent_registry),
        cs(c.token_registry),
        cs(c.price_oracle),
        cs(c.usdc),
        cs(c.venue),
    )


class Session:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @classmethod
    def load(cls) -> Session:
        return cls(Settings())

    @property
    def manifest_path(self) -> Path:
        return self.settings.manifest_path

    def explicit_rpc_url(self) -> str | None:
        return explicit_rpc_url()

    def operator_key(self) -> str:
        return self.settings.operator_key.get_secret_value()

    def manifest(self) -> Manifest:
        path = self.manifest_path
        if not path.exists():
            raise NoManifest(path)
        try:
            return Manifest.read(path)
        except (OSError, ValueError, ValidationError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise CliError(f"unreadable manifest {path}: {first}") from None

    def deployment(self, signs: Signs = "operator") -> Deployment:
        """The manifest's contracts on a live chain, with the operator key. `signs`: the keys the
        command will sign with, refused off the development chain if they are Anvil's."""
        manifest = self.manifest()
        url = self.explicit_rpc_url() or manifest.rpc_url
        w3 = connect(url)
        chain_id = w3.eth.chain_id
        if chain_id != manifest.chain_id:
            raise CliError(
                f"the chain at {url} has id {chain_id}, "
                f"but {self.manifest_path} is for chain {manifest.chain_id}"
            )
        require_safe_keys(self.settings, chain_id, signs)
        core = core_of(manifest)
        if not w3.eth.get_code(core.trade_router):
            raise CliError(
                f"no TradeRouter at {core.trade_router} on {url}: the chain was reset since "
                f"{self.manifest_path} was written; run `alphagrid up` or `alphagrid deploy` again"
            )
        return Deployment(self, manifest, w3, url, make_admin(w3, self.operator_key(), core))


@dataclass
class Deployment:
    session: Session
    manifest: Manifest
    w3: Web3
    rpc_url: str
    admin: Admin

    @property
    def is_local(self) -> bool:
        return self.admin.chain_id == LOCAL_CHAIN_ID

    # ------------------------------------------------------------------ tokens

    @cached_property
    def token_list(self) -> dict[str, ChecksumAddress]:
        """Every registered token, symbol → address, in registration order."""
        registry = self.admin.tokens
        out: dict[str, ChecksumAddress] = {}
        for token in registry.functions.tokens().call():
            out[str(registry.functions.symbolOf(token).call())] = Web3.to_checksum_address(token)
        return out

    def token(self, symbol: str) -> ChecksumAddress:
        address = str(self.admin.tokens.functions.tokenOf(symbol).call())
        if int(address, 16) == 0:
            known = ", ".join(self.token_list) or "none"
            raise BadInput(f"unknown symbol {symbol} (known: {known})")
        return Web3.to_checksum_address(address)

    def token_decimals(self, token: str) -> int:
        erc20 = self.admin.contract("EquityToken", token)
        return int(erc20.functions.decimals().call())

    # ------------------------------------------------------------------ tracks

    def track_id(self, name: str) -> int:
        track_id = int(self.admin.agents.functions.trackIdOf(name).call())
        if track_id == 0:
            known = ", ".join(t["name"] for t in read_tracks(self.admin)) or "none"
            raise BadInput(f"unknown track {name} (known: {known})")
        return track_id

    # ------------------------------------------------------------------ vaults and agents

    def vault(self, vault_id: int) -> ChecksumAddress:
        address = str(self.admin.agents.functions.vaultAddress(vault_id).call())
        if int(address, 16) == 0:
            count = int(self.admin.agents.functions.vaultCount().call())
            known = f"1..{count}" if count else "none yet: `alphagrid vault create`"
            raise BadInput(f"unknown vault {vault_id} (vault ids: {known})")
        return Web3.to_checksum_address(address)

    def agent(self, agent_id: int) -> tuple[Any, ...]:
        """AgentRegistry.agentConfig: (signer, vault, vaultId, trackId, allocation, active, track)."""
        config = tuple(self.admin.agents.functions.agentConfig(agent_id).call())
        if int(str(config[0]), 16) == 0:
            count = int(self.admin.agents.functions.agentCount().call())
            known = f"1..{count}" if count else "none yet: `alphagrid agent register`"
            raise BadInput(f"unknown agent {agent_id} (agent ids: {known})")
        return config

    def require_local(self, what: str) -> None:
        if not self.is_local:
            raise CliError(
                f"{what} mints MockUSDC and is only for a local chain (id {LOCAL_CHAIN_ID}); "
                f"this chain is {self.admin.chain_id}: transfer USDC to the vault instead"
            )

    def save_manifest(self, manifest: Manifest) -> None:
        manifest.write(self.session.manifest_path)
        self.manifest = manifest
