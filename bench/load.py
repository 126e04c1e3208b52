"""HTTP load generation from processes other than the server's: `wrk` when it is on PATH, otherwise
worker processes each running a small asyncio HTTP/1.1 keep-alive client (raw sockets: an httpx
client costs more CPU per request than the server's /health, so it would measure itself).

    python -m bench.load --worker '<json spec>'   # one worker process; prints its result as JSON

A run is: W warm-up seconds (answers not counted), then D measured seconds, on C connections split
over P worker processes, cycling over a list of prepared requests. Every answer's status is checked;
latency is per request (send to last body byte)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # with the query string
    body: bytes = b""

    def raw(self, host: str) -> bytes:
        head = f"{self.method} {self.path} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n"
        if self.body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(self.body)}\r\n"
        return head.encode() + b"\r\n" + self.body


@dataclass
class LoadResult:
    tool: str
    connections: int
    duration_s: float
    requests: int
    statuses: dict[int, int]
    latencies_ms: list[float] = field(default_factory=list)  # empty for wrk (percentiles below)
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    client_cpu_s: float = 0.0  # user + system of the load generator's processes (Python client)
    server_cpu_s: float = 0.0  # of the server's process over the measured window

    @property
    def rate(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def server_cpu_share(self) -> float:
        """Server CPU time per wall second over the window: ~1.0 is one core, all the time."""
        return self.server_cpu_s / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def server_cpu_per_request_us(self) -> float:
        """The server's CPU time per answered request: less sensitive than the rate to other work
        on the machine taking CPU away from the server."""
        return self.server_cpu_s / self.requests * 1e6 if self.requests else 0.0

    @property
    def client_cpu_share(self) -> float:
        return self.client_cpu_s / self.duration_s if self.duration_s > 0 else 0.0


def process_cpu_s(pid: int) -> float:
    """utime + stime of a process and its threads, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _processes() -> list[tuple[int, int, str, float]]:
    """(pid, parent pid, command name, CPU s) of every process now."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                raw = f.read()
        except OSError:
            continue  # gone meanwhile
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw.rsplit(")", 1)[1].split()
        found.append((int(entry), int(fields[1]), name, (int(fields[11]) + int(fields[12])) / ticks))
    return found


def tree_cpu_s(pid: int) -> float:
    """CPU of a process and of its live descendants (the supervisor's engine and API processes)."""
    procs = _processes()
    children: dict[int, list[int]] = {}
    cpu = {p: c for p, _pp, _n, c in procs}
    for p, parent, _n, _c in procs:
        children.setdefault(parent, []).append(p)
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += cpu.get(p, 0.0)
        todo.extend(children.get(p, ()))
    return total


def role_cpu_s(pid: int) -> dict[str, float]:
    """CPU of a supervisor's live children by role (`relayer.supervisor.supervised`)."""
    from relayer.supervisor import supervised  # here: the load generators importing this stay light

    out: dict[str, float] = {}
    for child, role in supervised(pid).items():
        try:
            out[str(role)] = out.get(str(role), 0.0) + process_cpu_s(child)
        except OSError:
            continue  # gone meanwhile
    return out


def named_cpu_s(name: str) -> float:
    """CPU of every live process with this command name (e.g. the PostgreSQL server's backends; those
    that exited meanwhile are not counted)."""
    return sum(c for _p, _pp, n, c in _processes() if n == name)


# ---------------------------------------------------------------------- the Python client


async def _connection(
    host: str,
    port: int,
    raws: list[bytes],
    start_at: float,
    measure_at: float,
    end_at: float,
    out: dict[str, Any],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = out["offset"]
    latencies: list[float] = out["latencies"]
    statuses: Counter[int] = out["statuses"]
    await asyncio.sleep(max(0.0, start_at - time.time()))
    try:
        while True:
            sent = time.perf_counter()
            wall = time.time()
            if wall >= end_at:
                return
            writer.write(raws[i % len(raws)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            length = _content_length(head)
            await reader.readexactly(length)
            if wall >= measure_at:
                latencies.append((time.perf_counter() - sent) * 1000)
                statuses[int(head[9:12])] += 1
    finally:
        writer.close()


_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


def _content_length(head: bytes) -> int:
    match = _LENGTH.search(head)
    if match is None:
        raise RuntimeError(f"an answer without Content-Length: {head[:200]!r}")
    return int(match.group(1))


async def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    url = urlsplit(spec["url"])
    host, port = url.hostname or "127.0.0.1", url.port or 80
    raws = [
        Request(r["method"], r["path"], r["body"].encode()).raw(f"{host}:{port}") for r in spec["requests"]
    ]
    outs = [
        {"offset": n * 7 + spec["index"], "latencies": [], "statuses": Counter()}
        for n in range(spec["connections"])
    ]
    await asyncio.gather(
        *(
            _connection(host, port, raws, spec["start_at"], spec["measure_at"], spec["end_at"], out)
            for out in outs
        )
    )
    usage = resource.getrusage(resource.RUSAGE_SELF)
    statuses: Counter[int] = Counter()
    for out in outs:
        statuses.update(out["statuses"])
    return {
        "latencies": [round(x, 3) for out in outs for x in out["latencies"]],
        "statuses": dict(statuses),
        "cpu_s": usage.ru_utime + usage.ru_stime,
    }


def _run_python(
    url: str,
    requests: list[Request],
    connections: int,
    processes: int,
    warmup_s: float,
    duration_s: float,
    server_pid: int | None,
) -> LoadResult:
    processes = max(1, min(processes, connections))
    start_at = time.time() + 1.0  # every worker connected and waiting
    measure_at = start_at + warmup_s
    end_at = measure_at + duration_s
    workers = []
    for index in range(processes):
        share = connections // processes + (1 if index < connections % processes else 0)
        spec = {
            "url": url,
            "requests": [{"method": r.method, "path": r.path, "body": r.body.decode()} for r in requests],
            "connections": share,
            "index": index,
            "start_at": start_at,
            "measure_at": measure_at,
            "end_at": end_at,
        }
        workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "bench.load", "--worker", json.dumps(spec)],
                stdout=subprocess.PIPE,
                text=True,
                cwd=REPO,
            )
        )
    server_cpu = _window_cpu(server_pid, measure_at, end_at)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    cpu = 0.0
    for w in workers:
        stdout, _ = w.communicate(timeout=warmup_s + duration_s + 60)
        if w.returncode != 0:
            raise RuntimeError(f"a load worker failed ({w.returncode})")
        result = json.loads(stdout)
        latencies += result["latencies"]
        statuses.update({int(k): v for k, v in result["statuses"].items()})
        cpu += result["cpu_s"]
    from bench.report import percentile  # here: the worker processes do not need it

    return LoadResult(
        tool=f"python asyncio client, {processes} processes",
        connections=connections,
        duration_s=duration_s,
        requests=len(latencies),
        statuses=dict(statuses),
        latencies_ms=latencies,
        p50_ms=percentile(latencies, 0.5) if latencies else 0.0,
        p99_ms=percentile(latencies, 0.99) if latencies else 0.0,
        # The workers' CPU includes their start-up and warm-up; scale it to the measured window.
        client_cpu_s=cpu * duration_s / (duration_s + warmup_s + 1.0),
        server_cpu_s=server_cpu,
    )


def _window_cpu(pid: int | None, measure_at: float, end_at: float) -> float:
    if pid is None:
        time.sleep(max(0.0, end_at - time.time()))
        return 0.0
    time.sleep(max(0.0, measure_at - time.time()))
    before = process_cpu_s(pid)
    time.sleep(max(0.0, end_at - time.time()))
    return process_cpu_s(pid) - before


# ---------------------------------------------------------------------- wrk


_WRK_SCRIPT = """
local requests = {}
%s
local i = 0
request = function()
  i = i + 1
  return requests[(i %% #requests) + 1]
end
"""


def _wrk_script(requests: list[Request]) -> str:
    lines = []
    for n, r in enumerate(requests, 1):
        headers = '{["Content-Type"]="application/json"}' if r.body else "{}"
        lines.append(
            f"requests[{n}] = wrk.format({json.dumps(r.method)}, {json.dumps(r.path)}, "
            f"{headers}, {json.dumps(r.body.decode()) if r.body else 'nil'})"
        )
    return _WRK_SCRIPT % "\n".join(lines)


def _parse_wrk(text: str) -> tuple[int, float, float, dict[int, int]]:
    requests = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
    pct = {
        m.group(1): _ms(m.group(2), m.group(3))
        for m in re.finditer(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    }
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    statuses = {200: requests - (int(errors.group(1)) if errors else 0)}
    if errors:
        statuses[0] = int(errors.group(1))
    return requests, pct.get("50", 0.0), pct.get("99", 0.0), statuses


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _run_wrk(
    wrk: str,
    url: str,
    requests: list[Request],
    connections: int,
    warmup_s: float,
    duration_s: float,
    server_pid: int | None,
) -> LoadResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(_wrk_script(requests))
        script = f.name
    try:
        threads = str(min(2, connections))
        base = [wrk, "-t", threads, "-c", str(connections), "-s", script, "--latency"]
        # wrk takes whole seconds.
        duration_s = max(1, round(duration_s))
        if warmup_s > 0:
            subprocess.run([*base, "-d", f"{max(1, round(warmup_s))}s", url], capture_output=True, check=True)
        before = process_cpu_s(server_pid) if server_pid else 0.0
        started = time.perf_counter()
        out = subprocess.run([*base, "-d", f"{duration_s}s", url], capture_output=True, text=True, check=True)
        elapsed = time.perf_counter() - started
        server_cpu = (process_cpu_s(server_pid) - before) * duration_s / elapsed if server_pid else 0.0
    finally:
        os.unlink(script)
    count, p50, p99, statuses = _parse_wrk(out.stdout)
    return LoadResult(
        tool="wrk",
        connections=connections,
        duration_s=duration_s,
        requests=count,
        statuses=statuses,
        p50_ms=p50,
        p99_ms=p99,
        server_cpu_s=server_cpu,
    )


# ---------------------------------------------------------------------- entry points


def run(
    url: str,
    requests: list[Request],
    *,
    connections: int,
    warmup_s: float,
    duration_s: float,
    processes: int = 2,
    server_pid: int | None = None,
    use_wrk: bool = True,
) -> LoadResult:
    wrk = shutil.which("wrk") if use_wrk else None
    if wrk:
        return _run_wrk(wrk, url, requests, connections, warmup_s, duration_s, server_pid)
    return _run_python(url, requests, connections, processes, warmup_s, duration_s, server_pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker", required=True, help="the worker's JSON spec")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_worker(json.loads(args.worker)))))


if __name__ == "__main__":
    main()
