"""Hardening item 8 over HTTP: one strict reading of ids and numbers everywhere. Unicode digits,
over-long numbers, ids past int64, duplicate JSON keys and lax integers are 400 invalid_request — never
a 500, a cut stream, or a silent reading as some other id."""

from __future__ import annotations

import json
from typing import Any

import httpx

from relayer.numbers import MAX_DB_ID

from .conftest import Api
from .test_api_rejections import LADDER, assert_error, nothing_sent, open_position, signed, submit

UNICODE_DIGITS = ("%C2%B2", "%E2%91%A0", "%D9%A1", "1%C2%B2")  # ², ①, ١ (Arabic-Indic one), 1²
BEYOND_INT64 = (str(2**63), str(2**64), "9" * 30, "1" * 5000)
# What the ids' INTEGER columns hold in PostgreSQL: one more was a DataError there (a 500).
BEYOND_COLUMN = (str(MAX_DB_ID + 1), str(2**63 - 1))


def invalid(r: httpx.Response, field: str | None = None) -> dict[str, Any]:
    body = assert_error(r, 400, "invalid_request")
    if field is not None:
        assert body["details"].get("field") == field, body
    return body


def test_unicode_digit_vault_id_is_400(api: Api) -> None:
    assert api.client.get("/vaults/1/tokens").status_code == 200
    for raw in UNICODE_DIGITS:
        invalid(api.client.get(f"/vaults/{raw}/tokens"), "vault_id")


def test_unicode_digit_agent_position_and_intent_ids_are_400(api: Api) -> None:
    agent_id, _ = api.agent(0)
    position_id = open_position(api)
    c = api.client
    for raw in UNICODE_DIGITS:
        invalid(c.get(f"/agents/{raw}"), "agent_id")
        invalid(c.get(f"/agents/{raw}/positions"), "agent_id")
        invalid(c.get(f"/agents/{agent_id}/positions/{raw}"), "position_id")
        invalid(c.get(f"/agents/{agent_id}/intents/{raw}"), "intent_id")
        invalid(c.get(f"/agents/{raw}/trade-intents/quote?symbol=NVDA"), "agent_id")
    # In a body and a query, positionId as a string of Unicode digits is refused too, not read as 1.
    _q, body = signed(api, 0, "ReducePosition", positionId=position_id, tokenAmount="0.1")
    with nothing_sent(api):
        for text in ("١", "²", " 1", "+1", "1_0"):
            invalid(submit(api, agent_id, "ReducePosition", {**body, "positionId": text}), "positionId")
            invalid(c.get(f"/agents/{agent_id}/reduce-intents", params={"positionId": text}), "positionId")


def test_ids_beyond_int64_are_400_not_500(api: Api) -> None:
    agent_id, _ = api.agent(0)
    c = api.client
    for raw in BEYOND_INT64 + BEYOND_COLUMN:
        invalid(c.get(f"/agents/{agent_id}/intents/{raw}"), "intent_id")
        invalid(c.get(f"/agents/{raw}"), "agent_id")
        invalid(c.get(f"/vaults/{raw}/tokens"), "vault_id")
        invalid(c.get(f"/agents/{agent_id}/positions/{raw}"), "position_id")
        invalid(c.get(f"/agents/{agent_id}/add-intents", params={"positionId": raw}), "positionId")
    # The largest id a database holds is a plain "not found".
    assert_error(c.get(f"/agents/{agent_id}/intents/{MAX_DB_ID}"), 404, "intent_not_found")
    assert_error(c.get(f"/agents/{MAX_DB_ID}"), 404, "agent_not_found")


def test_5000_digit_number_in_exits_is_400(api: Api) -> None:
    agent_id, _ = api.agent(0)
    exits = '[{"triggerType":"StopLoss","triggerBps":-' + "9" * 5000 + ',"exitBps":10000}]'
    r = api.client.get(f"/agents/{agent_id}/trade-intents/quote", params={"symbol": "NVDA", "exits": exits})
    invalid(r, "exits")
    r = api.client.get(
        f"/agents/{agent_id}/trade-intents/quote", params={"symbol": "NVDA", "exits": '[{"a":1,"a":2}]'}
    )
    invalid(r, "exits")


