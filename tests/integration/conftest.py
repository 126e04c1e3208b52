"""A real Anvil per test session with the real contracts deployed and seeded as the local stack does;
each test runs inside an EVM snapshot that is reverted afterwards."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy.orm import Session, sessionmaker
from web3 import Web3

from relayer.api.app import create_app
from relayer.chain.admin import Admin, CoreAddresses
from relayer.chain.anvil import Anvil, free_port
from relayer.chain.seed import seed_local
from relayer.config import Settings
from relayer.devkeys import OPERATOR_KEY
from relayer.manifest import Manifest
from relayer.service import Services, build_services
from relayer.store.db import make_engine, make_session_factory
from relayer.store.migrate import upgrade
from tests.pg import PG_URL, fresh_schema


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


# ---------------------------------------------------------------------- databases



def _pg_available() -> bool:
    engine = make_engine(PG_URL)
    try:
        with engine.connect():
            return True
    except Exception:
        return False
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every test that takes a database runs on SQLite and on the machine's PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'relayer.db'}"
        return
    with fresh_schema() as url:
        yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """PostgreSQL only (what several relayer processes need): a fresh schema, dropped afterwards."""
    with fresh_schema() as url:
        yield url


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    upgrade(engine)
    yield make_session_factory(engine)
    engine.dispose()


# ---------------------------------------------------------------------- the relayer over HTTP


@dataclass
class Api:
    url: str
    client: httpx.Client
    services: Services
    stack: Stack

    def agent(self, index: int = 0) -> tuple[int, str]:
        assert self.stack.manifest.demo is not None
        a = self.stack.manifest.demo.agents[index]
        return a.agent_id, a.signer_key


@pytest.fixture
def api(chain: Stack, db_url: str, tmp_path: Path) -> Iterator[Api]:
    """The relayer (API, indexer, sender, dispatcher) on a free port against the seeded chain."""
    settings = Settings(
        home=tmp_path / "home",
        rpc_url=chain.anvil.url,
        database_url=db_url,
        api_port=free_port(),
        # The tests post many malformed bodies from one address on purpose; the per-address limit of
        # unauthenticated failures is tested on its own (tests/reliability/test_rate_limits.py).
        unauthenticated_burst=1_000_000,
    )
    services = build_services(settings, chain.manifest)
    services.start()
    app = create_app(services)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=settings.api_port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    with httpx.Client(base_url=settings.api_url, timeout=30) as client:
        yield Api(settings.api_url, client, services, chain)
    server.should_exit = True
    thread.join(timeout=10)
    services.close()
