"""Operator input → exact values, strictly: money the operator types is never guessed at.

Pure functions; each raises `BadInput` with one line that names the argument and what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from relayer.amounts import AmountError, parse_amount
from relayer.cli.errors import BadInput, amount_message

if TYPE_CHECKING:
    from eth_typing import ChecksumAddress

# As relayer.chain.admin has them (tests/cli/test_fast.py checks); not imported from there, which loads web3.
USDC_DECIMALS: Final = 6
PRICE_DECIMALS: Final = 8

_ADDRESS: Final = re.compile(r"0x[0-9a-fA-F]{40}", re.ASCII)
_SYMBOL: Final = re.compile(r"[A-Za-z0-9.]{1,11}", re.ASCII)
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}", re.ASCII)


def usdc(text: str, what: str = "USDC amount", *, positive: bool = False) -> int:
    """``"100"`` → 100_000_000 (6 decimals)."""
    try:
        base = parse_amount(text, USDC_DECIMALS)
    except AmountError as exc:
        raise BadInput(amount_message(exc, what)) from None
    if positive and base == 0:
        raise BadInput(f"invalid {what} {text!r}: must be more than 0")
    return base


def price(text: str) -> int:
    """``"182.35"`` → 18_235_000_000 (8 decimals); a price is always more than 0."""
    try:
        base = parse_amount(text, PRICE_DECIMALS)
    except AmountError as exc:
        raise BadInput(amount_message(exc, "price")) from None
    if base == 0:
        raise BadInput(f"invalid price {text!r}: must be more than 0")
    if base >= 2**128:
        raise BadInput(f"invalid price {text!r}: too large")
    return base


def address(text: str, what: str = "address") -> ChecksumAddress:
    """A 20-byte hex address; mixed case must be a valid EIP-55 checksum (it catches typos)."""
    from eth_utils.address import is_checksum_address, to_checksum_address

    if not _ADDRESS.fullmatch(text):
        raise BadInput(f"malformed {what} {text!r}: expected 0x and 40 hex digits")
    body = text[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(text):
        raise BadInput(f"malformed {what} {text!r}: the EIP-55 checksum does not match (a typo?)")
    if int(body, 16) == 0:
        raise BadInput(f"invalid {what}: the zero address")
    return to_checksum_address(text)


def symbol(text: str) -> str:
    """Symbols are upper case on the chain; ``nvda`` means ``NVDA``."""
    if not _SYMBOL.fullmatch(text):
        raise BadInput(f"malformed symbol {text!r}")
    return text.upper()


def symbols(values: Iterable[str]) -> list[str]:
    """``--symbols NVDA,AAPL --symbols TSLA`` → ``[NVDA, AAPL, TSLA]`` (deduplicated, in order)."""
    out: list[str] = []
    for value in values:
        for part in value.split(","):
            if part.strip():
                s = symbol(part.strip())
                if s not in out:
                    out.append(s)
    return out


def track_name(text: str) -> str:
    if not _NAME.fullmatch(text):
        raise BadInput(f"malformed track name {text!r}: letters, digits, _ . - (at most 32)")
    return text
