"""`alphagrid serve --api-processes N`: the relayer as N + 1 processes on one PostgreSQL database, so
that it uses more than one core (Python runs one thread at a time per process).

- One **engine** (`Role.ENGINE`): the indexer that writes the mirror, the sender, the dispatcher and
  finalizer, the keeper, the webhook worker. It alone sends transactions, so the guarantees of the
  single process hold as they are: a transaction is recorded before it is broadcast, an intent moves
  by compare-and-set, a restart resumes from the database.
- N **API processes** (`Role.API`) on one port (SO_REUSEPORT; the kernel spreads the connections):
  each quotes, checks, simulates and records submits, and follows the engine's indexer into memory
  (never ahead of the mirror). They send nothing. A submit is durable once recorded, as before; the
  engine's dispatcher takes it from the database.
- They wake each other with PostgreSQL NOTIFY (`relayer.store.signals`); every one of them also
  polls, so a lost signal only delays.

The supervisor starts the engine (migrations, catch-up, reconcile) and, once it is ready, the API
processes. A child that dies is started again after a back-off (`restart_delay`); one that keeps
dying stops the whole relayer with the reason. The children are separate interpreters (fork + exec:
nothing of the supervisor's threads or connections is inherited). Each reads its settings, keys
included, from its stdin, and stops when its stdin closes, so it never outlives the supervisor, even
one killed with SIGKILL.

    python -m relayer.supervisor engine|api MANIFEST_PATH [LOG_LEVEL]   (a child; settings on stdin)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any, Final

from pydantic import SecretStr

from relayer.config import Settings
from relayer.manifest import Manifest
from relayer.service import Role

log = logging.getLogger("alphagrid.supervisor")

READY: Final = "READY"
# The settings that name where keys come from: the child gets the keys themselves.
_KEY_SOURCES: Final = (
    "operator_key_file",
    "relayer_keys_file",
    "operator_keystore",
    "relayer_keystores",
    "keystore_password_file",
    "secrets_dir",
)


@dataclass(frozen=True)
class RestartPolicy:
    """A dead child is started again after `first_delay_s`, doubled for each death within `window_s`
    (at most `max_delay_s`); the `max_restarts`+1st death within `window_s` gives up."""

    max_restarts: int = 5
    window_s: float = 60.0
    first_delay_s: float = 0.2
    max_delay_s: float = 5.0


def restart_delay(deaths: list[float], now: float, policy: RestartPolicy) -> float | None:
    """How long to wait before starting a child again, given the times it died (the last one now);
    None: it died too often, give up."""
    recent = [t for t in deaths if now - t <= policy.window_s]
    if len(recent) > policy.max_restarts:
        return None
    delay: float = policy.first_delay_s * 2.0 ** max(len(recent) - 1, 0)
    return min(delay, policy.max_delay_s)


def settings_doc(settings: Settings) -> dict[str, Any]:
    """The settings as JSON for a child, keys resolved (its environment carries none of ours)."""
    doc: dict[str, Any] = {}
    for name in Settings.model_fields:
        if name in _KEY_SOURCES:
            continue
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, list):
            value = [v.get_secret_value() if isinstance(v, SecretStr) else v for v in value]
        if isinstance(value, Path):
            value = str(value)
        doc[name] = value
    return doc


def child_settings(doc: dict[str, Any]) -> Settings:
    return Settings(_env_file=None, **doc)  # type: ignore[call-arg]


def child_environment() -> dict[str, str]:
    """Ours without the ALPHAGRID_ variables: the settings on stdin are the child's only source."""
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("ALPHAGRID_")}


@dataclass
class Child:
    role: Role
    index: int
    process: subprocess.Popen[str]
    deaths: list[float] = field(default_factory=list)
    restart_at: float | None = None

    @property
    def name(self) -> str:
        return "engine" if self.role is Role.ENGINE else f"api-{self.index}"


