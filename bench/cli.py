"""How long the operator waits for the `alphagrid` command: `alphagrid --help`, and `alphagrid oracle set
SYMBOL PRICE` against a fresh local chain (a mined transaction included). Each run is a new process, as
an operator's shell starts it; the figure is the median of N runs (5 by default).

    python -m bench.cli                 # both figures, printed
    python -m bench --only cli          # the same, in the benchmark table and results file

Nearly all of a short command's time is Python importing modules: `python -X importtime -m relayer.cli
--help` shows where it goes.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.report import Figure, fmt_ms, median
from relayer.chain.admin import Admin
from relayer.chain.anvil import Anvil, free_port
from relayer.chain.seed import seed_local
from relayer.devkeys import OPERATOR_KEY

GOAL_HELP_S = 0.3
GOAL_ORACLE_SET_S = 0.8
RUNS = 5


@dataclass(frozen=True)
class Run:
    wall_s: float
    cpu_s: float  # user + system of the child: what the command costs when the machine is busy


@dataclass(frozen=True)
class CliResult:
    help_runs: list[Run]
    oracle_set_runs: list[Run]
    python_runs: list[Run]  # `python -c pass`: the interpreter's own start, the floor under both
    load: tuple[float, float, float]

    @property
    def help_s(self) -> list[float]:
        return [r.wall_s for r in self.help_runs]

    @property
    def oracle_set_s(self) -> list[float]:
        return [r.wall_s for r in self.oracle_set_runs]



def alphagrid() -> list[str]:
    """The console script next to this interpreter (the project's venv), else `python -m relayer.cli`."""
    script = Path(sys.executable).parent / "alphagrid"
    return [str(script)] if script.exists() else [sys.executable, "-m", "relayer.cli"]


def _clean_env(home: Path, rpc_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHAGRID_")}
    return env | {"ALPHAGRID_HOME": str(home), "ALPHAGRID_RPC_URL": rpc_url}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _timed(argv: Sequence[str], env: dict[str, str], cwd: Path) -> Run:
    cpu, began = _cpu(), time.perf_counter()
    done = subprocess.run(list(argv), env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed, cpu_s = time.perf_counter() - began, _cpu() - cpu
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return Run(elapsed, cpu_s)


def measure(runs: int = RUNS) -> CliResult:
    with tempfile.TemporaryDirectory(prefix="alphagrid-bench-cli-") as tmp_dir:
        tmp = Path(tmp_dir)
        with Anvil(port=free_port()).start() as node:
            from web3 import Web3

            admin = Admin(Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 30})), OPERATOR_KEY)
            manifest = seed_local(admin, rpc_url=node.url, api_url="http://127.0.0.1:0")
            manifest.write(tmp / "home" / "deployment.json")
            env = _clean_env(tmp / "home", node.url)
            cmd = alphagrid()
            _timed([*cmd, "--help"], env, tmp)  # warm the OS file cache once, like any second run
            python_runs = [_timed([sys.executable, "-c", "pass"], env, tmp) for _ in range(runs)]
            help_runs = [_timed([*cmd, "--help"], env, tmp) for _ in range(runs)]
            oracle_runs = [
                _timed([*cmd, "oracle", "set", "NVDA", f"182.{35 + i:02d}"], env, tmp) for i in range(runs)
            ]
    return CliResult(help_runs, oracle_runs, python_runs, os.getloadavg())


def figures(r: CliResult) -> list[Figure]:
    def ms(values: list[float]) -> str:
        return fmt_ms(median(values) * 1000)

    def detail(runs: list[Run]) -> str:
        return (
            f"CPU (user+sys) median {ms([x.cpu_s for x in runs])}; `python -c pass` "
            f"{ms([x.wall_s for x in r.python_runs])}; runs "
            + ", ".join(f"{x.wall_s * 1000:.0f}" for x in runs)
            + f" ms; load average {r.load[0]:.1f}"
        )

    return [
        Figure(
            f"`alphagrid --help` (median of {len(r.help_runs)} processes)",
            ms(r.help_s),
            detail(r.help_runs),
            f"≤ {GOAL_HELP_S * 1000:.0f} ms",
            median(r.help_s) <= GOAL_HELP_S,
        ),
        Figure(
            f"`alphagrid oracle set NVDA PRICE` (median of {len(r.oracle_set_runs)}, tx mined)",
            ms(r.oracle_set_s),
            detail(r.oracle_set_runs),
            f"≤ {GOAL_ORACLE_SET_S * 1000:.0f} ms",
            median(r.oracle_set_s) <= GOAL_ORACLE_SET_S,
        ),
    ]


SECTION = (
    "Command line start-up",
    "Each run is a new process started from this interpreter's venv (`alphagrid`), stdout captured, "
    "against a fresh Anvil seeded as `alphagrid up` seeds it (`oracle set` sends and waits for one "
    "transaction). On a busy machine the wall time includes waiting for a core; the CPU time (user + "
    "system of the process) does not. `hyperfine -N --runs 5 'alphagrid --help'` gives a second "
    "opinion; `python -X importtime -m relayer.cli --help` shows where the time goes.",
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args(argv)
    result = measure(args.runs)
    for f in figures(result):
        print(f"{f.name}: {f.value} (goal {f.goal}: {f.verdict}) — {f.comparison}")
    if shutil.which("hyperfine") is None:
        print("(hyperfine is not installed: apt-get install hyperfine for a second opinion)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
