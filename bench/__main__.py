"""The relayer against its limits, side by side in one run (issue 6).

    python -m bench            # every figure, about 7 minutes on 2 cores (scripts/bench does the same)
    python -m bench --full     # adds price update → exit with 100k open positions (~20 more minutes)
    python -m bench --only burst,gapdown,single,crash   # issue 11's peaks (or --peaks with the rest)

The peaks (issue 11), each on a fresh Anvil with the relayer in its own process and measured from
outside: `burst` (bench/burst.py: 1,000 new agents quote+sign+submit one open, 64 concurrent from
4 client processes; --burst-agents/--burst-concurrency/--burst-processes/--block-time),
`gapdown` (bench/gapdown.py: one price update 8 % down crossing 1,000 stops; --gap-positions),
`single` (one quiet agent, 50 sequential intents; --single-cycles) and `crash` (bench/crash.py: a
short bench.soak run and audit; --crash-intents/--crash-agents/--crash-kills/--crash-db).

Each figure is measured next to what it is compared with, in the same run: quote and verify over HTTP
against the same server's /health, in-process verification against raw coincurve, relayed intents
against a bare loop on the same kind of chain, the keeper's tick at 100k against 1k positions, gas
against other intent settlers. The table goes to stdout and, with the machine's details, to
bench/results/<date>.md. Figures that miss their goal are profiled (py-spy) and the summary is part
of the results. Benchmarks print figures; nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import relayer
from bench import burst as burstbench
from bench import cli as clibench
from bench import gapdown as gapbench
from bench import gas as gasbench
from bench import keeper as keeperbench
from bench import load
from bench.api import (
    HttpConfig,
    HttpResult,
    VerifyResult,
    bench_http,
    bench_verify_in_process,
    rate,
    requests_for,
    verifiers,
)
from bench.crash import CrashResult, run_crash
from bench.profile import Profile, py_spy, record
from bench.relay import RelayResult, bench_relay, relayer_run
from bench.report import (
    Figure,
    Report,
    fmt_ms,
    fmt_rate,
    fmt_ratio,
    machine,
    median,
    ratio,
    results_path,
    write,
)
from bench.serve import ServerProcess
from bench.soak.run import SoakConfig
from bench.stack import fresh_chain
from relayer.chain.anvil import free_port

GOAL_QUOTE = 0.5
GOAL_QUOTE_P99_MS = 10.0
GOAL_VERIFY = 0.5
GOAL_VERIFY_HTTP = 0.2
GOAL_RELAY = 0.8
GOAL_E2E_P50_MS = 250.0
GOAL_E2E_P99_MS = 1000.0
GOAL_TICK = 2.0
GOAL_OPEN_GAS = 170_000
GOAL_RSS = 1024**3
GOAL_BURST_RATE = 250.0
GOAL_BURST_P99_MS = 1000.0
GOAL_GAPDOWN_MS = 2000.0
PARTS = ("http", "relay", "e2e", "keeper", "gas", "cli")
# Issue 11's figures: not in a plain `python -m bench` (they take minutes); ask with --only or --peaks.
PEAK_PARTS = ("burst", "gapdown", "single", "crash")


Progress = Callable[[str], None]


def _progress(began: float) -> Progress:
    def progress(msg: str) -> None:
        print(f"[{time.perf_counter() - began:6.1f}s] {msg}", flush=True)

    return progress


# ---------------------------------------------------------------------- figures from results


def http_figures(h: HttpResult) -> list[Figure]:
    health = h.rate("health")
    quote, verify = h.rate("quote"), h.rate("verify")
    q_ratio, v_ratio = ratio(quote, health), ratio(verify, health)
    p99 = h.p99("quote")
    conns = h.runs["quote"][0].connections
    # The same comparison by the server's CPU time per request: steadier when other work on the
    # machine takes CPU away from the server (its rate then drops, its cost per request does not).
    cpu = h.cpu_per_request_us("health")
    q_cpu, v_cpu = ratio(cpu, h.cpu_per_request_us("quote")), ratio(cpu, h.cpu_per_request_us("verify"))
    return [
        Figure(
            "quote requests/s (HTTP, open with exits)",
            fmt_rate(quote),
            f"/health {fmt_rate(health)} → {fmt_ratio(q_ratio)} (by server CPU per request "
            f"{fmt_ratio(q_cpu)})",
            f"≥ {GOAL_QUOTE}×",
            q_ratio >= GOAL_QUOTE,
        ),
        Figure(
            f"quote p99 under load ({conns} connections)",
            fmt_ms(p99),
            f"/health p99 {fmt_ms(h.p99('health'))}; one connection: quote p99 "
            f"{fmt_ms(h.unloaded['quote'].p99_ms)}, /health {fmt_ms(h.unloaded['health'].p99_ms)}",
            f"≤ {GOAL_QUOTE_P99_MS:g} ms",
            p99 <= GOAL_QUOTE_P99_MS,
        ),
        Figure(
            "verify requests/s (HTTP POST …/intents/verify)",
            fmt_rate(verify),
            f"/health {fmt_rate(health)} → {fmt_ratio(v_ratio)} (by server CPU per request "
            f"{fmt_ratio(v_cpu)})",
            f"≥ {GOAL_VERIFY_HTTP}×",
            v_ratio >= GOAL_VERIFY_HTTP,
        ),
    ]


def verify_figure(v: VerifyResult) -> Figure:
    r = ratio(v.relayer, v.raw)
    return Figure(
        "in-process verify/s (body → digest → recover → compare)",
        fmt_rate(v.relayer),
        f"raw coincurve recover {fmt_rate(v.raw)} → {fmt_ratio(r)}",
        f"≥ {GOAL_VERIFY}×",
        r >= GOAL_VERIFY,
    )


def relay_figure(r: RelayResult) -> Figure:
    relayer = median([x.rate for x in r.relayer])
    bare = median([x.rate for x in r.bare])
    q = ratio(relayer, bare)
    return Figure(
        f"relayed intents/s end to end ({r.agents} agents × {r.per_agent})",
        fmt_rate(relayer),
        f"bare eth_abi loop, one key {fmt_rate(bare)} → {fmt_ratio(q)}",
        f"≥ {GOAL_RELAY}×",
        q >= GOAL_RELAY,
    )


def e2e_figure(e: keeperbench.E2EResult) -> Figure:
    p50, p99 = median(e.latencies_ms), keeperbench.percentile(e.latencies_ms, 0.99)
    return Figure(
        f"price update → exit confirmed, {e.positions:,} open positions",
        f"p50 {fmt_ms(p50)}, p99 {fmt_ms(p99)}",
        f"{e.updates} updates; keeper's share (receipt → exit sent) p50 {fmt_ms(median(e.sent_ms))}",
        f"p50 ≤ {GOAL_E2E_P50_MS:g} ms, p99 ≤ 1 s",
        p50 <= GOAL_E2E_P50_MS and p99 <= GOAL_E2E_P99_MS,
    )


def tick_figure(ticks: list[keeperbench.TickResult]) -> Figure:
    base, last = ticks[0], ticks[-1]
    r = last.median_us / base.median_us
    middle = ", ".join(f"{t.n // 1000}k {t.median_us:.0f} µs" for t in ticks)
    return Figure(
        f"trigger evaluation per price update, {last.n // 1000}k vs {base.n // 1000}k positions",
        fmt_ratio(r),
        f"itself: {middle} (a scan at {last.n // 1000}k: {last.scan_median_us:,.0f} µs)",
        f"≤ {GOAL_TICK:g}×",
        r <= GOAL_TICK,
    )


GAS_ROWS = (
    ("open (typical / first ever)", ("openPosition", "openPosition_firstEver")),
    ("add", ("addToPosition",)),
    ("reduce (half / close)", ("reducePosition_partial", "reducePosition_close")),
    ("ladder update", ("updateExitLadder",)),
    (
        "exit (stop-loss / take-profit 50 % / two rules)",
        (
            "executeExit_stopLossClose",
            "executeExit_takeProfitPartial",
            "executeExit_twoRules",
        ),
    ),
)


def gas_figures(g: dict[str, gasbench.GasFigure]) -> list[Figure]:
    """Transaction totals (base, calldata, capped refund included); the goal is on the typical open."""
    out = []
    for label, names in GAS_ROWS:
        is_open = names[0] == "openPosition"
        out.append(
            Figure(
                f"gas per {label}",
                " / ".join(f"{g[n].total:,}" for n in names),
                "UniswapX execute ≈ 170k (149k + 21k), CoW ≈ 125k per trade",
                f"≤ {GOAL_OPEN_GAS:,} (typical)" if is_open else "",
                g[names[0]].total <= GOAL_OPEN_GAS if is_open else None,
            )
        )
    return out


def memory_figure(m: dict[str, int]) -> Figure:
    total = m["rss_bytes"]
    return Figure(
        f"relayer RSS with {m['rules']:,} indexed rules",
        f"{total / 1024**2:,.0f} MiB",
        f"index alone +{m['index_bytes'] / 1024**2:,.0f} MiB ({m['index_bytes'] / m['rules']:.0f} B/rule), "
        f"index + positions +{m['with_state_bytes'] / 1024**2:,.0f} MiB",
        "≤ 1 GB",
        total <= GOAL_RSS,
    )


def burst_figures(b: burstbench.BurstResult) -> list[Figure]:
    s, c = b.summary, b.config
    refused = ", ".join(f"{k} × {v}" for k, v in s.not_ok.most_common()) or "none"
    mining = f"block time {c.block_time_s} s" if c.block_time_s else "automine"
    on_chain = (
        f"last open on chain {b.last_on_chain_s:.1f} s after the first quote"
        if b.last_on_chain_s is not None
        else f"only {b.on_chain} of {s.ok} 2xx opens on chain"
    )
    p99 = s.p("submit", 0.99)
    return [
        Figure(
            f"burst: {c.agents:,} new agents quote+sign+submit an open, {c.concurrency} concurrent, "
            "answered 2xx/s",
            fmt_rate(s.rate),
            f"{s.ok:,}/{s.sent:,} 2xx in {s.seconds:.1f} s (non-2xx: {refused}); {on_chain}; CPU over "
            f"{b.window_s:.1f} s: relayer {b.relayer_cpu_s:.1f} s "
            f"({b.relayer_cpu_s / max(1, s.sent) * 1000:.0f} ms per intent), Anvil {b.anvil_cpu_s:.1f} s, "
            f"clients {b.client_cpu_s:.1f} s"
            + (f", PostgreSQL {b.database_cpu_s:.1f} s" if c.db == "postgres" else "")
            + (
                " (relayer: engine "
                + f"{b.role_cpu_s.get('engine', 0.0) / max(1, s.sent) * 1000:.1f} ms, API processes "
                + f"{b.role_cpu_s.get('api', 0.0) / max(1, s.sent) * 1000:.1f} ms per intent)"
                if b.role_cpu_s
                else ""
            )
            + f"; {mining}; {relayer_shape(c.db, c.api_processes)}",
            f"≥ {GOAL_BURST_RATE:g}/s",
            s.rate >= GOAL_BURST_RATE and s.ok == s.sent,
        ),
        Figure(
            "burst: submit latency p50 / p99",
            f"{fmt_ms(s.p('submit', 0.5))} / {fmt_ms(p99)}",
            f"quote+sign+submit p50 {fmt_ms(s.p('total', 0.5))}, p99 {fmt_ms(s.p('total', 0.99))}; answers: "
            + ", ".join(f"{k} × {v}" for k, v in s.labels.most_common()),
            f"p99 ≤ {GOAL_BURST_P99_MS / 1000:g} s",
            p99 <= GOAL_BURST_P99_MS,
        ),
    ]


def relayer_shape(db: str, api_processes: int) -> str:
    if api_processes:
        return f"relayer: engine + {api_processes} API processes, {db}"
    return f"relayer: one process, {db}"


def gapdown_figures(g: gapbench.GapResult) -> list[Figure]:
    last = g.last_close_ms
    return [
        Figure(
            f"gap-down: one price update 8 % down crossing {g.positions:,} stops → all closed on chain",
            fmt_ms(last) if last is not None else f"{g.closed:,}/{g.positions:,} closed",
            f"per position p50 {fmt_ms(g.p(0.5))}, p99 {fmt_ms(g.p(0.99))}; {g.keeper_txs:,} keeper "
            f"transactions ({g.keeper_reverted} reverted) in {g.blocks:,} blocks, {g.gas_used:,} gas "
            f"({g.gas_used // max(1, g.closed):,} per position); CPU relayer {g.relayer_cpu_s:.1f} s, "
            f"Anvil {g.anvil_cpu_s:.1f} s",
            f"≤ {GOAL_GAPDOWN_MS / 1000:g} s",
            last is not None and last <= GOAL_GAPDOWN_MS,
        )
    ]


def single_figure(r: burstbench.SingleResult) -> Figure:
    s = r.summary
    return Figure(
        f"one quiet agent: {r.cycles} sequential quote+sign+submit (open, reduce-to-close), submit p50 / p99",
        f"{fmt_ms(s.p('submit', 0.5))} / {fmt_ms(s.p('submit', 0.99))}",
        f"quote+sign+submit p50 {fmt_ms(s.p('total', 0.5))}, p99 {fmt_ms(s.p('total', 0.99))}; "
        + ", ".join(f"{k} × {v}" for k, v in s.labels.most_common()),
        "within 10 % of the before figure",
        None,
    )


def crash_figure(c: CrashResult) -> Figure:
    cfg = c.soak.config
    pending_i, pending_t = c.pending
    ok = c.soak.findings.ok and not c.soak.client_errors
    return Figure(
        f"crash: {cfg.intents} intents, {cfg.agents} agents, {cfg.kills} SIGKILLs ({cfg.db}): "
        "lost / doubled / pending",
        f"{c.lost} / {c.doubled} / {pending_i} + {pending_t} tx",
        f"{c.rate:.1f} intents/s sent, {c.confirmed_rate:.1f} confirmed/s (kills and restarts included); "
        f"audit {'clean' if ok else 'found problems: ' + ', '.join(c.soak.findings.problems())}",
        "0 / 0 / 0, audit clean",
        ok,
    )


# ---------------------------------------------------------------------- profiles of what missed


def profile_http(tmp: Path, names: Sequence[str], config: HttpConfig, progress: Progress) -> list[Profile]:
    """py-spy on the relayer's process (GIL holder only: the server is bound by one core of Python)
    while each missed endpoint is under the same load as in its measurement."""
    out = []
    with fresh_chain(1) as chain:
        requests = requests_for(chain)
        with ServerProcess(chain.manifest, f"sqlite:///{tmp / 'profile.db'}", free_port()) as server:
            for name in names:
                seconds = config.duration_s + 1

                def workload(name: str = name, seconds: float = seconds) -> load.LoadResult:
                    return load.run(
                        server.url,
                        requests[name],
                        connections=config.connections,
                        warmup_s=0,
                        duration_s=seconds - 0.5,
                        processes=config.processes,
                        use_wrk=config.use_wrk,
                    )

                p, _ = record(
                    server.pid,
                    seconds,
                    tmp / f"{name}.txt",
                    workload,
                    gil=True,
                    title=f"{name} over HTTP: the relayer process, the thread holding the GIL",
                )
                out.append(p)
    return out


def profile_verify(tmp: Path) -> Profile:
    """py-spy on this process while it runs the in-process verify loop."""
    with fresh_chain(1) as chain, verifiers(chain, tmp) as (relayer_verify, _raw):
        p, _ = record(
            os.getpid(),
            3,
            tmp / "verify-inproc.txt",
            lambda: rate(relayer_verify, 3.5),
            gil=True,
            title="in-process verify: this process, the verify loop only",
        )
    return p


def profile_relay(tmp: Path, agents: int, per_agent: int, progress: Progress) -> Profile:
    """py-spy on the relayer's process during a relay run. The process is bound by one core of
    Python during it, so the thread holding the GIL is what limits it."""
    holder: dict[str, Profile] = {}

    def around(pid: int, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        p, result = record(
            pid,
            8,
            tmp / "relay.txt",
            run,
            gil=True,
            title="relay run: the relayer process (CPU-bound here), the thread holding the GIL",
        )
        holder["p"] = p
        return result

    relayer_run(agents, per_agent, lambda _m: None, around=around)
    return holder["p"]


# ---------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="also price update → exit with 100k positions")
    parser.add_argument("--e2e-sizes", default="1000,10000", help="open positions for price update → exit")
    parser.add_argument("--e2e-updates", type=int, default=100, help="price updates per e2e size")
    parser.add_argument("--tick-sizes", default="1000,10000,100000")
    parser.add_argument("--memory-rules", type=int, default=1_000_000)
    parser.add_argument("--agents", type=int, default=50, help="agents in the relay run")
    parser.add_argument("--per-agent", type=int, default=3, help="intents per agent in the relay run")
    parser.add_argument("--relay-rounds", type=int, default=2, help="A/B pairs, each on a new Anvil")
    parser.add_argument("--http-rounds", type=int, default=3)
    parser.add_argument("--http-seconds", type=float, default=4.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--no-wrk", action="store_true", help="use the Python load generator even if wrk is on PATH"
    )
    parser.add_argument("--no-profile", action="store_true", help="do not profile the figures that miss")
    parser.add_argument(
        "--only", default="", help=f"comma-separated parts to run: {', '.join(PARTS + PEAK_PARTS)}"
    )
    parser.add_argument("--peaks", action="store_true", help=f"also {', '.join(PEAK_PARTS)} (issue 11)")
    parser.add_argument("--burst-agents", type=int, default=1000, help="new agents in the burst")
    parser.add_argument("--burst-concurrency", type=int, default=64, help="intents in flight at once")
    parser.add_argument("--burst-processes", type=int, default=4, help="client processes of the burst")
    parser.add_argument(
        "--burst-prefer-wait",
        type=float,
        default=None,
        help="send `Prefer: wait=N` with burst submits (default: no header, the relayer's default)",
    )
    parser.add_argument(
        "--block-time",
        type=int,
        default=None,
        help="burst/gapdown/single: Anvil block time s (default automine)",
    )
    parser.add_argument("--gap-positions", type=int, default=1000, help="open positions in the gap-down")
    parser.add_argument("--single-cycles", type=int, default=50, help="sequential intents of the quiet agent")
    parser.add_argument("--crash-intents", type=int, default=200)
    parser.add_argument("--crash-agents", type=int, default=8)
    parser.add_argument("--crash-kills", type=int, default=3)
    parser.add_argument("--crash-db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--peaks-db",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="burst and single: the relayer's database",
    )
    parser.add_argument(
        "--api-processes",
        type=int,
        default=0,
        help="burst and single: `serve --api-processes N` (one engine + N API processes; needs "
        "--peaks-db postgres)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="results file (default bench/results/<date>.md)"
    )
    args = parser.parse_args(argv)

    began = time.perf_counter()
    progress = _progress(began)
    anvil_version = keeperbench.machine()["anvil"]
    report = Report(
        title=f"AlphaGrid benchmarks — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        command=" ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])]),
        machine=machine(anvil_version),
    )
    http_config = HttpConfig(
        rounds=args.http_rounds,
        duration_s=args.http_seconds,
        connections=args.connections,
        use_wrk=not args.no_wrk,
    )
    e2e_sizes = [int(s) for s in args.e2e_sizes.split(",") if s]
    if args.full and 100_000 not in e2e_sizes:
        e2e_sizes.append(100_000)
    notes: list[str] = []
    parts = (
        set(args.only.split(",")) if args.only else set(PARTS) | (set(PEAK_PARTS) if args.peaks else set())
    )
    if parts - set(PARTS) - set(PEAK_PARTS):
        parser.error(f"--only takes {', '.join(PARTS + PEAK_PARTS)}")
    burst_config = burstbench.BurstConfig(
        agents=args.burst_agents,
        concurrency=args.burst_concurrency,
        processes=args.burst_processes,
        block_time_s=args.block_time,
        prefer_wait=args.burst_prefer_wait,
        db=args.peaks_db,
        api_processes=args.api_processes,
    )
    if args.api_processes and args.peaks_db != "postgres":
        parser.error("--api-processes needs --peaks-db postgres")
    burst: burstbench.BurstResult | None = None
    gap: gapbench.GapResult | None = None
    single: burstbench.SingleResult | None = None
    crash: CrashResult | None = None
    http = verify = relay = memory = None
    gas: dict[str, gasbench.GasFigure] = {}
    cli: clibench.CliResult | None = None
    ticks: list[keeperbench.TickResult] = []
    e2e: list[keeperbench.E2EResult] = []
    with tempfile.TemporaryDirectory(prefix="alphagrid-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        if "cli" in parts:
            progress("command line: alphagrid --help and alphagrid oracle set, 5 processes each")
            cli = clibench.measure()
        if "gas" in parts:
            progress("gas: forge test " + gasbench.GAS_TEST)
            gas = gasbench.measure()
        if "keeper" in parts:
            progress("keeper: tick cost " + args.tick_sizes)
            ticks = [
                keeperbench.bench_ticks(n, 5000, scan_reps=max(20, min(5000, 2_000_000 // n)))
                for n in (int(s) for s in args.tick_sizes.split(","))
            ]
            progress(f"keeper: memory for {args.memory_rules:,} rules (fresh process)")
            memory = keeperbench.bench_memory(args.memory_rules)
        if "http" in parts:
            progress("quote / verify / /health over HTTP, and verify in process")
            with fresh_chain(1) as chain:
                verify = bench_verify_in_process(chain, tmp)
                progress(f"  in process: relayer {verify.relayer:,.0f}/s, raw coincurve {verify.raw:,.0f}/s")
                http = bench_http(chain, f"sqlite:///{tmp / 'http.db'}", http_config, progress)
        if "relay" in parts:
            progress(
                f"relayed intents: {args.agents} agents × {args.per_agent}, {args.relay_rounds} A/B rounds"
            )
            relay = bench_relay(args.agents, args.per_agent, args.relay_rounds, progress)
        if "e2e" in parts:
            for n in e2e_sizes:
                progress(f"keeper: price update → exit with {n:,} open positions")
                updates = min(args.e2e_updates, 200, -(-n // keeperbench.TOKENS))
                e2e.append(keeperbench.bench_e2e(n, updates, 0.2, progress))
        if "single" in parts:
            progress(f"single: one agent, {args.single_cycles} sequential quote+sign+submit")
            single = burstbench.run_single(
                args.single_cycles, progress, args.block_time, args.peaks_db, args.api_processes
            )
            progress(f"  single took {single.wall_s:.0f} s (setup {single.setup_s:.0f} s)")
        if "burst" in parts:
            progress(
                f"burst: {args.burst_agents} new agents, {args.burst_concurrency} concurrent from "
                f"{args.burst_processes} client processes"
            )
            burst = burstbench.run_burst(burst_config, progress)
            progress(f"  burst took {burst.wall_s:.0f} s (setup {burst.setup_s:.0f} s)")
        if "gapdown" in parts:
            progress(f"gap-down: {args.gap_positions} stops, one price update 8 % down")
            gap = gapbench.run_gapdown(args.gap_positions, progress, block_time_s=args.block_time)
            progress(f"  gap-down took {gap.wall_s:.0f} s (setup {gap.setup_s:.0f} s)")
        if "crash" in parts:
            progress(
                f"crash: soak with {args.crash_intents} intents, {args.crash_agents} agents, "
                f"{args.crash_kills} kills, {args.crash_db}"
            )
            crash = run_crash(
                SoakConfig(
                    intents=args.crash_intents,
                    agents=args.crash_agents,
                    kills=args.crash_kills,
                    db=args.crash_db,
                ),
                progress,
            )
            progress(f"  crash took {crash.soak.total_wall_s:.0f} s")

        if http is not None and verify is not None:
            report.figures += [*http_figures(http), verify_figure(verify)]
            report.sections += http_sections(http, verify, args)
        if relay is not None:
            report.figures.append(relay_figure(relay))
            report.sections.append(relay_section(relay))
        if e2e:
            report.figures += [e2e_figure(e) for e in e2e]
            report.sections.append(e2e_section(e2e, e2e_sizes))
        if ticks and memory is not None:
            report.figures += [tick_figure(ticks), memory_figure(memory)]
            report.sections.append(keeper_section(ticks, memory))
        if gas:
            report.figures += gas_figures(gas)
            report.sections.append(GAS_SECTION)
        if cli is not None:
            report.figures += clibench.figures(cli)
            report.sections.append(clibench.SECTION)
        if burst is not None:
            report.figures += burst_figures(burst)
        if gap is not None:
            report.figures += gapdown_figures(gap)
        if single is not None:
            report.figures.append(single_figure(single))
        if crash is not None:
            report.figures.append(crash_figure(crash))
        if burst or gap or single or crash:
            report.sections.append(peaks_section(burst, gap, single, crash))
            notes.append(f"relayer measured: the `relayer` package at {Path(relayer.__file__).parent}")

        missed = {f.name for f in report.missed()}
        profiles: list[Profile] = []
        if not args.no_profile and py_spy() is not None:
            names = [
                n
                for n, f in (("quote", "quote requests/s"), ("verify", "verify requests/s"))
                if any(m.startswith(f) for m in missed)
            ]
            if any(m.startswith("quote p99") for m in missed) and "quote" not in names:
                names.insert(0, "quote")
            if names:
                progress(f"profiling {', '.join(names)} over HTTP (py-spy)")
                profiles += profile_http(tmp, names, http_config, progress)
            if any(m.startswith("in-process verify") for m in missed):
                progress("profiling in-process verify (py-spy)")
                profiles.append(profile_verify(tmp))
            if any(m.startswith("relayed intents") for m in missed):
                progress("profiling a relay run (py-spy)")
                profiles.append(profile_relay(tmp, args.agents, args.per_agent, progress))
            if burst is not None and any(m.startswith("burst") for m in missed):
                progress("profiling a burst (py-spy; the same burst again)")
                seconds = float(math.ceil(min(60.0, max(5.0, burst.summary.seconds))))  # py-spy: whole s
                try:
                    profiles.append(
                        burstbench.profile_burst(burst_config, tmp / "burst.txt", seconds, progress)
                    )
                except RuntimeError as exc:
                    notes.append(f"profiling the burst failed: {exc}")
            if gap is not None and any(m.startswith("gap-down") for m in missed):
                progress("profiling a gap-down (py-spy; the same gap-down again)")
                seconds = float(math.ceil(min(60.0, (gap.last_close_ms or 30_000) / 1000 + 1)))
                try:
                    profiles.append(
                        gapbench.profile_gapdown(
                            args.gap_positions, tmp / "gapdown.txt", seconds, progress, args.block_time
                        )
                    )
                except RuntimeError as exc:
                    notes.append(f"profiling the gap-down failed: {exc}")
        elif not args.no_profile:
            notes.append("py-spy is not installed, so nothing was profiled (pip install -e '.[dev]').")
        if profiles:
            report.sections.append(
                ("Profiles of the figures that missed (py-spy)", "\n\n".join(p.markdown() for p in profiles))
            )
        if notes:
            report.sections.append(("Notes", "\n".join(f"- {n}" for n in notes)))

    report.machine.load_end = os.getloadavg()
    report.wall_s = time.perf_counter() - began
    print()
    print(report.table())
    partial = sorted(parts) if args.only else []
    path = write(report, args.out or results_path(datetime.now(UTC), parts=partial))
    print(
        f"\n{sum(1 for f in report.figures if f.met)} of "
        f"{sum(1 for f in report.figures if f.met is not None)} goals met; written to {path}"
    )
    return 0


def http_sections(http: HttpResult, verify: VerifyResult, args: argparse.Namespace) -> list[tuple[str, str]]:
    tool = http.runs["health"][0].tool
    runs = "\n".join(
        f"| {name} | {', '.join(fmt_rate(r.rate) for r in rs)} | {', '.join(fmt_ms(r.p99_ms) for r in rs)} | "
        f"{http.server_cpu(name):.2f} | {http.cpu_per_request_us(name):,.0f} µs | "
        f"{http.client_cpu(name):.2f} |"
        for name, rs in http.runs.items()
    )
    return [
        (
            "HTTP: how it was measured",
            f"The relayer (API, indexer, sender, dispatcher, keeper; SQLite) runs in its own process "
            f"(`bench/serve.py`) on a fresh Anvil. Load: {tool}, {args.connections} keep-alive "
            f"connections, {http_config_text(args)}; rounds rotate /health, quote, verify; the table "
            "shows medians. Quote: `GET " + http.quote_path + "`. Verify: a signed OpenPosition body "
            "that passes every check.\n\n"
            "| endpoint | requests/s per round | p99 per round | server CPU (cores) | server CPU per request "
            "| client CPU (cores) |\n|---|---|---|---:|---:|---:|\n" + runs + "\n\n"
            "The server, not the client, is the bound: during /health the relayer's process uses "
            f"{http.server_cpu('health'):.2f} cores (one core of Python: the GIL) while the load "
            f"generator uses {http.client_cpu('health'):.2f}."
            + (" (wrk's CPU is not measured.)" if tool == "wrk" else ""),
        ),
        (
            "Verify in process",
            "`IntentService.built` (pydantic body → agent from state → typed struct) → `digest` → "
            "`eip712.recover_signer` → compare with the registered signer, against "
            "`coincurve.PublicKey.from_signature_and_message` on the precomputed digest; alternated "
            f"in 0.5 s slices, {len(verify.relayer_rates)} each, medians. Relayer per slice: "
            + ", ".join(f"{x:,.0f}" for x in verify.relayer_rates)
            + "/s; raw: "
            + ", ".join(f"{x:,.0f}" for x in verify.raw_rates)
            + "/s.",
        ),
    ]


def relay_section(relay: RelayResult) -> tuple[str, str]:
    return (
        "Relayed intents",
        f"{relay.agents} agents, each submitting {relay.per_agent} OpenPosition intents in turn "
        "(`Prefer: wait=60`: answered once mined, recorded and indexed); every answer was "
        "`201 confirmed` and every record was read back. Against: one key sending the same router "
        "calls (eth_abi encoding, eth-account signing, eth_sendRawTransaction) and waiting for the "
        f"last receipt. Anvil automine, restarted for each run; A and B alternate, "
        f"{len(relay.relayer)} runs each. Relayer: "
        + ", ".join(f"{x.rate:.1f}/s" for x in relay.relayer)
        + " (per intent p50 "
        + fmt_ms(median([median(x.latencies_ms) for x in relay.relayer]))
        + "; the relayer's process used "
        + ", ".join(f"{x.server_cores:.2f}" for x in relay.relayer)
        + " cores and Anvil "
        + ", ".join(f"{x.anvil_cores:.2f}" for x in relay.relayer)
        + "); bare loop: "
        + ", ".join(f"{x.rate:.0f}/s" for x in relay.bare)
        + ".",
    )


def e2e_section(e2e: list[keeperbench.E2EResult], e2e_sizes: list[int]) -> tuple[str, str]:
    lines = [
        f"`bench.keeper`'s end-to-end part, run for {', '.join(f'{n:,}' for n in e2e_sizes)} open positions"
        + (
            ""
            if 100_000 in e2e_sizes
            else " (100k takes ~20 minutes of setup: `python -m bench --full`, "
            "or `python -m bench.keeper --e2e-positions 100000`)"
        )
        + ". Anvil automine; oracle updates 200 ms ± 50 % apart, each crossing one more stop; latency from "
        "the oracle receipt to the PositionClosed log.",
        "",
        "| open positions | updates | p50 | p90 | p99 | keeper's share p50 (receipt → exit sent) | "
        "oracle tx inclusion p50 | setup | relayer start |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in e2e:
        lat = e.latencies_ms
        lines.append(
            f"| {e.positions:,} | {e.updates} | {fmt_ms(median(lat))} | "
            f"{fmt_ms(keeperbench.percentile(lat, 0.9))} | {fmt_ms(keeperbench.percentile(lat, 0.99))} | "
            f"{fmt_ms(median(e.sent_ms))} | {fmt_ms(median(e.inclusion_ms))} | {e.setup_s:.0f} s | "
            f"{e.bootstrap_s:.1f} s |"
        )
    return ("Price update → exit confirmed", "\n".join(lines))


def keeper_section(ticks: list[keeperbench.TickResult], memory: dict[str, int]) -> tuple[str, str]:
    tick_rows = "\n".join(
        f"| {t.n:,} | {t.rules:,} | {t.median_us:.1f} µs | {t.p99_us:.1f} µs | {t.scan_median_us:,.0f} µs |"
        for t in ticks
    )
    return (
        "Keeper tick and memory",
        "One tick = `TriggerIndex.candidates` + the pure `decide` for each candidate, k = 10 triggered "
        "(`bench.keeper` part 1).\n\n| open positions | rules | tick median | tick p99 | scan median |\n"
        "|---:|---:|---:|---:|---:|\n" + tick_rows + "\n\n"
        f"Memory: a fresh process builds the trigger index for {memory['rules']:,} rules and holds the "
        f"{memory['positions']:,} `PositionInfo`s; its RSS is the figure (imports included).",
    )


GAS_SECTION = (
    "Gas",
    "From `forge test --match-path contracts/test/TradeRouter.gas.t.sol -vv`, run by the harness; "
    "totals include the 21,000 base, calldata and the capped refund. Method and where the gas goes: "
    "[bench/gas.md](../gas.md).",
)


def peaks_section(
    burst: burstbench.BurstResult | None,
    gap: gapbench.GapResult | None,
    single: burstbench.SingleResult | None,
    crash: CrashResult | None,
) -> tuple[str, str]:
    shape = "one process, SQLite"
    if burst is not None:
        c = burst.config
        shape = (
            f"{c.db}; with `--api-processes {c.api_processes}` one engine process and "
            f"{c.api_processes} API processes, `relayer.supervisor`"
            if c.api_processes
            else f"one process, {c.db}"
        )
    lines = [
        "Measured as outside clients: the relayer (`bench/serve.py`: API, indexer, sender, dispatcher, "
        f"keeper; {shape}) in its own process(es) on a fresh Anvil; the load from separate client processes "
        "(httpx, eth-account signing the quote's `typedData` unchanged); what is on chain read from the "
        "chain by a thread polling logs every 10 ms. Submits carry no `Prefer` header unless "
        "`--burst-prefer-wait` is given (the relayer's default: answer once confirmed, else 202 after 10 s)."
    ]
    if burst is not None:
        c, s = burst.config, burst.summary
        lines += [
            "",
            f"**Burst** (`bench/burst.py`): {c.agents:,} agents registered and active on the prime track "
            f"before the clock; {c.processes} client processes × {c.concurrency // max(1, c.processes)} "
            f"concurrent; each agent one OpenPosition of {burstbench.OPEN_USDC} USDC with a take-profit "
            "+30 % / stop-loss −25 % ladder, symbols in turn. Clock: first quote → last answer "
            f"({s.seconds:.1f} s). Setup {burst.setup_s:.0f} s, whole part {burst.wall_s:.0f} s. "
            f"Submit latency p50 {fmt_ms(s.p('submit', 0.5))}, p90 {fmt_ms(s.p('submit', 0.9))}, p99 "
            f"{fmt_ms(s.p('submit', 0.99))}, max {fmt_ms(max(s.submit_ms, default=0))}; quote+sign+submit "
            f"p50 {fmt_ms(s.p('total', 0.5))}, p99 {fmt_ms(s.p('total', 0.99))}. Opens on chain: "
            f"{burst.on_chain:,} of {s.ok:,} 2xx"
            + (
                f", the last {burst.last_on_chain_s:.1f} s after the first quote"
                if burst.last_on_chain_s
                else ""
            )
            + f". CPU: relayer {burst.relayer_cpu_s:.1f} s "
            f"({burst.relayer_cpu_s / burst.window_s:.2f} cores), "
            f"Anvil {burst.anvil_cpu_s:.1f} s ({burst.anvil_cpu_s / burst.window_s:.2f} cores), "
            + (
                f"PostgreSQL {burst.database_cpu_s:.1f} s "
                f"({burst.database_cpu_s / burst.window_s:.2f} cores), "
                if c.db == "postgres"
                else ""
            )
            + f"the client processes {burst.client_cpu_s:.1f} s (start-up included)."
            + (
                " Where a submit's time went (p50 / p90, the relayer's status history against the "
                "clients' clocks): "
                + "; ".join(f"{k} {fmt_ms(p50)} / {fmt_ms(p90)}" for k, (p50, p90) in burst.phases.items())
                + "."
                if burst.phases
                else ""
            ),
        ]
    if gap is not None:
        lines += [
            "",
            f"**Gap-down** (`bench/gapdown.py`): {gap.positions:,} positions, one per agent over five "
            "symbols, "
            f"each with a stop-loss at {gapbench.STOP_BPS / 100:g} % (and the +30 % take-profit the track "
            "requires), opened by a bare loop on the router before the relayer starts; the relayer then "
            f"starts and arms them ({gap.relayer_start_s:.1f} s). ONE oracle transaction sets all five "
            f"symbols {gapbench.DROP_BPS / 100:g} % down (receipt {fmt_ms(gap.price_inclusion_ms)} after "
            "sending). From the price's receipt (polled every 2 ms) to each PositionClosed seen: "
            f"p50 {fmt_ms(gap.p(0.5))}, p90 {fmt_ms(gap.p(0.9))}, p99 {fmt_ms(gap.p(0.99))}, last "
            + (fmt_ms(gap.last_close_ms) if gap.last_close_ms is not None else f"— {gap.closed} closed")
            + f". Router transactions after the price (the keeper's): {gap.keeper_txs:,} "
            f"({gap.keeper_reverted} reverted) in {gap.blocks:,} blocks, {gap.gas_used:,} gas. Setup "
            f"{gap.setup_s:.0f} s, whole part {gap.wall_s:.0f} s.",
        ]
    if single is not None:
        s = single.summary
        lines += [
            "",
            f"**One quiet agent** (`bench/burst.py`): {single.cycles} sequential cycles from one client "
            "process, open then reduce-to-close on the five symbols in turn. Submit p50 "
            f"{fmt_ms(s.p('submit', 0.5))}, p90 {fmt_ms(s.p('submit', 0.9))}, "
            f"p99 {fmt_ms(s.p('submit', 0.99))}; "
            f"quote+sign+submit p50 {fmt_ms(s.p('total', 0.5))}, p99 {fmt_ms(s.p('total', 0.99))}. "
            f"Whole part {single.wall_s:.0f} s.",
        ]
    if crash is not None:
        r = crash.soak
        lines += [
            "",
            f"**Crash** (`bench/crash.py` → `bench.soak`'s run and audit): {r.config.intents} intents from "
            f"{r.config.agents} agents (opens, adds, reduces, ladder updates; a price walk), "
            f"{r.kills} SIGKILLs ({r.restarts} restarts), {r.config.db}. "
            f"{r.findings.confirmed} confirmed on chain exactly once, "
            f"{r.findings.failed_with_reason} failed with a reason; client phase {r.client_wall_s:.1f} s, "
            f"whole part {r.total_wall_s:.0f} s. The full soak: `python -m bench.soak`.",
        ]
    return ("Peaks (issue 11): burst, gap-down, one quiet agent, crash", "\n".join(lines))


def http_config_text(args: argparse.Namespace) -> str:
    return f"1 s warm-up then {args.http_seconds:g} s measured per run, {args.http_rounds} rounds"


if __name__ == "__main__":
    raise SystemExit(main())
