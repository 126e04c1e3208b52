"""Every way the intent API refuses a submit (SPEC §2.1, §2.4), over HTTP against the real relayer and
Anvil: the exact status, `code` and key `details`, that no transaction left the relayer's keys (balances
and nonces unchanged, nothing pending), and that a pre-check rejection leaves no intent record.

The helpers at the top are shared by the other test_api_* files."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import httpx
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak
from sqlalchemy import func, select

from relayer.chain.seed import price_base
from relayer.domain.track import DEFAULT_TRACKS
from relayer.eip712 import SECP256K1_N
from relayer.store.models import Intent, TxRequest

from .agentkit import PATHS, body_from_quote, quote, sign_typed
from .conftest import Api

STRANGER_KEY = "0x" + "42" * 32  # signs, but is nobody's registered signer
SL = {"triggerType": "StopLoss", "triggerBps": -1000, "exitBps": 10000}
TP = {"triggerType": "TakeProfit", "triggerBps": 2000, "exitBps": 5000}
LADDER = [TP, SL]

# ---------------------------------------------------------------------- shared helpers


def rpc(api: Api, method: str, *params: Any) -> Any:
    response = api.stack.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
    assert "error" not in response, response
    return response["result"]


def chain_time(api: Api) -> int:
    return int(api.stack.w3.eth.get_block("latest")["timestamp"])


def settle(api: Api, timeout_s: float = 10.0) -> None:
    """Waits until the relayer has indexed the chain's head, so an operator action is visible to it."""
    head = api.stack.w3.eth.block_number
    deadline = time.monotonic() + timeout_s
    while api.services.indexer._next_block <= head:
        assert time.monotonic() < deadline, f"indexer stuck below block {head}"
        time.sleep(0.02)


def wallets(api: Api) -> dict[str, tuple[int, int, int]]:
    """Each relayer key's balance, mined nonce and pending nonce."""
    w3 = api.stack.w3
    return {
        a: (
            w3.eth.get_balance(a),
            w3.eth.get_transaction_count(a, "latest"),
            w3.eth.get_transaction_count(a, "pending"),
        )
        for a in api.services.sender.senders
    }


def counts(api: Api) -> tuple[int, int]:
    with api.services.sessions() as session:
        return (
            session.scalar(select(func.count()).select_from(Intent)) or 0,
            session.scalar(select(func.count()).select_from(TxRequest)) or 0,
        )


@contextmanager
def nothing_sent(api: Api, *, records: bool = False) -> Iterator[None]:
    """The block sends no transaction from any relayer key and (unless `records`) records no intent."""
    before, rows = wallets(api), counts(api)
    yield
    time.sleep(0.15)  # anything the dispatcher or sender would do in the background has had its chance
    assert wallets(api) == before, "a relayer key sent a transaction"
    if not records:
        assert counts(api) == rows, "a rejected submit left an intent or a transaction request"


def assert_error(r: httpx.Response, status: int, code: str, **details: Any) -> dict[str, Any]:
    assert r.status_code == status, (status, r.status_code, r.text)
    body = r.json()
    assert set(body) == {"code", "message", "details"} and body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"], body
    for name, value in details.items():
        assert body["details"].get(name) == value, (name, body)
    return body


