"""Raw JSON-RPC: the hot paths skip web3's formatting layers, and transport failures become one error."""

from __future__ import annotations

from typing import Any, cast

from web3 import Web3
from web3.types import RPCEndpoint

from relayer.errors import ChainUnavailableError


class RpcError(RuntimeError):
    def __init__(self, method: str, error: dict[str, Any]) -> None:
        super().__init__(f"{method} failed: {error.get('message', error)}")
        self.error = error


def request(w3: Web3, method: str, params: list[Any]) -> dict[str, Any]:
    """The raw response, `result` or `error`; a node that cannot be reached raises ChainUnavailableError."""
    try:
        response = w3.provider.make_request(RPCEndpoint(method), params)
    except (OSError, TimeoutError) as exc:
        raise ChainUnavailableError(f"the chain node did not answer {method}: {type(exc).__name__}") from exc
    except Exception as exc:  # requests/aiohttp wrap connection failures in their own types
        if type(exc).__module__.split(".")[0] in ("requests", "urllib3", "aiohttp", "httpx"):
            raise ChainUnavailableError(
                f"the chain node did not answer {method}: {type(exc).__name__}"
            ) from exc
        raise
    return cast(dict[str, Any], response)


def call(w3: Web3, method: str, params: list[Any]) -> Any:
    response = request(w3, method, params)
    if "error" in response:
        raise RpcError(method, response["error"])
    return response.get("result")
