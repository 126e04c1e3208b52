"""`relayer.sdk` against the real relayer (Anvil, contracts, SQLite and PostgreSQL, HTTP): every method of
both clients, each rejection code an agent can meet raised as `AlphaGridError`, a submit whose answer
is lost retried idempotently, and the event stream resuming across a dropped connection."""

from __future__ import annotations

import asyncio
import queue
import subprocess
import sys
import threading
import time
from decimal import Decimal
from typing import Any

import pytest

from relayer.sdk import (
    AgentClient,
    AlphaGridError,
    AsyncAgentClient,
    Event,
    Intent,
    RetryPolicy,
    StopLoss,
    TakeProfit,
)
from tests.integration.conftest import Api

from .proxy import DropResponses, Pipe

LADDER = [TakeProfit(1000, 5000), StopLoss(-500)]
OTHER_KEY = "0x" + "42" * 32


def client(api: Api, index: int = 0, **kwargs: Any) -> AgentClient:
    agent_id, key = api.agent(index)
    return AgentClient(api.url, agent_id=agent_id, key=key, **kwargs)


def _confirmed(intent: Intent, kind: str) -> None:
    assert intent.status == "confirmed" and intent.http_status == 201, intent
    assert intent.type == kind and intent.transaction_hash and intent.intent_id is not None


# ---------------------------------------------------------------------- every method, sync


def test_sync_client_trades_and_reads(api: Api) -> None:
    with client(api) as c:
        assert "0x" + "42" not in repr(c) and c.address in repr(c)
        [nvda] = c.prices("NVDA")
        assert nvda.symbol == "NVDA" and nvda.price == Decimal("182.35") and not nvda.stale
        # The market (SPEC §5.6): no split yet, so the price per share is the price per token.
        assert nvda.market is not None and nvda.market.status == "Unknown"  # the seed sets no status
        assert nvda.market.multiplier is not None and nvda.market.multiplier.current == 1
        assert nvda.market.multiplier.next is None and nvda.share_price == nvda.price
        assert {p.symbol for p in c.prices()} >= {"NVDA", "AAPL", "TSLA", "MSFT", "SPY"}
        before = c.account()
        assert before.agent_id == c.agent_id and before.signer == c.address and before.track == "funded"
        assert before.next_nonce == 0 and before.deployed == 0

        q = c.quote_open("NVDA", "100", LADDER)
        assert q.ok and q.primary_type == "OpenPosition" and q.nonce == 0 and q.symbol == "NVDA"
        assert q.exits == tuple(r.to_json() for r in LADDER)
        assert q.market == nvda.market

        p = c.open("NVDA", usdc="100", exits=LADDER)
        _confirmed(p, "OpenPosition")
        assert p.position_id is not None and p.fill is not None and p.fill.usdc == Decimal("100")
        assert p.fill.tokens and p.fill.price and p.fill.price >= Decimal("182.35")  # the venue's spread

        pos = c.position(p.position_id)
        assert pos.open and pos.symbol == "NVDA" and pos.cost_basis == Decimal("100")
        assert [(r.trigger_type, r.trigger_bps, r.exit_bps) for r in pos.ladder] == [
            ("TakeProfit", 1000, 5000),
            ("StopLoss", -500, 10000),
        ]
        assert pos.ladder[1].trigger_price is not None and pos.history
        assert pos.market == nvda.market

        assert c.quote_add(p.position_id, "50").position_id == p.position_id
        _confirmed(added := c.add(p.position_id, usdc="50"), "AddToPosition")
        assert added.position_id == p.position_id and c.position(p.position_id).cost_basis == Decimal("150")

        assert c.quote_reduce(p.position_id, "0.1").primary_type == "ReducePosition"
        size = c.position(p.position_id).size
        _confirmed(c.reduce(p.position_id, tokens="0.1"), "ReducePosition")
        assert size is not None and c.position(p.position_id).size == size - Decimal("0.1")

        assert c.quote_update_exits(p.position_id, [StopLoss(-300)]).ok is False  # funded needs a TP
        ladder = [TakeProfit(2000, 10000), StopLoss(-300)]
        _confirmed(c.update_exits(p.position_id, ladder), "UpdateExitLadder")
        assert [r.trigger_bps for r in c.position(p.position_id).ladder] == [2000, -300]

        [listed] = c.positions()
        assert listed.position_id == p.position_id and c.positions("closed") == []
        assert {i.type for i in c.intents()} == {
            "OpenPosition",
            "AddToPosition",
            "ReducePosition",
            "UpdateExitLadder",
        }
        again = c.intent(p.intent_id or 0)
        assert again.status == "confirmed" and again.nonce == 0 and again.digest == p.digest
        assert c.intent(p) == again
        after = c.account()
        assert after.next_nonce == 4 and after.deployed and after.deployed > 0

        _confirmed(c.reduce(p.position_id), "ReducePosition")  # all of it
        assert not c.position(p.position_id).open and c.positions() == []

        # Fire and forget (Prefer: wait=0): a 202, then followed to the end.
        pending = c.open("AAPL", usdc="25", exits=LADDER, wait=0)
        assert pending.http_status in (201, 202) and pending.intent_id is not None
        done = c.wait(pending, timeout=30)
        assert done.status == "confirmed" and done.position_id is not None

        events = _take(c.events(), 5)
        assert all(isinstance(e, Event) and e.id is not None for e in events)
        assert [e.id for e in events] == _stored_event_ids(api, c.agent_id)[:5]
        resumed = _take(c.events(last_event_id=events[2].id), 2)
        assert [e.id for e in resumed] == [e.id for e in events[3:5]]


