"""A gap-down: one oracle update crosses every stop at once (issue 11).

N agents each hold one open position with a stop-loss at −5 % (and a take-profit at +30 %, which the
prime track requires), over the five symbols. The positions are opened directly on the router with
signed intents sent by a bare loop (many transactions per block) before the relayer starts; then the
relayer (its own process: API, indexer, sender, keeper) starts on the chain and indexes them. ONE
oracle transaction then sets every symbol 8 % down. Measured from outside, on the chain only: the
wall time the price's receipt first answers (polled every 2 ms) → the last PositionClosed seen (logs
polled every 10 ms), each position's close latency the same way, and the router transactions in the
blocks after the price (the keeper's: nothing else sends then) with their gas.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from web3 import Web3

from bench.keeper import RawSender, batched_mining, rpc
from bench.onchain import POSITION_CLOSED, LogWatcher, mined_at, txs_to
from bench.profile import Profile, record
from bench.report import percentile
from bench.serve import ServerProcess
from bench.stack import BATCH, Chain, fresh_chain
from relayer import eip712
from relayer.chain import calls
from relayer.chain.anvil import free_port
from relayer.chain.seed import SEED_TOKENS, price_base
from relayer.devkeys import ANVIL_KEYS, OPERATOR_KEY
from relayer.eip712 import ExitRule, TriggerType

USDC = 10**6
OPEN_USDC = 20
STOP_BPS = -500
DROP_BPS = 800
GAP_LADDER = (
    ExitRule(TriggerType.TAKE_PROFIT, 3_000, 5_000),
    ExitRule(TriggerType.STOP_LOSS, STOP_BPS, 10_000),
)
SYMBOLS = ("NVDA", "AAPL", "TSLA", "MSFT", "SPY")

Progress = Callable[[str], None]


def gap_price(price: int, drop_bps: int = DROP_BPS) -> int:
    """The price `drop_bps` below `price`, rounded down."""
    return price * (10_000 - drop_bps) // 10_000


def close_latencies_ms(mined: float, closed_at: list[float]) -> list[float]:
    return sorted((t - mined) * 1000 for t in closed_at)


@dataclass
class GapResult:
    positions: int
    closed: int
    setup_s: float
    relayer_start_s: float
    last_close_ms: float | None  # price mined → last PositionClosed seen; None if not all closed
    latencies_ms: list[float]
    keeper_txs: int
    keeper_reverted: int
    gas_used: int
    blocks: int
    price_inclusion_ms: float
    relayer_cpu_s: float = 0.0
    anvil_cpu_s: float = 0.0
    wall_s: float = 0.0
    profile: Profile | None = field(default=None)

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q) if self.latencies_ms else 0.0


def open_positions(chain: Chain, progress: Progress) -> None:
    """One position per agent (symbol by agent), opened by a bare loop from a key that is none of the
    relayer's, BATCH transactions per block; checks every open succeeded."""
    m = chain.manifest
    router = chain.router
    domain = eip712.Domain(m.chain_id, Web3.to_checksum_address(router))
    vault = Web3.to_checksum_address(m.vaults[0].address)
    sender = RawSender(chain.w3, ANVIL_KEYS[3])
    deadline = int(time.time()) + 7 * 24 * 3600
    first = chain.w3.eth.block_number + 1
    with batched_mining(chain.w3) as mine:
        for i, (agent_id, key) in enumerate(chain.agents):
            intent = eip712.OpenPosition(
                agent_id=agent_id,
                vault=vault,
                token=Web3.to_checksum_address(m.tokens[SYMBOLS[i % len(SYMBOLS)]]),
                usdc_amount=OPEN_USDC * USDC,
                min_token_out=0,
                max_slippage_bps=100,
                exits_hash=eip712.exits_hash(GAP_LADDER),
                deadline=deadline,
                nonce=0,
            )
            signature = bytes(Account.unsafe_sign_hash(eip712.digest(domain, intent), key).signature)
            sender.send(router, calls.open_position(intent, GAP_LADDER, signature), gas=800_000)
            if (i + 1) % BATCH == 0:
                mine()
    txs = txs_to(chain.w3, router, first, chain.w3.eth.block_number)
    if txs.count != len(chain.agents) or txs.reverted:
        raise RuntimeError(
            f"opens: {txs.count} sent, {txs.reverted} reverted (expected {len(chain.agents)}, 0)"
        )
    progress(f"  {txs.count} positions opened in {txs.blocks} blocks")


