"""The relayer under test in its own process (API, indexer, sender, dispatcher, keeper: what
`alphagrid serve` runs), so the load generators and the benchmark's own work never share its GIL.

    python -m bench.serve <manifest.json> <database url> <api port> [<api processes>]

The RPC URL comes from the manifest. Prints `READY <url>` once /health answers, then runs until
stdin closes or SIGTERM. With API processes (PostgreSQL), the relayer is what `alphagrid serve
--api-processes N` runs: this process supervises one engine and N API processes."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType

from relayer.config import Settings
from relayer.manifest import Manifest
from relayer.server import RelayerServer
from relayer.supervisor import Supervisor

REPO = Path(__file__).resolve().parent.parent


class ServerProcess:
    """The parent's handle on a `bench.serve` child."""

    def __init__(self, manifest: Manifest, database_url: str, port: int, api_processes: int = 0) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="alphagrid-bench-serve-")
        path = Path(self._dir.name) / "deployment.json"
        manifest.write(path)
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.serve", str(path), database_url, str(port), str(api_processes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout_s: float = 600) -> None:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"the relayer process exited with {self.process.wait()}")
            if line.startswith("READY "):
                return
        raise RuntimeError("the relayer process did not become ready")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()
        self._dir.cleanup()

    def __enter__(self) -> ServerProcess:
        self.wait_ready()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def main(argv: list[str]) -> None:
    manifest_path, database_url, port = argv[:3]
    api_processes = int(argv[3]) if len(argv) > 3 else 0
    manifest = Manifest.read(Path(manifest_path))
    with tempfile.TemporaryDirectory(prefix="alphagrid-bench-home-") as home:
        settings = Settings(
            home=Path(home), rpc_url=manifest.rpc_url, database_url=database_url, api_port=int(port)
        )
        server: RelayerServer | Supervisor = (
            Supervisor(settings, manifest, api_processes)
            if api_processes
            else RelayerServer(settings, manifest)
        )
        stop = threading.Event()

        def _on_term(_sig: int, _frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, _on_term)

        def _on_stdin_closed() -> None:
            sys.stdin.read()
            stop.set()

        threading.Thread(target=_on_stdin_closed, daemon=True).start()
        server.start(timeout_s=600)
        print(f"READY {server.url}", flush=True)
        try:
            while not stop.wait(0.5):
                problem = server.failure()
                if problem:
                    raise SystemExit(f"relayer stopped: {problem}")
        finally:
            server.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
