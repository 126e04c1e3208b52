"""The `alphagrid` command against a real Anvil: one per test module, seeded as `alphagrid up` seeds it,
with the manifest in a temporary ALPHAGRID_HOME. Each test runs inside an EVM snapshot (and a copy of
the manifest) restored afterwards, so tests do not see each other's transactions."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from typer.testing import CliRunner, Result
from web3 import Web3

from relayer import eip712
from relayer.chain import calls
from relayer.chain.admin import Admin
from relayer.chain.anvil import Anvil, free_port
from relayer.chain.seed import seed_local
from relayer.cli import app
from relayer.devkeys import OPERATOR_KEY, RELAYER_KEYS
from relayer.eip712 import ExitRule, TriggerType
from relayer.manifest import Manifest


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ALPHAGRID_* from the developer's shell, and no `.env` from the working directory."""
    for key in list(os.environ):
        if key.startswith("ALPHAGRID_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


@dataclass
class Chain:
    anvil: Anvil
    w3: Web3
    admin: Admin
    manifest: Manifest
    home: Path

    @property
    def env(self) -> dict[str, str]:
        return {"ALPHAGRID_HOME": str(self.home), "ALPHAGRID_RPC_URL": self.anvil.url}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    home = tmp_path_factory.mktemp("home")
    with Anvil(port=free_port()).start() as node:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 30}))
        admin = Admin(w3, OPERATOR_KEY)
        manifest = seed_local(admin, rpc_url=node.url, api_url="http://127.0.0.1:0")
        manifest.write(home / "deployment.json")
        yield Chain(node, w3, admin, manifest, home)


@pytest.fixture
def chain(seeded: Chain) -> Iterator[Chain]:
    snapshot = seeded.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    manifest_text = (seeded.home / "deployment.json").read_text()
    yield seeded
    seeded.w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]
    seeded.admin.resync_nonce()
    (seeded.home / "deployment.json").write_text(manifest_text)


def invoke(args: Sequence[str], env: dict[str, str]) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def ok_json(args: Sequence[str], env: dict[str, str]) -> Any:
    """Runs `alphagrid ARGS --json`, checks it succeeded, returns the one JSON document on stdout."""
    result = invoke([*args, "--json"], env)
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return json.loads(result.stdout)


def fails(args: Sequence[str], env: dict[str, str], code: int) -> str:
    """Runs a command expected to fail: the exit code, one `error:` line on stderr, no traceback."""
    result = invoke(args, env)
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return lines[-1]


# ------------------------------------------------------------------------------------------ trading


def open_position(
    chain: Chain,
    agent_index: int,
    symbol: str,
    usdc: int,
    ladder: Sequence[ExitRule] = (
        ExitRule(TriggerType.TAKE_PROFIT, 1000, 5000),
        ExitRule(TriggerType.STOP_LOSS, -1000, 10000),
    ),
) -> int:
    """Opens a position for a demo agent the way the relayer would: a signed intent, relayed."""
    m = chain.manifest
    assert m.demo is not None
    agent = m.demo.agents[agent_index]
    router = chain.admin.router
    nonce = int(router.functions.nextNonce(agent.agent_id).call())
    intent = eip712.OpenPosition(
        agent_id=agent.agent_id,
        vault=Web3.to_checksum_address(m.vaults[0].address),
        token=Web3.to_checksum_address(m.tokens[symbol]),
        usdc_amount=usdc * 10**6,
        min_token_out=0,
        max_slippage_bps=100,
        exits_hash=eip712.exits_hash(ladder),
        deadline=int(time.time()) + 3600,
        nonce=nonce,
    )
    domain = eip712.Domain(m.chain_id, Web3.to_checksum_address(m.contracts.trade_router))
    signature = bytes(Account.unsafe_sign_hash(eip712.digest(domain, intent), agent.signer_key).signature)
    relay(chain, calls.open_position(intent, ladder, signature))
    return int(router.functions.openPositionOf(agent.agent_id, m.tokens[symbol]).call())


def relay(chain: Chain, data: bytes) -> None:
    relayer = Account.from_key(RELAYER_KEYS[0])
    w3 = chain.w3
    tx = {
        "to": chain.manifest.contracts.trade_router,
        "data": data,
        "from": relayer.address,
        "nonce": w3.eth.get_transaction_count(relayer.address, "pending"),
        "chainId": w3.eth.chain_id,
        "gas": 1_500_000,
        "maxFeePerGas": 10**11,
        "maxPriorityFeePerGas": 10**9,
    }
    signed = relayer.sign_transaction(tx)
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))
    assert receipt["status"] == 1, receipt
