"""The read side of the API (SPEC §2.2, §2.5, §2.6) against the real relayer: prices, vault tokens,
agents, positions with their ladder and history, intent records with their status history, metrics,
the OpenAPI document, signature diagnostics and the resumable event stream."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from eth_account import Account

from .conftest import Api
from .test_api_idempotency import nonces_used
from .test_api_rejections import (
    LADDER,
    SL,
    STRANGER_KEY,
    TP,
    _eth_account_digest,
    assert_error,
    chain_time,
    execute,
    nothing_sent,
    open_position,
    rpc,
    settle,
    signed,
    submit,
)


def test_prices_and_vault_tokens(api: Api) -> None:
    c = api.client
    tokens = api.stack.manifest.tokens
    everything = c.get("/prices").json()["prices"]
    assert sorted(p["symbol"] for p in everything) == sorted(tokens)
    for p in everything:
        assert set(p) >= {"symbol", "token", "price", "updatedAt", "stale"}
        assert p["token"] == tokens[p["symbol"]] and p["stale"] is False
    some = c.get("/prices", params={"symbols": "NVDA,AAPL"}).json()["prices"]
    assert [(p["symbol"], p["price"]) for p in some] == [("NVDA", "182.35"), ("AAPL", "231.5")]
    assert_error(c.get("/prices", params={"symbols": "NVDA,ZZZZ"}), 404, "symbol_not_found", symbol="ZZZZ")
    assert_error(c.get("/prices", params={"symbols": "nvda"}), 400, "invalid_request")

    vault = c.get("/vaults/1/tokens").json()
    assert vault["vault"] == api.stack.manifest.vaults[0].address and str(vault["vaultId"]) == "1"
    assert {(t["symbol"], t["address"], t["decimals"]) for t in vault["tokens"]} == {
        (s, a, 18) for s, a in tokens.items()
    }
    assert_error(c.get("/vaults/2/tokens"), 404, "vault_not_found")


def test_prices_turn_stale_when_the_chain_moves_past_the_max_age(api: Api) -> None:
    """The relayer must judge staleness (and sign deadlines) by the chain's clock. Here the chain moves
    an hour on with blocks that carry none of the relayer's events."""
    rpc(api, "evm_increaseTime", 3601)
    rpc(api, "evm_mine")
    settle(api)
    assert api.client.get("/prices", params={"symbols": "NVDA"}).json()["prices"][0]["stale"] is True
    q = api.client.get(
        f"/agents/{api.agent(0)[0]}/trade-intents/quote",
        params={"symbol": "NVDA", "usdcAmount": "100", "exits": json.dumps(LADDER)},
    ).json()
    assert int(q["typedData"]["message"]["deadline"]) > chain_time(api), "the quoted deadline has passed"
    assert next(c for c in q["checks"] if c["check"] == "oracle_fresh")["ok"] is False


def test_ready_stays_ready_across_blocks_without_events(api: Api) -> None:
    for _ in range(8):
        rpc(api, "evm_mine")
    settle(api)
    r = api.client.get("/ready")
    assert r.status_code == 200, r.text


def test_agent_view_counts_intents_in_flight(api: Api) -> None:
    agent_id, _ = api.agent(0)
    c = api.client
    a = c.get(f"/agents/{agent_id}").json()
    assert a["signer"] == Account.from_key(api.agent(0)[1]).address
    assert a["vault"] == api.stack.manifest.vaults[0].address
    assert a["track"]["name"] == "funded" and a["track"]["limits"]["maxTradeSizeBps"] == 2000
    assert (a["allocation"], a["deployed"], a["headroom"], a["turnoverToday"], a["realizedPnlToday"]) == (
        "100000",
        "0",
        "100000",
        "0",
        "0",
    )
    assert a["nextNonce"] == 0
    assert c.get(f"/agents/{api.agent(1)[0]}").json()["track"]["name"] == "evaluation"
    rpc(api, "evm_setAutomine", False)
    try:
        _q, body = signed(api, 0, "OpenPosition", symbol="NVDA", usdcAmount="1000", exits=LADDER)
        r = submit(api, agent_id, "OpenPosition", body, headers={"Prefer": "wait=0"})
        assert r.status_code == 202, r.text
        assert c.get(f"/agents/{agent_id}").json()["nextNonce"] == 1
        assert nonces_used(api, agent_id) == []
    finally:
        rpc(api, "evm_setAutomine", True)
    rpc(api, "evm_mine")
    deadline = time.monotonic() + 10
    while c.get(f"/agents/{agent_id}/intents/{r.json()['intentId']}").json()["status"] != "confirmed":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    settle(api)
    a = c.get(f"/agents/{agent_id}").json()
    assert (a["nextNonce"], a["deployed"], a["headroom"], a["turnoverToday"]) == (1, "1000", "99000", "1000")


