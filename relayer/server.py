"""The relayer as one running thing: services (indexer, sender, dispatcher, keeper) plus the HTTP API
served by uvicorn (uvloop and httptools). Used by `alphagrid serve` and by `up`.

Slow clients (issue 13, High 2) cannot hold the process's resources for ever:
- a connection must finish its request headers within `header_timeout_s` of connecting or of the
  request's first byte (`GuardedHttpToolsProtocol`), and its body within `body_timeout_s`
  (`BodyDeadline`, 408); an idle keep-alive connection is closed after `keepalive_timeout_s`;
- at most `max_connections` connections are open at once (by default the descriptor limit minus a
  reserve): one more is answered 503 and closed at once, so the descriptors the keeper, the sender,
  the indexer and the database need are never taken by HTTP clients. (Their node connections are
  their own: web3's HTTP sessions are per thread, and the API's handlers run on other threads.)
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import threading
import time
from collections import OrderedDict
from typing import Any

import httpx
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from relayer.api.app import create_app
from relayer.api.errors import error_response
from relayer.config import Settings
from relayer.manifest import Manifest
from relayer.service import Role, Services, build_services

log = logging.getLogger("alphagrid.server")

# Descriptors kept for everything that is not an HTTP client: the database pool, the node sessions,
# log files, the event loop, Python's own.
FD_RESERVE = 64
_REFUSED = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"


def default_max_connections() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 10_000
    return max(8, min(soft - FD_RESERVE, int(soft * 0.8)))


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline and a cap on open connections. uvicorn has
    neither: its keep-alive timer starts only after a first response, and `limit_concurrency` answers
    503 only to requests whose headers are complete, so connections that never finish their headers
    are held open for ever and take every descriptor.

    At the cap, a new connection takes the place of the oldest idle one (waiting for its request's
    headers, or an idle keep-alive), as nginx reuses idle keep-alive connections: a flood of stalled
    connections cycles through itself while a client that sends its request at once is served. Only
    when no connection is idle is the new one answered 503 and closed."""

    header_timeout_s: float = 10.0
    max_connections: int = 1_000
    _idle: OrderedDict[GuardedHttpToolsProtocol, None]  # per server: `guarded_protocol` makes the class

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            if self._idle:
                oldest, _ = self._idle.popitem(last=False)
                oldest.transport.close()
            else:
                transport.write(_REFUSED)
                transport.close()
                return
        self._idle[self] = None
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._idle.pop(self, None)
        self._cancel_header_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._idle.pop(self, None)
        self._cancel_header_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self._idle[self] = None  # an idle keep-alive connection until its next request's headers

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(header_timeout_s: float, max_connections: int) -> type[GuardedHttpToolsProtocol]:
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {"header_timeout_s": header_timeout_s, "max_connections": max_connections, "_idle": OrderedDict()},
    )


class BodyDeadline:
    """A request body not received within `timeout_s` of the request: 408 and the connection closed.
    The app sees the client as gone (`http.disconnect`), as if it had hung up."""

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        body_done = False
        timed_out = False
        started = False

        async def timed_receive() -> Message:
            nonlocal body_done, timed_out
            if body_done or timed_out:
                return await receive()
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(remaining, 0.0))
            except TimeoutError:
                timed_out = True
                return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, timed_receive, watched_send)
        if timed_out and not started:
            response = error_response(
                408, "invalid_request", f"the request body did not arrive within {self.timeout_s:g} s"
            )
            response.headers["Connection"] = "close"
            await response(scope, receive, send)


def uvicorn_config(settings: Settings, app: ASGIApp) -> uvicorn.Config:
    """The API's server, with the slow-client limits (module docstring)."""
    max_connections = settings.max_connections or default_max_connections()
    return uvicorn.Config(
        BodyDeadline(app, settings.body_timeout_s),
        host=settings.api_host,
        port=settings.api_port,
        http=guarded_protocol(settings.header_timeout_s, max_connections),
        timeout_keep_alive=max(1, round(settings.keepalive_timeout_s)),
        log_level="warning",
        access_log=False,
    )


def shared_port_socket(host: str, port: int) -> socket.socket:
    """A listening socket on a port other processes listen on too (SO_REUSEPORT): the kernel spreads
    new connections over them, and one process's death leaves the others serving."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(False)
    return sock


class RelayerServer:
    """One relayer process: its services (`role`) and, unless it is the engine, the HTTP API, on a port
    of its own or (`shared_port`) one it shares with the supervisor's other API processes."""

    name = "relayer"

    def __init__(
        self, settings: Settings, manifest: Manifest, role: Role = Role.ALL, *, shared_port: bool = False
    ) -> None:
        self.settings = settings
        self.manifest = manifest
        self.role = role
        self.shared_port = shared_port
        self.services: Services | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    @property
    def url(self) -> str:
        return self.settings.api_url

    def start(self, timeout_s: float = 60.0) -> None:
        """Returns once the API answers `/health` (the engine: once its workers run); raises
        RuntimeError if it does not come up."""
        self.services = build_services(self.settings, self.manifest, self.role)
        self.services.start()
        if self.role is Role.ENGINE:
            return
        config = uvicorn_config(self.settings, create_app(self.services))
        server = self._server = uvicorn.Server(config)
        sockets = (
            [shared_port_socket(self.settings.api_host, self.settings.api_port)] if self.shared_port else None
        )
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": sockets}, name="alphagrid-api", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._thread.is_alive():
                raise RuntimeError(f"the API server on port {self.settings.api_port} stopped while starting")
            if self.shared_port:
                # `/health` on the shared port may reach another process: this one's own flag says.
                if server.started:
                    return
                time.sleep(0.02)
                continue
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    log.info("relayer API on %s", self.url)
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the relayer API did not answer on {self.url} within {timeout_s:.0f} s")

    def failure(self) -> str | None:
        if self._stopping or self.services is None:
            return None
        if self._thread is not None and not self._thread.is_alive():
            return "the API server stopped"
        if self.services is not None:
            dead = self.services.dead_workers()
            if dead:
                return f"worker stopped: {', '.join(dead)}"
        return None

    def stop(self) -> None:
        self._stopping = True
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.services is not None:
            self.services.close()


def stack_component(settings: Settings, manifest: Manifest) -> RelayerServer:
    """The hook `relayer.localstack` looks for: the relayer API + keeper as one more component."""
    return RelayerServer(settings, manifest)
