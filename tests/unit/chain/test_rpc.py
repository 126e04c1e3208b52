"""The one mapping of transport failures (relayer/chain/rpc.py): every exception type the HTTP stacks
under web3 can raise for a node that does not answer becomes ChainUnavailableError; an answer (even an
error answer) never does."""

from __future__ import annotations

import http.client
import inspect
import types

import httpcore
import httpx
import pytest
import requests.exceptions
import urllib3.exceptions
from web3 import HTTPProvider, Web3
from web3.exceptions import RequestTimedOut, Web3RPCError

from relayer.chain import rpc
from relayer.chain.anvil import free_port
from relayer.errors import ChainUnavailableError


def _exception_types(module: types.ModuleType) -> list[type[BaseException]]:
    return [
        obj
        for _name, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, Exception)
        and obj.__module__.split(".")[0] == module.__name__.split(".")[0]
        and not issubclass(obj, Warning)
    ]


TRANSPORT_MODULES = [requests.exceptions, urllib3.exceptions, http.client, httpx, httpcore]


@pytest.mark.parametrize("module", TRANSPORT_MODULES, ids=lambda m: m.__name__)
def test_every_transport_exception_type_is_mapped(module: types.ModuleType) -> None:
    types_ = _exception_types(module)
    assert types_, module
    unmapped = [t.__qualname__ for t in types_ if not rpc.is_transport_error(t.__new__(t))]
    assert unmapped == []


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(),
        ConnectionResetError(),
        TimeoutError(),
        TimeoutError(),
        OSError(),
        RequestTimedOut("timed out"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_os_level_failures_are_transport_errors(exc: BaseException) -> None:
    assert rpc.is_transport_error(exc)


@pytest.mark.parametrize("exc", [Web3RPCError(message="execution reverted"), ValueError(), KeyError("x")])
def test_answers_and_bugs_are_not_transport_errors(exc: BaseException) -> None:
    assert not rpc.is_transport_error(exc)


def test_transport_errors_maps_and_names_what_was_done() -> None:
    with pytest.raises(ChainUnavailableError, match="eth_chainId"), rpc.transport_errors("eth_chainId"):
        raise requests.exceptions.ConnectionError("refused")


def test_transport_errors_lets_other_exceptions_through() -> None:
    with pytest.raises(KeyError), rpc.transport_errors("eth_chainId"):
        raise KeyError("bug")


def test_a_node_that_is_not_there_is_chain_unavailable() -> None:
    w3 = Web3(HTTPProvider(f"http://127.0.0.1:{free_port()}", request_kwargs={"timeout": 2}))
    with pytest.raises(ChainUnavailableError, match="eth_blockNumber"):
        rpc.request(w3, "eth_blockNumber", [])