def _trigger_price(entry: Decimal, bps: int) -> Decimal:
    return entry * (10_000 + bps) / 10_000


def test_positions_with_ladder_history_and_status_filter(api: Api) -> None:
    agent_id, _ = api.agent(0)
    c = api.client
    nvda = open_position(api, usdc="1000", exits=LADDER)
    aapl = open_position(api, symbol="AAPL", usdc="500", exits=[{**TP, "exitBps": 10000}, SL])
    execute(api, 0, "ReducePosition", positionId=aapl)
    listing = {
        s: [p["id"] for p in c.get(f"/agents/{agent_id}/positions", params={"status": s}).json()["positions"]]
        for s in ("open", "closed", "all")
    }
    assert listing == {"open": [nvda], "closed": [aapl], "all": [nvda, aapl]}
    assert [p["id"] for p in c.get(f"/agents/{agent_id}/positions").json()["positions"]] == [nvda]
    assert_error(c.get(f"/agents/{agent_id}/positions", params={"status": "gone"}), 400, "invalid_request")

    p = c.get(f"/agents/{agent_id}/positions", params={"status": "open"}).json()["positions"][0]
    for field in (
        "id",
        "status",
        "symbol",
        "token",
        "size",
        "costBasis",
        "entryPrice",
        "openedAt",
        "openTx",
        "currentPrice",
        "unrealizedPnl",
        "realizedPnl",
        "ladder",
    ):
        assert field in p, field
    assert (p["status"], p["symbol"], p["costBasis"], p["currentPrice"]) == ("open", "NVDA", "1000", "182.35")
    entry = Decimal(p["costBasis"]) / Decimal(p["size"])
    assert abs(Decimal(p["entryPrice"]) - entry) < Decimal("0.000001")
    assert [(r["triggerType"], r["triggerBps"], r["exitBps"], r["fired"]) for r in p["ladder"]] == [
        ("TakeProfit", 2000, 5000, False),
        ("StopLoss", -1000, 10000, False),
    ]
    for rule in p["ladder"]:
        assert abs(Decimal(rule["triggerPrice"]) - _trigger_price(entry, rule["triggerBps"])) < Decimal(
            "0.000001"
        )

    one = c.get(f"/agents/{agent_id}/positions/{nvda}").json()
    assert {k: v for k, v in one.items() if k not in ("history", "audit")} == p
    assert [h["kind"] for h in one["history"]] == ["opened", "ladder"]
    opened = one["history"][0]
    assert (
        opened["transactionHash"] == p["openTx"]
        and opened["usdc"] == "1000"
        and opened["oraclePrice"] == "182.35"
    )
    assert one["history"][1]["rules"] == LADDER
    assert isinstance(one["audit"], list)
    closed = c.get(f"/agents/{agent_id}/positions/{aapl}").json()
    assert closed["status"] == "closed" and closed["size"] == "0" and closed["closeTx"]
    assert [h["kind"] for h in closed["history"]] == ["opened", "ladder", "reduced", "closed"]


