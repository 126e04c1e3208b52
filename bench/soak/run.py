"""The soak itself: chain, relayer subprocess, agents, kills, then the audit."""

from __future__ import annotations

import contextlib
import random
import shutil
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine

from bench.soak.audit import (
    Findings,
    KeeperFindings,
    audit_intents,
    audit_keeper,
    closed_reasons,
    compare_apis,
    compare_with_chain,
    cursor_block,
    diff_snapshots,
    in_flight,
    mirror_snapshot,
    replay_failures,
    status_counts,
    tx_counts,
    wait_for,
    wait_quiescent,
)
from bench.soak.chain import PriceWalk, read_router_events, setup_chain
from bench.soak.client import AgentClient, Budget, Submission
from bench.soak.process import RelayerProcess
from bench.stack import PG_URL, fresh_database
from relayer.chain.anvil import Anvil, free_port
from relayer.store.db import make_engine


@dataclass(frozen=True)
class SoakConfig:
    intents: int = 1000
    agents: int = 20
    kills: int = 10
    seed: int = 1
    db: Literal["sqlite", "postgres"] = "sqlite"
    pg_url: str = PG_URL
    block_time_s: float | None = None
    price_interval_s: float = 1.0  # 0: prices never move (no exits)
    max_down_s: float = 1.5
    # After a kill, the chance that the restart is itself killed before it is ready (an extra kill).
    start_kill_chance: float = 0.0
    quiesce_timeout_s: float = 180.0
    keep: bool = False
    # `serve --api-processes N` (PostgreSQL); a kill then takes the whole relayer, its engine process,
    # or one API process (chosen at random each time; the supervisor restarts a lone child).
    api_processes: int = 0


@dataclass
class SoakResult:
    config: SoakConfig
    findings: Findings
    submissions: list[Submission]
    quote_errors: Counter[str]
    client_errors: list[str]
    kills: int
    start_kills: int
    child_kills: Counter[str]
    restarts: int
    start_s: list[float]
    client_wall_s: float
    total_wall_s: float
    quiesce_s: float
    db_statuses: Counter[str]
    tx_statuses: Counter[str]
    keeper: KeeperFindings
    reverted: list[str]
    chain_counts: dict[str, int]
    price_updates: int
    workdir: Path | None
    caught_in_flight: list[tuple[int, int]]
    reasons: Counter[str]


@contextlib.contextmanager
def databases(config: SoakConfig, workdir: Path) -> Iterator[tuple[str, str]]:
    """(the soak's database, an empty one for the rebuild): SQLite files, or fresh PostgreSQL schemas."""
    with (
        fresh_database(config.db, workdir, "soak", pg_url=config.pg_url, keep=config.keep) as soak,
        fresh_database(config.db, workdir, "rebuilt", pg_url=config.pg_url, keep=config.keep) as rebuilt,
    ):
        yield soak, rebuilt


