"""Exit ladders: validation against a track, and the API's JSON form (SPEC §1.4, §2.3).

``validate_ladder`` is ``ExitLadder.validate`` (contracts/src/libraries/ExitLadder.sol) line for
line: the same checks in the same order, so for any ladder the relayer names the same rule index and
reason the contract would revert with (``ExitLadderInvalid(ruleIndex, reason)``), and a ladder it
accepts never reverts for ladder reasons. ``tests/integration/test_domain_vs_contract.py`` holds it
to that against the deployed contract.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import IntEnum
from typing import Final, Literal, Protocol, TypeAlias

from relayer.domain.track import Track
from relayer.eip712 import ExitRule, TriggerType

MAX_RULES: Final = 8
BPS: Final = 10_000

_INT32_MIN: Final = -(2**31)
_INT32_MAX: Final = 2**31 - 1
_UINT16_MAX: Final = 2**16 - 1


class LadderError(IntEnum):
    """``ITradeRouter.LadderError``: names and values exactly as the Solidity enum declares them."""

    Empty = 0
    TooManyRules = 1
    InvalidTriggerType = 2
    StopLossNotNegative = 3
    TakeProfitNotPositive = 4
    ExitBpsOutOfRange = 5
    LastRuleNotFull = 6
    StopLossBeyondTrack = 7
    TakeProfitBelowTrack = 8
    TakeProfitAboveTrack = 9
    StopLossRequired = 10
    TakeProfitRequired = 11


class LadderInvalid(Exception):  # noqa: N818 - named after the contract's ExitLadderInvalid
    """A ladder the contract would reject, with the index and reason its revert would carry.

    Whole-ladder reasons use the contract's index conventions: ``Empty`` → 0, ``TooManyRules`` → 8,
    ``StopLossRequired`` / ``TakeProfitRequired`` → the rule count.
    """

    def __init__(self, rule_index: int, reason: LadderError, message: str) -> None:
        super().__init__(message)
        self.rule_index = rule_index
        self.reason = reason
        self.message = message

    def details(self) -> dict[str, int | str]:
        """The API's ``exit_ladder_invalid`` details (SPEC §2.1): rule index and reason."""
        return {"ruleIndex": self.rule_index, "reason": self.reason.name}


class LadderRule(Protocol):
    """What validation reads from a rule. ``ExitRule`` is one; so is anything holding the raw ABI
    values, which lets tests reach the contract's whole ``uint8 triggerType`` domain."""

    @property
    def trigger_type(self) -> int: ...

    @property
    def trigger_bps(self) -> int: ...

    @property
    def exit_bps(self) -> int: ...


_WHOLE_LADDER: Final = frozenset(
    {
        LadderError.Empty,
        LadderError.TooManyRules,
        LadderError.StopLossRequired,
        LadderError.TakeProfitRequired,
    }
)


def _invalid(index: int, reason: LadderError, message: str) -> LadderInvalid:
    prefix = f"rule {index}: " if reason not in _WHOLE_LADDER else ""
    return LadderInvalid(index, reason, prefix + message)


def validate_ladder(rules: Sequence[LadderRule], track: Track) -> None:
    """Raise ``LadderInvalid`` exactly where ``ExitLadder.validate(rules, track)`` would revert.

    The order matters and is the contract's: length; then per rule, in index order, the sign and
    track bounds of its trigger, then its ``exitBps``; then the last rule's ``exitBps``; then the
    track's required stop-loss, then its required take-profit.
    """
    n = len(rules)
    if n == 0:
        raise _invalid(0, LadderError.Empty, "the ladder is empty: at least one rule is required")
    if n > MAX_RULES:
        raise _invalid(
            MAX_RULES, LadderError.TooManyRules, f"the ladder has {n} rules; at most {MAX_RULES} are allowed"
        )
    has_stop = False
    has_take = False
    for i, rule in enumerate(rules):
        t = rule.trigger_bps
        if rule.trigger_type == TriggerType.STOP_LOSS:
            if t >= 0:
                raise _invalid(
                    i, LadderError.StopLossNotNegative, f"a stop-loss needs a negative triggerBps, got {t:+d}"
                )
            if t < -track.max_stop_loss_bps:
                raise _invalid(
                    i,
                    LadderError.StopLossBeyondTrack,
                    f"stop-loss {t:+d} bps is beyond the track's maximum of {-track.max_stop_loss_bps:+d}",
                )
            has_stop = True
        elif rule.trigger_type == TriggerType.TAKE_PROFIT:
            if t <= 0:
                raise _invalid(
                    i,
                    LadderError.TakeProfitNotPositive,
                    f"a take-profit needs a positive triggerBps, got {t:+d}",
                )
            if t < track.min_take_profit_bps:
                raise _invalid(
                    i,
                    LadderError.TakeProfitBelowTrack,
                    f"take-profit {t:+d} bps is below the track's minimum of {track.min_take_profit_bps:+d}",
                )
            if t > track.max_take_profit_bps:
                raise _invalid(
                    i,
                    LadderError.TakeProfitAboveTrack,
                    f"take-profit {t:+d} bps is above the track's maximum of {track.max_take_profit_bps:+d}",
                )
            has_take = True
        else:
            raise _invalid(
                i,
                LadderError.InvalidTriggerType,
                f"trigger type {int(rule.trigger_type)} is neither StopLoss (0) nor TakeProfit (1)",
            )
        if rule.exit_bps == 0 or rule.exit_bps > BPS:
            raise _invalid(i, LadderError.ExitBpsOutOfRange, f"exitBps {rule.exit_bps} is outside 1..{BPS}")
    if rules[n - 1].exit_bps != BPS:
        raise _invalid(
            n - 1,
            LadderError.LastRuleNotFull,
            f"the last rule must exit {BPS} bps (all that is left), got {rules[n - 1].exit_bps}",
        )
    if track.require_stop_loss and not has_stop:
        raise _invalid(n, LadderError.StopLossRequired, "the track requires at least one stop-loss rule")
    if track.require_take_profit and not has_take:
        raise _invalid(n, LadderError.TakeProfitRequired, "the track requires at least one take-profit rule")