def _take(stream: Any, n: int) -> list[Event]:
    out: list[Event] = []
    for event in stream:
        out.append(event)
        if len(out) == n:
            break
    return out


# ---------------------------------------------------------------------- every method, async


def test_async_client_trades_and_reads(api: Api) -> None:
    agent_id, key = api.agent(0)

    async def run() -> None:
        async with AsyncAgentClient(api.url, agent_id=agent_id, key=key) as c:
            [nvda] = await c.prices("NVDA")
            assert nvda.price == Decimal("182.35")
            assert (await c.account()).next_nonce == 0
            assert (await c.quote_open("NVDA", "100", LADDER)).ok
            p = await c.open("NVDA", usdc="100", exits=LADDER)
            _confirmed(p, "OpenPosition")
            assert p.position_id is not None
            assert (await c.quote_add(p.position_id, "50")).ok
            _confirmed(await c.add(p.position_id, usdc="50"), "AddToPosition")
            assert (await c.quote_reduce(p.position_id, "0.1")).ok
            _confirmed(await c.reduce(p.position_id, tokens="0.1"), "ReducePosition")
            assert (await c.quote_update_exits(p.position_id, [TakeProfit(900), StopLoss(-300)])).ok
            ladder = [TakeProfit(900), StopLoss(-300)]
            _confirmed(await c.update_exits(p.position_id, ladder), "UpdateExitLadder")
            pos = await c.position(p.position_id)
            assert pos.cost_basis and 0 < pos.cost_basis < 150  # the reduce took its share of the cost
            assert [r.trigger_bps for r in pos.ladder] == [900, -300]
            assert [x.position_id for x in await c.positions()] == [p.position_id]
            assert len(await c.intents()) == 4 and (await c.intent(p)).status == "confirmed"
            pending = await c.open("AAPL", usdc="25", exits=LADDER, wait=0)
            assert (await c.wait(pending, timeout=30)).status == "confirmed"
            with pytest.raises(AlphaGridError) as e:
                await c.open("ZZZZ", usdc="1", exits=LADDER)
            assert e.value.code == "symbol_not_found" and e.value.status == 404
            seen: list[Event] = []
            async for event in c.events():
                seen.append(event)
                if len(seen) == 3:
                    break
            assert [e.id for e in seen] == sorted({e.id for e in seen})
            resumed: list[Event] = []
            async for event in c.events(last_event_id=seen[0].id):
                resumed.append(event)
                if len(resumed) == 2:
                    break
            assert [e.id for e in resumed] == [e.id for e in seen[1:]]

    asyncio.run(run())


# ---------------------------------------------------------------------- rejections


def _raises(code: str, status: int, fn: Any, *args: Any, **kwargs: Any) -> AlphaGridError:
    with pytest.raises(AlphaGridError) as info:
        fn(*args, **kwargs)
    assert info.value.code == code and info.value.status == status, repr(info.value)
    assert info.value.message and isinstance(info.value.details, dict)
    return info.value