def test_intent_records_and_their_status_history(api: Api) -> None:
    agent_id, _ = api.agent(0)
    c = api.client
    position_id = open_position(api)
    execute(api, 0, "UpdateExitLadder", positionId=position_id, exits=[{**TP, "triggerBps": 3000}, SL])
    listed = c.get(f"/agents/{agent_id}/intents").json()["intents"]
    assert [(i["type"], i["nonce"], i["status"]) for i in listed] == [
        ("UpdateExitLadder", 1, "confirmed"),
        ("OpenPosition", 0, "confirmed"),
    ]
    assert listed[1]["fill"]["usdc"] == "1000" and "fill" not in listed[0]
    newest = c.get(f"/agents/{agent_id}/intents", params={"limit": 1}).json()["intents"]
    assert [i["intentId"] for i in newest] == [listed[0]["intentId"]]
    for bad in ("-1", "0", "1001", "x"):
        assert_error(c.get(f"/agents/{agent_id}/intents", params={"limit": bad}), 400, "invalid_request")
    ones = [c.get(f"/agents/{agent_id}/intents/{item['intentId']}").json() for item in listed]
    for item, one in zip(listed, ones, strict=True):
        assert {k: v for k, v in one.items() if k != "history"} == item
        assert one["digest"].startswith("0x") and len(one["digest"]) == 66
        assert one["transactionHash"] and one["blockNumber"] and one["positionId"] == position_id
    # Each status once, in order: two finalizers (the waiting request and the dispatcher) must not
    # both confirm the same intent.
    for one in ones:
        assert [h["status"] for h in one["history"]] == ["received", "submitted", "confirmed"], one["history"]


def test_timestamps_carry_their_utc_offset(api: Api) -> None:
    """An intent's times must read the same from every backend: ISO 8601 with the UTC offset."""
    agent_id, _ = api.agent(0)
    open_position(api)
    one = api.client.get(f"/agents/{agent_id}/intents/1").json()
    stamps = [one["createdAt"], one["updatedAt"], *(h["at"] for h in one["history"])]
    for stamp in stamps:
        assert datetime.fromisoformat(stamp).utcoffset() == timedelta(0), stamps


