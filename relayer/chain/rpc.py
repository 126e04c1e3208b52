"""Raw JSON-RPC and the one mapping of transport failures.

The hot paths skip web3's formatting layers (`request`, `call`). Every way a node can fail to
answer — a refused or reset connection, a timeout, the HTTP client's own exception types — becomes
`ChainUnavailableError` in `transport_errors`, and only there (tests/unit/chain/test_rpc.py checks
that every transport exception type of requests, urllib3, aiohttp, httpx and web3 is mapped).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final, cast

from web3 import Web3
from web3.exceptions import RequestTimedOut, Web3RPCError
from web3.types import RPCEndpoint

from relayer.errors import ChainUnavailableError

# The HTTP clients web3's providers use: their exceptions are transport failures, whatever their base.
_TRANSPORT_MODULES: Final = frozenset({"requests", "urllib3", "aiohttp", "httpx", "httpcore", "websockets"})


class RpcError(RuntimeError):
    """The node answered with a JSON-RPC error (a revert, a bad parameter): not a transport failure."""

    def __init__(self, method: str, error: dict[str, Any]) -> None:
        super().__init__(f"{method} failed: {error.get('message', error)}")
        self.error = error


def is_transport_error(exc: BaseException) -> bool:
    if isinstance(exc, Web3RPCError):  # an answer, not a transport failure
        return False
    if isinstance(exc, (OSError, TimeoutError, RequestTimedOut)):
        return True
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


def request(w3: Web3, method: str, params: list[Any]) -> dict[str, Any]:
    """The raw response, `result` or `error`; a node that cannot be reached raises ChainUnavailableError."""
    with transport_errors(method):
        response = w3.provider.make_request(RPCEndpoint(method), params)
    return cast(dict[str, Any], response)


def call(w3: Web3, method: str, params: list[Any]) -> Any:
    response = request(w3, method, params)
    if "error" in response:
        raise RpcError(method, response["error"])
    return response.get("result")
