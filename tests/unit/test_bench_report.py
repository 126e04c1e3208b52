"""The benchmark harness's machinery, without running a benchmark: ratios and percentiles, the table
and results file, forge's gas lines, wrk's output, py-spy's collapsed stacks, and the load
generator's worker against a tiny local HTTP server."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench import gas, load, profile
from bench.report import Figure, Machine, Report, median, percentile, ratio, results_path, write


def test_ratio_percentile_median() -> None:
    assert ratio(50, 200) == 0.25
    assert ratio(1, 0) == 0.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([7.0], 0.99) == 7.0
    assert median([3.0, 1.0, 2.0]) == 2.0
    with pytest.raises(ValueError):
        percentile([], 0.5)


def _machine() -> Machine:
    return Machine(
        cpu="Test CPU",
        cores=2,
        memory="1.0 GiB",
        python="3.11.7",
        platform="Linux",
        versions={"web3": "8.0.0", "anvil": "anvil 1.7.1"},
        commit="abc123",
        load_start=(1.0, 0.5, 0.25),
        load_end=(2.0, 1.0, 0.5),
    )


def test_report_table_and_file(tmp_path: Path) -> None:
    report = Report(title="T", command="python -m bench", machine=_machine(), wall_s=12.3)
    report.figures = [
        Figure("quote requests/s", "400/s", "/health 1,000/s → 0.40×", "≥ 0.5×", False),
        Figure("tick 100k vs 1k", "1.01×", "itself", "≤ 2×", True),
        Figure("gas per add", "130,576", "UniswapX", "", None),
    ]
    report.sections.append(("Notes", "something measured"))
    text = report.markdown()
    assert "| quote requests/s | 400/s | /health 1,000/s → 0.40× | ≥ 0.5× | **missed** |" in text
    assert "| tick 100k vs 1k | 1.01× | itself | ≤ 2× | met |" in text
    assert "| gas per add | 130,576 | UniswapX |  | — |" in text
    assert "## Figures (1 of 2 goals met)" in text
    assert "1.00 / 0.50 / 0.25 at start, 2.00 / 1.00 / 0.50 at end" in text
    assert "git commit abc123" in text and "web3 8.0.0" in text
    assert "## Notes\n\nsomething measured" in text
    assert [f.name for f in report.missed()] == ["quote requests/s"]
    path = write(report, results_path(datetime(2026, 11, 21, tzinfo=UTC), tmp_path))
    assert path == tmp_path / "2026-11-21.md"
    assert path.read_text() == text + "\n"


FORGE = """
[PASS] test_openPosition_gas() (gas: 359315)
Logs:
  openPosition execution: 180205
  openPosition calldata bytes: 708
  openPosition calldata gas: 5160
  openPosition refund: 0
  openPosition total with base: 206365
  addToPosition execution: 107040
  addToPosition total with base: 130576
  halfDone execution: 5
"""


def test_gas_lines_from_forge() -> None:
    figures = gas.parse(FORGE)
    assert set(figures) == {"openPosition", "addToPosition"}  # a scenario needs both figures
    assert figures["openPosition"].execution == 180_205
    assert figures["openPosition"].total == 206_365
    assert figures["addToPosition"].label == "add"


WRK = """Running 4s test @ http://127.0.0.1:8000/health
  2 threads and 8 connections
  Latency Distribution
     50%    3.10ms
     75%    4.00ms
     90%    5.00ms
     99%  850.00us
  8000 requests in 4.00s, 1.00MB read
  Non-2xx or 3xx responses: 10
Requests/sec:   2000.00
"""


def test_wrk_output() -> None:
    count, p50, p99, statuses = load._parse_wrk(WRK)
    assert count == 8000
    assert p50 == pytest.approx(3.1)
    assert p99 == pytest.approx(0.85)
    assert statuses == {200: 7990, 0: 10}


def test_collapsed_stacks_summary() -> None:
    collapsed = "\n".join(
        [
            "thread (1): MainThread;Thread.run (threading.py:1);quote (relayer/quotes.py:10);"
            "keccak (eth_utils/crypto.py:5) 3",
            "thread (1): MainThread;quote (relayer/quotes.py:12);execute (sqlalchemy/orm/session.py:9) 1",
        ]
    )
    p = profile.summarise(collapsed, "t", skip=profile.plumbing)
    assert p.samples == 4
    assert dict(p.inclusive)["quote (relayer/quotes.py)"] == 1.0  # counted once per sample
    assert "Thread.run (threading.py)" not in dict(p.inclusive)
    assert dict(p.self_time)["keccak (eth_utils/crypto.py)"] == 0.75
    assert dict(p.packages) == {"eth_utils": 0.75, "sqlalchemy": 0.25}
    assert "| `quote (relayer/quotes.py)` | 100% |" in p.markdown()
    assert profile.package_of("relayer/api/app.py") == "relayer.api.app"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._answer(200 if self.path == "/ok" else 404, b'{"status":"ok"}')

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self._answer(200, body)

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


def test_python_load_generator_counts_and_times_answers() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        body = json.dumps({"x": 1}).encode()
        result = load.run(
            url,
            [
                load.Request("GET", "/ok"),
                load.Request("POST", "/echo", body),
                load.Request("GET", "/missing"),
            ],
            connections=2,
            warmup_s=0.1,
            duration_s=0.5,
            processes=1,
            use_wrk=False,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.requests > 10
    assert result.requests == len(result.latencies_ms) == sum(result.statuses.values())
    assert set(result.statuses) == {200, 404}  # the requests are cycled, and each answer checked
    assert 0 < result.p50_ms <= result.p99_ms
    assert result.rate == result.requests / 0.5