def test_each_rejection_raises_alphagrid_error_with_its_code(api: Api) -> None:
    agent_id, _ = api.agent(0)
    with client(api) as c, AgentClient(api.url, agent_id=agent_id, key=OTHER_KEY) as wrong:
        e = _raises("invalid_signature", 401, wrong.open, "NVDA", usdc="100", exits=LADDER)
        assert e.details.get("recovered", e.details.get("recoveredSigner", "")).lower() != c.address.lower()
        e = _raises("exit_ladder_invalid", 422, c.open, "NVDA", usdc="100", exits=[StopLoss(-500)])
        assert e.details["reason"] == "TakeProfitRequired"
        _raises("trade_size_exceeded", 422, c.open, "NVDA", usdc="20000.000001", exits=LADDER)
        _raises("symbol_not_found", 404, c.open, "ZZZZ", usdc="1", exits=LADDER)
        _raises("invalid_request", 400, c.open, "NVDA", usdc="1.0000001", exits=LADDER)
        expired = c.quote_open("NVDA", "100", LADDER, deadline=int(time.time()) - 60)
        _raises("deadline_expired", 422, c.submit, expired)
        _raises("position_not_found", 404, c.add, 999_999, usdc="1")
        _raises("position_not_found", 404, c.position, 999_999)
        _raises("intent_not_found", 404, c.intent, 999_999)
        with AgentClient(api.url, agent_id=999, key=OTHER_KEY) as nobody:
            _raises("agent_not_found", 404, nobody.account)

        # Two intents quoted on the same nonce: the second to arrive finds it used.
        first, second = c.quote_open("NVDA", "100", LADDER), c.quote_open("AAPL", "100", LADDER)
        assert first.nonce == second.nonce == 0
        late = c.signed_body(second)
        _confirmed(c.submit(first), "OpenPosition")
        e = _raises("nonce_mismatch", 409, c.submit_body, "OpenPosition", late)
        assert e.details["expected"] == 1
        if e.suggestion is not None:  # SPEC §5.2, where the relayer computes one
            assert e.suggestion.get("nonce") == 1
        _raises("position_exists", 409, c.open, "NVDA", usdc="10", exits=LADDER)

        # Nothing that was refused changed the account.
        assert c.account().next_nonce == 1 and len(c.positions()) == 1


def test_unreachable_relayer_is_connection_failed(api: Api) -> None:
    from relayer.chain.anvil import free_port

    _agent_id, key = api.agent(0)
    c = AgentClient(f"http://127.0.0.1:{free_port()}", agent_id=1, key=key, retry=RetryPolicy(2, 0.01))
    with pytest.raises(AlphaGridError) as info:
        c.prices()
    assert info.value.code == "connection_failed" and info.value.status is None
    with pytest.raises(AlphaGridError) as bad:
        AgentClient(api.url, agent_id=1, key="0xnot-a-key")
    assert bad.value.code == "invalid_key" and "not-a-key" not in str(bad.value)


# ---------------------------------------------------------------------- a lost answer


def test_a_lost_submit_answer_is_retried_with_the_same_signed_intent(api: Api) -> None:
    """The relayer executes the open, the proxy drops its answer; the SDK sends the same signed body
    again and gets the first record (200): one intent, one nonce, one position."""
    agent_id, key = api.agent(0)
    with DropResponses(api.url, drop=1).running() as proxy, AgentClient(
        proxy.url, agent_id=agent_id, key=key, retry=RetryPolicy(attempts=3, backoff_s=0.05)
    ) as c:
        intent = c.open("NVDA", usdc="100", exits=LADDER)
        assert proxy.posts == 2 and proxy.drop == 0
    assert intent.http_status == 200 and intent.status == "confirmed", intent
    with client(api) as direct:
        [only] = direct.intents()
        assert only.intent_id == intent.intent_id and only.nonce == 0
        assert direct.account().next_nonce == 1
        [position] = direct.positions()
        assert position.position_id == intent.position_id and position.cost_basis == Decimal("100")

    # Without retries the lost answer is a connection failure, and nothing was sent twice.
    with DropResponses(api.url, drop=1).running() as proxy, AgentClient(
        proxy.url, agent_id=agent_id, key=key, retry=RetryPolicy(attempts=1)
    ) as c:
        with pytest.raises(AlphaGridError) as info:
            c.open("AAPL", usdc="10", exits=LADDER)
        assert info.value.code == "connection_failed" and proxy.posts == 1
    with client(api) as direct:
        assert direct.account().next_nonce == 2 and len(direct.positions()) == 2


