"""Log decoding for the contracts' events, straight from the ABIs with eth_abi (no web3 per-log work)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode
from eth_utils.crypto import keccak

from relayer.eip712 import checksum


def _canonical(inp: Mapping[str, Any]) -> str:
    t: str = inp["type"]
    if t.startswith("tuple"):
        return "(" + ",".join(_canonical(c) for c in inp["components"]) + ")" + t[5:]
    return t


def _shape(inp: Mapping[str, Any], value: Any) -> Any:
    """Tuples become dicts keyed by component name, addresses are checksummed."""
    t: str = inp["type"]
    if t == "address":
        return checksum(value)  # cached: the same vaults, tokens and signers recur in every log
    if t.startswith("tuple"):
        comps = inp["components"]
        if t.endswith("[]"):
            return [{c["name"]: _shape(c, v) for c, v in zip(comps, item, strict=True)} for item in value]
        return {c["name"]: _shape(c, v) for c, v in zip(comps, value, strict=True)}
    if t == "bytes32":
        return "0x" + bytes(value).hex()
    return value


@dataclass(frozen=True)
class DecodedLog:
    name: str
    address: str
    args: dict[str, Any]
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class _EventSpec:
    name: str
    indexed: tuple[dict[str, Any], ...]
    data: tuple[dict[str, Any], ...]
    data_types: tuple[str, ...]


def _hex(value: Any) -> str:
    if isinstance(value, str):
        return value if value.startswith("0x") else "0x" + value
    return "0x" + bytes(value).hex()


class EventDecoder:
    def __init__(self, abis: Iterable[list[dict[str, Any]]]) -> None:
        self._specs: dict[bytes, _EventSpec] = {}
        for entries in abis:
            for e in entries:
                if e.get("type") != "event" or e.get("anonymous"):
                    continue
                signature = f"{e['name']}({','.join(_canonical(i) for i in e['inputs'])})"
                indexed = tuple(i for i in e["inputs"] if i["indexed"])
                data = tuple(i for i in e["inputs"] if not i["indexed"])
                self._specs[keccak(text=signature)] = _EventSpec(
                    e["name"], indexed, data, tuple(_canonical(i) for i in data)
                )

    def topic(self, name: str) -> str:
        for topic, spec in self._specs.items():
            if spec.name == name:
                return "0x" + topic.hex()
        raise KeyError(name)

    def decode(self, log: Mapping[str, Any]) -> DecodedLog | None:
        topics = [bytes.fromhex(_hex(t)[2:]) for t in log["topics"]]
        spec = self._specs.get(topics[0]) if topics else None
        if spec is None:
            return None
        args: dict[str, Any] = {}
        for inp, topic in zip(spec.indexed, topics[1:], strict=True):
            (value,) = decode([_canonical(inp)], topic)
            args[inp["name"]] = _shape(inp, value)
        data = bytes.fromhex(_hex(log["data"])[2:])
        for inp, value in zip(spec.data, decode(list(spec.data_types), data), strict=True):
            args[inp["name"]] = _shape(inp, value)
        return DecodedLog(
            name=spec.name,
            address=checksum(log["address"]),
            args=args,
            block_number=int(log["blockNumber"], 16)
            if isinstance(log["blockNumber"], str)
            else log["blockNumber"],
            block_hash=_hex(log["blockHash"]),
            tx_hash=_hex(log["transactionHash"]),
            log_index=int(log["logIndex"], 16) if isinstance(log["logIndex"], str) else log["logIndex"],
        )