# --- the API's JSON form ---------------------------------------------------------------------------

_TRIGGER_NAMES: Final[Mapping[str, TriggerType]] = {
    "StopLoss": TriggerType.STOP_LOSS,
    "TakeProfit": TriggerType.TAKE_PROFIT,
}
_NAME_OF: Final[Mapping[TriggerType, str]] = {v: k for k, v in _TRIGGER_NAMES.items()}
_KEYS: Final = ("triggerType", "triggerBps", "exitBps")

ExitsFormatReason: TypeAlias = Literal["type", "missing", "unexpected", "unknown", "range"]

_EXPLAIN: Final[Mapping[ExitsFormatReason, str]] = {
    "type": "has the wrong JSON type",
    "missing": "is missing",
    "unexpected": "is not a field of an exit rule",
    "unknown": 'must be "StopLoss" or "TakeProfit"',
    "range": "is out of range",
}


class ExitsFormatError(ValueError):
    """``exits`` is not a well-formed JSON list of rules; ``path`` points at the offending value
    (``exits``, ``exits[2]``, ``exits[2].triggerBps``), ``reason`` is stable for clients."""

    def __init__(self, path: str, reason: ExitsFormatReason) -> None:
        super().__init__(f"{path} {_EXPLAIN[reason]}")
        self.path = path
        self.reason = reason


def _parse_int(raw: object, path: str, low: int, high: int) -> int:
    # bool is an int subclass: `true` is a client bug, not a 1. Floats and strings are refused too,
    # so "-500", -500.0 and 1e3 cannot be read two ways.
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise ExitsFormatError(path, "type")
    if not low <= raw <= high:
        raise ExitsFormatError(path, "range")
    return raw


def parse_exits(raw: object) -> list[ExitRule]:
    """The API's ``exits`` (already JSON-decoded) as ``ExitRule``s; raises ``ExitsFormatError``.

    Only the format is checked here (the int32/uint16 ranges the struct can carry); the ladder's
    rules are ``validate_ladder``'s, so their verdict stays the contract's.
    """
    if not isinstance(raw, list):
        raise ExitsFormatError("exits", "type")
    rules: list[ExitRule] = []
    for i, item in enumerate(raw):
        path = f"exits[{i}]"
        if not isinstance(item, dict):
            raise ExitsFormatError(path, "type")
        for key in item:
            if key not in _KEYS:
                raise ExitsFormatError(f"{path}.{key}", "unexpected")
        for key in _KEYS:
            if key not in item:
                raise ExitsFormatError(f"{path}.{key}", "missing")
        name = item["triggerType"]
        if not isinstance(name, str):
            raise ExitsFormatError(f"{path}.triggerType", "type")
        trigger_type = _TRIGGER_NAMES.get(name)
        if trigger_type is None:
            raise ExitsFormatError(f"{path}.triggerType", "unknown")
        trigger_bps = _parse_int(item["triggerBps"], f"{path}.triggerBps", _INT32_MIN, _INT32_MAX)
        exit_bps = _parse_int(item["exitBps"], f"{path}.exitBps", 0, _UINT16_MAX)
        rules.append(ExitRule(trigger_type, trigger_bps, exit_bps))
    return rules


def exits_to_json(rules: Sequence[ExitRule]) -> list[dict[str, str | int]]:
    """The inverse of ``parse_exits``: ``parse_exits(exits_to_json(r)) == list(r)``."""
    return [
        {"triggerType": _NAME_OF[r.trigger_type], "triggerBps": r.trigger_bps, "exitBps": r.exit_bps}
        for r in rules
    ]
