"""Calldata for the router's entry points, encoded with eth_abi directly.

web3's contract encoder re-resolves the ABI on every call (~15× slower); these run per intent and
per exit. `tests/unit/test_calls.py` checks every selector and encoding against the committed ABI.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from eth_abi.abi import encode
from eth_utils.crypto import keccak

from relayer.eip712 import AddToPosition, ExitRule, OpenPosition, ReducePosition, UpdateExitLadder

_RULE: Final = "(uint8,int32,uint16)"
_OPEN: Final = "(uint256,address,address,uint256,uint256,uint16,bytes32,uint256,uint256)"
_AMOUNT: Final = "(uint256,uint256,uint256,uint256,uint16,uint256,uint256)"
_LADDER: Final = "(uint256,uint256,bytes32,uint256,uint256)"

OPEN_SIGNATURE: Final = f"openPosition({_OPEN},{_RULE}[],bytes)"
ADD_SIGNATURE: Final = f"addToPosition({_AMOUNT},bytes)"
REDUCE_SIGNATURE: Final = f"reducePosition({_AMOUNT},bytes)"
LADDER_SIGNATURE: Final = f"updateExitLadder({_LADDER},{_RULE}[],bytes)"
EXIT_SIGNATURE: Final = f"executeExit(uint256,{_RULE}[])"


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


_SELECTORS: Final = {
    sig: _selector(sig)
    for sig in (OPEN_SIGNATURE, ADD_SIGNATURE, REDUCE_SIGNATURE, LADDER_SIGNATURE, EXIT_SIGNATURE)
}


def _rules(rules: Sequence[ExitRule]) -> list[tuple[int, int, int]]:
    return [(int(r.trigger_type), r.trigger_bps, r.exit_bps) for r in rules]


def _values(intent: OpenPosition | AddToPosition | ReducePosition | UpdateExitLadder) -> tuple[object, ...]:
    return tuple(getattr(intent, m.attr) for m in intent.MEMBERS)


def open_position(intent: OpenPosition, exits: Sequence[ExitRule], signature: bytes) -> bytes:
    args = encode([_OPEN, f"{_RULE}[]", "bytes"], [_values(intent), _rules(exits), signature])
    return _SELECTORS[OPEN_SIGNATURE] + args


def add_to_position(intent: AddToPosition, signature: bytes) -> bytes:
    return _SELECTORS[ADD_SIGNATURE] + encode([_AMOUNT, "bytes"], [_values(intent), signature])


def reduce_position(intent: ReducePosition, signature: bytes) -> bytes:
    return _SELECTORS[REDUCE_SIGNATURE] + encode([_AMOUNT, "bytes"], [_values(intent), signature])


def update_exit_ladder(intent: UpdateExitLadder, exits: Sequence[ExitRule], signature: bytes) -> bytes:
    args = encode([_LADDER, f"{_RULE}[]", "bytes"], [_values(intent), _rules(exits), signature])
    return _SELECTORS[LADDER_SIGNATURE] + args


def execute_exit(position_id: int, exits: Sequence[ExitRule]) -> bytes:
    return _SELECTORS[EXIT_SIGNATURE] + encode(["uint256", f"{_RULE}[]"], [position_id, _rules(exits)])


def exit_position_id(data: str | bytes) -> int:
    """The position an `executeExit` calldata (hex or bytes) is for."""
    raw = bytes.fromhex(data.removeprefix("0x")) if isinstance(data, str) else data
    if raw[:4] != _SELECTORS[EXIT_SIGNATURE]:
        raise ValueError("not executeExit calldata")
    return int.from_bytes(raw[4:36], "big")
