"""Relayed intents per second, end to end, against a bare loop sending the same router calls.

A (the relayer): many agents, each submitting its OpenPosition intents one after another over HTTP
with `Prefer: wait=60`, so an answer is `201 confirmed` only once the transaction is mined and the
relayer has recorded and indexed it. The clock runs from the first submit to the last answer; every
answer must be 201 with status `confirmed`, and each agent's records are read back afterwards.

B (the ceiling): one key on the same kind of chain, a plain loop: ABI-encode the same router call
with eth_abi, sign the transaction, `eth_sendRawTransaction`; then wait for the last receipt and
check every receipt succeeded. The intents are signed before either clock starts.

Each run gets a new Anvil (automine): its mining slows as the chain grows, so runs never share one.

    python -m bench.relay --client <spec.json>   # the HTTP client process of A; prints JSON
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from web3 import Web3

from bench import load
from bench.keeper import RawSender
from bench.serve import ServerProcess
from bench.stack import Chain, SignedOpen, fresh_chain, signed_open
from relayer.chain.anvil import free_port
from relayer.devkeys import ANVIL_KEYS

REPO = Path(__file__).resolve().parent.parent
SYMBOLS = ("NVDA", "AAPL", "TSLA", "MSFT", "SPY")


@dataclass
class RelayRun:
    kind: str  # "relayer" or "bare"
    intents: int
    seconds: float
    latencies_ms: list[float]
    server_cores: float = 0.0  # the relayer process's CPU time per wall second during the run
    anvil_cores: float = 0.0

    @property
    def rate(self) -> float:
        return self.intents / self.seconds


def intents_for(chain: Chain, per_agent: int) -> list[list[SignedOpen]]:
    """Per agent, opens in `per_agent` different tokens (one open position per agent and token)."""
    return [
        [signed_open(chain.manifest, agent_id, key, SYMBOLS[n], nonce=n) for n in range(per_agent)]
        for agent_id, key in chain.agents
    ]


Around = Callable[[int, Callable[[], dict[str, Any]]], dict[str, Any]]


def _plain(_pid: int, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    return run()


def relayer_run(
    agents: int, per_agent: int, progress: Callable[[str], None], around: Around = _plain
) -> RelayRun:
    """`around(server pid, run)` runs the client; the profiler hooks in there."""
    with fresh_chain(agents) as chain, tempfile.TemporaryDirectory(prefix="alphagrid-bench-") as tmp:
        signed = intents_for(chain, per_agent)
        database = f"sqlite:///{Path(tmp) / 'relayer.db'}"
        with ServerProcess(chain.manifest, database, free_port()) as server:
            spec = Path(tmp) / "spec.json"
            spec.write_text(
                json.dumps({"url": server.url, "agents": [[(s.agent_id, s.body) for s in a] for a in signed]})
            )
            anvil_pid = chain.anvil.process.pid if chain.anvil.process else None
            cpu_before = (load.process_cpu_s(server.pid), load.process_cpu_s(anvil_pid) if anvil_pid else 0.0)
            out = around(server.pid, lambda: _client(spec))
            cpu = (
                load.process_cpu_s(server.pid) - cpu_before[0],
                (load.process_cpu_s(anvil_pid) - cpu_before[1]) if anvil_pid else 0.0,
            )
            statuses: Counter[str] = Counter(out["answers"])
            if statuses != {"201 confirmed": agents * per_agent}:
                raise RuntimeError(f"relayer answers: {dict(statuses)}")
            _check_recorded(server.url, [a[0].agent_id for a in signed], per_agent)
        seconds = out["finished"] - out["started"]
        run = RelayRun(
            "relayer", agents * per_agent, seconds, out["latencies"], cpu[0] / seconds, cpu[1] / seconds
        )
    progress(
        f"  relayer: {run.intents} intents in {run.seconds:.2f} s → {run.rate:.1f}/s; CPU: relayer "
        f"{run.server_cores:.2f} cores, anvil {run.anvil_cores:.2f}"
    )
    return run


def _client(spec: Path) -> dict[str, Any]:
    """The HTTP client of run A, in its own process."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.relay", "--client", str(spec)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the relay client failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _check_recorded(url: str, agent_ids: list[int], per_agent: int) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        for agent_id in agent_ids:
            rows = client.get(f"/agents/{agent_id}/intents").json()["intents"]
            if len(rows) != per_agent or any(
                r["status"] != "confirmed" or not r["transactionHash"] for r in rows
            ):
                raise RuntimeError(f"agent {agent_id}: records {rows}")


