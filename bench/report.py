"""The benchmark's table and results file: figures with their comparison and goal, the machine they
were measured on, and the markdown written to bench/results/<date>.md. No measuring happens here."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"


@dataclass(frozen=True)
class Figure:
    """One row: what was measured, against what (in the same run), the goal and whether it was met.
    `met` is None when there is no goal or the figure was not measured."""

    name: str
    value: str
    comparison: str
    goal: str
    met: bool | None
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.met is None:
            return "—"
        return "met" if self.met else "**missed**"


def ratio(measured: float, baseline: float) -> float:
    """measured / baseline; 0 when the baseline is 0 (nothing to compare against)."""
    return measured / baseline if baseline > 0 else 0.0


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("no values")
    return float(statistics.median(values))


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank q-quantile (q in [0, 1]) of `values`."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(q * len(ordered) - 1e-9)))
    return float(ordered[rank - 1])


def fmt_rate(per_s: float) -> str:
    return f"{per_s:,.0f}/s" if per_s >= 100 else f"{per_s:,.1f}/s"


def fmt_ms(ms: float) -> str:
    return f"{ms:,.0f} ms" if ms >= 100 else f"{ms:.1f} ms"


def fmt_ratio(r: float) -> str:
    return f"{r:.2f}×"


# ---------------------------------------------------------------------- the machine


@dataclass
class Machine:
    cpu: str
    cores: int
    memory: str
    python: str
    platform: str
    versions: dict[str, str]
    commit: str
    load_start: tuple[float, float, float]
    load_end: tuple[float, float, float] | None = None

    def lines(self) -> list[str]:
        versions = ", ".join(f"{k} {v}" for k, v in self.versions.items())
        start = " / ".join(f"{x:.2f}" for x in self.load_start)
        end = " / ".join(f"{x:.2f}" for x in self.load_end) if self.load_end else "n/a"
        return [
            f"- CPU: {self.cpu}, {self.cores} cores; RAM {self.memory}",
            f"- Load average (1 / 5 / 15 min): {start} at start, {end} at end",
            f"- Python {self.python}; {versions}",
            f"- {self.platform}",
            f"- git commit {self.commit}",
        ]


def _first(path: str, prefix: str) -> str | None:
    with contextlib.suppress(OSError), open(path) as f:
        for line in f:
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    return None


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _run(args: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(args), capture_output=True, text=True, cwd=REPO, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def git_commit() -> str:
    commit = _run(["git", "rev-parse", "--short=12", "HEAD"])
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"])
    return f"{commit} (with uncommitted changes)" if dirty not in ("", "unknown") else commit


def machine(anvil_version: str) -> Machine:
    total = _first("/proc/meminfo", "MemTotal")
    memory = f"{int(total.split()[0]) / 1024**2:.1f} GiB" if total else "unknown"
    return Machine(
        cpu=_first("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        cores=os.cpu_count() or 0,
        memory=memory,
        python=platform.python_version(),
        platform=platform.platform(),
        versions={
            "web3": _version("web3"),
            "eth-account": _version("eth-account"),
            "coincurve": _version("coincurve"),
            "fastapi": _version("fastapi"),
            "uvicorn": _version("uvicorn"),
            "anvil": anvil_version,
        },
        commit=git_commit(),
        load_start=os.getloadavg(),
    )


# ---------------------------------------------------------------------- the report


@dataclass
class Report:
    title: str
    command: str
    machine: Machine
    figures: list[Figure] = field(default_factory=list)
    sections: list[tuple[str, str]] = field(default_factory=list)  # (heading, markdown)
    wall_s: float = 0.0

    def table(self) -> str:
        rows = [
            "| figure | measured | measured against (same run) | goal | verdict |",
            "|---|---:|---|---|---|",
        ]
        for f in self.figures:
            note = f" ({f.note})" if f.note else ""
            rows.append(f"| {f.name} | {f.value} | {f.comparison}{note} | {f.goal} | {f.verdict} |")
        return "\n".join(rows)

    def missed(self) -> list[Figure]:
        return [f for f in self.figures if f.met is False]

    def markdown(self) -> str:
        met = sum(1 for f in self.figures if f.met)
        goals = sum(1 for f in self.figures if f.met is not None)
        lines = [
            f"# {self.title}",
            "",
            f"Command: `{self.command}` — total wall time {self.wall_s:.0f} s.",
            "",
            *self.machine.lines(),
            "",
            f"## Figures ({met} of {goals} goals met)",
            "",
            self.table(),
            "",
        ]
        for heading, body in self.sections:
            lines += [f"## {heading}", "", body.rstrip(), ""]
        return "\n".join(lines)


def results_path(when: datetime, directory: Path = RESULTS, parts: Sequence[str] = ()) -> Path:
    """`<date>.md` for a whole run; a partial run (`--only`) names its parts, so it never replaces
    the day's whole-run file."""
    suffix = "".join(f"-{p}" for p in sorted(parts))
    return directory / f"{when:%Y-%m-%d}{suffix}.md"


def write(report: Report, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.markdown() + "\n")
    return path
