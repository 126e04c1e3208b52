"""`alphagrid keeper` alone (no HTTP API): it closes a position whose stop a price update crosses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

from eth_account import Account
from web3 import Web3

from relayer import eip712
from relayer.chain import artifacts, calls
from relayer.chain.admin import Admin
from relayer.chain.anvil import Anvil, free_port
from relayer.chain.seed import price_base, seed_local
from relayer.devkeys import OPERATOR_KEY
from relayer.eip712 import ExitRule, TriggerType

LADDER = (ExitRule(TriggerType.TAKE_PROFIT, 1000, 5000), ExitRule(TriggerType.STOP_LOSS, -500, 10000))


def test_keeper_alone_fires_a_stop(tmp_path: Path) -> None:
    with Anvil(port=free_port()).start() as node:
        w3 = Web3(Web3.HTTPProvider(node.url))
        admin = Admin(w3, OPERATOR_KEY)
        m = seed_local(admin, rpc_url=node.url, api_url="http://127.0.0.1:1")
        assert m.demo is not None
        agent = m.demo.agents[0]
        home = tmp_path / "home"
        m.write(home / "deployment.json")
        # Open a position directly on the router (the keeper does not need the API to exist).
        domain = eip712.Domain(m.chain_id, Web3.to_checksum_address(m.contracts.trade_router))
        intent = eip712.OpenPosition(
            agent.agent_id,
            Web3.to_checksum_address(m.vaults[0].address),
            Web3.to_checksum_address(m.tokens["NVDA"]),
            100 * 10**6,
            0,
            100,
            eip712.exits_hash(LADDER),
            2**40,
            0,
        )
        sig = bytes(Account.unsafe_sign_hash(eip712.digest(domain, intent), agent.signer_key).signature)
        admin._send_tx(
            {"to": m.contracts.trade_router, "data": calls.open_position(intent, LADDER, sig)}, "open"
        )

        env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHAGRID_")} | {
            "ALPHAGRID_HOME": str(home)
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "relayer.cli", "keeper", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            router = w3.eth.contract(address=m.contracts.trade_router, abi=artifacts.abi("TradeRouter"))
            time.sleep(3)  # let it index and take the keeper lease
            admin.set_prices([m.tokens["NVDA"]], [price_base(Decimal("150"))])
            deadline = time.monotonic() + 20
            while router.functions.position(1).call()[3]:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, (
                    f"the keeper did not close the position (chain block {w3.eth.block_number}, "
                    f"price {admin.oracle.functions.latestPrice(m.tokens['NVDA']).call()})"
                )
                time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err.decode()
