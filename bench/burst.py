"""A burst of new agents, and one quiet agent, as outside clients see the relayer (issue 11).

Burst: N agents, registered and active on a fresh Anvil before the clock starts, each quote → sign →
submit ONE OpenPosition with a stop-loss ladder: C at a time, from P client processes (C/P asyncio
httpx clients each). Signing happens in the clients with eth-account, on the quote's `typedData`
unchanged. The clock starts when every client process is connected and released at the same wall
time. Figures: intents answered 2xx per second over the burst (first request → last answer),
latency of the submit alone and of quote + sign + submit, the non-2xx answers by code, the relayer's
and Anvil's CPU seconds, and the time until the last 2xx intent's PositionOpened is on chain (a
thread in this process polls the chain's logs every 10 ms; it asks the relayer nothing).

Single: one agent, M sequential cycles of quote → sign → submit from one client process: an open,
then a reduce that closes it, on the five symbols in turn. The "nothing slower for one quiet agent"
reference.

Submits carry no `Prefer` header unless asked (`prefer_wait`): the relayer's default applies (it
answers once the intent is confirmed, or 202 after 10 s), as for any client that does not set it.

The client processes are `bench/burst_client.py`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench import load
from bench.onchain import POSITION_OPENED, LogWatcher
from bench.profile import Profile, finish_recording, start_recording
from bench.report import percentile
from bench.serve import ServerProcess
from bench.stack import Chain, DbKind, fresh_chain, fresh_database
from relayer.chain.anvil import free_port
from relayer.domain.ladder import exits_to_json
from relayer.eip712 import ExitRule, TriggerType
from relayer.store.db import make_engine
from relayer.store.models import Intent, IntentStatus

REPO = Path(__file__).resolve().parent.parent
SYMBOLS = ("NVDA", "AAPL", "TSLA", "MSFT", "SPY")
OPEN_USDC = 20
# The prime track requires a take-profit and a stop-loss (≤ 25 %).
BURST_LADDER = (
    ExitRule(TriggerType.TAKE_PROFIT, 3_000, 5_000),
    ExitRule(TriggerType.STOP_LOSS, -2_500, 10_000),
)

Progress = Callable[[str], None]
Answers = tuple[list[dict[str, Any]], float]  # every client answer, the clients' CPU seconds


# ====================================================================== pure parts


def split(items: Sequence[Any], parts: int) -> list[list[Any]]:
    """Round-robin into `parts` non-empty lists (fewer when there are fewer items)."""
    parts = max(1, min(parts, len(items)))
    return [list(items[i::parts]) for i in range(parts)]


@dataclass(frozen=True)
class Summary:
    """What a list of client answers says. Each answer: `start` (quote sent), `submit` (submit sent),
    `end` (submit answered), wall times; `code` the HTTP status of the submit (or of the quote when
    the quote was refused: then `submit` is None); `label` e.g. `201 confirmed` or `429 rate_limited`."""

    sent: int
    ok: int
    seconds: float
    submit_ms: list[float]
    total_ms: list[float]
    not_ok: Counter[str]
    labels: Counter[str]

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    def p(self, which: str, q: float) -> float:
        values = self.submit_ms if which == "submit" else self.total_ms
        return percentile(values, q) if values else 0.0


def summarise(answers: Sequence[dict[str, Any]]) -> Summary:
    if not answers:
        raise ValueError("no answers")
    start = min(a["start"] for a in answers)
    end = max(a["end"] for a in answers)
    ok = [a for a in answers if 200 <= a["code"] < 300]
    return Summary(
        sent=len(answers),
        ok=len(ok),
        seconds=end - start,
        submit_ms=[(a["end"] - a["submit"]) * 1000 for a in ok],
        total_ms=[(a["end"] - a["start"]) * 1000 for a in ok],
        not_ok=Counter(a["label"] for a in answers if not 200 <= a["code"] < 300),
        labels=Counter(a["label"] for a in answers),
    )


# ====================================================================== the client processes


def run_clients(
    url: str,
    groups: list[list[dict[str, Any]]],
    concurrency: int,
    prefer_wait: float | None,
    start_in_s: float = 0.3,
    on_start: Callable[[], None] = lambda: None,
) -> Answers:
    """One client process per group, `concurrency` split over them; once every one has its
    connections open and says READY, all are released at one wall time. Returns every answer and the
    clients' CPU seconds."""
    n = len(groups)
    shares = [max(1, concurrency // n + (1 if i < concurrency % n else 0)) for i in range(n)]
    procs = []
    with tempfile.TemporaryDirectory(prefix="alphagrid-bench-burst-") as tmp:
        for i, jobs in enumerate(groups):
            path = Path(tmp) / f"client-{i}.json"
            path.write_text(
                json.dumps(
                    {
                        "url": url,
                        "jobs": jobs,
                        "concurrency": shares[i],
                        "prefer_wait": prefer_wait,
                    }
                )
            )
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bench.burst_client", str(path)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    cwd=REPO,
                )
            )
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline()
            if line.strip() != "READY":
                _, err = p.communicate(timeout=60)
                raise RuntimeError(f"a burst client did not start: {line!r}\n{err[-3000:]}")
        on_start()  # every client is ready: what the caller measures starts here
        start_at = f"{time.time() + start_in_s}\n"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(start_at)
            p.stdin.flush()
        answers: list[dict[str, Any]] = []
        cpu = 0.0
        for p in procs:
            out, err = p.communicate(timeout=1800)
            if p.returncode != 0:
                raise RuntimeError(f"a burst client failed ({p.returncode}):\n{err[-3000:]}")
            doc = json.loads(out)
            answers += doc["answers"]
            cpu += doc["cpu_s"]
    return answers, cpu


