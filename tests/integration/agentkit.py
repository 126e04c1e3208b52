"""A minimal third-party agent for tests: quote, sign the typed data with eth-account, submit."""

from __future__ import annotations

import json
from typing import Any

import httpx
from eth_account import Account
from eth_account.messages import encode_typed_data
from web3 import Web3

PATHS = {
    "OpenPosition": ("trade-intents/quote", "trade-intents"),
    "AddToPosition": ("add-intents", "add-intents"),
    "ReducePosition": ("reduce-intents", "reduce-intents"),
    "UpdateExitLadder": ("exit-ladder-intents", "exit-ladder-intents"),
}


def sign_typed(typed_data: dict[str, Any], key: str) -> str:
    signed = Account.sign_message(encode_typed_data(full_message=typed_data), key)
    return "0x" + bytes(signed.signature).hex()


def quote(client: httpx.Client, agent_id: int, primary_type: str, **params: Any) -> httpx.Response:
    if "exits" in params and not isinstance(params["exits"], str):
        params["exits"] = json.dumps(params["exits"])
    return client.get(f"/agents/{agent_id}/{PATHS[primary_type][0]}", params=params)


def body_from_quote(q: dict[str, Any], signature: str) -> dict[str, Any]:
    """The submit body that mirrors the quoted message, in human units (SPEC §2.3)."""
    m = q["typedData"]["message"]
    kind = q["typedData"]["primaryType"]
    common = {"deadline": int(m["deadline"]), "nonce": int(m["nonce"]), "signature": signature}
    dec = 18
    if kind == "OpenPosition":
        return {
            "symbol": q["symbol"],
            "usdcAmount": _human(m["usdcAmount"], 6),
            "minTokenOut": _human(m["minTokenOut"], dec),
            "maxSlippageBps": int(m["maxSlippageBps"]),
            "exits": q["exits"],
            **common,
        }
    if kind == "AddToPosition":
        return {
            "positionId": q["positionId"],
            "usdcAmount": _human(m["usdcAmount"], 6),
            "minTokenOut": _human(m["minTokenOut"], dec),
            "maxSlippageBps": int(m["maxSlippageBps"]),
            **common,
        }
    if kind == "ReducePosition":
        return {
            "positionId": q["positionId"],
            "tokenAmount": _human(m["tokenAmount"], dec),
            "minUsdcOut": _human(m["minUsdcOut"], 6),
            "maxSlippageBps": int(m["maxSlippageBps"]),
            **common,
        }
    return {"positionId": q["positionId"], "exits": q["exits"], **common}


def _human(base: str, decimals: int) -> str:
    value = int(base)
    whole, frac = divmod(value, 10**decimals)
    return f"{whole}.{frac:0{decimals}d}".rstrip("0").rstrip(".") if frac else str(whole)


def trade(
    client: httpx.Client,
    agent_id: int,
    key: str,
    primary_type: str,
    headers: dict[str, str] | None = None,
    **params: Any,
) -> httpx.Response:
    q = quote(client, agent_id, primary_type, **params)
    assert q.status_code == 200, q.text
    body = body_from_quote(q.json(), sign_typed(q.json()["typedData"], key))
    return client.post(f"/agents/{agent_id}/{PATHS[primary_type][1]}", json=body, headers=headers or {})


GWEI = 10**9


def send_raw(w3: Web3, to: str, data: bytes | str, key: str, tip_wei: int = GWEI) -> str:
    """A raw transaction from `key`, not waited for (with automine off it sits in the pool)."""
    account = Account.from_key(key)
    base_fee = int(w3.eth.get_block("latest")["baseFeePerGas"])  # type: ignore[typeddict-item]
    tx = {
        "to": Web3.to_checksum_address(to),
        "data": data if isinstance(data, str) else "0x" + data.hex(),
        "gas": 500_000,
        "nonce": w3.eth.get_transaction_count(account.address, "pending"),
        "chainId": w3.eth.chain_id,
        "maxFeePerGas": 4 * base_fee + tip_wei,
        "maxPriorityFeePerGas": tip_wei,
    }
    return "0x" + bytes(w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)).hex()