class Supervisor:
    """The parent of the engine and the API processes (module docstring). `start` returns once all
    are ready; `failure` (call it every half second or so) restarts the dead and says when it gave up."""

    name = "relayer"

    def __init__(
        self,
        settings: Settings,
        manifest: Manifest,
        api_processes: int,
        *,
        policy: RestartPolicy | None = None,
        ready_timeout_s: float = 120.0,
    ) -> None:
        if api_processes < 1:
            raise ValueError("api_processes must be at least 1")
        if not settings.database_url.startswith("postgresql"):
            raise ValueError("several relayer processes need PostgreSQL (ALPHAGRID_DATABASE_URL)")
        self.settings = settings
        self.manifest = manifest
        self.api_processes = api_processes
        self.policy = policy or RestartPolicy()
        self.ready_timeout_s = ready_timeout_s
        self.children: list[Child] = []
        self._dir = tempfile.TemporaryDirectory(prefix="alphagrid-supervisor-")
        self._manifest_path = Path(self._dir.name) / "deployment.json"
        manifest.write(self._manifest_path)
        self._config = json.dumps(settings_doc(settings))
        self._stopping = False
        self._given_up: str | None = None

    @property
    def url(self) -> str:
        return self.settings.api_url

    def pids(self) -> dict[str, int]:
        return {c.name: c.process.pid for c in self.children}

    # ------------------------------------------------------------------ start / stop

    def start(self, timeout_s: float | None = None) -> None:
        """The engine first (it migrates, catches up and reconciles), then the API processes."""
        if timeout_s is not None:
            self.ready_timeout_s = timeout_s
        engine = self._spawn(Role.ENGINE, 0)
        self.children.append(engine)
        self._wait_ready(engine)
        apis = [self._spawn(Role.API, i) for i in range(self.api_processes)]
        self.children.extend(apis)
        for child in apis:
            self._wait_ready(child)
        log.info("relayer on %s: engine and %d API processes", self.url, self.api_processes)

    def stop(self) -> None:
        """The API processes first (no new submits), then the engine (it finishes what it sends)."""
        self._stopping = True
        apis = [c for c in self.children if c.role is Role.API]
        for group in (apis, [c for c in self.children if c.role is Role.ENGINE]):
            for child in group:
                _close_stdin(child.process)
                if child.process.poll() is None:
                    child.process.terminate()
            for child in group:
                try:
                    child.process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    child.process.kill()
                    child.process.wait()
        self._dir.cleanup()

    # ------------------------------------------------------------------ watching

    def failure(self) -> str | None:
        """Restarts the children that died (after their back-off); the reason once it gave up."""
        if self._stopping:
            return None
        if self._given_up is not None:
            return self._given_up
        now = time.monotonic()
        for i, child in enumerate(self.children):
            code = child.process.poll()
            if code is None:
                continue
            if child.restart_at is None:
                child.deaths.append(now)
                delay = restart_delay(child.deaths, now, self.policy)
                if delay is None:
                    self._given_up = (
                        f"the {child.name} process died {len(child.deaths)} times within "
                        f"{self.policy.window_s:.0f} s (last exit code {code})"
                    )
                    return self._given_up
                log.warning("%s process exited with %s; restarting it in %.1f s", child.name, code, delay)
                child.restart_at = now + delay
            if now >= child.restart_at:
                fresh = self._spawn(child.role, child.index)
                fresh.deaths = child.deaths
                self.children[i] = fresh
                try:
                    self._wait_ready(fresh)
                except RuntimeError as exc:
                    log.warning("%s", exc)  # it died again while starting: the next look counts it
        return None

    # ------------------------------------------------------------------ children

    def _spawn(self, role: Role, index: int) -> Child:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "relayer.supervisor",
                str(role),
                str(self._manifest_path),
                logging.getLevelName(logging.getLogger().getEffectiveLevel()),  # as `serve` logs
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=child_environment(),
            text=True,
        )
        assert process.stdin is not None
        process.stdin.write(self._config + "\n")
        process.stdin.flush()  # kept open: the child stops when it closes
        return Child(role, index, process)

    def _wait_ready(self, child: Child) -> None:
        out = child.process.stdout
        assert out is not None
        deadline = time.monotonic() + self.ready_timeout_s
        ready = threading.Event()

        def read() -> None:
            for line in out:
                if line.strip() == READY:
                    ready.set()
                else:
                    sys.stdout.write(line)  # a child prints nothing else; never block it
            ready.set()  # stdout closed: it exited

        threading.Thread(target=read, name=f"alphagrid-{child.name}-out", daemon=True).start()
        while not ready.wait(0.1):
            if time.monotonic() > deadline:
                child.process.kill()
                raise RuntimeError(f"the {child.name} process was not ready in {self.ready_timeout_s:.0f} s")
        if child.process.poll() is not None:
            code = child.process.returncode
            raise RuntimeError(f"the {child.name} process exited with {code} while starting")


def supervised(supervisor_pid: int) -> dict[int, Role]:
    """pid → role of a supervisor's live children, read from /proc (for whoever holds only the
    supervisor's pid: an operator's tooling, the soak, the tests)."""
    found: dict[int, Role] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        if parent == supervisor_pid and b"relayer.supervisor" in argv[:3]:
            found[int(entry)] = Role(argv[argv.index(b"relayer.supervisor") + 1].decode())
    return found


def _close_stdin(process: subprocess.Popen[str]) -> None:
    if process.stdin is not None:
        with contextlib.suppress(OSError):
            process.stdin.close()


# ====================================================================== a child


def child_main(argv: list[str], stdin: IO[str] = sys.stdin) -> None:
    from relayer.server import RelayerServer  # the child's own imports: the supervisor needs none

    role, manifest_path = Role(argv[0]), Path(argv[1])
    settings = child_settings(json.loads(stdin.readline()))
    logging.basicConfig(
        level=argv[2] if len(argv) > 2 else logging.WARNING,
        format=f"%(asctime)s %(levelname)s [{role} {os.getpid()}] %(name)s: %(message)s",
        stream=sys.stderr,
    )
    server = RelayerServer(settings, Manifest.read(manifest_path), role, shared_port=role is Role.API)
    stop = threading.Event()

    def on_term(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the supervisor decides

    def on_stdin_closed() -> None:
        stdin.read()
        stop.set()

    threading.Thread(target=on_stdin_closed, name="alphagrid-parent", daemon=True).start()
    try:
        server.start(timeout_s=600)
        print(READY, flush=True)
        while not stop.wait(0.5):
            problem = server.failure()
            if problem:
                raise SystemExit(f"relayer {role} process stopped: {problem}")
    finally:
        server.stop()


if __name__ == "__main__":
    child_main(sys.argv[1:])