async def _agent(
    client: httpx.AsyncClient, agent_id: int, bodies: list[dict[str, Any]], out: dict[str, Any]
) -> None:
    for body in bodies:
        sent = time.perf_counter()
        answer = await client.post(
            f"/agents/{agent_id}/trade-intents", json=body, headers={"Prefer": "wait=60"}
        )
        out["latencies"].append((time.perf_counter() - sent) * 1000)
        status = answer.json().get("status") if answer.status_code < 300 else answer.text[:200]
        out["answers"].append(f"{answer.status_code} {status}")


async def _client_main(spec: dict[str, Any]) -> dict[str, Any]:
    agents = spec["agents"]
    limits = httpx.Limits(max_connections=len(agents), max_keepalive_connections=len(agents))
    out: dict[str, Any] = {"latencies": [], "answers": []}
    async with httpx.AsyncClient(base_url=spec["url"], timeout=120, limits=limits) as client:
        await client.get("/health")
        out["started"] = time.time()
        await asyncio.gather(*(_agent(client, a[0][0], [b for _id, b in a], out) for a in agents))
        out["finished"] = time.time()
    return out


def bare_run(agents: int, per_agent: int, progress: Callable[[str], None]) -> RelayRun:
    with fresh_chain(agents) as chain:
        signed = [s for a in intents_for(chain, per_agent) for s in a]
        w3 = chain.w3
        sender = RawSender(w3, ANVIL_KEYS[3])
        router = chain.router
        hashes = []
        started = time.perf_counter()
        for s in signed:
            hashes.append(sender.send(router, s.calldata(), gas=800_000))
        last = _wait_receipt(w3, hashes[-1])
        seconds = time.perf_counter() - started
        receipts = [w3.eth.get_transaction_receipt(h) for h in hashes]  # type: ignore[arg-type]
        if last["status"] != 1 or any(r["status"] != 1 for r in receipts):
            raise RuntimeError("a bare-loop router call reverted")
    run = RelayRun("bare", len(signed), seconds, [])
    progress(f"  bare loop: {run.intents} calls in {run.seconds:.2f} s → {run.rate:.1f}/s")
    return run


def _wait_receipt(w3: Web3, tx_hash: str) -> Any:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        receipt = w3.provider.make_request("eth_getTransactionReceipt", [tx_hash])  # type: ignore[arg-type]
        if receipt.get("result"):
            return w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        time.sleep(0.002)
    raise RuntimeError(f"no receipt for {tx_hash}")


@dataclass
class RelayResult:
    agents: int
    per_agent: int
    relayer: list[RelayRun]
    bare: list[RelayRun]


def bench_relay(agents: int, per_agent: int, rounds: int, progress: Callable[[str], None]) -> RelayResult:
    """Alternates A and B, each on a new chain; the report takes the medians."""
    relayer: list[RelayRun] = []
    bare: list[RelayRun] = []
    for r in range(rounds):
        first, second = (relayer_run, bare_run) if r % 2 == 0 else (bare_run, relayer_run)
        for fn in (first, second):
            run = fn(agents, per_agent, progress)
            (relayer if run.kind == "relayer" else bare).append(run)
    return RelayResult(agents, per_agent, relayer, bare)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--client", type=Path, required=True)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_client_main(json.loads(args.client.read_text())))))


if __name__ == "__main__":
    main()
