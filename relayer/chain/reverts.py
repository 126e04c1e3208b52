"""Revert data → the custom error's name and arguments, from the ABIs' `error` entries."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.crypto import keccak


@dataclass(frozen=True)
class DecodedRevert:
    name: str
    args: Mapping[str, Any]
    data: str

    def to_json(self) -> dict[str, Any]:
        return {
            "error": self.name,
            "args": {k: _jsonable(v) for k, v in self.args.items()},
            "data": self.data,
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, int) and not isinstance(value, bool):
        # Beyond JS's safe integers, a string keeps the value exact for every client.
        return value if abs(value) < 2**53 else str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _canonical_type(inp: Mapping[str, Any]) -> str:
    t: str = inp["type"]
    if t.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in inp["components"])
        return f"({inner}){t[5:]}"
    return t


_BUILTINS: Mapping[bytes, tuple[str, list[tuple[str, str]]]] = {
    keccak(text="Error(string)")[:4]: ("Error", [("message", "string")]),
    keccak(text="Panic(uint256)")[:4]: ("Panic", [("code", "uint256")]),
}


class RevertDecoder:
    def __init__(self, abis: Iterable[list[dict[str, Any]]]) -> None:
        self._errors: dict[bytes, tuple[str, list[tuple[str, str]]]] = dict(_BUILTINS)
        for entries in abis:
            for e in entries:
                if e.get("type") != "error":
                    continue
                inputs = [(i["name"] or f"arg{n}", _canonical_type(i)) for n, i in enumerate(e["inputs"])]
                signature = f"{e['name']}({','.join(t for _, t in inputs)})"
                self._errors[keccak(text=signature)[:4]] = (e["name"], inputs)

    def decode(self, data: bytes) -> DecodedRevert:
        hexdata = "0x" + data.hex()
        known = self._errors.get(data[:4]) if len(data) >= 4 else None
        if known is None:
            return DecodedRevert(name="Unknown" if data else "EmptyRevert", args={}, data=hexdata)
        name, inputs = known
        try:
            values = abi_decode([t for _, t in inputs], data[4:])
        except Exception:  # malformed payload for a known selector: report it raw
            return DecodedRevert(name=name, args={}, data=hexdata)
        return DecodedRevert(
            name=name, args=dict(zip((n for n, _ in inputs), values, strict=True)), data=hexdata
        )
