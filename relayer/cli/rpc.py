"""A light JSON-RPC client and EIP-1559 transaction signer for commands that must start fast (`alphagrid
oracle set`): the standard library's http.client, coincurve and keccak, no web3 and no eth-account (which
together take most of a second to import).

It handles the ordinary case only. Whatever it does not expect before a transaction is sent — no answer,
a JSON-RPC error, a revert in the gas estimate, a chain that does not match the manifest — raises
`Unexpected`, and the command hands over to its web3 path, which gives the established one-line reason.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import urlsplit

from coincurve import PrivateKey
from eth_hash.backends.pysha3 import keccak256
from pydantic_settings import BaseSettings, SettingsConfigDict

from relayer.cli.errors import CliError

GWEI: Final = 10**9


class _ExplicitRpc(BaseSettings):
    """Only what the operator set: `Settings.rpc_url` is always filled in (from the port) and cannot tell."""

    model_config = SettingsConfigDict(env_prefix="ALPHAGRID_", env_file=".env", extra="ignore")
    rpc_url: str = ""


def explicit_rpc_url() -> str | None:
    """`ALPHAGRID_RPC_URL` (environment or `.env`) when the operator set it; else the manifest's is used."""
    return _ExplicitRpc().rpc_url or None


class Unexpected(Exception):  # noqa: N818
    """Something the light path does not handle; the caller falls back to web3."""


def keccak(data: bytes) -> bytes:
    return bytes(keccak256(data))


def selector(signature: str) -> bytes:
    return keccak(signature.encode())[:4]


# ---------------------------------------------------------------------- ABI (the few shapes needed)


def word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def address_word(address: str) -> bytes:
    return bytes(12) + bytes.fromhex(address.removeprefix("0x"))


def call_string(signature: str, text: str) -> bytes:
    """`f(string)` calldata."""
    data = text.encode()
    padded = data + bytes(-len(data) % 32)
    return selector(signature) + word(32) + word(len(data)) + padded


def call_address(signature: str, address: str) -> bytes:
    return selector(signature) + address_word(address)


def call_address_and_uint_arrays(signature: str, addresses: Sequence[str], values: Sequence[int]) -> bytes:
    """`f(address[],uint256[])` calldata."""
    n = len(addresses)
    head = word(64) + word(64 + 32 * (1 + n))
    first = word(n) + b"".join(address_word(a) for a in addresses)
    second = word(len(values)) + b"".join(word(v) for v in values)
    return selector(signature) + head + first + second


def words(hex_data: str) -> list[int]:
    data = bytes.fromhex(hex_data.removeprefix("0x"))
    return [int.from_bytes(data[i : i + 32], "big") for i in range(0, len(data) - len(data) % 32, 32)]


def checksum(address_hex: str) -> str:
    """EIP-55 mixed-case spelling of a 20-byte address."""
    lower = address_hex.removeprefix("0x").lower()
    digest = keccak(lower.encode()).hex()
    return "0x" + "".join(c.upper() if int(digest[i], 16) >= 8 else c for i, c in enumerate(lower))


# ---------------------------------------------------------------------- RLP and signing


def rlp(item: bytes | int | Sequence[Any]) -> bytes:
    if isinstance(item, int):
        item = item.to_bytes((item.bit_length() + 7) // 8, "big") if item else b""
    if isinstance(item, bytes):
        if len(item) == 1 and item[0] < 0x80:
            return item
        return _length(len(item), 0x80) + item
    payload = b"".join(rlp(x) for x in item)
    return _length(len(payload), 0xC0) + payload


def _length(n: int, offset: int) -> bytes:
    if n <= 55:
        return bytes([offset + n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([offset + 55 + len(b)]) + b


class RawSigner:
    """An EIP-1559 (type 2) transaction signer over one private key; the key is never shown."""

    __slots__ = ("_key", "address")

    def __init__(self, key_hex: str) -> None:
        try:
            self._key = PrivateKey(bytes.fromhex(key_hex.removeprefix("0x")))
        except (ValueError, TypeError):
            raise Unexpected("the key is not a 32-byte hex private key") from None
        public = self._key.public_key.format(compressed=False)[1:]
        self.address = checksum(keccak(public)[-20:].hex())

    def sign(
        self, *, chain_id: int, nonce: int, tip: int, max_fee: int, gas: int, to: str, data: bytes
    ) -> bytes:
        fields: list[Any] = [chain_id, nonce, tip, max_fee, gas, bytes.fromhex(to[2:]), 0, data, []]
        digest = keccak(b"\x02" + rlp(fields))
        sig = self._key.sign_recoverable(digest, hasher=None)
        r, s, y = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]
        return b"\x02" + rlp([*fields, y, r, s])


# ---------------------------------------------------------------------- JSON-RPC over one connection


class Rpc:
    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Unexpected(f"not an http(s) URL: {url}")
        conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self._conn = conn_cls(parts.hostname, parts.port, timeout=timeout_s)
        self._path = parts.path or "/"
        self._id = 0

    def close(self) -> None:
        self._conn.close()

    def _post(self, payload: Any) -> Any:
        body = json.dumps(payload).encode()
        try:
            self._conn.request("POST", self._path, body, {"Content-Type": "application/json"})
            response = self._conn.getresponse()
            text = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise Unexpected(f"no answer: {exc}") from None
        if response.status != 200:
            raise Unexpected(f"HTTP {response.status}")
        return json.loads(text)

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Results in order; any JSON-RPC error is `Unexpected`."""
        first = self._id + 1
        self._id += len(calls)
        answer = self._post(
            [{"jsonrpc": "2.0", "id": first + i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
        )
        if not isinstance(answer, list):
            raise Unexpected(f"not a batch answer: {str(answer)[:200]}")
        by_id = {a.get("id"): a for a in answer}
        out = []
        for i in range(len(calls)):
            a = by_id.get(first + i) or {}
            if "error" in a or "result" not in a:
                raise Unexpected(f"{calls[i][0]}: {a.get('error')}")
            out.append(a["result"])
        return out

    def call(self, method: str, params: list[Any]) -> Any:
        return self.batch([(method, params)])[0]

    def wait_receipt(self, tx_hash: str, timeout_s: float = 60.0) -> dict[str, Any]:
        """After a transaction was sent: never `Unexpected` (falling back would send it twice)."""
        deadline = time.monotonic() + timeout_s
        delay = 0.02
        while True:
            try:
                receipt = self.call("eth_getTransactionReceipt", [tx_hash])
            except Unexpected as exc:
                raise CliError(f"lost the chain while waiting for {tx_hash}: {exc}") from None
            if receipt is not None:
                return dict(receipt)
            if time.monotonic() > deadline:
                raise CliError(f"the chain did not mine the transaction in time: {tx_hash}")
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
