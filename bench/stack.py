"""A fresh chain for one benchmark run: Anvil (automine), the contracts and seed of the local stack,
and N registered bench agents; plus signed OpenPosition intents for them, as submit bodies (SPEC §2.3)
and as router calldata."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from eth_account import Account
from sqlalchemy import text
from web3 import Web3

from bench.keeper import RawSender, agent_key, batched_mining, rpc
from relayer import eip712
from relayer.chain import calls
from relayer.chain.admin import Admin
from relayer.chain.anvil import Anvil, free_port
from relayer.chain.seed import SeedPlan, seed_local
from relayer.devkeys import OPERATOR_KEY
from relayer.domain.ladder import exits_to_json
from relayer.eip712 import ExitRule, TriggerType
from relayer.manifest import Manifest
from relayer.store.db import make_engine

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DbKind = Literal["sqlite", "postgres"]


@contextlib.contextmanager
def fresh_database(
    kind: DbKind, workdir: Path, name: str = "relayer", *, pg_url: str = PG_URL, keep: bool = False
) -> Iterator[str]:
    """An empty relayer database for one run: a SQLite file in `workdir`, or a PostgreSQL schema of
    its own (dropped afterwards unless `keep`)."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / f'{name}.db'}"
        return
    admin = make_engine(pg_url)
    schema = f"{name}_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        sep = "&" if "?" in pg_url else "?"
        yield f"{pg_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        if not keep:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

USDC = 10**6
GAS_LIMIT_BLOCK = 1_000_000_000
BATCH = 400
TRACK = "prime"
ALLOCATION_USDC = 1_000
OPEN_USDC = 20
SLIPPAGE_BPS = 100
LADDER = (ExitRule(TriggerType.TAKE_PROFIT, 3_000, 5_000), ExitRule(TriggerType.STOP_LOSS, -2_500, 10_000))


@dataclass
class Chain:
    anvil: Anvil
    w3: Web3
    admin: Admin
    manifest: Manifest
    agents: list[tuple[int, str]]  # (agent id, signer key)

    @property
    def router(self) -> str:
        return Web3.to_checksum_address(self.manifest.contracts.trade_router)


@contextlib.contextmanager
def fresh_chain(agents: int, block_time_s: int | None = None) -> Iterator[Chain]:
    """A new Anvil each time: its automine slows down as the chain grows, so runs never share one.
    With `block_time_s`, set up on automine, then a block every that many seconds (Anvil takes
    whole seconds) for whatever runs against it."""
    with Anvil(port=free_port(), extra_args=["--gas-limit", str(GAS_LIMIT_BLOCK)]).start() as node:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60}))
        admin = Admin(w3, OPERATOR_KEY)
        plan = SeedPlan(vault_usdc=agents * ALLOCATION_USDC + 1_000_000, venue_usdc=10_000_000)
        manifest = seed_local(admin, rpc_url=node.url, api_url="http://127.0.0.1:0", plan=plan)
        registered = register_agents(w3, admin, manifest, agents)
        if block_time_s:
            rpc(w3, "evm_setIntervalMining", [int(block_time_s)])
        yield Chain(node, w3, admin, manifest, registered)


def register_agents(w3: Web3, admin: Admin, manifest: Manifest, n: int) -> list[tuple[int, str]]:
    """n agents on the prime track, registered in batches of blocks (one transaction per block
    would take a second per hundred)."""
    track_id = admin.track_id(TRACK)
    vault_id = manifest.vaults[0].vault_id
    operator = RawSender(w3, OPERATOR_KEY)
    first = int(admin.agents.functions.agentCount().call()) + 1  # ids are sequential
    with batched_mining(w3) as mine:
        for i in range(n):
            signer = Account.from_key(agent_key(i)).address
            data = admin.agents.functions.registerAgent(
                signer, vault_id, track_id, ALLOCATION_USDC * USDC
            )._encode_transaction_data()
            operator.send(admin.agents.address, data, gas=400_000)
            if (i + 1) % BATCH == 0:
                mine()
    admin.resync_nonce()
    if int(admin.agents.functions.agentCount().call()) != first + n - 1:
        raise RuntimeError("not every bench agent was registered")
    return [(first + i, agent_key(i)) for i in range(n)]


@dataclass(frozen=True)
class SignedOpen:
    agent_id: int
    intent: eip712.OpenPosition
    signature: bytes
    body: dict[str, Any]  # the submit body

    def calldata(self) -> bytes:
        return calls.open_position(self.intent, LADDER, self.signature)


def signed_open(
    manifest: Manifest, agent_id: int, key: str, symbol: str, nonce: int, usdc: int = OPEN_USDC
) -> SignedOpen:
    router = Web3.to_checksum_address(manifest.contracts.trade_router)
    intent = eip712.OpenPosition(
        agent_id=agent_id,
        vault=Web3.to_checksum_address(manifest.vaults[0].address),
        token=Web3.to_checksum_address(manifest.tokens[symbol]),
        usdc_amount=usdc * USDC,
        min_token_out=0,
        max_slippage_bps=SLIPPAGE_BPS,
        exits_hash=eip712.exits_hash(LADDER),
        deadline=int(time.time()) + 3600,
        nonce=nonce,
    )
    digest = eip712.digest(eip712.Domain(manifest.chain_id, router), intent)
    signature = bytes(Account.unsafe_sign_hash(digest, key).signature)
    body = {
        "symbol": symbol,
        "usdcAmount": str(usdc),
        "minTokenOut": "0",
        "maxSlippageBps": SLIPPAGE_BPS,
        "exits": exits_to_json(LADDER),
        "deadline": intent.deadline,
        "nonce": nonce,
        "signature": "0x" + signature.hex(),
    }
    return SignedOpen(agent_id, intent, signature, body)


def ladder_param() -> str:
    return json.dumps(exits_to_json(LADDER), separators=(",", ":"))
