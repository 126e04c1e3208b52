"""`alphagrid serve` as a child process the soak can SIGKILL and start again on the same database.

With `api_processes` it is `serve --api-processes N` (PostgreSQL): a kill takes the whole process group
(the supervisor, the engine, the API processes) down at once, and `kill_child` SIGKILLs one of the
supervisor's children, which the supervisor starts again by itself."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import IO

import httpx

from relayer.config import REPO_ROOT
from relayer.supervisor import supervised


class RelayerProcess:
    def __init__(
        self,
        *,
        home: Path,
        rpc_url: str,
        database_url: str,
        port: int,
        log_path: Path,
        keeper: bool = True,
        api_processes: int = 0,
    ) -> None:
        self.home = home
        self.rpc_url = rpc_url
        self.database_url = database_url
        self.port = port
        self.log_path = log_path
        self.keeper = keeper
        self.api_processes = api_processes
        self.child_kills: Counter[str] = Counter()  # role ("engine", "api") → SIGKILLs of that child
        self.starts = 0
        self.kills = 0
        self.start_kills = 0  # of `kills`, those that hit a process still starting
        self.start_s: list[float] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 120.0, *, kill_after_s: float | None = None) -> bool:
        """Starts the relayer and returns True once `/ready` answers 200 (its indexer has caught up).
        With `kill_after_s`, SIGKILLs it that long after spawning if it is not ready by then (a crash
        during start-up: migrations, indexer bootstrap, the sender's reconcile) and returns False."""
        assert not self.running
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHAGRID_")}
        env |= {
            "ALPHAGRID_HOME": str(self.home),
            "ALPHAGRID_RPC_URL": self.rpc_url,
            "ALPHAGRID_DATABASE_URL": self.database_url,
            "ALPHAGRID_API_PORT": str(self.port),
            "ALPHAGRID_API_PROCESSES": str(self.api_processes),
        }
        args = [sys.executable, "-m", "relayer.cli", "serve", "--json"]
        if not self.keeper:
            args.append("--no-keeper")
        self._log = self._log or open(self.log_path, "ab")  # noqa: SIM115  (kept open across restarts)
        self._log.write(f"\n==== start {self.starts + 1} at {time.time():.3f}\n".encode())
        self._log.flush()
        began = time.monotonic()
        self._proc = subprocess.Popen(
            args, env=env, cwd=REPO_ROOT, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.starts += 1
        deadline = began + timeout_s
        while True:
            if kill_after_s is not None and time.monotonic() - began >= kill_after_s:
                self.kill()
                self.start_kills += 1
                return False
            if self._proc.poll() is not None:
                raise RuntimeError(f"the relayer exited with {self._proc.returncode}; see {self.log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the relayer was not ready within {timeout_s:.0f} s; see {self.log_path}")
            time.sleep(0.05)
        self.start_s.append(time.monotonic() - began)
        return True

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, whatever the process was doing is cut off."""
        proc = self._proc
        assert proc is not None and proc.poll() is None
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: the supervisor's children die with it
        proc.wait()
        self.kills += 1
        assert self._log is not None
        self._log.write(f"\n==== SIGKILL at {time.time():.3f}\n".encode())
        self._log.flush()

    def kill_child(self, role: str, pick: Callable[[list[int]], int]) -> bool:
        """SIGKILLs one live child of that role (`pick` chooses among their pids); False if none."""
        children = supervised(self._proc.pid) if self._proc is not None else {}
        pids = sorted(pid for pid, r in children.items() if r == role)
        if not pids:
            return False
        os.kill(pick(pids), signal.SIGKILL)
        self.child_kills[role] += 1
        assert self._log is not None
        self._log.write(f"\n==== SIGKILL of the {role} process at {time.time():.3f}\n".encode())
        self._log.flush()
        return True

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
