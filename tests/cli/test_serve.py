"""`alphagrid serve` against a deployed manifest: it serves until SIGTERM and exits cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from web3 import Web3

from relayer.chain.admin import Admin
from relayer.chain.anvil import Anvil, free_port
from relayer.chain.seed import seed_local
from relayer.devkeys import OPERATOR_KEY


def test_serve_answers_ready_and_stops_on_sigterm(tmp_path: Path) -> None:
    api_port = free_port()
    with Anvil(port=free_port()).start() as node:
        admin = Admin(Web3(Web3.HTTPProvider(node.url)), OPERATOR_KEY)
        manifest = seed_local(admin, rpc_url=node.url, api_url=f"http://127.0.0.1:{api_port}")
        home = tmp_path / "home"
        manifest.write(home / "deployment.json")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHAGRID_")}
        env |= {"ALPHAGRID_HOME": str(home), "ALPHAGRID_API_PORT": str(api_port)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "relayer.cli", "serve", "--json"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                try:
                    if httpx.get(f"http://127.0.0.1:{api_port}/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "serve never became ready"
                time.sleep(0.1)
            prices = httpx.get(f"http://127.0.0.1:{api_port}/prices?symbols=NVDA", timeout=5).json()
            assert prices["prices"][0]["price"] == "182.35"
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err.decode()
        assert b"Traceback" not in err
        assert b'"apiUrl"' in out
