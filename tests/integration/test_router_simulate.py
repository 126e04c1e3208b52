"""`RouterClient.simulate` (relayer/chain/router.py): one `eth_simulateV1` run gives a batch's per-item
results and its gas, where an `eth_call` and an `eth_estimateGas` took two requests and many runs. The
gas limit made from the measured gas (`gas_from_used`, before any margin) is enough on chain: every
item of the batch succeeds under it, and it is never below the node's own estimate."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account

from relayer.chain import calls
from relayer.chain.router import RouterRevertedError, gas_from_used
from relayer.devkeys import RELAYER_KEYS
from tests.integration.agentkit import body_from_quote, quote, sign_typed
from tests.integration.conftest import Api
from tests.integration.test_api_rejections import LADDER

SYMBOLS = ("NVDA", "AAPL", "TSLA")


def signed_opens(api: Api, index: int, count: int) -> list[dict[str, Any]]:
    """`count` opens of one demo agent with consecutive nonces (one per symbol), signed, unsent."""
    agent_id, key = api.agent(index)
    bodies = []
    for i, symbol in enumerate(SYMBOLS[:count]):
        q = quote(api.client, agent_id, "OpenPosition", symbol=symbol, usdcAmount="100", exits=LADDER)
        assert q.status_code == 200, q.text
        doc = q.json()
        doc["typedData"]["message"]["nonce"] = str(int(doc["typedData"]["message"]["nonce"]) + i)
        bodies.append(body_from_quote(doc, sign_typed(doc["typedData"], key)))
    return bodies


@pytest.mark.parametrize("per_agent", [1, 3])
def test_the_measured_gas_is_enough_and_never_below_the_estimate(api: Api, per_agent: int) -> None:
    intents = api.services.intents
    items = []
    for index in (0, 1):
        agent_id, _key = api.agent(index)
        for body in signed_opens(api, index, per_agent):
            items.append(intents.prepare.batch_item(intents.built(agent_id, "OpenPosition", body)))
    data = calls.execute_intents(items)
    router = intents.client
    simulation = router.simulate(data)
    assert simulation.gas_used is not None  # Anvil serves eth_simulateV1
    assert calls.batch_results(simulation.output) == [b""] * len(items)  # every item would succeed
    limit = gas_from_used(simulation.gas_used)
    assert limit >= router.estimate_gas(data)

    # Sent with exactly that limit (no margin), by a key the relayer is not using here.
    w3 = api.stack.w3
    sender = Account.from_key(RELAYER_KEYS[-1])
    tx = {
        "to": router.address,
        "data": "0x" + data.hex(),
        "gas": limit,
        "nonce": w3.eth.get_transaction_count(sender.address),
        "chainId": w3.eth.chain_id,
        "maxFeePerGas": 10 * w3.eth.gas_price,
        "maxPriorityFeePerGas": 1,
    }
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
    )
    assert receipt["status"] == 1
    router_logs = [router.events.decode(dict(log)) for log in receipt["logs"]]
    names = [e.name for e in router_logs if e is not None]
    assert names.count("PositionOpened") == len(items) and "IntentFailed" not in names
    assert receipt["gasUsed"] <= simulation.gas_used * 1.01  # what was measured is what it costs


def test_a_call_that_would_revert_is_a_decoded_revert(api: Api) -> None:
    agent_id, _key = api.agent(0)
    (body,) = signed_opens(api, 0, 1)
    body["nonce"] = body["nonce"] + 5  # not the agent's next nonce: the router refuses it
    intents = api.services.intents
    data = intents.calldata(intents.built(agent_id, "OpenPosition", body))
    with pytest.raises(RouterRevertedError) as caught:
        intents.client.simulate(data)
    assert caught.value.revert.name in ("NonceMismatch", "InvalidSignature")


def test_pending_runs_at_the_next_blocks_time_where_latest_runs_at_the_last(api: Api) -> None:
    """The dispatcher simulates a single call (which would revert whole) on `pending`: an intent whose
    deadline falls between the last block's time and the next block's passes on `latest` only."""
    agent_id, key = api.agent(0)
    w3 = api.stack.w3
    last = w3.eth.get_block("latest")["timestamp"]
    q = quote(api.client, agent_id, "OpenPosition", symbol="NVDA", usdcAmount="100", exits=LADDER)
    doc = q.json()
    doc["typedData"]["message"]["deadline"] = str(last + 50)
    body = body_from_quote(doc, sign_typed(doc["typedData"], key))
    intents = api.services.intents
    data = intents.calldata(intents.built(agent_id, "OpenPosition", body))
    w3.provider.make_request("evm_setNextBlockTimestamp", [last + 100])  # type: ignore[arg-type]
    assert intents.client.simulate(data).gas_used is not None  # at the last block's time: fine
    with pytest.raises(RouterRevertedError) as caught:
        intents.client.simulate(data, block="pending")
    assert caught.value.revert.name == "DeadlineExpired"
