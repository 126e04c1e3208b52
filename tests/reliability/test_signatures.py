"""Signatures that must never move money: signed for another domain (chain id, router, an old router),
for another intent type, or while the node's chain id is changed under a running relayer. Each is
refused with its code and no relayer key sends anything."""

from __future__ import annotations

import copy
from typing import Any

from eth_account import Account

from tests.integration.agentkit import body_from_quote, sign_typed
from tests.integration.test_api_idempotency import nonces_used
from tests.integration.test_api_rejections import (
    LADDER,
    assert_error,
    nothing_sent,
    open_position,
    quote_of,
    rpc,
    signed,
    submit,
)

from .harness import Api

OLD_ROUTER = "0x" + "a1" * 20  # where a previous deployment's router lived


def signed_for(api: Api, q: dict[str, Any], **domain: Any) -> dict[str, Any]:
    """The submit body of quote `q`, signed by the agent over a domain edited by `domain`."""
    typed = copy.deepcopy(q["typedData"])
    typed["domain"].update(domain)
    return body_from_quote(q, sign_typed(typed, api.agent(0)[1]))


def test_signatures_for_another_domain_are_invalid_signature(api: Api) -> None:
    """The relayer rebuilds the domain from its own chain id and router, so a signature over any other
    domain recovers to some other address: 401, never sent, never recorded."""
    agent_id, key = api.agent(0)
    signer = Account.from_key(key).address
    q = quote_of(api, 0, "OpenPosition", symbol="NVDA", usdcAmount="100", exits=LADDER)
    chain_id = q["typedData"]["domain"]["chainId"]
    router = q["typedData"]["domain"]["verifyingContract"]
    cases = {
        "another chain id": {"chainId": chain_id + 1},
        "mainnet": {"chainId": 1},
        "another verifying contract": {"verifyingContract": api.stack.manifest.contracts.agent_registry},
        "an old router": {"verifyingContract": OLD_ROUTER},
        "another name": {"name": "AlphaGrid TradeRouter v0"},
        "another version": {"version": "2"},
    }
    with nothing_sent(api):
        for case, domain in cases.items():
            r = submit(api, agent_id, "OpenPosition", signed_for(api, q, **domain))
            error = assert_error(r, 401, "invalid_signature")
            assert error["details"]["recovered"] != signer, case
    # The unedited domain is the one that works, at the same nonce.
    assert q["typedData"]["domain"]["verifyingContract"] == router
    r = submit(api, agent_id, "OpenPosition", signed_for(api, q))
    assert r.status_code == 201, r.text
    assert nonces_used(api, agent_id) == [0]


def test_a_signature_for_one_intent_type_is_refused_by_another_types_endpoint(api: Api) -> None:
    """Type confusion: the same fields posted to another endpoint hash under another type string, so the
    signature recovers elsewhere (401) or the body does not even parse (400)."""
    agent_id, _ = api.agent(0)
    position_id = open_position(api)
    # Floors of 0, so each body's amounts also parse in the other type's decimals.
    _q, add = signed(
        api, 0, "AddToPosition", positionId=position_id, usdcAmount="100", message={"minTokenOut": 0}
    )
    _q, reduce = signed(
        api, 0, "ReducePosition", positionId=position_id, tokenAmount="0.1", message={"minUsdcOut": 0}
    )
    _q, ladder = signed(api, 0, "UpdateExitLadder", positionId=position_id, exits=LADDER)
    # AddToPosition and ReducePosition have the same shape: an add signature on the reduce endpoint.
    as_reduce = {
        "positionId": add["positionId"],
        "tokenAmount": add["usdcAmount"],
        "minUsdcOut": add["minTokenOut"],
        "maxSlippageBps": add["maxSlippageBps"],
        "deadline": add["deadline"],
        "nonce": add["nonce"],
        "signature": add["signature"],
    }
    as_add = {
        "positionId": reduce["positionId"],
        "usdcAmount": reduce["tokenAmount"],
        "minTokenOut": reduce["minUsdcOut"],
        "maxSlippageBps": reduce["maxSlippageBps"],
        "deadline": reduce["deadline"],
        "nonce": reduce["nonce"],
        "signature": reduce["signature"],
    }
    with nothing_sent(api):
        assert_error(submit(api, agent_id, "ReducePosition", as_reduce), 401, "invalid_signature")
        assert_error(submit(api, agent_id, "AddToPosition", as_add), 401, "invalid_signature")
        for other in ("AddToPosition", "ReducePosition", "OpenPosition"):
            assert_error(submit(api, agent_id, other, ladder), 400, "invalid_request")
        assert_error(submit(api, agent_id, "UpdateExitLadder", add), 400, "invalid_request")
    assert nonces_used(api, agent_id) == [0]


def test_a_chain_id_changed_under_a_running_relayer_is_503_until_it_is_back(api: Api) -> None:
    """anvil_setChainId while the relayer runs. The domain (and the relayer's own transactions) carry
    the chain id, so the relayer must notice: submits signed for either id are 503 chain_unavailable
    naming both ids, /ready says why, nothing is sent or recorded. Back on its chain id, the intent
    signed for it executes, once."""
    agent_id, _ = api.agent(0)
    position_id = open_position(api)
    q = quote_of(api, 0, "AddToPosition", positionId=position_id, usdcAmount="100")
    chain_id = q["typedData"]["domain"]["chainId"]
    old_domain = signed_for(api, q)
    new_domain = signed_for(api, q, chainId=chain_id + 1)
    rpc(api, "anvil_setChainId", chain_id + 1)
    try:
        with nothing_sent(api):
            for body in (old_domain, new_domain):
                assert_error(
                    submit(api, agent_id, "AddToPosition", body),
                    503,
                    "chain_unavailable",
                    reason="chain_id_changed",
                    chainId=chain_id + 1,
                    expectedChainId=chain_id,
                )
        ready = api.client.get("/ready")
        assert ready.status_code == 503 and any("chain" in r for r in ready.json()["reasons"]), ready.text
    finally:
        rpc(api, "anvil_setChainId", chain_id)
    assert api.client.get("/ready").status_code == 200
    r = submit(api, agent_id, "AddToPosition", old_domain)
    assert r.status_code == 201, r.text
    # The other signature is over the same message: the same digest, so the same record, not a second run.
    for body in (old_domain, new_domain):
        again = submit(api, agent_id, "AddToPosition", body)
        assert again.status_code == 200 and again.json()["intentId"] == r.json()["intentId"], again.text
    assert nonces_used(api, agent_id) == [0, 1]