def test_5000_digit_number_in_a_body_is_400(api: Api) -> None:
    agent_id, _ = api.agent(0)
    _q, body = signed(api, 0, "OpenPosition", symbol="NVDA", usdcAmount="100", exits=LADDER)
    text = json.dumps(body).replace(f'"nonce": {body["nonce"]}', '"nonce": ' + "9" * 5000)
    with nothing_sent(api):
        invalid(submit(api, agent_id, "OpenPosition", text), "body")
        bps = json.dumps(body).replace('"triggerBps": -1000', '"triggerBps": -' + "9" * 5000)
        invalid(submit(api, agent_id, "OpenPosition", bps), "body")


def test_duplicate_json_keys_in_a_body_are_400(api: Api) -> None:
    agent_id, _ = api.agent(0)
    _q, body = signed(api, 0, "OpenPosition", symbol="NVDA", usdcAmount="100", exits=LADDER)
    text = json.dumps(body)
    with nothing_sent(api):
        # Which nonce was meant? Neither is taken.
        twice = text[:-1] + f', "nonce": {body["nonce"] + 1}}}'
        error = invalid(submit(api, agent_id, "OpenPosition", twice), "body")
        assert "duplicate key 'nonce'" in error["message"], error
        nested = text.replace('"exitBps": 10000}', '"exitBps": 10000, "exitBps": 5000}')
        invalid(submit(api, agent_id, "OpenPosition", nested), "body")
        verify = json.dumps({"primaryType": "OpenPosition", **body})[:-1] + ', "primaryType": "Swap"}'
        invalid(api.client.post(f"/agents/{agent_id}/intents/verify", content=verify), "body")
        invalid(submit(api, agent_id, "OpenPosition", text.replace("10000}", "NaN}")), "body")
    assert submit(api, agent_id, "OpenPosition", text).status_code == 201


def test_usdc_amount_of_10_pow_66_in_a_quote_is_400(api: Api) -> None:
    agent_id, _ = api.agent(0)
    for amount in (str(10**66), str(10**70), str(2**256), "9" * 5000):
        r = api.client.get(
            f"/agents/{agent_id}/trade-intents/quote",
            params={"symbol": "NVDA", "usdcAmount": amount, "exits": json.dumps(LADDER)},
        )
        invalid(r, "usdcAmount")


def test_lax_integers_in_queries_are_400(api: Api) -> None:
    agent_id, _ = api.agent(0)
    c = api.client
    for text in ("+5", " 5", "5 ", "1_0", "5.0", "٥", "1e1"):
        invalid(c.get(f"/agents/{agent_id}/intents", params={"limit": text}), "limit")
        invalid(
            c.get(
                f"/agents/{agent_id}/trade-intents/quote", params={"symbol": "NVDA", "maxSlippageBps": text}
            ),
            "maxSlippageBps",
        )
        invalid(
            c.get(f"/agents/{agent_id}/trade-intents/quote", params={"symbol": "NVDA", "deadline": text}),
            "deadline",
        )
    invalid(
        c.get(f"/agents/{agent_id}/trade-intents/quote", params={"symbol": "NVDA", "deadline": "9" * 5000}),
        "deadline",
    )


def test_bad_last_event_id_is_400(api: Api) -> None:
    agent_id, _ = api.agent(0)
    for value in ("9" * 30, str(2**63), str(MAX_DB_ID + 1), "²", "abc", "-1", "1.5"):
        r = api.client.get(f"/agents/{agent_id}/events", headers={"Last-Event-ID": value.encode()})
        invalid(r, "Last-Event-ID")
    with api.client.stream("GET", f"/agents/{agent_id}/events", headers={"Last-Event-ID": "0"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
