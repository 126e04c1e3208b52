"""Human decimal strings <-> integer base units, for every amount that crosses the API (SPEC §2.1).

Strict on purpose: an amount is money an agent signs for, so anything a reader could take two ways
is refused rather than guessed. Accepted: ASCII digits, an optional fractional part after a dot,
at most ``decimals`` fractional digits (trailing zeros count: "1.0000000" is 7 decimals and too many
for USDC). Refused, each with a stable ``AmountError.reason``:

- ``type``              not a ``str`` (a JSON number has already lost precision or is a float)
- ``empty``             ""
- ``sign``              "+1", "-1" (amounts are sizes; direction is the endpoint's)
- ``syntax``            whitespace, "1e6", "1_000", "1,5", ".5", "5.", non-ASCII digits (U+0661)
- ``leading_zero``      "01", "00.5" (reads like a typo for "0.1" / "0.5")
- ``too_many_decimals`` more fractional digits than the asset has
- ``too_large``         2**256 base units or more (does not fit a uint256)
"""

from __future__ import annotations

import re
from typing import Final, Literal, TypeAlias

MAX_UINT256: Final = 2**256 - 1
# 10**78 > 2**256, so more decimals could never leave room for a whole unit.
MAX_DECIMALS: Final = 77

# re.ASCII: without it \d and str.isdigit() also match Arabic-Indic and other Unicode digits.
_AMOUNT = re.compile(r"([0-9]+)(?:\.([0-9]+))?", re.ASCII)

AmountReason: TypeAlias = Literal[
    "type", "empty", "sign", "syntax", "leading_zero", "too_many_decimals", "too_large"
]


class AmountError(ValueError):
    """An API amount string that is not a canonical-enough decimal for its asset."""

    def __init__(self, reason: AmountReason, text: object, decimals: int) -> None:
        super().__init__(f"invalid amount {text!r} for {decimals} decimals: {reason}")
        self.reason = reason
        self.text = text
        self.decimals = decimals


def _check_decimals(decimals: int) -> None:
    # A wrong decimals is the caller's bug (a token registry problem), not a bad request.
    if not 0 <= decimals <= MAX_DECIMALS:
        raise ValueError(f"decimals must be within 0..{MAX_DECIMALS}, got {decimals}")


def parse_amount(text: str, decimals: int) -> int:
    """``parse_amount("0.25", 18) == 250_000_000_000_000_000``; raises ``AmountError``."""
    _check_decimals(decimals)
    if not isinstance(text, str):
        raise AmountError("type", text, decimals)
    if text == "":
        raise AmountError("empty", text, decimals)
    if text[0] in "+-":
        raise AmountError("sign", text, decimals)
    match = _AMOUNT.fullmatch(text)
    if match is None:
        raise AmountError("syntax", text, decimals)
    whole, fraction = match.group(1), match.group(2) or ""
    if len(whole) > 1 and whole[0] == "0":
        raise AmountError("leading_zero", text, decimals)
    if len(fraction) > decimals:
        raise AmountError("too_many_decimals", text, decimals)
    # Checked on length first so int() never sees thousands of digits (it would raise at 4300).
    if len(whole) > 78:
        raise AmountError("too_large", text, decimals)
    scale: int = 10**decimals
    base = int(whole) * scale + int(fraction.ljust(decimals, "0") or "0")
    if base > MAX_UINT256:
        raise AmountError("too_large", text, decimals)
    return base


def format_amount(base: int, decimals: int) -> str:
    """The canonical human string: no trailing zeros, no trailing dot, "0" for zero.

    Negative values are formatted with a leading "-" because the API reports signed figures such
    as realized PnL; ``parse_amount`` never accepts them back.
    """
    _check_decimals(decimals)
    if base < 0:
        return "-" + format_amount(-base, decimals)
    scale: int = 10**decimals
    whole, fraction = divmod(base, scale)
    digits = str(fraction).rjust(decimals, "0").rstrip("0") if decimals else ""
    return f"{whole}.{digits}" if digits else str(whole)
