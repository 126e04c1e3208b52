"""The deployed contracts on a real Anvil, driven by intents that the relayer's own EIP-712 encoder
signs: the Python and Solidity encoders agree, and the figures of a real transaction (gas including
the 21k base and calldata) are what they are."""

from __future__ import annotations

import time
from typing import Any

from eth_account import Account
from web3 import Web3

from relayer import eip712
from relayer.chain import artifacts, calls
from relayer.devkeys import RELAYER_KEYS
from relayer.eip712 import ExitRule, TriggerType

from .conftest import Stack

LADDER = (
    ExitRule(TriggerType.TAKE_PROFIT, 1000, 5000),
    ExitRule(TriggerType.STOP_LOSS, -1000, 10000),
)


def _send(stack: Stack, data: bytes) -> Any:
    relayer = Account.from_key(RELAYER_KEYS[0])
    w3 = stack.w3
    tx = {
        "to": stack.manifest.contracts.trade_router,
        "data": data,
        "from": relayer.address,
        "nonce": w3.eth.get_transaction_count(relayer.address, "pending"),
        "chainId": w3.eth.chain_id,
        "gas": 1_000_000,
        "maxFeePerGas": 10**10,
        "maxPriorityFeePerGas": 10**9,
    }
    signed = relayer.sign_transaction(tx)
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))
    assert receipt["status"] == 1, receipt
    return receipt


def _router(stack: Stack) -> Any:
    return stack.w3.eth.contract(
        address=stack.manifest.contracts.trade_router, abi=artifacts.abi("TradeRouter")
    )


def test_seeded_stack_matches_the_manifest(chain: Stack) -> None:
    m = chain.manifest
    assert set(m.tokens) == {"NVDA", "AAPL", "TSLA", "MSFT", "SPY"}
    assert m.demo is not None and len(m.demo.agents) >= 2
    registry = chain.w3.eth.contract(address=m.contracts.agent_registry, abi=artifacts.abi("AgentRegistry"))
    for agent in m.demo.agents:
        config = registry.functions.agentConfig(agent.agent_id).call()
        assert config[0] == Account.from_key(agent.signer_key).address
        assert config[1] == m.vaults[0].address
    assert (
        _router(chain).functions.domainSeparator().call()
        == eip712.Domain(m.chain_id, Web3.to_checksum_address(m.contracts.trade_router)).separator()
    )


def test_python_signed_intents_execute_on_chain(chain: Stack) -> None:
    m = chain.manifest
    assert m.demo is not None
    agent = m.demo.agents[0]
    key = agent.signer_key
    domain = eip712.Domain(m.chain_id, Web3.to_checksum_address(m.contracts.trade_router))
    router = _router(chain)
    deadline = int(time.time()) + 3600
    gas: dict[str, int] = {}

    def sign(intent: eip712.Intent) -> bytes:
        signed = Account.unsafe_sign_hash(eip712.digest(domain, intent), key)
        return bytes(signed.signature)

    open_intent = eip712.OpenPosition(
        agent_id=agent.agent_id,
        vault=Web3.to_checksum_address(m.vaults[0].address),
        token=Web3.to_checksum_address(m.tokens["NVDA"]),
        usdc_amount=1_000 * 10**6,
        min_token_out=0,
        max_slippage_bps=100,
        exits_hash=eip712.exits_hash(LADDER),
        deadline=deadline,
        nonce=0,
    )
    receipt = _send(chain, calls.open_position(open_intent, LADDER, sign(open_intent)))
    gas["open"] = receipt["gasUsed"]
    position_id = router.functions.openPositionOf(agent.agent_id, m.tokens["NVDA"]).call()
    assert position_id == 1

    add = eip712.AddToPosition(agent.agent_id, position_id, 500 * 10**6, 0, 100, deadline, 1)
    gas["add"] = _send(chain, calls.add_to_position(add, sign(add)))["gasUsed"]

    size = router.functions.position(position_id).call()[4]
    reduce = eip712.ReducePosition(agent.agent_id, position_id, size // 4, 0, 100, deadline, 2)
    gas["reduce"] = _send(chain, calls.reduce_position(reduce, sign(reduce)))["gasUsed"]

    ladder = (ExitRule(TriggerType.TAKE_PROFIT, 2000, 5000), ExitRule(TriggerType.STOP_LOSS, -500, 10000))
    update = eip712.UpdateExitLadder(agent.agent_id, position_id, eip712.exits_hash(ladder), deadline, 3)
    gas["ladder"] = _send(chain, calls.update_exit_ladder(update, ladder, sign(update)))["gasUsed"]

    oracle = chain.admin.oracle
    price = oracle.functions.latestPrice(m.tokens["NVDA"]).call()[0]
    chain.admin.set_prices([m.tokens["NVDA"]], [price * 90 // 100])
    gas["exit"] = _send(chain, calls.execute_exit(position_id, ladder))["gasUsed"]

    view = router.functions.position(position_id).call()
    assert view[3] is False, "the stop-loss closed the position"
    assert router.functions.nextNonce(agent.agent_id).call() == 4
    print("\nreal transaction gas (incl. 21k base + calldata):", gas)
