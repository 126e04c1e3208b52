"""Quote and verify throughput over HTTP, each against the same server's /health in the same run, and
signature verification in process against raw coincurve.

HTTP: one fresh chain, the relayer in its own process (SQLite), load from other processes. Rounds
rotate /health, quote and verify so that drift (other work on the machine, the chain) lands on all
three alike; the figures are medians over rounds."""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote as urlquote

import httpx
from coincurve import PublicKey

from bench import load
from bench.report import median
from bench.serve import ServerProcess
from bench.stack import Chain, ladder_param, signed_open
from relayer import eip712
from relayer.chain.anvil import free_port
from relayer.config import Settings

QUOTE_USDC = 100
SYMBOL = "NVDA"


@dataclass
class HttpConfig:
    rounds: int = 3
    warmup_s: float = 1.0
    duration_s: float = 4.0
    connections: int = 8
    processes: int = 2
    use_wrk: bool = True


@dataclass
class HttpResult:
    runs: dict[str, list[load.LoadResult]] = field(default_factory=dict)
    unloaded: dict[str, load.LoadResult] = field(default_factory=dict)  # one connection
    quote_path: str = ""
    verify_path: str = ""

    def rate(self, name: str) -> float:
        return median([r.rate for r in self.runs[name]])

    def p99(self, name: str) -> float:
        return median([r.p99_ms for r in self.runs[name]])

    def p50(self, name: str) -> float:
        return median([r.p50_ms for r in self.runs[name]])

    def server_cpu(self, name: str) -> float:
        return median([r.server_cpu_share for r in self.runs[name]])

    def cpu_per_request_us(self, name: str) -> float:
        return median([r.server_cpu_per_request_us for r in self.runs[name]])

    def client_cpu(self, name: str) -> float:
        return median([r.client_cpu_share for r in self.runs[name]])


def requests_for(chain: Chain) -> dict[str, list[load.Request]]:
    agent_id, key = chain.agents[0]
    quote = (
        f"/agents/{agent_id}/trade-intents/quote?symbol={SYMBOL}&usdcAmount={QUOTE_USDC}"
        f"&exits={urlquote(ladder_param())}"
    )
    signed = signed_open(chain.manifest, agent_id, key, SYMBOL, nonce=0, usdc=QUOTE_USDC)
    verify = json.dumps({"primaryType": "OpenPosition", **signed.body}).encode()
    return {
        "health": [load.Request("GET", "/health")],
        "quote": [load.Request("GET", quote)],
        "verify": [load.Request("POST", f"/agents/{agent_id}/intents/verify", verify)],
    }


def check_answers(url: str, requests: dict[str, list[load.Request]]) -> None:
    """Each request once: 200, and verify says the signature and every check pass (a benchmark of
    error answers would measure the wrong path)."""
    with httpx.Client(base_url=url, timeout=30) as client:
        for name, reqs in requests.items():
            r = reqs[0]
            answer = client.request(
                r.method,
                r.path,
                content=r.body or None,
                headers={"Content-Type": "application/json"} if r.body else {},
            )
            if answer.status_code != 200:
                raise RuntimeError(f"{name}: {answer.status_code} {answer.text[:300]}")
            if name == "verify" and not answer.json()["ok"]:
                raise RuntimeError(f"verify: the bench intent fails a check: {answer.text[:500]}")
            if name == "quote" and not all(c["ok"] for c in answer.json()["checks"]):
                raise RuntimeError(f"quote: a check fails: {answer.text[:500]}")