# ====================================================================== burst


@dataclass(frozen=True)
class BurstConfig:
    agents: int = 1000
    concurrency: int = 64
    processes: int = 4
    block_time_s: int | None = None  # None: automine
    prefer_wait: float | None = None  # None: no Prefer header (the relayer's default)
    settle_timeout_s: float = 300.0
    db: DbKind = "sqlite"
    api_processes: int = 0  # ≥ 1: `serve --api-processes N` (PostgreSQL)


@dataclass
class BurstResult:
    config: BurstConfig
    summary: Summary
    setup_s: float
    started: float  # wall time of the first quote
    last_on_chain_s: float | None  # first quote → the last 2xx intent's PositionOpened seen on chain
    on_chain: int  # 2xx intents whose PositionOpened is on chain
    relayer_cpu_s: float  # the relayer's processes (the supervisor's children too)
    anvil_cpu_s: float
    client_cpu_s: float
    window_s: float  # first quote → last answer or last open seen, whichever is later (the CPU window)
    database_cpu_s: float = 0.0  # PostgreSQL's server processes (0 on SQLite: in the relayer's process)
    role_cpu_s: dict[str, float] = field(default_factory=dict)  # `--api-processes`: engine, api (all)
    phases: dict[str, tuple[float, float]] = field(default_factory=dict)  # `submit_phases`
    wall_s: float = 0.0
    profile: Profile | None = field(default=None)


def burst_jobs(chain: Chain) -> list[dict[str, Any]]:
    exits = json.dumps(exits_to_json(BURST_LADDER), separators=(",", ":"))
    return [
        {
            "agent": agent_id,
            "key": key,
            "kind": "OpenPosition",
            "params": {"symbol": SYMBOLS[i % len(SYMBOLS)], "usdcAmount": str(OPEN_USDC), "exits": exits},
        }
        for i, (agent_id, key) in enumerate(chain.agents)
    ]


Spy = Callable[[int], Callable[[], None]]  # started with the relayer's pid at the clients' release


