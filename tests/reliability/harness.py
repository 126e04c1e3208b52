"""What the faults need: a JSON-RPC proxy that can lose or hold answers, and a relayer of the test's
own pointed at any RPC URL."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from relayer.api.app import create_app
from relayer.chain.anvil import free_port
from relayer.config import Settings
from relayer.service import build_services
from tests.integration.conftest import Api, Stack

# ---------------------------------------------------------------------- a faulty JSON-RPC proxy


@dataclass
class RpcProxy:
    """Forwards JSON-RPC to `upstream`. `fault(method)` decides, per request, what goes wrong:
    None (forward), "lose" (forward, then close the connection without an answer: the node acted, the
    caller never hears), or "hold" (never forward, never answer, until `release()`)."""

    upstream: str
    fault: Callable[[str], str | None] = lambda _method: None
    calls: list[str] = field(default_factory=list)
    faults: list[tuple[str, str]] = field(default_factory=list)
    _released: threading.Event = field(default_factory=threading.Event)
    _server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def release(self) -> None:
        self._released.set()

    def start(self) -> RpcProxy:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                payload = json.loads(body)
                method = payload.get("method", "") if isinstance(payload, dict) else "batch"
                proxy.calls.append(method)
                fault = proxy.fault(method)
                if fault is not None:
                    proxy.faults.append((method, fault))
                if fault == "hold":
                    proxy._released.wait()
                    self.close_connection = True
                    return
                answer = httpx.post(
                    proxy.upstream, content=body, headers={"content-type": "application/json"}
                )
                if fault == "lose":
                    self.close_connection = True
                    return
                self.send_response(answer.status_code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def first_only(method: str, fault: str) -> Callable[[str], str | None]:
    """A fault for the first call of `method` only."""
    seen = threading.Event()

    def decide(called: str) -> str | None:
        if called != method or seen.is_set():
            return None
        seen.set()
        return fault

    return decide


@contextmanager
def rpc_proxy(upstream: str, fault: Callable[[str], str | None] = lambda _m: None) -> Iterator[RpcProxy]:
    proxy = RpcProxy(upstream, fault).start()
    try:
        yield proxy
    finally:
        proxy.stop()


# ---------------------------------------------------------------------- a relayer of the test's own


@contextmanager
def relayer(
    chain: Stack, db_url: str, home: Path, *, rpc_url: str | None = None, **overrides: Any
) -> Iterator[Api]:
    """The relayer (API and workers) on a free port, against `rpc_url` (default: the chain's Anvil), as
    the `api` fixture builds it: the integration helpers take it."""
    settings = Settings(
        home=home,
        rpc_url=rpc_url or chain.anvil.url,
        database_url=db_url,
        api_port=free_port(),
        **overrides,
    )
    services = build_services(settings, chain.manifest)
    services.start()
    server = uvicorn.Server(
        uvicorn.Config(create_app(services), host="127.0.0.1", port=settings.api_port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the relayer's server did not start"
        time.sleep(0.01)
    try:
        with httpx.Client(base_url=settings.api_url, timeout=30) as client:
            yield Api(settings.api_url, client, services, chain)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        services.close()
