"""Calldata for the router's entry points, encoded with eth_abi directly.

web3's contract encoder re-resolves the ABI on every call (~15× slower); these run per intent and
per exit. `tests/unit/test_calls.py` checks every selector and encoding against the committed ABI.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from eth_abi.abi import decode, encode
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


# ---------------------------------------------------------------------- batches (SPEC §5.1)

Intent = OpenPosition | AddToPosition | ReducePosition | UpdateExitLadder

_INTENT_CALL: Final = f"(uint8,bytes,{_RULE}[],bytes)"
_EXIT_CALL: Final = f"(uint256,{_RULE}[])"
EXECUTE_INTENTS_SIGNATURE: Final = f"executeIntents({_INTENT_CALL}[])"
EXECUTE_EXITS_SIGNATURE: Final = f"executeExits({_EXIT_CALL}[])"
_BATCH_SELECTORS: Final = {
    EXECUTE_INTENTS_SIGNATURE: _selector(EXECUTE_INTENTS_SIGNATURE),
    EXECUTE_EXITS_SIGNATURE: _selector(EXECUTE_EXITS_SIGNATURE),
}
# ITradeRouter.IntentType, and each struct's ABI tuple.
_KIND: Final = {OpenPosition: 0, AddToPosition: 1, ReducePosition: 2, UpdateExitLadder: 3}
_STRUCT: Final = {
    OpenPosition: _OPEN,
    AddToPosition: _AMOUNT,
    ReducePosition: _AMOUNT,
    UpdateExitLadder: _LADDER,
}


def intent_item(intent: Intent, exits: Sequence[ExitRule] | None, signature: bytes) -> tuple[object, ...]:
    """One `IntentCall` of `executeIntents`: (type, abi.encode(struct), exits, signature)."""
    kind = type(intent)
    return (_KIND[kind], encode([_STRUCT[kind]], [_values(intent)]), _rules(exits or ()), signature)


def execute_intents(items: Sequence[tuple[object, ...]]) -> bytes:
    selector = _BATCH_SELECTORS[EXECUTE_INTENTS_SIGNATURE]
    return selector + encode([f"{_INTENT_CALL}[]"], [list(items)])


def execute_exits(items: Sequence[tuple[int, Sequence[ExitRule]]]) -> bytes:
    selector = _BATCH_SELECTORS[EXECUTE_EXITS_SIGNATURE]
    return selector + encode([f"{_EXIT_CALL}[]"], [[(pid, _rules(rules)) for pid, rules in items]])


def batch_results(data: bytes) -> list[bytes]:
    """The `bytes[] results` an executeIntents / executeExits call returns: empty for an item that
    succeeded, else its revert data."""
    (results,) = decode(["bytes[]"], data)
    return [bytes(r) for r in results]


def exit_position_ids(data: str | bytes) -> list[int]:
    """The positions an `executeExit` or `executeExits` calldata (hex or bytes) is for."""
    raw = bytes.fromhex(data.removeprefix("0x")) if isinstance(data, str) else data
    if raw[:4] == _SELECTORS[EXIT_SIGNATURE]:
        return [int.from_bytes(raw[4:36], "big")]
    if raw[:4] == _BATCH_SELECTORS[EXECUTE_EXITS_SIGNATURE]:
        (items,) = decode([f"{_EXIT_CALL}[]"], raw[4:])
        return [int(pid) for pid, _rules in items]
    raise ValueError("not executeExit / executeExits calldata")