def run_burst(config: BurstConfig, progress: Progress, spy: Spy | None = None) -> BurstResult:
    """`spy(pid)` (the profiler) starts when the clients are released; what it returns is called
    once they are done."""
    began = time.perf_counter()
    with (
        fresh_chain(config.agents, config.block_time_s) as chain,
        tempfile.TemporaryDirectory(prefix="alphagrid-bench-") as tmp,
    ):
        jobs = burst_jobs(chain)
        agent_ids = {j["agent"] for j in jobs}
        with (
            fresh_database(config.db, Path(tmp)) as database_url,
            ServerProcess(chain.manifest, database_url, free_port(), config.api_processes) as server,
        ):
            setup_s = time.perf_counter() - began
            progress(f"  setup (Anvil, contracts, {config.agents} agents, relayer start): {setup_s:.1f} s")
            watcher = LogWatcher(chain.w3, chain.router, POSITION_OPENED, 2, chain.w3.eth.block_number + 1)
            watcher.start()
            anvil_pid = chain.anvil.process.pid if chain.anvil.process else None
            cpu0 = [0.0, 0.0, 0.0]
            roles0: dict[str, float] = {}
            finish: list[Callable[[], None]] = []

            def on_start() -> None:  # CPU counted from the release of the clients, not their start-up
                cpu0[:] = [
                    load.tree_cpu_s(server.pid),
                    load.process_cpu_s(anvil_pid) if anvil_pid else 0.0,
                    load.named_cpu_s("postgres") if config.db == "postgres" else 0.0,
                ]
                roles0.update(load.role_cpu_s(server.pid))
                if spy is not None:
                    finish.append(spy(server.pid))

            groups = split(jobs, config.processes)
            answers, client_cpu = run_clients(
                server.url, groups, config.concurrency, config.prefer_wait, on_start=on_start
            )
            for done in finish:
                done()
            summary = summarise(answers)
            progress(
                f"  {summary.ok}/{summary.sent} answered 2xx in {summary.seconds:.1f} s "
                f"→ {summary.rate:.1f}/s; waiting for the opens on chain"
            )
            ok_agents = {a["agent"] for a in answers if 200 <= a["code"] < 300}
            watcher.wait_for(ok_agents, config.settle_timeout_s, idle_s=30)
            watcher.stop()
            cpu = (
                load.tree_cpu_s(server.pid) - cpu0[0],
                (load.process_cpu_s(anvil_pid) - cpu0[1]) if anvil_pid else 0.0,
                (load.named_cpu_s("postgres") - cpu0[2]) if config.db == "postgres" else 0.0,
            )
            roles = {r: c - roles0.get(r, 0.0) for r, c in load.role_cpu_s(server.pid).items()}
            phases = submit_phases(database_url, answers)
        started = min(a["start"] for a in answers)
        opened = [s for k, s in watcher.seen.items() if k in ok_agents]
        stray = [k for k in watcher.seen if k not in agent_ids]
        if stray:
            raise RuntimeError(f"positions opened for agents outside the burst: {stray[:5]}")
        last_seen = max((s.at for s in opened), default=None)
        last_end = max(a["end"] for a in answers)
        return BurstResult(
            config=config,
            summary=summary,
            setup_s=setup_s,
            started=started,
            last_on_chain_s=(last_seen - started)
            if last_seen is not None and len(opened) == len(ok_agents)
            else None,
            on_chain=len(opened),
            relayer_cpu_s=cpu[0],
            anvil_cpu_s=cpu[1],
            client_cpu_s=client_cpu,
            database_cpu_s=cpu[2],
            role_cpu_s=roles,
            phases=phases,
            window_s=max(last_end, last_seen or last_end) - started,
            wall_s=time.perf_counter() - began,
        )


PHASES = ("posted → recorded", "recorded → sent", "sent → confirmed", "confirmed → answered")