def _metric(url: str, name: str) -> float | None:
    try:
        text = httpx.get(f"{url}/metrics", timeout=10).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def wait_armed(url: str, head: int, rules: int, timeout_s: float = 300) -> None:
    """Until the relayer says (on /metrics) it has indexed up to `head` and armed `rules` exit rules.
    A relayer without those gauges gets 3 s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        block = _metric(url, "alphagrid_indexed_block")
        armed = _metric(url, "alphagrid_trigger_index_rules")
        if block is None or armed is None:
            time.sleep(3)
            return
        if block >= head and armed >= rules:
            return
        time.sleep(0.2)
    raise RuntimeError(f"the relayer did not arm {rules} rules up to block {head} in {timeout_s:.0f} s")


Around = Callable[[int, Callable[[], None]], None]


def _plain(_pid: int, run: Callable[[], None]) -> None:
    run()


def run_gapdown(
    n: int,
    progress: Progress,
    timeout_s: float = 300,
    around: Around = _plain,
    block_time_s: int | None = None,
) -> GapResult:
    from bench import load

    began = time.perf_counter()
    with fresh_chain(n) as chain, tempfile.TemporaryDirectory(prefix="alphagrid-bench-") as tmp:
        progress(f"  opening {n} positions (stop-loss {STOP_BPS / 100:g} %) by a bare loop")
        open_positions(chain, progress)
        if block_time_s:
            rpc(chain.w3, "evm_setIntervalMining", [int(block_time_s)])
        setup_s = time.perf_counter() - began
        t0 = time.perf_counter()
        server = ServerProcess(chain.manifest, f"sqlite:///{Path(tmp) / 'relayer.db'}", free_port())
        try:
            server.wait_ready()
            head = chain.w3.eth.block_number
            wait_armed(server.url, head, 2 * n)
            relayer_start_s = time.perf_counter() - t0
            progress(f"  relayer up and armed in {relayer_start_s:.1f} s")
            m = chain.manifest
            tokens = [Web3.to_checksum_address(m.tokens[s]) for s in SYMBOLS]
            prices = [gap_price(price_base(SEED_TOKENS[s][1])) for s in SYMBOLS]
            oracle = chain.admin.oracle
            data = oracle.functions.setPrices(tokens, prices)._encode_transaction_data()
            operator = RawSender(chain.w3, OPERATOR_KEY)
            watcher = LogWatcher(chain.w3, chain.router, POSITION_CLOSED, 1, head + 1)
            watcher.start()
            anvil_pid = chain.anvil.process.pid if chain.anvil.process else None
            cpu0 = (load.process_cpu_s(server.pid), load.process_cpu_s(anvil_pid) if anvil_pid else 0.0)
            holder: dict[str, Any] = {}

            def gap() -> None:
                sent = time.time()
                tx = operator.send(oracle.address, data, gas=500_000)
                holder["mined"], receipt = mined_at(chain.w3, tx)
                holder["inclusion_ms"] = (holder["mined"] - sent) * 1000
                holder["block"] = int(receipt["blockNumber"], 16)
                if receipt["status"] != "0x1":
                    raise RuntimeError(f"the oracle update reverted: {receipt}")

            around(server.pid, gap)
            ids = _position_ids(chain)
            all_closed = watcher.wait_for(ids, timeout_s, idle_s=60)
            watcher.stop()
            cpu = (
                load.process_cpu_s(server.pid) - cpu0[0],
                (load.process_cpu_s(anvil_pid) - cpu0[1]) if anvil_pid else 0.0,
            )
        finally:
            server.stop()
        closed = [s for k, s in watcher.seen.items() if k in set(ids)]
        mined = holder["mined"]
        last_block = max((s.block for s in closed), default=holder["block"])
        txs = txs_to(chain.w3, chain.router, holder["block"] + 1, last_block)
        latencies = close_latencies_ms(mined, [s.at for s in closed])
        progress(
            f"  {len(closed)}/{n} closed; last {latencies[-1] if latencies else 0:.0f} ms after the price "
            f"was mined; {txs.count} keeper transactions in {txs.blocks} blocks"
        )
        return GapResult(
            positions=n,
            closed=len(closed),
            setup_s=setup_s,
            relayer_start_s=relayer_start_s,
            last_close_ms=latencies[-1] if all_closed and latencies else None,
            latencies_ms=latencies,
            keeper_txs=txs.count,
            keeper_reverted=txs.reverted,
            gas_used=txs.gas_used,
            blocks=txs.blocks,
            price_inclusion_ms=holder["inclusion_ms"],
            relayer_cpu_s=cpu[0],
            anvil_cpu_s=cpu[1],
            wall_s=time.perf_counter() - began,
        )


def _position_ids(chain: Chain) -> list[int]:
    """Position ids are sequential from 1 on a fresh router: the bench opened them all."""
    count = int(chain.admin.router.functions.positionCount().call())
    if count != len(chain.agents):
        raise RuntimeError(f"the router has {count} positions, expected {len(chain.agents)}")
    return list(range(1, count + 1))


def profile_gapdown(
    n: int, out: Path, seconds: float, progress: Progress, block_time_s: int | None = None
) -> Profile:
    """The same gap-down again with py-spy on the relayer's process, from the price update on."""
    holder: dict[str, Profile] = {}

    def around(pid: int, run: Callable[[], None]) -> None:
        def workload() -> None:
            run()
            time.sleep(max(0.0, seconds - 1))  # the keeper works after the price is mined

        p, _ = record(
            pid,
            seconds,
            out,
            workload,
            gil=False,
            title=f"gap-down ({n} stops crossed by one price update): the relayer process, all threads",
        )
        holder["p"] = p

    run_gapdown(n, progress, around=around, block_time_s=block_time_s)
    return holder["p"]
