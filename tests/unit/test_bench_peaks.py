"""The pure parts of issue 11's benchmarks (burst, gap-down, one quiet agent, crash), without a chain
or a relayer: splitting jobs, summarising answers, the gap price, the chain watcher and the receipt
tally against a scripted JSON-RPC provider, the client's answer labels, and the report's figures."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from bench import burst, gapdown, onchain
from bench.__main__ import burst_figures, gapdown_figures, single_figure
from bench.burst_client import _label
from relayer.store.db import make_engine, make_session_factory
from relayer.store.migrate import upgrade
from relayer.store.models import Intent, IntentStatus


def test_split_is_round_robin_and_covers_every_item_once() -> None:
    assert burst.split(list(range(7)), 3) == [[0, 3, 6], [1, 4], [2, 5]]
    assert burst.split([1, 2], 4) == [[1], [2]]  # never an empty group
    assert burst.split(list(range(10)), 1) == [list(range(10))]
    groups = burst.split(list(range(1000)), 4)
    assert sorted(x for g in groups for x in g) == list(range(1000))


def _answer(start: float, submit: float | None, end: float, code: int, label: str) -> dict[str, Any]:
    return {"agent": 1, "start": start, "submit": submit, "end": end, "code": code, "label": label}


def test_summarise_counts_2xx_over_first_quote_to_last_answer() -> None:
    answers = [
        _answer(10.0, 10.1, 10.5, 201, "201 confirmed"),
        _answer(10.2, 10.3, 11.0, 202, "202 submitted"),
        _answer(10.4, 10.5, 12.0, 429, "429 rate_limited"),
        _answer(10.6, None, 10.7, 404, "404 unknown_agent (quote)"),
    ]
    s = burst.summarise(answers)
    assert (s.sent, s.ok) == (4, 2)
    assert s.seconds == pytest.approx(2.0)
    assert s.rate == pytest.approx(1.0)
    # Latencies are those of the 2xx answers only: submit alone, and quote+sign+submit.
    assert s.submit_ms == pytest.approx([400.0, 700.0])
    assert s.total_ms == pytest.approx([500.0, 800.0])
    assert s.p("submit", 0.99) == pytest.approx(700.0)
    assert s.not_ok == Counter({"429 rate_limited": 1, "404 unknown_agent (quote)": 1})
    assert s.labels["201 confirmed"] == 1
    with pytest.raises(ValueError):
        burst.summarise([])


def test_summarise_without_any_2xx_has_zero_rate_and_latency() -> None:
    s = burst.summarise([_answer(1.0, 1.1, 1.2, 500, "500 internal")])
    assert s.ok == 0 and s.rate == 0.0 and s.p("submit", 0.5) == 0.0


def test_single_jobs_alternate_open_and_reduce_on_the_symbols_in_turn() -> None:
    chain: Any = SimpleNamespace(agents=[(7, "0xkey")])
    jobs = burst.single_jobs(chain, 6)
    assert [j["kind"] for j in jobs] == ["OpenPosition", "ReducePosition"] * 3
    assert [j["params"]["symbol"] for j in jobs] == ["NVDA", "NVDA", "AAPL", "AAPL", "TSLA", "TSLA"]
    assert all(j["agent"] == 7 and j["key"] == "0xkey" for j in jobs)
    assert "tokenAmount" not in jobs[1]["params"]  # the reduce closes the whole position


def test_burst_jobs_one_open_per_agent_with_a_stop_loss() -> None:
    chain: Any = SimpleNamespace(agents=[(i, f"k{i}") for i in range(1, 8)])
    jobs = burst.burst_jobs(chain)
    assert [j["agent"] for j in jobs] == list(range(1, 8))
    assert {j["kind"] for j in jobs} == {"OpenPosition"}
    assert '"StopLoss"' in jobs[0]["params"]["exits"]
    assert jobs[5]["params"]["symbol"] == jobs[0]["params"]["symbol"]  # five symbols in turn


def test_gap_price_crosses_a_five_percent_stop() -> None:
    assert gapdown.gap_price(100_00000000) == 92_00000000
    assert gapdown.gap_price(999, 800) == 919  # rounded down
    assert gapdown.close_latencies_ms(10.0, [10.5, 10.2]) == pytest.approx([200.0, 500.0])


# ---------------------------------------------------------------------- the chain, scripted


class ScriptedProvider:
    """Answers JSON-RPC calls from a script of (method → callable(params))."""

    def __init__(self, script: dict[str, Any]) -> None:
        self.script = script
        self.calls: list[tuple[str, Any]] = []

    def make_request(self, method: str, params: Any) -> dict[str, Any]:
        self.calls.append((method, params))
        return {"jsonrpc": "2.0", "id": 1, "result": self.script[method](params)}


def _log(block: int, key: int) -> dict[str, Any]:
    return {"blockNumber": hex(block), "topics": [onchain.POSITION_CLOSED, hex(key)]}


def test_log_watcher_keeps_the_first_sighting_and_moves_on() -> None:
    state = {"head": 5, "logs": [_log(5, 1), _log(5, 2)]}
    provider = ScriptedProvider(
        {"eth_blockNumber": lambda _p: hex(state["head"]), "eth_getLogs": lambda _p: state["logs"]}
    )
    w3: Any = SimpleNamespace(provider=provider)
    watcher = onchain.LogWatcher(w3, "0xrouter", onchain.POSITION_CLOSED, 1, from_block=4)
    watcher.poll()
    assert set(watcher.seen) == {1, 2} and watcher.seen[1].block == 5
    assert set(watcher.blocks_seen) == {4, 5}
    first = watcher.seen[1].at
    assert provider.calls[-1][1][0]["fromBlock"] == hex(4)
    state.update(head=7, logs=[_log(6, 1), _log(7, 3)])  # a second sighting of 1 changes nothing
    watcher.poll()
    assert provider.calls[-1][1][0]["fromBlock"] == hex(6)
    assert watcher.seen[1].at == first and watcher.seen[3].block == 7
    assert watcher.from_block == 8
    assert watcher.wait_for([1, 2, 3], timeout_s=1)
    assert not watcher.wait_for([1, 4], timeout_s=0.3)
    assert not watcher.wait_for([1, 4], timeout_s=10, idle_s=0.1)  # nothing new: gives up early


def test_txs_to_counts_only_the_target_with_gas_and_reverts() -> None:
    blocks = {
        "0xa": [
            {"to": "0xRouter", "gasUsed": hex(100), "status": "0x1"},
            {"to": "0xoracle", "gasUsed": hex(5), "status": "0x1"},
        ],
        "0xb": [{"to": "0xrouter", "gasUsed": hex(50), "status": "0x0"}],
    }
    w3: Any = SimpleNamespace(provider=ScriptedProvider({"eth_getBlockReceipts": lambda p: blocks[p[0]]}))
    assert onchain.txs_to(w3, "0xROUTER", 10, 11) == onchain.BlockTxs(2, 1, 150, 2)
    assert onchain.txs_to(w3, "0xrouter", 11, 10).count == 0


# ---------------------------------------------------------------------- client labels and figures


def test_client_labels_say_status_or_error_code() -> None:
    assert _label(httpx.Response(201, json={"status": "confirmed"}), "submit") == "201 confirmed"
    assert _label(httpx.Response(429, json={"code": "rate_limited"}), "submit") == "429 rate_limited"
    assert _label(httpx.Response(404, json={"code": "unknown_agent"}), "quote") == "404 unknown_agent (quote)"
    assert _label(httpx.Response(502, text="bad gateway"), "submit") == "502 bad gateway"


def _burst_result(answers: list[dict[str, Any]], last_on_chain_s: float | None) -> burst.BurstResult:
    s = burst.summarise(answers)
    return burst.BurstResult(
        config=burst.BurstConfig(agents=len(answers)),
        summary=s,
        setup_s=1.0,
        started=0.0,
        last_on_chain_s=last_on_chain_s,
        on_chain=s.ok,
        relayer_cpu_s=1.0,
        anvil_cpu_s=0.5,
        client_cpu_s=0.2,
        window_s=s.seconds,
    )


def test_burst_figures_verdicts() -> None:
    fast = [_answer(i / 1000, i / 1000, i / 1000 + 0.1, 201, "201 confirmed") for i in range(1000)]
    rate, p99 = burst_figures(_burst_result(fast, 2.0))
    assert rate.met is True and p99.met is True
    slow = [_answer(i / 10, i / 10, i / 10 + 3.0, 201, "201 confirmed") for i in range(100)]
    rate, p99 = burst_figures(_burst_result(slow, None))
    assert rate.met is False and p99.met is False and "only" in rate.comparison
    refused = [*fast[:-1], _answer(0.5, 0.5, 0.6, 429, "429 rate_limited")]
    rate, _ = burst_figures(_burst_result(refused, 2.0))
    assert rate.met is False and "429 rate_limited × 1" in rate.comparison  # every intent must be 2xx


def _gap(last: float | None, closed: int = 1000) -> gapdown.GapResult:
    return gapdown.GapResult(
        positions=1000,
        closed=closed,
        setup_s=1,
        relayer_start_s=1,
        last_close_ms=last,
        latencies_ms=[100.0, last or 100.0],
        keeper_txs=10,
        keeper_reverted=0,
        gas_used=1_000_000,
        blocks=10,
        price_inclusion_ms=5,
    )


def test_gapdown_and_single_figures() -> None:
    assert gapdown_figures(_gap(1500.0))[0].met is True
    assert gapdown_figures(_gap(2500.0))[0].met is False
    missing = gapdown_figures(_gap(None, closed=990))[0]
    assert missing.met is False and missing.value == "990/1,000 closed"
    s = burst.summarise([_answer(0, 0.01, 0.1, 201, "201 confirmed")])
    assert single_figure(burst.SingleResult(1, s, 1.0, 2.0)).met is None  # compared by hand, before/after


# ---------------------------------------------------------------------- where a submit's time went


def test_submit_phases_read_the_status_history_against_the_clients_clock(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'phases.db'}"
    engine = make_engine(url)
    upgrade(engine)
    t0 = 1_800_000_000.0
    with make_session_factory(engine).begin() as session:
        for agent, offsets in ((1, (0.1, 0.3, 0.4)), (2, (0.2, 0.5, 0.7))):
            row = Intent(
                agent_id=agent, primary_type="OpenPosition", nonce=0, digest=f"0x{agent:064x}",
                request={}, message={}, signature="0x", status="confirmed",
            )
            session.add(row)
            session.flush()
            for status, dt in zip(("received", "submitted", "confirmed"), offsets, strict=True):
                at = datetime.fromtimestamp(t0 + dt, UTC)
                session.add(IntentStatus(intent_id=row.id, status=status, at=at))
    engine.dispose()
    answers = [
        {"agent": 1, "code": 201, "submit": t0, "end": t0 + 0.5},
        {"agent": 2, "code": 201, "submit": t0, "end": t0 + 1.0},
        {"agent": 3, "code": 429, "submit": t0, "end": t0 + 0.1},  # refused: no phases
    ]
    phases = burst.submit_phases(url, answers)
    assert list(phases) == list(burst.PHASES)
    assert [round(p50) for p50, _p90 in phases.values()] == [100, 200, 100, 100]
    assert [round(p90) for _p50, p90 in phases.values()] == [200, 300, 200, 300]
