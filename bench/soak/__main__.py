"""Soak: N intents from M agents while the relayer is SIGKILLed at random moments and restarted
(issue 7). Then every 2xx intent must be confirmed exactly once on chain (or failed with a reason and
not on chain), nothing may be left pending, and the database must equal the chain.

    python -m bench.soak                                  # 1000 intents, 20 agents, 10 kills, SQLite
    python -m bench.soak --db postgres --kills 12 --seed 7
    python -m bench.soak --intents 80 --agents 4 --kills 3 --no-out

Exit status 1 when the audit finds a problem. Results go to bench/results/soak-<date>-<db>.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench.soak.report import render
from bench.soak.run import PG_URL, SoakConfig, run

RESULTS = Path(__file__).resolve().parent.parent / "results"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--intents", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--pg-url", default=PG_URL, help="PostgreSQL database; the soak uses fresh schemas")
    parser.add_argument("--block-time", type=float, default=None, help="Anvil block time (default automine)")
    parser.add_argument(
        "--price-interval", type=float, default=1.0, help="oracle walk period; 0 = fixed prices"
    )
    parser.add_argument(
        "--max-down", type=float, default=1.5, help="longest pause between kill and restart (s)"
    )
    parser.add_argument(
        "--start-kills",
        type=float,
        default=0.0,
        help="chance that a restart is killed again before it is ready (extra kills)",
    )
    parser.add_argument(
        "--api-processes",
        type=int,
        default=0,
        help="serve --api-processes N (needs --db postgres); kills then also hit one engine or API process",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory and PostgreSQL schemas")
    parser.add_argument("--out", type=Path, default=None, help="results file (default bench/results/…)")
    parser.add_argument("--no-out", action="store_true", help="print only")
    args = parser.parse_args(argv)
    config = SoakConfig(
        intents=args.intents,
        agents=args.agents,
        kills=args.kills,
        seed=args.seed,
        db=args.db,
        pg_url=args.pg_url,
        block_time_s=args.block_time,
        price_interval_s=args.price_interval,
        max_down_s=args.max_down,
        start_kill_chance=args.start_kills,
        keep=args.keep,
        api_processes=args.api_processes,
    )
    if config.api_processes and config.db != "postgres":
        parser.error("--api-processes needs --db postgres")
    result = run(config, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    command = "python -m bench.soak " + shlex.join(list(argv if argv is not None else sys.argv[1:]))
    text = render(result, command.strip())
    print(text)
    if not args.no_out:
        out = args.out or RESULTS / f"soak-{datetime.now(UTC):%Y-%m-%d}-{config.db}.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"written to {out}", file=sys.stderr)
    return 0 if result.findings.ok and not result.client_errors else 1


if __name__ == "__main__":
    sys.exit(main())