def submit_phases(database_url: str, answers: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """Where a 2xx submit's time went, p50 and p90 in ms: from the client's post to the intent recorded
    `received`, to `submitted` (its transaction recorded), to `confirmed`, and to the client's answer —
    the relayer's own status history against the clients' clocks (one machine, one clock)."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(Intent.agent_id, IntentStatus.status, func.min(IntentStatus.at))
                .join(IntentStatus, IntentStatus.intent_id == Intent.id)
                .group_by(Intent.agent_id, IntentStatus.status)
            ).all()
    finally:
        engine.dispose()
    times: dict[int, dict[str, float]] = {}
    for agent, status, at in rows:
        times.setdefault(int(agent), {})[str(status)] = at.timestamp()
    spans: dict[str, list[float]] = {name: [] for name in PHASES}
    for a in answers:
        t = times.get(a["agent"], {})
        if not 200 <= a["code"] < 300 or a.get("submit") is None or "confirmed" not in t:
            continue
        marks = (a["submit"], t["received"], t["submitted"], t["confirmed"], a["end"])
        for name, begin, end in zip(PHASES, marks, marks[1:], strict=False):
            spans[name].append((end - begin) * 1000)
    return {
        name: (percentile(values, 0.5), percentile(values, 0.9)) for name, values in spans.items() if values
    }


def profile_burst(config: BurstConfig, out: Path, seconds: float, progress: Progress) -> Profile:
    """The same burst again with py-spy on the relayer's process (the thread holding the GIL), from
    the clients' release on."""
    holder: dict[str, Profile] = {}
    title = (
        f"burst ({config.agents} agents, {config.concurrency} concurrent): the relayer process, the "
        "thread holding the GIL"
    )

    def spy(pid: int) -> Callable[[], None]:
        recording = start_recording(pid, seconds, out, gil=True)

        def done() -> None:
            holder["p"] = finish_recording(recording, out, title, seconds)

        return done

    run_burst(config, progress, spy)
    return holder["p"]


# ====================================================================== single


@dataclass
class SingleResult:
    cycles: int
    summary: Summary
    setup_s: float
    wall_s: float


def single_jobs(chain: Chain, cycles: int) -> list[dict[str, Any]]:
    """Open, then reduce-to-close, on the five symbols in turn (the reduce quote defaults to the whole
    position, found by symbol)."""
    agent_id, key = chain.agents[0]
    exits = json.dumps(exits_to_json(BURST_LADDER), separators=(",", ":"))
    jobs = []
    for i in range(cycles):
        symbol = SYMBOLS[(i // 2) % len(SYMBOLS)]
        if i % 2 == 0:
            params = {"symbol": symbol, "usdcAmount": str(OPEN_USDC), "exits": exits}
            jobs.append({"agent": agent_id, "key": key, "kind": "OpenPosition", "params": params})
        else:
            jobs.append(
                {"agent": agent_id, "key": key, "kind": "ReducePosition", "params": {"symbol": symbol}}
            )
    return jobs


def run_single(
    cycles: int,
    progress: Progress,
    block_time_s: int | None = None,
    db: DbKind = "sqlite",
    api_processes: int = 0,
) -> SingleResult:
    began = time.perf_counter()
    with (
        fresh_chain(1, block_time_s) as chain,
        tempfile.TemporaryDirectory(prefix="alphagrid-bench-") as tmp,
        fresh_database(db, Path(tmp)) as database_url,
        ServerProcess(chain.manifest, database_url, free_port(), api_processes) as server,
    ):
        setup_s = time.perf_counter() - began
        answers, _cpu = run_clients(server.url, [single_jobs(chain, cycles)], 1, None)
    summary = summarise(answers)
    progress(
        f"  {summary.ok}/{summary.sent} 2xx; submit p50 {summary.p('submit', 0.5):.0f} ms, "
        f"p99 {summary.p('submit', 0.99):.0f} ms"
    )
    return SingleResult(cycles, summary, setup_s, time.perf_counter() - began)
