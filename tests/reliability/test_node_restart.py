"""The chain node itself goes away: Anvil stopped and started again from its state file while the
relayer keeps running. While it is away the relayer answers 503 and accepts nothing; when it is back,
what was recorded before is still there, a transaction the node forgot is sent again, once, and new
intents work."""

from __future__ import annotations

import gzip
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from web3 import Web3

from relayer.chain.admin import Admin
from relayer.chain.anvil import Anvil, free_port
from relayer.chain.seed import seed_local
from relayer.devkeys import OPERATOR_KEY
from tests.integration.test_api_idempotency import nonces_used
from tests.integration.test_api_rejections import LADDER, assert_error, rpc, signed, submit
from tests.integration.test_api_restart import final

from .harness import Api, Stack, relayer

NO_WAIT = {"Prefer": "wait=0"}


@pytest.fixture
def own_chain(tmp_path: Path) -> Iterator[Stack]:
    """A seeded Anvil of the test's own that keeps its state in a file (written when it stops)."""
    node = Anvil(port=free_port(), state_path=tmp_path / "anvil-state.json").start()
    try:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 30}))
        admin = Admin(w3, OPERATOR_KEY)
        manifest = seed_local(admin, rpc_url=node.url, api_url="http://127.0.0.1:0")
        yield Stack(anvil=node, w3=w3, admin=admin, manifest=manifest)
    finally:
        node.stop()


def wait_ready(api: Api, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while api.client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, "the relayer never became ready again"
        time.sleep(0.1)


def test_anvil_restarted_from_its_state_file_under_a_running_relayer(
    own_chain: Stack, db_url: str, tmp_path: Path
) -> None:
    """Stopped with SIGTERM (Anvil writes its state), started again from the file on the same port."""
    node = own_chain.anvil
    with relayer(own_chain, db_url, tmp_path / "home") as api:
        agent_id, _ = api.agent(0)
        _q, body = signed(api, 0, "OpenPosition", symbol="NVDA", usdcAmount="1000", exits=LADDER)
        opened = submit(api, agent_id, "OpenPosition", body)
        assert opened.status_code == 201, opened.text
        # An add in the node's pool, not mined, when the node goes down: Anvil keeps no pool in its state.
        rpc(api, "evm_setAutomine", False)
        _q, add = signed(api, 0, "AddToPosition", positionId="1", usdcAmount="100")
        in_flight = submit(api, agent_id, "AddToPosition", add, headers=NO_WAIT)
        assert in_flight.status_code == 202 and in_flight.json()["status"] == "submitted", in_flight.text
        _q, later = signed(api, 0, "UpdateExitLadder", positionId="1", exits=LADDER)
        assert later["nonce"] == 2
        node.stop()  # SIGTERM: Anvil writes its state file and exits

        down = submit(api, agent_id, "AddToPosition", add)  # the same intent again: its record
        assert down.status_code == 200 and down.json()["intentId"] == in_flight.json()["intentId"]
        assert_error(submit(api, agent_id, "UpdateExitLadder", later), 503, "chain_unavailable")
        assert api.client.get("/ready").status_code == 503
        assert len(api.client.get(f"/agents/{agent_id}/intents").json()["intents"]) == 2
        assert api.client.get(f"/agents/{agent_id}/positions").status_code == 200  # reads still served
        time.sleep(0.5)  # the workers meet the outage: nothing may be given up
        assert (
            api.client.get(f"/agents/{agent_id}/intents/{in_flight.json()['intentId']}").json()["status"]
            == "submitted"
        )

        node.start()  # same port, state loaded from the file; automining again
        wait_ready(api)
        record = final(api.client, agent_id, in_flight.json()["intentId"], timeout_s=30)
        assert record["status"] == "confirmed", record
        assert nonces_used(api, agent_id) == [0, 1]
        deadline = time.monotonic() + 10
        while (position := api.client.get(f"/agents/{agent_id}/positions/1").json())["costBasis"] != "1100":
            assert time.monotonic() < deadline, (
                position,
                api.services.state.block_number,
                api.stack.w3.eth.block_number,
            )
            time.sleep(0.1)
        r = submit(api, agent_id, "UpdateExitLadder", later)
        assert r.status_code == 201, r.text
        assert nonces_used(api, agent_id) == [0, 1, 2]


def mine_until(api: Api, done: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "timed out"
        rpc(api, "evm_mine")
        time.sleep(0.1)


def intent_status(api: Api, agent_id: int, intent_id: str) -> str:
    return str(api.client.get(f"/agents/{agent_id}/intents/{intent_id}").json()["status"])


def cost_basis(api: Api, agent_id: int) -> str | None:
    r = api.client.get(f"/agents/{agent_id}/positions/1")
    return str(r.json()["costBasis"]) if r.status_code == 200 else None


def test_anvil_killed_loses_its_last_blocks_and_the_relayer_sends_them_again(
    tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGKILL: Anvil's state file is only as new as its last dump, so the chain comes back without its
    newest blocks — to the relayer, a reorg. A confirmed intent whose transaction is gone must not stay
    a phantom: the relayer (following `confirmations` blocks) sends its recorded transaction again, and
    the chain ends with every intent executed once."""
    port = free_port()
    state = tmp_path / "state.json"
    node = Anvil(port=port).start()
    reloaded: Anvil | None = None
    try:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 30}))
        admin = Admin(w3, OPERATOR_KEY)
        manifest = seed_local(admin, rpc_url=node.url, api_url="http://127.0.0.1:0")
        own = Stack(anvil=node, w3=w3, admin=admin, manifest=manifest)
        w3.provider.make_request("anvil_mine", [hex(3)])  # type: ignore[arg-type]
        with relayer(own, db_url, tmp_path / "home", confirmations=0) as api:
            agent_id, _ = api.agent(0)
            _q, body = signed(api, 0, "OpenPosition", symbol="NVDA", usdcAmount="1000", exits=LADDER)
            opened = submit(api, agent_id, "OpenPosition", body, headers=NO_WAIT)
            mine_until(api, lambda: cost_basis(api, agent_id) == "1000")
            # The last periodic dump Anvil writes (anvil --state-interval), taken by hand to time it.
            state.write_bytes(gzip.decompress(bytes.fromhex(rpc(api, "anvil_dumpState")[2:])))
            dumped_at = w3.eth.block_number
            _q, add = signed(api, 0, "AddToPosition", positionId="1", usdcAmount="100")
            added = submit(api, agent_id, "AddToPosition", add, headers=NO_WAIT)
            mine_until(api, lambda: cost_basis(api, agent_id) == "1100")
            mine_until(api, lambda: intent_status(api, agent_id, added.json()["intentId"]) == "confirmed")
            assert node.process is not None
            os.killpg(node.process.pid, signal.SIGKILL)
            node.stop()
            with caplog.at_level(logging.WARNING, logger="relayer.chain.sender"):
                reloaded = Anvil(port=port, extra_args=["--load-state", str(state)]).start()
                assert w3.eth.block_number <= dumped_at + 1  # the add's block is gone (or re-mined)
                mine_until(api, lambda: nonces_used(api, agent_id) == [0, 1])
            assert any("left the canonical chain" in r.getMessage() for r in caplog.records)
            mine_until(api, lambda: cost_basis(api, agent_id) == "1100")
            for intent in (opened, added):  # the add back to `submitted` meanwhile, then confirmed again
                mine_until(
                    api, lambda i=intent: intent_status(api, agent_id, i.json()["intentId"]) == "confirmed"
                )
            assert nonces_used(api, agent_id) == [0, 1]
    finally:
        node.stop()
        if reloaded is not None:
            reloaded.stop()
