"""Raw JSON-RPC and the one mapping of transport failures.

The hot paths skip web3's formatting layers (`request`, `call`). Every way a node can fail to
answer — a refused or reset connection, a timeout, the HTTP client's own exception types — becomes
`ChainUnavailableError` in `transport_errors`, and only there (tests/unit/chain/test_rpc.py checks
that every transport exception type of requests, urllib3, aiohttp, httpx and web3 is mapped).
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final, cast
from urllib.parse import urlsplit

from web3 import HTTPProvider, Web3
from web3.exceptions import RequestTimedOut, Web3RPCError
from web3.types import RPCEndpoint

from relayer.errors import ChainUnavailableError

# The HTTP clients web3's providers use: their exceptions are transport failures, whatever their base.
_TRANSPORT_MODULES: Final = frozenset(
    {"requests", "urllib3", "aiohttp", "httpx", "httpcore", "websockets", "http"}
)


class RpcError(RuntimeError):
    """The node answered with a JSON-RPC error (a revert, a bad parameter): not a transport failure."""

    def __init__(self, method: str, error: dict[str, Any]) -> None:
        super().__init__(f"{method} failed: {error.get('message', error)}")
        self.error = error


def is_transport_error(exc: BaseException) -> bool:
    if isinstance(exc, (OSError, TimeoutError, RequestTimedOut)):
        return True
    if isinstance(exc, Web3RPCError):  # an answer, not a transport failure
        return False
    return type(exc).__module__.split(".")[0] in _TRANSPORT_MODULES


@contextmanager
def transport_errors(what: str) -> Iterator[None]:
    """Transport failures inside → `ChainUnavailableError` naming `what` was being done."""
    try:
        yield
    except Exception as exc:
        if is_transport_error(exc):
            raise ChainUnavailableError(
                f"the chain node did not answer {what}: {type(exc).__name__}"
            ) from exc
        raise


class _Raw:
    """JSON-RPC over a small pool of keep-alive HTTP connections to one node: the calls on hot paths
    skip web3's provider (its request caching, middleware and `requests` session cost ~10× the call)."""

    MAX_IDLE: Final = 16

    def __init__(self, uri: str, timeout_s: float) -> None:
        parts = urlsplit(uri)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = parts.path or "/"
        self.timeout_s = timeout_s
        self.ids = itertools.count(1)
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _acquire(self) -> http.client.HTTPConnection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)

    def _release(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self.MAX_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    def close_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def request(self, method: str, params: list[Any]) -> dict[str, Any]:
        body = json.dumps({"jsonrpc": "2.0", "id": next(self.ids), "method": method, "params": params})
        headers = {"Content-Type": "application/json"}
        for attempt in (0, 1):
            conn = self._acquire()
            reused = conn.sock is not None
            try:
                conn.request("POST", self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                if attempt == 0 and reused:
                    continue  # a keep-alive connection the node had closed: once more, afresh
                raise
            except BaseException:
                conn.close()
                raise
            if response.status != 200:
                conn.close()
                raise http.client.HTTPException(f"HTTP {response.status} from the node")
            self._release(conn)
            return cast(dict[str, Any], json.loads(data))
        raise AssertionError("unreachable")


_RAW: dict[tuple[str, float], _Raw] = {}
_RAW_LOCK = threading.Lock()


def _raw_for(w3: Web3) -> _Raw | None:
    provider = w3.provider
    if type(provider) is not HTTPProvider:
        return None  # another transport (or a test's wrapper): through the provider
    uri = str(provider.endpoint_uri or "")
    if not uri.startswith("http://"):
        return None
    timeout = float(dict(provider.get_request_kwargs()).get("timeout", 30))
    key = (uri, timeout)
    raw = _RAW.get(key)
    if raw is None:
        with _RAW_LOCK:
            raw = _RAW.setdefault(key, _Raw(uri, timeout))
    return raw


def close_idle(w3: Web3) -> None:
    """Close the idle connections kept for this node (they are opened again when needed)."""
    raw = _raw_for(w3)
    if raw is not None:
        raw.close_idle()


def request(w3: Web3, method: str, params: list[Any]) -> dict[str, Any]:
    """The raw response, `result` or `error`; a node that cannot be reached raises ChainUnavailableError."""
    raw = _raw_for(w3)
    with transport_errors(method):
        if raw is not None:
            return raw.request(method, params)
        response = w3.provider.make_request(RPCEndpoint(method), params)
    return cast(dict[str, Any], response)


def call(w3: Web3, method: str, params: list[Any]) -> Any:
    response = request(w3, method, params)
    if "error" in response:
        raise RpcError(method, response["error"])
    return response.get("result")