# ---------------------------------------------------------------------- events across a dropped connection


def test_events_resume_after_a_dropped_connection(api: Api) -> None:
    agent_id, key = api.agent(0)
    got: queue.Queue[Event | BaseException] = queue.Queue()
    with Pipe(api.url).running() as pipe:
        streaming = AgentClient(pipe.url, agent_id=agent_id, key=key)

        def consume() -> None:
            try:
                for event in streaming.events():
                    got.put(event)
            except BaseException as exc:  # handed to the test thread; closing the client ends it
                got.put(exc)

        reader = threading.Thread(target=consume, daemon=True)
        reader.start()
        try:
            with client(api) as c:
                p = c.open("NVDA", usdc="100", exits=LADDER)
                first = _drain(got, until=lambda seen: len(seen) > 0)
                time.sleep(0.5)
                first += _drain(got, until=None)  # whatever else the open wrote
                pipe.cut()  # the stream's connection dies
                assert p.position_id is not None
                c.add(p.position_id, usdc="50")
                c.update_exits(p.position_id, [TakeProfit(2000), StopLoss(-300)])
            expected = _stored_event_ids(api, agent_id)
            rest = _drain(got, until=lambda seen: len(first) + len(seen) >= len(expected))
        finally:
            streaming.close()
            reader.join(timeout=10)
    ids = [e.id for e in first + rest]
    assert ids == expected and len(rest) > 0


def _stored_event_ids(api: Api, agent_id: int) -> list[int]:
    """What the relayer has stored for the agent, in order: what a stream from the start delivers."""
    from sqlalchemy import select

    from relayer.store.models import StreamEvent

    with api.services.sessions() as session:
        return list(
            session.scalars(
                select(StreamEvent.seq).where(StreamEvent.agent_id == agent_id).order_by(StreamEvent.seq)
            )
        )


def _drain(got: queue.Queue[Event | BaseException], until: Any, timeout: float = 20) -> list[Event]:
    out: list[Event] = []
    deadline = time.monotonic() + timeout
    while True:
        if until is not None and until(out):
            return out
        left = deadline - time.monotonic()
        if left <= 0:
            if until is None:
                return out
            raise AssertionError(f"events did not arrive: {out}")
        try:
            item = got.get(timeout=min(left, 0.3 if until is None else left))
        except queue.Empty:
            if until is None:
                return out
            continue
        if isinstance(item, BaseException):
            raise item
        out.append(item)


# ---------------------------------------------------------------------- light to import


def test_the_sdk_imports_without_the_relayer_stack() -> None:
    code = (
        "import sys, relayer.sdk\n"
        "heavy = sorted(m for m in ('web3', 'fastapi', 'sqlalchemy', 'pydantic_settings', 'uvicorn') "
        "if m in sys.modules)\n"
        "print(','.join(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


# ---------------------------------------------------------------------- examples/agent.py


def test_example_agent_reads_alphagrid_home_and_opens(api: Api, tmp_path: Any) -> None:
    import os
    from pathlib import Path

    home = tmp_path / "home"
    manifest = api.stack.manifest.model_copy(update={"api_url": api.url})
    manifest.write(home / "deployment.json")
    example = Path(__file__).resolve().parents[2] / "examples" / "agent.py"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHAGRID_")}
    env["ALPHAGRID_HOME"] = str(home)
    done = subprocess.run(
        [sys.executable, str(example), "--symbol", "AAPL", "--usdc", "250", "--take-profit-bps", "1500"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "confirmed" in done.stdout and "AAPL for 250 USDC" in done.stdout
    assert "TakeProfit  +1500 bps -> sell 50%" in done.stdout
    assert "StopLoss     -500 bps -> sell 100%" in done.stdout
    # --manifest and --agent-id/--key as before; a rejection exits non-zero.
    agent_id, key = api.agent(1)
    again = subprocess.run(
        [sys.executable, str(example), "--manifest", str(home / "deployment.json"),
         "--agent-id", str(agent_id), "--key", key, "--stop-loss-bps", "-5000"],
        env={k: v for k, v in env.items() if k != "ALPHAGRID_HOME"},
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert again.returncode != 0 and "exit_ladder_invalid" in again.stderr