def submit(
    api: Api, agent_id: int | str, primary_type: str, body: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    path = f"/agents/{agent_id}/{PATHS[primary_type][1]}"
    if isinstance(body, (str, bytes)):
        return api.client.post(
            path, content=body, headers={"content-type": "application/json", **(headers or {})}
        )
    return api.client.post(path, json=body, headers=headers or {})


def signed(
    api: Api,
    agent: int,
    primary_type: str,
    *,
    key: str | None = None,
    message: dict[str, Any] | None = None,
    **params: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(quote, submit body) for demo agent `agent`: quoted, optionally edited, signed with eth-account."""
    agent_id, agent_key = api.agent(agent)
    r = quote(api.client, agent_id, primary_type, **params)
    assert r.status_code == 200, r.text
    q = r.json()
    if message:
        q["typedData"]["message"].update(
            {k: str(v) if isinstance(v, int) and k != "maxSlippageBps" else v for k, v in message.items()}
        )
    return q, body_from_quote(q, sign_typed(q["typedData"], key or agent_key))


def execute(api: Api, agent: int, primary_type: str, **params: Any) -> dict[str, Any]:
    """Quote, sign and submit; the intent must confirm. Returns the 201 answer."""
    _q, body = signed(api, agent, primary_type, **params)
    r = submit(api, api.agent(agent)[0], primary_type, body)
    assert r.status_code == 201, r.text
    settle(api)
    return dict(r.json())


def open_position(
    api: Api,
    agent: int = 0,
    symbol: str = "NVDA",
    usdc: str = "1000",
    exits: list[dict[str, Any]] | None = None,
) -> str:
    return str(
        execute(api, agent, "OpenPosition", symbol=symbol, usdcAmount=usdc, exits=exits or LADDER)[
            "positionId"
        ]
    )


def set_price(api: Api, symbol: str, price: str) -> None:
    api.stack.admin.set_prices([api.stack.manifest.tokens[symbol]], [price_base(Decimal(price))])
    settle(api)


def intents_of(api: Api, agent_id: int) -> list[dict[str, Any]]:
    r = api.client.get(f"/agents/{agent_id}/intents")
    assert r.status_code == 200, r.text
    return list(r.json()["intents"])


def high_s_twin(signature: str) -> str:
    """The malleable twin of a valid signature: (r, n - s, v ^ 1) recovers to the same signer."""
    raw = bytes.fromhex(signature[2:])
    s = int.from_bytes(raw[32:64], "big")
    return "0x" + (raw[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - raw[64]])).hex()


def quote_of(api: Api, agent: int, primary_type: str, **params: Any) -> dict[str, Any]:
    if "exits" in params and not isinstance(params["exits"], str):
        params["exits"] = json.dumps(params["exits"])
    r = quote(api.client, api.agent(agent)[0], primary_type, **params)
    assert r.status_code == 200, r.text
    return dict(r.json())


# ---------------------------------------------------------------------- 400 invalid_request


def _malformed(body: dict[str, Any], amount_field: str | None) -> list[tuple[str, Any, str | None]]:
    """(case, body or raw text, field named in details)."""
    sig = body["signature"]
    raw = bytes.fromhex(sig[2:])
    cases: list[tuple[str, Any, str | None]] = [
        ("malformed JSON", json.dumps(body)[:-1], "body"),
        ("not UTF-8", b"\xff\xfe{}", "body"),
        ("not an object", json.dumps([body]), "body"),
        ("unknown field", {**body, "vault": "0x" + "00" * 20}, "vault"),
        ("missing field", {k: v for k, v in body.items() if k != "deadline"}, "deadline"),
        ("bool for an int", {**body, "nonce": True}, "nonce"),
        ("float for an int", {**body, "deadline": float(body["deadline"])}, "deadline"),
        ("nonce of 2**256", {**body, "nonce": 2**256}, "nonce"),
        ("signature of 64 bytes", {**body, "signature": "0x" + raw[:64].hex()}, "signature"),
        ("signature of 66 bytes", {**body, "signature": sig + "00"}, "signature"),
        ("v = 0", {**body, "signature": "0x" + (raw[:64] + bytes([raw[64] - 27])).hex()}, "signature"),
        ("v = 1", {**body, "signature": "0x" + (raw[:64] + bytes([1])).hex()}, "signature"),
        ("high-s twin", {**body, "signature": high_s_twin(sig)}, "signature"),
        ("non-hex", {**body, "signature": "0x" + "zz" * 65}, "signature"),
        ("no 0x", {**body, "signature": sig[2:]}, "signature"),
    ]
    if amount_field is not None:
        decimals_too_many = "1.0000001" if amount_field == "usdcAmount" else "1." + "0" * 18 + "1"
        cases += [
            (f"{amount_field} -1", {**body, amount_field: "-1"}, amount_field),
            (f"{amount_field} 1e6", {**body, amount_field: "1e6"}, amount_field),
            (f"{amount_field} too many decimals", {**body, amount_field: decimals_too_many}, amount_field),
            (f"{amount_field} 2**256", {**body, amount_field: str(2**256)}, amount_field),
            (f"{amount_field} as a number", {**body, amount_field: 100}, amount_field),
            ("maxSlippageBps 65536", {**body, "maxSlippageBps": 65_536}, "maxSlippageBps"),
        ]
    if "exits" in body:
        cases += [
            ("exits not a list", {**body, "exits": {"a": 1}}, "exits"),
            (
                "exit rule with a string bps",
                {**body, "exits": [{**SL, "triggerBps": "-1000"}]},
                "exits[0].triggerBps",
            ),
            (
                "unknown trigger type",
                {**body, "exits": [{**SL, "triggerType": "Stop"}]},
                "exits[0].triggerType",
            ),
        ]
    return cases


def test_malformed_submits_are_invalid_requests_for_every_intent(api: Api) -> None:
    agent_id, _ = api.agent(0)
    position_id = open_position(api)
    amount_fields = {
        "OpenPosition": "usdcAmount",
        "AddToPosition": "usdcAmount",
        "ReducePosition": "tokenAmount",
        "UpdateExitLadder": None,
    }
    params: dict[str, dict[str, Any]] = {
        "OpenPosition": {"symbol": "AAPL", "usdcAmount": "100", "exits": LADDER},
        "AddToPosition": {"positionId": position_id, "usdcAmount": "100"},
        "ReducePosition": {"positionId": position_id, "tokenAmount": "0.1"},
        "UpdateExitLadder": {"positionId": position_id, "exits": LADDER},
    }
    known = {i["intentId"] for i in intents_of(api, agent_id)}
    with nothing_sent(api):
        for primary_type, field in amount_fields.items():
            _q, body = signed(api, 0, primary_type, **params[primary_type])
            for case, bad, named in _malformed(body, field):
                r = submit(api, agent_id, primary_type, bad)
                assert r.status_code == 400, (primary_type, case, r.text)
                error = assert_error(r, 400, "invalid_request")
                if named is not None:
                    assert error["details"].get("field") == named, (primary_type, case, error)
            if field is None:
                continue
            # Well-formed, correctly signed, and still not a trade the router takes: the amount check.
            base = "tokenAmount" if primary_type == "ReducePosition" else "usdcAmount"
            for case, message, named in [
                ("zero amount", {base: 0}, base),
                ("maxSlippageBps 10001", {"maxSlippageBps": 10_001}, "maxSlippageBps"),
            ]:
                _q, body = signed(api, 0, primary_type, message=message, **params[primary_type])
                r = submit(api, agent_id, primary_type, body)
                assert r.status_code == 400, (primary_type, case, r.text)
                assert assert_error(r, 400, "invalid_request")["details"].get("field") == named
        assert {i["intentId"] for i in intents_of(api, agent_id)} == known


# ---------------------------------------------------------------------- 401 and 404


def _eth_account_digest(typed_data: dict[str, Any]) -> str:
    m = encode_typed_data(full_message=typed_data)
    return "0x" + keccak(b"\x19" + m.version + m.header + m.body).hex()


def test_a_signature_by_another_key_is_invalid_signature_for_every_intent(api: Api) -> None:
    agent_id, _ = api.agent(0)
    position_id = open_position(api)
    stranger = Account.from_key(STRANGER_KEY).address
    cases = {
        "OpenPosition": {"symbol": "AAPL", "usdcAmount": "100", "exits": LADDER},
        "AddToPosition": {"positionId": position_id, "usdcAmount": "100"},
        "ReducePosition": {"positionId": position_id, "tokenAmount": "0.1"},
        "UpdateExitLadder": {"positionId": position_id, "exits": LADDER},
    }
    with nothing_sent(api):
        for primary_type, params in cases.items():
            q, body = signed(api, 0, primary_type, key=STRANGER_KEY, **params)
            r = submit(api, agent_id, primary_type, body)
            assert_error(
                r, 401, "invalid_signature", digest=_eth_account_digest(q["typedData"]), recovered=stranger
            )
        # Signed by the agent of another id: the digest differs (agentId is signed), so it cannot pass.
        _q, body = signed(api, 1, "OpenPosition", symbol="AAPL", usdcAmount="100", exits=[SL])
        assert_error(submit(api, agent_id, "OpenPosition", body), 401, "invalid_signature")


def test_unknown_agents_symbols_positions_vaults_and_intents_are_404(api: Api) -> None:
    agent_id, _ = api.agent(0)
    other_id, _ = api.agent(1)
    mine = open_position(api)
    theirs = open_position(api, agent=1, symbol="TSLA", usdc="500", exits=[SL])
    _q, open_body = signed(api, 0, "OpenPosition", symbol="AAPL", usdcAmount="100", exits=LADDER)
    _q, add_body = signed(api, 0, "AddToPosition", positionId=mine, usdcAmount="100")
    _q, reduce_body = signed(api, 0, "ReducePosition", positionId=mine, tokenAmount="0.1")
    _q, ladder_body = signed(api, 0, "UpdateExitLadder", positionId=mine, exits=LADDER)
    bodies = {
        "OpenPosition": open_body,
        "AddToPosition": add_body,
        "ReducePosition": reduce_body,
        "UpdateExitLadder": ladder_body,
    }
    c = api.client
    with nothing_sent(api):
        for primary_type, body in bodies.items():
            assert_error(submit(api, 99, primary_type, body), 404, "agent_not_found", agentId="99")
            assert_error(submit(api, "x", primary_type, body), 400, "invalid_request")
            if primary_type != "OpenPosition":
                for position_id in ("999", theirs):
                    r = submit(api, agent_id, primary_type, {**body, "positionId": position_id})
                    assert_error(r, 404, "position_not_found", positionId=position_id)
        assert_error(
            submit(api, agent_id, "OpenPosition", {**open_body, "symbol": "ZZZZ"}),
            404,
            "symbol_not_found",
            symbol="ZZZZ",
        )
        assert_error(
            submit(api, agent_id, "OpenPosition", {**open_body, "symbol": "nvda"}),
            400,
            "invalid_request",
            field="symbol",
        )
        assert_error(c.get("/agents/99"), 404, "agent_not_found")
        assert_error(c.get("/agents/99/positions"), 404, "agent_not_found")
        assert_error(c.get(f"/agents/{agent_id}/positions/{theirs}"), 404, "position_not_found")
        assert_error(c.get(f"/agents/{agent_id}/positions/999"), 404, "position_not_found")
        assert_error(
            quote(c, agent_id, "OpenPosition", symbol="ZZZZ", usdcAmount="1"), 404, "symbol_not_found"
        )
        assert_error(
            quote(c, agent_id, "AddToPosition", positionId=theirs, usdcAmount="1"), 404, "position_not_found"
        )
        assert_error(quote(c, agent_id, "ReducePosition", symbol="MSFT"), 404, "position_not_found")
        assert_error(c.get("/vaults/99/tokens"), 404, "vault_not_found", vaultId="99")
        assert_error(c.get("/vaults/x/tokens"), 400, "invalid_request")
        their_intent = intents_of(api, other_id)[0]["intentId"]
        assert_error(c.get(f"/agents/{agent_id}/intents/999"), 404, "intent_not_found")
        assert_error(c.get(f"/agents/{agent_id}/intents/{their_intent}"), 404, "intent_not_found")
        assert_error(c.get(f"/agents/{agent_id}/intents/x"), 400, "invalid_request")
        assert_error(c.get(f"/agents/99/intents/{their_intent}"), 404, "agent_not_found")


# ---------------------------------------------------------------------- 409


def test_nonce_mismatch_names_the_expected_nonce(api: Api) -> None:
    agent_id, _ = api.agent(0)
    position_id = open_position(api)  # uses nonce 0
    cases = {
        "OpenPosition": {"symbol": "AAPL", "usdcAmount": "100", "exits": LADDER},
        "AddToPosition": {"positionId": position_id, "usdcAmount": "100"},
        "ReducePosition": {"positionId": position_id, "tokenAmount": "0.1"},
        "UpdateExitLadder": {"positionId": position_id, "exits": LADDER},
    }
    with nothing_sent(api):
        for primary_type, params in cases.items():
            for nonce in (0, 2, 7, 2**256 - 1):  # 0 is used already; the others leave a gap
                _q, body = signed(api, 0, primary_type, message={"nonce": nonce}, **params)
                assert_error(submit(api, agent_id, primary_type, body), 409, "nonce_mismatch", expected=1)
    assert [i["nonce"] for i in intents_of(api, agent_id)] == [0]


def test_position_exists_and_position_closed(api: Api) -> None:
    agent_id, _ = api.agent(0)
    position_id = open_position(api)
    _q, again = signed(api, 0, "OpenPosition", symbol="NVDA", usdcAmount="100", exits=LADDER)
    _q, add = signed(api, 0, "AddToPosition", positionId=position_id, usdcAmount="100")
    with nothing_sent(api):
        assert_error(
            submit(api, agent_id, "OpenPosition", again), 409, "position_exists", positionId=position_id
        )
    execute(api, 0, "ReducePosition", positionId=position_id)  # everything: closes it
    # `add` was signed for nonce 1, which the reduce used: the nonce is checked before the position.
    assert_error(submit(api, agent_id, "AddToPosition", add), 409, "nonce_mismatch", expected=2)
    closed = {
        "AddToPosition": {"positionId": position_id, "usdcAmount": "100"},
        "ReducePosition": {"positionId": position_id, "tokenAmount": "0.1"},
        "UpdateExitLadder": {"positionId": position_id, "exits": LADDER},
    }
    with nothing_sent(api):
        for primary_type, params in closed.items():
            q, body = signed(api, 0, primary_type, **params)
            assert {"check": "position", "ok": False, "code": "position_closed"}.items() <= next(
                c for c in q["checks"] if c["check"] == "position"
            ).items()
            assert_error(
                submit(api, agent_id, primary_type, body), 409, "position_closed", positionId=position_id
            )
    # The token is free again: a new position in it may be opened.
    assert open_position(api, usdc="100") != position_id


# ---------------------------------------------------------------------- 422 deadline


def test_deadline_expired_and_the_boundary_the_contract_draws(api: Api) -> None:
    agent_id, _ = api.agent(0)
    params = {"symbol": "NVDA", "usdcAmount": "100", "exits": LADDER}
    now = chain_time(api)
    with nothing_sent(api):
        for deadline in (0, now - 60, now):
            # The router reverts when block.timestamp > deadline; a transaction sent now runs in a later
            # block than the latest, so a deadline at the latest block's time has already passed.
            _q, body = signed(api, 0, "OpenPosition", message={"deadline": deadline}, **params)
            assert_error(
                submit(api, agent_id, "OpenPosition", body), 422, "deadline_expired", deadline=deadline
            )
    # Pin the next block's time: a deadline one second before it passes the relayer's clock but not the
    # router, and the simulation catches it; a deadline equal to it is accepted, as by the router.
    pinned = max(int(time.time()), chain_time(api)) + 30
    rpc(api, "evm_setNextBlockTimestamp", pinned)
    _q, early = signed(api, 0, "OpenPosition", message={"deadline": pinned - 1}, **params)
    with nothing_sent(api):
        error = assert_error(submit(api, agent_id, "OpenPosition", early), 422, "deadline_expired")
        assert error["details"]["revert"]["error"] == "DeadlineExpired", error
    _q, exact = signed(api, 0, "OpenPosition", message={"deadline": pinned}, **params)
    r = submit(api, agent_id, "OpenPosition", exact)
    assert r.status_code == 201, r.text
    assert api.stack.w3.eth.get_block(r.json()["blockNumber"])["timestamp"] == pinned


# ---------------------------------------------------------------------- 422 allowlist and ladder


def test_token_not_allowed_blocks_buys_but_never_a_reduce(api: Api) -> None:
    agent_id, _ = api.agent(0)
    position_id = open_position(api)
    tokens = api.stack.manifest.tokens
    for symbol in ("NVDA", "AAPL"):
        api.stack.admin.allow_token(1, tokens[symbol], False)
    settle(api)
    assert "NVDA" not in {t["symbol"] for t in api.client.get("/vaults/1/tokens").json()["tokens"]}
    _q, open_body = signed(api, 0, "OpenPosition", symbol="AAPL", usdcAmount="100", exits=LADDER)
    _q, add_body = signed(api, 0, "AddToPosition", positionId=position_id, usdcAmount="100")
    with nothing_sent(api):
        assert_error(
            submit(api, agent_id, "OpenPosition", open_body),
            422,
            "token_not_allowed",
            symbol="AAPL",
            vaultId=1,
        )
        assert_error(
            submit(api, agent_id, "AddToPosition", add_body),
            422,
            "token_not_allowed",
            symbol="NVDA",
            vaultId=1,
        )
    execute(api, 0, "UpdateExitLadder", positionId=position_id, exits=LADDER)
    execute(api, 0, "ReducePosition", positionId=position_id, tokenAmount="1")


LADDER_CASES: list[tuple[str, list[dict[str, Any]], int, str]] = [
    ("no rules", [], 0, "Empty"),
    ("nine rules", [TP] * 8 + [SL], 8, "TooManyRules"),
    ("last rule not 10000", [TP, {**SL, "exitBps": 9999}], 1, "LastRuleNotFull"),
    ("stop-loss beyond the track", [TP, {**SL, "triggerBps": -1501}], 1, "StopLossBeyondTrack"),
    ("take-profit above the track", [{**TP, "triggerBps": 5001}, SL], 0, "TakeProfitAboveTrack"),
    ("stop-loss not negative", [TP, {**SL, "triggerBps": 0}], 1, "StopLossNotNegative"),
    ("exitBps 0", [{**TP, "exitBps": 0}, SL], 0, "ExitBpsOutOfRange"),
    ("take-profit missing on funded", [SL], 1, "TakeProfitRequired"),
    ("stop-loss missing", [{**TP, "exitBps": 10000}], 1, "StopLossRequired"),
]


def test_exit_ladder_invalid_names_the_rule_and_the_reason(api: Api) -> None:
    agent_id, _ = api.agent(0)
    position_id = open_position(api)
    evaluation_id, _ = api.agent(1)
    with nothing_sent(api):
        for case, exits, index, reason in LADDER_CASES:
            for primary_type, params in (
                ("OpenPosition", {"symbol": "AAPL", "usdcAmount": "100"}),
                ("UpdateExitLadder", {"positionId": position_id}),
            ):
                q, body = signed(api, 0, primary_type, exits=exits, **params)
                check = next(c for c in q["checks"] if c["check"] == "exit_ladder")
                assert check["ok"] is False and check["code"] == "exit_ladder_invalid", (case, check)
                r = submit(api, agent_id, primary_type, body)
                assert_error(r, 422, "exit_ladder_invalid", ruleIndex=index, reason=reason)
        # The evaluation track requires no take-profit but bounds the stop at 1000 bps.
        _q, body = signed(
            api, 1, "OpenPosition", symbol="AAPL", usdcAmount="100", exits=[{**SL, "triggerBps": -1001}]
        )
        assert_error(
            submit(api, evaluation_id, "OpenPosition", body),
            422,
            "exit_ladder_invalid",
            ruleIndex=0,
            reason="StopLossBeyondTrack",
        )
    execute(api, 1, "OpenPosition", symbol="AAPL", usdcAmount="100", exits=[SL])


# ---------------------------------------------------------------------- 422 track limits


def test_trade_size_headroom_and_daily_turnover(api: Api) -> None:
    agent_id, _ = api.agent(0)
    admin = api.stack.admin
    max_trade = DEFAULT_TRACKS["funded"].max_trade_size_bps * 100_000 // 10_000
    with nothing_sent(api):
        _q, body = signed(
            api, 0, "OpenPosition", symbol="NVDA", usdcAmount=f"{max_trade}.000001", exits=LADDER
        )
        assert_error(
            submit(api, agent_id, "OpenPosition", body),
            422,
            "trade_size_exceeded",
            usdcAmount="20000.000001",
            maxTradeSize="20000",
        )
    position_id = open_position(api, usdc="20000")
    # Allocation lowered under what is deployed plus the next trade: the headroom binds first.
    admin.set_allocation(agent_id, 22_000 * 10**6)  # max trade 4,400; headroom 2,000
    settle(api)
    _q, body = signed(api, 0, "AddToPosition", positionId=position_id, usdcAmount="3000")
    with nothing_sent(api):
        assert_error(
            submit(api, agent_id, "AddToPosition", body),
            422,
            "headroom_exceeded",
            usdcAmount="3000",
            headroom="2000",
        )
    # Back to 100,000 on a track whose daily turnover is 30% of it: 20,000 bought, 10,000.01 is too much.
    admin.set_allocation(agent_id, 100_000 * 10**6)
    tight = DEFAULT_TRACKS["funded"]
    admin.set_track("funded", dataclasses.replace(tight, max_daily_turnover_bps=3_000))
    settle(api)
    q, body = signed(api, 0, "AddToPosition", positionId=position_id, usdcAmount="10000.01")
    assert q["allocation"]["maxDailyTurnover"] == "30000" and q["allocation"]["turnoverToday"] == "20000"
    with nothing_sent(api):
        assert_error(
            submit(api, agent_id, "AddToPosition", body),
            422,
            "daily_turnover_exceeded",
            turnoverAfter="30000.01",
            maxDailyTurnover="30000",
        )
    execute(api, 0, "AddToPosition", positionId=position_id, usdcAmount="10000")
    # Risk-reducing actions are never limited, even with the turnover used up.
    execute(api, 0, "ReducePosition", positionId=position_id, tokenAmount="1")


def test_daily_loss_limit_reached_after_realized_losses(api: Api) -> None:
    agent_id, _ = api.agent(0)
    # Funded: 5% of 100,000 = 5,000 USDC a day. Two positions lose 14% each (inside their -15% stops,
    # so the keeper does not fire) and are sold: about 5,600 realized.
    wide = [TP, {**SL, "triggerBps": -1500}]
    positions = {s: open_position(api, symbol=s, usdc="20000", exits=wide) for s in ("NVDA", "AAPL")}
    kept = open_position(api, symbol="MSFT", usdc="100", exits=wide)
    set_price(api, "NVDA", "156.82")
    set_price(api, "AAPL", "199.09")
    for position_id in positions.values():
        execute(api, 0, "ReducePosition", positionId=position_id)
    summary = api.client.get(f"/agents/{agent_id}").json()
    assert Decimal(summary["realizedPnlToday"]) <= -5000, summary
    q, open_body = signed(api, 0, "OpenPosition", symbol="TSLA", usdcAmount="100", exits=LADDER)
    assert next(c for c in q["checks"] if c["check"] == "limits")["code"] == "daily_loss_limit_reached"
    _q, add_body = signed(api, 0, "AddToPosition", positionId=kept, usdcAmount="100")
    with nothing_sent(api):
        for primary_type, body in (("OpenPosition", open_body), ("AddToPosition", add_body)):
            error = assert_error(
                submit(api, agent_id, primary_type, body),
                422,
                "daily_loss_limit_reached",
                maxDailyLoss="5000",
            )
            assert error["details"]["realizedPnlToday"] == summary["realizedPnlToday"]
    # Ladder updates and reduces are risk-reducing: still allowed. Another agent is not limited.
    execute(api, 0, "UpdateExitLadder", positionId=kept, exits=LADDER)
    execute(api, 0, "ReducePosition", positionId=kept)
    open_position(api, agent=1, symbol="TSLA", usdc="100", exits=[SL])


# ---------------------------------------------------------------------- 422 slippage


def test_slippage_exceeded_by_the_floor_or_the_spread(api: Api) -> None:
    agent_id, _ = api.agent(0)
    position_id = open_position(api)
    admin = api.stack.admin
    with nothing_sent(api):
        # A floor above what the venue fills: MinOutputNotMet on chain.
        _q, body = signed(
            api, 0, "OpenPosition", symbol="AAPL", usdcAmount="1000", exits=LADDER, minTokenOut="100"
        )
        assert_error(submit(api, agent_id, "OpenPosition", body), 422, "slippage_exceeded", minOut="100")
        _q, body = signed(
            api, 0, "ReducePosition", positionId=position_id, tokenAmount="1", minUsdcOut="1000"
        )
        assert_error(submit(api, agent_id, "ReducePosition", body), 422, "slippage_exceeded", minOut="1000")
        # maxSlippageBps 0 against the venue's 10 bps spread.
        _q, body = signed(
            api, 0, "AddToPosition", positionId=position_id, usdcAmount="100", maxSlippageBps="0"
        )
        assert_error(submit(api, agent_id, "AddToPosition", body), 422, "slippage_exceeded", maxSlippageBps=0)
    # Signed at a 10 bps spread with 100 bps allowed, then the venue widens to 300 bps.
    _q, add = signed(api, 0, "AddToPosition", positionId=position_id, usdcAmount="100")
    _q, reduce = signed(
        api,
        0,
        "ReducePosition",
        positionId=position_id,
        tokenAmount="1",
        message={"nonce": 1, "minUsdcOut": "0"},
    )
    admin.send(admin.venue.functions.setSpread(300), "widen the spread")
    settle(api)
    with nothing_sent(api):
        assert_error(
            submit(api, agent_id, "AddToPosition", add), 422, "slippage_exceeded", maxSlippageBps=100
        )
        assert_error(
            submit(api, agent_id, "ReducePosition", reduce), 422, "slippage_exceeded", maxSlippageBps=100
        )


# ---------------------------------------------------------------------- 422 agent and router, 503 oracle


def test_agent_inactive_and_router_paused(api: Api) -> None:
    agent_id, _ = api.agent(0)
    position_id = open_position(api)
    cases = {
        "OpenPosition": {"symbol": "AAPL", "usdcAmount": "100", "exits": LADDER},
        "AddToPosition": {"positionId": position_id, "usdcAmount": "100"},
        "ReducePosition": {"positionId": position_id, "tokenAmount": "0.1"},
        "UpdateExitLadder": {"positionId": position_id, "exits": LADDER},
    }
    bodies = {t: signed(api, 0, t, **p)[1] for t, p in cases.items()}
    admin = api.stack.admin
    admin.set_active(agent_id, False)
    settle(api)
    assert api.client.get(f"/agents/{agent_id}").json()["active"] is False
    with nothing_sent(api):
        for primary_type, body in bodies.items():
            assert_error(submit(api, agent_id, primary_type, body), 422, "agent_inactive")
    admin.set_active(agent_id, True)
    admin.send(admin.router.functions.pause(), "pause")
    settle(api)
    with nothing_sent(api):
        for primary_type, body in bodies.items():
            assert_error(submit(api, agent_id, primary_type, body), 422, "paused")
    admin.send(admin.router.functions.unpause(), "unpause")
    settle(api)
    r = submit(api, agent_id, "AddToPosition", bodies["AddToPosition"])
    assert r.status_code == 201, r.text


def test_oracle_stale_is_503_for_trades_but_not_for_a_ladder_update(api: Api) -> None:
    agent_id, _ = api.agent(0)
    position_id = open_position(api)
    rpc(api, "evm_increaseTime", 3601)
    rpc(api, "evm_mine")
    # An operator transaction that is not a price: the relayer learns the chain's time from its block.
    api.stack.admin.allow_token(1, api.stack.manifest.tokens["SPY"], True)
    settle(api)
    q = quote_of(api, 0, "OpenPosition", symbol="AAPL", usdcAmount="100", exits=LADDER)
    assert q["price"]["stale"] is True
    assert api.client.get("/prices", params={"symbols": "AAPL"}).json()["prices"][0]["stale"] is True
    cases = {
        "OpenPosition": {"symbol": "AAPL", "usdcAmount": "100", "exits": LADDER},
        "AddToPosition": {"positionId": position_id, "usdcAmount": "100"},
        "ReducePosition": {"positionId": position_id, "tokenAmount": "0.1"},
    }
    with nothing_sent(api):
        for primary_type, params in cases.items():
            _q, body = signed(api, 0, primary_type, **params)
            assert_error(submit(api, agent_id, primary_type, body), 503, "oracle_stale")
    execute(api, 0, "UpdateExitLadder", positionId=position_id, exits=LADDER)
    set_price(api, "AAPL", "231.50")
    execute(api, 0, "OpenPosition", symbol="AAPL", usdcAmount="100", exits=LADDER)


def test_a_revert_the_prechecks_cannot_see_is_simulation_failed(api: Api) -> None:
    agent_id, _ = api.agent(0)
    admin = api.stack.admin
    vault = admin.contract("Vault", api.stack.manifest.vaults[0].address)
    balance = admin.usdc.functions.balanceOf(vault.address).call()
    admin.send(vault.functions.withdrawUsdc(admin.account.address, balance - 50 * 10**6), "drain the vault")
    settle(api)
    _q, body = signed(api, 0, "OpenPosition", symbol="NVDA", usdcAmount="100", exits=LADDER)
    with nothing_sent(api):
        error = assert_error(submit(api, agent_id, "OpenPosition", body), 422, "simulation_failed")
        assert error["details"]["revert"]["error"] == "ERC20InsufficientBalance", error
    assert intents_of(api, agent_id) == []
