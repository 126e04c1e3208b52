"""A local Anvil node as a child process: started on a port, waited for, stopped cleanly."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from relayer.config import REPO_ROOT
from relayer.devkeys import LOCAL_CHAIN_ID


class AnvilError(RuntimeError):
    pass


class PortInUseError(AnvilError):
    def __init__(self, host: str, port: int) -> None:
        super().__init__(f"port {port} on {host} is already in use (set ALPHAGRID_RPC_PORT to another)")
        self.port = port


def _die_with_parent() -> None:
    """prctl(PR_SET_PDEATHSIG, SIGTERM) in the child. Linux only; it follows the spawning *thread*,
    which is why only the main thread asks for it."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def foundry_binary(tool: str) -> str:
    """`forge`, `anvil` or `cast`: on PATH, or where npm put the project's pinned Foundry."""
    found = shutil.which(tool)
    if found:
        return found
    npm = REPO_ROOT / f"node_modules/@foundry-rs/{tool}-linux-amd64/bin/{tool}"
    if npm.exists():
        return str(npm)
    raise AnvilError(f"{tool} not found: run scripts/up or scripts/test once to install Foundry")


def anvil_binary() -> str:
    return foundry_binary("anvil")


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Anvil:
    """A running Anvil. Use as a context manager, or call `stop()`."""

    port: int
    host: str = "127.0.0.1"
    chain_id: int = LOCAL_CHAIN_ID
    block_time_s: float | None = None
    state_path: Path | None = None
    extra_args: Sequence[str] = ()
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 20.0) -> Anvil:
        if not port_is_free(self.host, self.port):
            raise PortInUseError(self.host, self.port)
        args = [
            anvil_binary(),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--chain-id",
            str(self.chain_id),
            "--silent",
        ]
        if self.block_time_s:
            args += ["--block-time", str(self.block_time_s)]
        if self.state_path is not None:
            args += ["--state", str(self.state_path)]
        args += list(self.extra_args)
        # Its own session, so a Ctrl-C meant for the parent reaches anvil only through stop(); and a
        # parent killed outright (SIGKILL) takes anvil with it rather than leaving it on the port.
        self.process = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_die_with_parent if threading.current_thread() is threading.main_thread() else None,
        )
        self._wait_ready(timeout_s)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise AnvilError(f"anvil exited with {self.process.returncode}: {err.strip()[-500:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.post(self.url, json=body, timeout=1.0).status_code == 200:
                    return
            time.sleep(0.05)
        self.stop()
        raise AnvilError(f"anvil did not answer on {self.url} within {timeout_s:.0f}s")

    def stop(self, timeout_s: float = 10.0) -> None:
        proc, self.process = self.process, None
        if proc is None:
            return
        try:
            self._terminate(proc, timeout_s)
        finally:
            if proc.stderr is not None:
                proc.stderr.close()

    @staticmethod
    def _terminate(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
        if proc.poll() is not None:
            return
        # SIGTERM lets anvil write its --state file before it exits.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def __enter__(self) -> Anvil:
        return self if self.process is not None else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
