"""Where a process spends its time under a benchmark's load: py-spy samples the relayer's process from
outside (no change to it) while the load runs; the collapsed stacks are summarised as the share of
samples each function is on the stack for (inclusive) and at the top of (self), and by package.

With `gil=True` only the thread holding the GIL is sampled: for a server that is bound by one core of
Python, that is exactly what limits its throughput."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


@dataclass
class Profile:
    title: str
    samples: int
    inclusive: list[tuple[str, float]]  # (function, share of samples)
    self_time: list[tuple[str, float]]
    packages: list[tuple[str, float]]  # self time by package
    raw_path: Path | None = None

    def markdown(self, top: int = 12) -> str:
        lines = [
            f"**{self.title}** — {self.samples:,} samples.",
            "",
            "| on the stack (inclusive) | share | at the top (self) | share | self by package | share |",
            "|---|---:|---|---:|---|---:|",
        ]
        for i in range(top):
            cells = []
            for rows in (self.inclusive, self.self_time, self.packages):
                name, share = rows[i] if i < len(rows) else ("", None)
                cells += [f"`{name}`" if name else "", f"{share:.0%}" if share is not None else ""]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _frame(text: str) -> tuple[str, str]:
    match = _FRAME.match(text.strip())
    if match is None:
        return text.strip(), ""
    return match.group("func"), match.group("file")


def package_of(path: str) -> str:
    """relayer/quotes.py → relayer.quotes; site-packages' fastapi/routing.py → fastapi."""
    if not path:
        return "(native)"
    if path.startswith(("relayer/", "bench/")):
        return path.removesuffix(".py").replace("/", ".")
    if "/" not in path:
        return "python:" + path.removesuffix(".py")
    return path.split("/", 1)[0]


def summarise(collapsed: str, title: str, skip: Callable[[str], bool] = lambda _f: False) -> Profile:
    """`collapsed`: py-spy's raw output, `frame;frame;... count` per line, root first."""
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith(("thread (", "process "))]
        if not frames:
            continue
        total += count
        seen: set[str] = set()
        for text in frames:
            func, file = _frame(text)
            name = f"{func} ({file})" if file else func
            if name not in seen and not skip(name):
                inclusive[name] += count
                seen.add(name)
        func, file = _frame(frames[-1])
        self_time[f"{func} ({file})" if file else func] += count
        packages[package_of(file)] += count

    def share(counts: Counter[str]) -> list[tuple[str, float]]:
        return [(k, v / total) for k, v in counts.most_common()] if total else []

    return Profile(title, total, share(inclusive), share(self_time), share(packages))


_PLUMBING = ("uvicorn", "asyncio", "anyio", "starlette", "python:threading", "python:runpy", "python:queue")
_FASTAPI_WORK = ("serialize", "solve_dependencies", "jsonable", "validate", "request_body")


def plumbing(name: str) -> bool:
    """Frames that are on the stack of every request or loop (server, event loop, thread pool,
    routing, this harness): they would fill the inclusive list and say nothing."""
    func, _, rest = name.partition(" (")
    package = package_of(rest.rstrip(")"))
    if package.startswith(("bench.", "python:<frozen")) or package in _PLUMBING:
        return True
    if package == "fastapi":
        return not any(word in func for word in _FASTAPI_WORK)
    return func.startswith(("Thread._bootstrap", "Thread.run", "<module>"))


def start_recording(
    pid: int, seconds: float, out: Path, *, gil: bool, rate: int = 200
) -> subprocess.Popen[str]:
    """py-spy sampling `pid` for `seconds` (whole seconds: py-spy takes no fraction) into `out`."""
    tool = py_spy()
    if tool is None:
        raise RuntimeError("py-spy is not installed (pip install -e '.[dev]')")
    args = [
        tool,
        "record",
        "-p",
        str(pid),
        "-d",
        str(max(1, math.ceil(seconds))),
        "-r",
        str(rate),
        "-f",
        "raw",
        "-o",
        str(out),
        "--threads",
        "--nonblocking",
    ]
    if gil:
        args.append("--gil")
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish_recording(spy: subprocess.Popen[str], out: Path, title: str, seconds: float) -> Profile:
    try:
        # py-spy can lag far behind its duration on an overloaded machine.
        _, err = spy.communicate(timeout=2 * seconds + 120)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.communicate()
        raise RuntimeError(f"py-spy did not finish its {seconds:g} s recording in time") from None
    if spy.returncode != 0 or not out.exists():
        raise RuntimeError(f"py-spy failed: {err[-1000:]}")
    profile = summarise(out.read_text(), title, skip=plumbing)
    profile.raw_path = out
    return profile


def record(
    pid: int, seconds: float, out: Path, workload: Callable[[], T], *, gil: bool, title: str, rate: int = 200
) -> tuple[Profile, T]:
    """Samples `pid` for `seconds` while `workload()` runs in this process; returns both results."""
    spy = start_recording(pid, seconds, out, gil=gil, rate=rate)
    try:
        result = workload()
    except BaseException:
        spy.kill()
        spy.wait()
        raise
    return finish_recording(spy, out, title, seconds), result