def kill_points(config: SoakConfig, rng: random.Random) -> list[int]:
    """After how many intents handed out each kill comes: spread over the middle 90 % of the run."""
    lo, hi = max(1, config.intents // 20), max(2, config.intents * 19 // 20)
    span = range(lo, hi)
    return sorted(
        rng.sample(span, config.kills) if len(span) >= config.kills else rng.choices(span, k=config.kills)
    )


def run(config: SoakConfig, progress: Callable[[str], None] = print) -> SoakResult:
    workdir = Path(tempfile.mkdtemp(prefix="alphagrid-soak-"))
    rng = random.Random(config.seed)
    began = time.monotonic()
    try:
        with (
            databases(config, workdir) as (soak_url, rebuilt_url),
            Anvil(port=free_port(), block_time_s=config.block_time_s) as node,
        ):
            result = _run(config, rng, workdir, node, soak_url, rebuilt_url, began, progress)
    except BaseException:
        progress(f"soak aborted; logs kept in {workdir}")
        raise
    if result.findings.ok and not result.client_errors and not config.keep:
        shutil.rmtree(workdir, ignore_errors=True)
        result.workdir = None
    else:
        progress(f"logs and databases kept in {workdir}")
    return result


def _run(
    config: SoakConfig,
    rng: random.Random,
    workdir: Path,
    node: Anvil,
    soak_url: str,
    rebuilt_url: str,
    began: float,
    progress: Callable[[str], None],
) -> SoakResult:
    progress(f"deploying and registering {config.agents} agents")
    soak = setup_chain(node, agents=config.agents, seed=config.seed, api_url="http://127.0.0.1:0")
    home = workdir / "home"
    soak.manifest.write(home / "deployment.json")
    relayer = RelayerProcess(
        home=home,
        rpc_url=node.url,
        database_url=soak_url,
        port=free_port(),
        log_path=workdir / "relayer.log",
        api_processes=config.api_processes,
    )
    engine = make_engine(soak_url)
    prices = PriceWalk(
        soak.admin, soak.manifest.tokens, random.Random(rng.random()), step_bps=100, band_bps=1000
    )
    abort = threading.Event()
    budget = Budget(config.intents)
    clients = [
        AgentClient(relayer.url, agent, budget, random.Random(rng.random()), abort) for agent in soak.agents
    ]
    caught: list[tuple[int, int]] = []
    for c in clients:
        c.budget = budget
    try:
        relayer.start()
        progress(
            f"relayer up on {relayer.url} ({relayer.start_s[-1]:.1f} s); {config.intents} intents, "
            f"{config.kills} kills"
        )
        if config.price_interval_s > 0:
            prices.start(config.price_interval_s)
        threads = [threading.Thread(target=c.run, name=f"soak-agent-{c.agent.agent_id}") for c in clients]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        _kill_loop(config, rng, relayer, budget, threads, engine, caught, progress)
        for t in threads:
            t.join(timeout=600)
            if t.is_alive():
                abort.set()
                t.join(timeout=30)
        client_wall_s = time.monotonic() - t0
        prices.stop()
        progress(f"clients done in {client_wall_s:.1f} s; waiting for the relayer to settle")
        if not relayer.running:
            relayer.start()
        quiesce_s = wait_quiescent(engine, config.quiesce_timeout_s)
        record = read_router_events(soak.w3, soak.manifest.contracts.trade_router, soak.manifest.start_block)
        wait_for(lambda: cursor_block(engine) >= record.head, "the soak relayer's indexer", 60)

        submissions = [s for c in clients for s in c.submissions]
        findings = Findings()
        audit_intents(findings, submissions, record, engine)
        compare_with_chain(findings, soak, engine)

        progress("rebuilding a mirror from events on an empty database")
        rebuilt = RelayerProcess(
            home=workdir / "rebuilt-home",
            rpc_url=node.url,
            database_url=rebuilt_url,
            port=free_port(),
            log_path=workdir / "rebuilt.log",
            keeper=False,
        )
        soak.manifest.write(rebuilt.home / "deployment.json")
        rebuilt_engine = make_engine(rebuilt_url)
        try:
            rebuilt.start()
            wait_for(
                lambda: cursor_block(rebuilt_engine) >= record.head, "the rebuilt relayer's indexer", 120
            )
            findings.mirror_diffs = diff_snapshots(mirror_snapshot(engine), mirror_snapshot(rebuilt_engine))
            compare_apis(findings, soak, relayer.url, rebuilt.url)
        finally:
            rebuilt.stop()
            rebuilt_engine.dispose()
        names = (
            "NonceUsed",
            "PositionOpened",
            "PositionIncreased",
            "PositionReduced",
            "ExitLadderSet",
            "ExitExecuted",
            "PositionClosed",
        )
        return SoakResult(
            config=config,
            findings=findings,
            submissions=submissions,
            quote_errors=sum((c.quote_errors for c in clients), Counter()),
            client_errors=[f"agent {c.agent.agent_id}: {c.error!r}" for c in clients if c.error is not None],
            kills=relayer.kills,
            start_kills=relayer.start_kills,
            child_kills=relayer.child_kills,
            restarts=relayer.starts - 1,
            start_s=relayer.start_s,
            client_wall_s=client_wall_s,
            total_wall_s=time.monotonic() - began,
            quiesce_s=quiesce_s,
            db_statuses=status_counts(engine),
            tx_statuses=tx_counts(engine),
            keeper=audit_keeper(engine),
            reverted=replay_failures(engine, soak.w3),
            chain_counts={n: record.count(n) for n in names},
            price_updates=prices.updates,
            workdir=workdir,
            caught_in_flight=caught,
            reasons=closed_reasons(engine),
        )
    finally:
        abort.set()
        prices.stop()
        relayer.stop()
        engine.dispose()


def _kill_loop(
    config: SoakConfig,
    rng: random.Random,
    relayer: RelayerProcess,
    budget: Budget,
    threads: list[threading.Thread],
    engine: Engine,
    caught: list[tuple[int, int]],
    progress: Callable[[str], None],
) -> None:
    """Kills the relayer at the planned points; `caught` gets (intents, transactions) in flight just
    before each kill."""
    for i, point in enumerate(kill_points(config, rng), 1):
        while budget.taken < point and any(t.is_alive() for t in threads):
            time.sleep(0.01)
        if not any(t.is_alive() for t in threads):
            progress(f"clients finished before kill {i}")
            return
        time.sleep(rng.uniform(0.0, 0.4))  # land anywhere in the intents in flight
        caught.append(in_flight(engine))
        target = rng.choice(("all", "engine", "api")) if config.api_processes else "all"
        if target != "all" and relayer.kill_child(target, rng.choice):
            down_s = rng.uniform(0.0, config.max_down_s)
            time.sleep(down_s)  # the supervisor starts it again by itself meanwhile
            progress(f"kill {i}/{config.kills} after {budget.taken} intents: the {target} process")
            continue
        relayer.kill()
        down_s = rng.uniform(0.0, config.max_down_s)
        time.sleep(down_s)
        # Sometimes down again before it is ready: while it bootstraps the indexer or reconciles.
        killed_early = rng.random() < config.start_kill_chance
        again = killed_early and not relayer.start(kill_after_s=rng.uniform(1.0, 3.5))
        if not relayer.running:
            relayer.start()
        progress(
            f"kill {i}/{config.kills} after {budget.taken} intents; down {down_s:.1f} s, "
            f"restarted in {relayer.start_s[-1]:.1f} s{' (after a kill during start-up)' if again else ''}"
        )


def summary_numbers(result: SoakResult) -> dict[str, Any]:
    subs = result.submissions
    final = Counter(s.status_code for s in subs)
    return {
        "sent": len(subs),
        "posts": sum(s.posts for s in subs),
        "retried_after_transport_error": sum(1 for s in subs if s.transport_errors),
        "accepted": sum(1 for s in subs if s.accepted),
        "answers": final,
        "start_median_s": statistics.median(result.start_s) if result.start_s else 0.0,
        "start_max_s": max(result.start_s, default=0.0),
    }