def bench_http(
    chain: Chain, database_url: str, config: HttpConfig, progress: Callable[[str], None]
) -> HttpResult:
    requests = requests_for(chain)
    result = HttpResult(quote_path=requests["quote"][0].path, verify_path=requests["verify"][0].path)
    with ServerProcess(chain.manifest, database_url, free_port()) as server:
        check_answers(server.url, requests)
        order = ["health", "quote", "verify"]
        for r in range(config.rounds):
            rotated = order[r % 3 :] + order[: r % 3]
            for name in rotated:
                run = load.run(
                    server.url,
                    requests[name],
                    connections=config.connections,
                    warmup_s=config.warmup_s,
                    duration_s=config.duration_s,
                    processes=config.processes,
                    server_pid=server.pid,
                    use_wrk=config.use_wrk,
                )
                bad = {s: n for s, n in run.statuses.items() if s != 200}
                if bad:
                    raise RuntimeError(f"{name}: non-200 answers under load: {bad}")
                result.runs.setdefault(name, []).append(run)
                progress(
                    f"  round {r + 1} {name:6}: {run.rate:,.0f}/s, p50 {run.p50_ms:.1f} ms, "
                    f"p99 {run.p99_ms:.1f} ms, server CPU {run.server_cpu_share:.2f} cores, "
                    f"{run.server_cpu_per_request_us:,.0f} µs/request"
                )
        for name in ("health", "quote"):
            result.unloaded[name] = load.run(
                server.url,
                requests[name],
                connections=1,
                warmup_s=0.5,
                duration_s=2.0,
                processes=1,
                server_pid=server.pid,
                use_wrk=config.use_wrk,
            )
    return result


# ---------------------------------------------------------------------- in process


@dataclass
class VerifyResult:
    relayer_rates: list[float]
    raw_rates: list[float]

    @property
    def relayer(self) -> float:
        return median(self.relayer_rates)

    @property
    def raw(self) -> float:
        return median(self.raw_rates)


Verifier = Callable[[], bool]


@contextlib.contextmanager
def verifiers(chain: Chain, tmp: Path) -> Iterator[tuple[Verifier, Verifier]]:
    """(the relayer's own path, raw coincurve) for one signed OpenPosition of the chain's first agent.

    The relayer's path: the submit body → `Built` (parse, the agent from state, the typed struct) →
    digest → recover → compare with the registered signer. Raw: coincurve's recover of the same
    digest, precomputed. The relayer's services run (no keeper) so that its state is the real one."""
    from relayer.service import build_services  # heavy import, only here

    agent_id, key = chain.agents[0]
    signed = signed_open(chain.manifest, agent_id, key, SYMBOL, nonce=0, usdc=QUOTE_USDC)
    home = Path(tempfile.mkdtemp(prefix="verify-", dir=tmp))
    settings = Settings(
        home=home / "home",
        rpc_url=chain.anvil.url,
        database_url=f"sqlite:///{home / 'verify.db'}",
        api_port=free_port(),
        keeper=False,
    )
    services = build_services(settings, chain.manifest)
    services.start()
    try:
        body = dict(signed.body)
        domain = services.domain

        def relayer_verify() -> bool:
            b = services.intents.built(agent_id, "OpenPosition", body)
            assert b.signature is not None
            digest = b.digest(domain)
            return eip712.recover_signer(digest, b.signature).lower() == b.agent.signer.lower()

        digest = eip712.digest(domain, signed.intent)
        sig = eip712.parse_signature("0x" + signed.signature.hex())
        compact = sig.r.to_bytes(32, "big") + sig.s.to_bytes(32, "big") + bytes([sig.v - 27])
        expected = PublicKey.from_signature_and_message(compact, digest, hasher=None).format(False)

        def raw_recover() -> bool:
            key = PublicKey.from_signature_and_message(compact, digest, hasher=None)
            return key.format(False) == expected

        if not relayer_verify() or not raw_recover():
            raise RuntimeError("the bench intent's signature does not verify")
        yield relayer_verify, raw_recover
    finally:
        services.close()


def bench_verify_in_process(chain: Chain, tmp: Path, rounds: int = 5, slice_s: float = 0.5) -> VerifyResult:
    """The relayer's path against raw coincurve, alternated in slices; medians of the rates."""
    with verifiers(chain, tmp) as (relayer_verify, raw_recover):
        rate(relayer_verify, 0.2)  # warm up
        rate(raw_recover, 0.2)
        relayer_rates, raw_rates = [], []
        for _ in range(rounds):
            relayer_rates.append(rate(relayer_verify, slice_s))
            raw_rates.append(rate(raw_recover, slice_s))
        return VerifyResult(relayer_rates, raw_rates)


def rate(fn: Callable[[], bool], seconds: float) -> float:
    n = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(50):
            fn()
        n += 50
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - started)
