"""The soak's chain: Anvil with the contracts, one funded vault, N agents on the `funded` track, a price
walk that makes ladders fire now and then, and the chain-side record the audit reads (router events)."""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from eth_account import Account
from eth_utils.crypto import keccak
from web3 import Web3

from relayer.chain import artifacts, rpc
from relayer.chain.admin import Admin
from relayer.chain.anvil import Anvil
from relayer.chain.events import DecodedLog, EventDecoder
from relayer.chain.seed import SeedPlan, price_base, seed_local
from relayer.devkeys import OPERATOR_KEY
from relayer.manifest import Manifest

TRACK = "funded"
ALLOCATION_USDC = 100_000
# A small market: every agent trades a few symbols, so adds, reduces and ladder updates dominate.
SYMBOLS = {
    "NVDA": ("NVIDIA Corp. (tokenized)", Decimal("182.35")),
    "AAPL": ("Apple Inc. (tokenized)", Decimal("231.50")),
    "TSLA": ("Tesla Inc. (tokenized)", Decimal("248.10")),
}
LOG_CHUNK_BLOCKS = 5_000


@dataclass(frozen=True)
class SoakAgent:
    agent_id: int
    key: str

    @property
    def signer(self) -> str:
        return str(Account.from_key(self.key).address)


@dataclass
class SoakChain:
    anvil: Anvil
    w3: Web3
    admin: Admin
    manifest: Manifest
    agents: list[SoakAgent]


def agent_key(seed: int, index: int) -> str:
    """Deterministic signer keys, distinct from Anvil's funded accounts (agents never send)."""
    return "0x" + keccak(text=f"alphagrid-soak-{seed}-agent-{index}").hex()


def setup_chain(anvil: Anvil, *, agents: int, seed: int, api_url: str) -> SoakChain:
    w3 = Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 30}))
    admin = Admin(w3, OPERATOR_KEY)
    plan = SeedPlan(
        vault_usdc=ALLOCATION_USDC * agents * 2,
        venue_usdc=ALLOCATION_USDC * agents * 4,
        agents=(),
        tokens=dict(SYMBOLS),
    )
    manifest = seed_local(admin, rpc_url=anvil.url, api_url=api_url, plan=plan)
    vault_id = manifest.vaults[0].vault_id
    registered = []
    for i in range(agents):
        key = agent_key(seed, i)
        signer = Account.from_key(key).address
        agent_id = admin.register_agent(signer, vault_id, TRACK, ALLOCATION_USDC * 10**6)
        registered.append(SoakAgent(agent_id, key))
    return SoakChain(anvil, w3, admin, manifest, registered)


class PriceWalk:
    """Moves one token's oracle price at a time by up to ±`step_bps`, staying within ±`band_bps` of the
    seeded price, so stop-losses and take-profits fire during the soak and the keeper's exits (also
    sent through the relayer's lanes) are killed mid-flight like intents."""

    def __init__(
        self, admin: Admin, tokens: dict[str, str], rng: random.Random, *, step_bps: int, band_bps: int
    ) -> None:
        self.admin = admin
        self.rng = rng
        self.step_bps = step_bps
        self.band_bps = band_bps
        self.base = {tokens[s]: price_base(p) for s, (_n, p) in SYMBOLS.items()}
        self.price = dict(self.base)
        self.updates = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, interval_s: float) -> None:
        self._thread = threading.Thread(target=self._run, args=(interval_s,), name="soak-prices", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(self.rng.uniform(0.5, 1.5) * interval_s):
            token = self.rng.choice(sorted(self.price))
            base = self.base[token]
            moved = self.price[token] * (10_000 + self.rng.randint(-self.step_bps, self.step_bps)) // 10_000
            low, high = base * (10_000 - self.band_bps) // 10_000, base * (10_000 + self.band_bps) // 10_000
            self.price[token] = min(max(moved, low), high)
            self.admin.set_prices([token], [self.price[token]])
            self.updates += 1


@dataclass
class ChainRecord:
    """Every router event since the deployment, grouped the ways the audit asks."""

    events: list[DecodedLog]
    nonce_used: dict[int, list[DecodedLog]] = field(default_factory=lambda: defaultdict(list))
    by_digest: dict[str, list[DecodedLog]] = field(default_factory=lambda: defaultdict(list))
    by_tx: dict[str, list[DecodedLog]] = field(default_factory=lambda: defaultdict(list))
    head: int = 0

    def count(self, name: str) -> int:
        return sum(1 for e in self.events if e.name == name)


def read_router_events(w3: Web3, router: str, start_block: int) -> ChainRecord:
    decoder = EventDecoder([artifacts.abi("TradeRouter")])
    head = int(rpc.call(w3, "eth_blockNumber", []), 16)
    events: list[DecodedLog] = []
    for lo in range(start_block, head + 1, LOG_CHUNK_BLOCKS):
        hi = min(head, lo + LOG_CHUNK_BLOCKS - 1)
        raw = rpc.call(w3, "eth_getLogs", [{"fromBlock": hex(lo), "toBlock": hex(hi), "address": router}])
        events += [d for r in raw if (d := decoder.decode(r)) is not None]
    record = ChainRecord(events, head=head)
    for e in events:
        record.by_tx[e.tx_hash.lower()].append(e)
        if e.name == "NonceUsed":
            record.nonce_used[int(e.args["agentId"])].append(e)
            record.by_digest[str(e.args["digest"]).lower()].append(e)
    return record
