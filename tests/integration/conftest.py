"""A real Anvil per test session with the real contracts deployed and seeded as the local stack does;
each test runs inside an EVM snapshot that is reverted afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from web3 import Web3

from relayer.chain.admin import Admin, CoreAddresses
from relayer.chain.anvil import Anvil, free_port
from relayer.chain.seed import seed_local
from relayer.devkeys import OPERATOR_KEY
from relayer.manifest import Manifest


@dataclass
class Stack:
    anvil: Anvil
    w3: Web3
    admin: Admin
    manifest: Manifest


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    with Anvil(port=free_port()).start() as node:
        yield node


@pytest.fixture(scope="session")
def stack(anvil: Anvil) -> Stack:
    w3 = Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 30}))
    admin = Admin(w3, OPERATOR_KEY)
    manifest = seed_local(admin, rpc_url=anvil.url, api_url="http://127.0.0.1:0")
    return Stack(anvil=anvil, w3=w3, admin=admin, manifest=manifest)


@pytest.fixture
def chain(stack: Stack) -> Iterator[Stack]:
    """The seeded stack, restored to its seeded state after the test."""
    snapshot = stack.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    yield stack
    stack.w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]
    stack.admin.resync_nonce()


def core_of(manifest: Manifest) -> CoreAddresses:
    c = manifest.contracts
    return CoreAddresses(c.trade_router, c.agent_registry, c.token_registry, c.price_oracle, c.usdc, c.venue)