def test_metrics_openapi_and_docs(api: Api) -> None:
    c = api.client
    open_position(api)
    metrics = c.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    names = {
        line.split("{")[0].split(" ")[0] for line in metrics.text.splitlines() if not line.startswith("#")
    }
    assert {"alphagrid_http_requests_total", "alphagrid_intents_total", "alphagrid_indexed_block"} <= names
    assert 'alphagrid_intents_total{code="201",type="OpenPosition"} 1.0' in metrics.text
    # By route template and status, timed: what the metrics middleware records.
    route = 'route="/agents/{agent_id}/trade-intents"'
    assert f'alphagrid_http_requests_total{{{route},status="201"}} 1.0' in metrics.text
    assert f"alphagrid_http_request_seconds_count{{{route}}} 1.0" in metrics.text
    assert c.get("/no-such-route").status_code == 404
    assert 'alphagrid_http_requests_total{route="unmatched",status="404"} 1.0' in c.get("/metrics").text
    doc = c.get("/openapi.json").json()
    for path in (
        "/agents/{agent_id}/trade-intents",
        "/agents/{agent_id}/add-intents",
        "/agents/{agent_id}/reduce-intents",
        "/agents/{agent_id}/exit-ladder-intents",
        "/agents/{agent_id}/intents/verify",
        "/prices",
        "/vaults/{vault_id}/tokens",
        "/agents/{agent_id}/events",
        "/health",
        "/ready",
        "/metrics",
    ):
        assert path in doc["paths"], path
    docs = c.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_verify_explains_a_signature_and_sends_nothing(api: Api) -> None:
    agent_id, key = api.agent(0)
    c = api.client
    position_id = open_position(api)
    cases = {
        "OpenPosition": {"symbol": "AAPL", "usdcAmount": "100", "exits": LADDER},
        "AddToPosition": {"positionId": position_id, "usdcAmount": "100"},
        "ReducePosition": {"positionId": position_id, "tokenAmount": "0.1"},
        "UpdateExitLadder": {"positionId": position_id, "exits": LADDER},
    }
    registered = Account.from_key(key).address
    with nothing_sent(api):
        for primary_type, params in cases.items():
            q, body = signed(api, 0, primary_type, **params)
            v = c.post(
                f"/agents/{agent_id}/intents/verify", json={"primaryType": primary_type, **body}
            ).json()
            assert v["ok"] is True and all(check["ok"] for check in v["checks"]), v
            assert v["recoveredSigner"] == v["registeredSigner"] == registered
            assert v["digest"] == _eth_account_digest(q["typedData"])
            assert v["typedData"] == q["typedData"]
            assert {"domainSeparator", "structHash", "expectedNonce"} <= set(v)
            names = [check["check"] for check in v["checks"]]
            assert names[:5] == ["signature", "agent_active", "not_paused", "nonce", "deadline"]

            q, body = signed(api, 0, primary_type, key=STRANGER_KEY, **params)
            v = c.post(
                f"/agents/{agent_id}/intents/verify", json={"primaryType": primary_type, **body}
            ).json()
            assert v["ok"] is False and v["recoveredSigner"] == Account.from_key(STRANGER_KEY).address
            failed = [check for check in v["checks"] if not check["ok"]]
            assert [(f["check"], f["code"]) for f in failed] == [("signature", "invalid_signature")], failed
            assert v["digest"] == _eth_account_digest(q["typedData"])
        # A wrong nonce and a past deadline are both named, next to the good signature.
        _q, body = signed(
            api, 0, "OpenPosition", message={"nonce": 5, "deadline": 1}, **cases["OpenPosition"]
        )
        v = c.post(f"/agents/{agent_id}/intents/verify", json={"primaryType": "OpenPosition", **body}).json()
        assert [(f["check"], f["code"]) for f in v["checks"] if not f["ok"]] == [
            ("nonce", "nonce_mismatch"),
            ("deadline", "deadline_expired"),
        ]
        assert_error(
            c.post(f"/agents/{agent_id}/intents/verify", json={"primaryType": "Swap", **body}),
            400,
            "invalid_request",
        )
        assert_error(c.post(f"/agents/{agent_id}/intents/verify", json=body), 400, "invalid_request")
        assert_error(
            c.post("/agents/99/intents/verify", json={"primaryType": "OpenPosition", **body}),
            404,
            "agent_not_found",
        )


def _read_events(
    client: httpx.Client, agent_id: int, want: int, last_id: str | None = None, timeout_s: float = 10.0
) -> list[dict[str, Any]]:
    """Reads the SSE stream until `want` events arrived (or the time is up)."""
    headers = {"Last-Event-ID": last_id} if last_id else {}
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    deadline = time.monotonic() + timeout_s
    with client.stream(
        "GET", f"/agents/{agent_id}/events", headers=headers, timeout=httpx.Timeout(timeout_s)
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("id: "):
                current["id"] = line[4:]
            elif line.startswith("event: "):
                current["event"] = line[7:]
            elif line.startswith("data: "):
                current["data"] = json.loads(line[6:])
            elif line == "" and current:
                events.append(current)
                current = {}
                if len(events) >= want:
                    break
            assert time.monotonic() < deadline, events
    return events


def test_event_stream_resumes_after_last_event_id(api: Api) -> None:
    agent_id, _ = api.agent(0)
    position_id = open_position(api)
    settle(api)
    first = _read_events(api.client, agent_id, want=5)
    kinds = [(e["event"], e["data"].get("status")) for e in first]
    assert ("intent_status", "received") in kinds and ("intent_status", "confirmed") in kinds, kinds
    ids = [int(e["id"]) for e in first]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    last = first[-1]["id"]
    execute(api, 0, "UpdateExitLadder", positionId=position_id, exits=[{**TP, "triggerBps": 3000}, SL])
    later = _read_events(api.client, agent_id, want=3, last_id=last)
    assert all(int(e["id"]) > int(last) for e in later), (last, later)
    assert any(e["data"].get("primaryType") == "UpdateExitLadder" for e in later), later
    assert_error(api.client.get("/agents/99/events"), 404, "agent_not_found")
