"""relayer/amounts.py: which human strings are amounts, and the canonical way back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relayer.amounts import MAX_DECIMALS, MAX_UINT256, AmountError, format_amount, parse_amount

USDC, EQUITY = 6, 18


@pytest.mark.parametrize(
    ("text", "decimals", "base"),
    [
        ("100", USDC, 100_000_000),
        ("0.25", EQUITY, 250_000_000_000_000_000),
        ("1.000000", USDC, 1_000_000),
        ("0", USDC, 0),
        ("0.0", USDC, 0),
        ("0.5", USDC, 500_000),
        ("0.000001", USDC, 1),
        ("123456789.123456", USDC, 123_456_789_123_456),
        ("7", 0, 7),
        (str(MAX_UINT256), 0, MAX_UINT256),
        (format_amount(MAX_UINT256, EQUITY), EQUITY, MAX_UINT256),
    ],
)
def test_accepts(text: str, decimals: int, base: int) -> None:
    assert parse_amount(text, decimals) == base


@pytest.mark.parametrize(
    ("text", "decimals", "reason"),
    [
        ("", USDC, "empty"),
        (" ", USDC, "syntax"),
        (" 1", USDC, "syntax"),
        ("1 ", USDC, "syntax"),
        ("1\n", USDC, "syntax"),
        ("+1", USDC, "sign"),
        ("-1", USDC, "sign"),
        ("-0", USDC, "sign"),
        ("1e6", USDC, "syntax"),
        ("1E6", USDC, "syntax"),
        ("0x10", USDC, "syntax"),
        ("1_000", USDC, "syntax"),
        ("1,000", USDC, "syntax"),
        ("1,5", USDC, "syntax"),
        (".5", USDC, "syntax"),
        ("5.", USDC, "syntax"),
        (".", USDC, "syntax"),
        ("1..2", USDC, "syntax"),
        ("1.2.3", USDC, "syntax"),
        ("NaN", USDC, "syntax"),
        ("Infinity", USDC, "syntax"),
        ("\u0661\u0662", USDC, "syntax"),  # Arabic-Indic "12": str.isdigit() says True
        ("\uff11", USDC, "syntax"),  # FULLWIDTH DIGIT ONE
        ("1\u00a0000", USDC, "syntax"),  # no-break space
        ("01", USDC, "leading_zero"),
        ("00.5", USDC, "leading_zero"),
        ("1.0000000", USDC, "too_many_decimals"),
        ("0.0000001", USDC, "too_many_decimals"),
        ("1.0", 0, "too_many_decimals"),
        (str(MAX_UINT256 + 1), 0, "too_large"),
        ("1" + "0" * 60, EQUITY, "too_large"),
        ("9" * 5000, USDC, "too_large"),
    ],
)
def test_rejects(text: str, decimals: int, reason: str) -> None:
    with pytest.raises(AmountError) as err:
        parse_amount(text, decimals)
    assert err.value.reason == reason


@pytest.mark.parametrize("value", [100, 1.5, None, b"1"])
def test_rejects_non_strings(value: object) -> None:
    with pytest.raises(AmountError) as err:
        parse_amount(value, USDC)  # type: ignore[arg-type]
    assert err.value.reason == "type"


@pytest.mark.parametrize(
    ("base", "decimals", "text"),
    [
        (0, USDC, "0"),
        (1, USDC, "0.000001"),
        (1_000_000, USDC, "1"),
        (1_500_000, USDC, "1.5"),
        (100_000_000, USDC, "100"),
        (250_000_000_000_000_000, EQUITY, "0.25"),
        (42, 0, "42"),
        (-12_500_000, USDC, "-12.5"),
    ],
)
def test_format(base: int, decimals: int, text: str) -> None:
    assert format_amount(base, decimals) == text


@pytest.mark.parametrize("decimals", [-1, MAX_DECIMALS + 1])
def test_decimals_out_of_range_is_a_programming_error(decimals: int) -> None:
    with pytest.raises(ValueError, match="decimals"):
        parse_amount("1", decimals)
    with pytest.raises(ValueError, match="decimals"):
        format_amount(1, decimals)


def test_error_names_the_input() -> None:
    with pytest.raises(AmountError, match=r"'1\.0000000' for 6 decimals: too_many_decimals"):
        parse_amount("1.0000000", USDC)


decimals = st.integers(0, MAX_DECIMALS)


@given(st.integers(0, MAX_UINT256), decimals)
def test_parse_undoes_format(base: int, d: int) -> None:
    assert parse_amount(format_amount(base, d), d) == base


@st.composite
def canonical_amounts(draw: st.DrawFn) -> tuple[str, int]:
    d = draw(decimals)
    # Keep whole * 10**d + fraction below 2**256 even for 77 decimals.
    whole = draw(st.integers(0, min(10**20, MAX_UINT256 // 10**d - 1)))
    fraction = draw(st.text("0123456789", max_size=d)).rstrip("0")
    return (f"{whole}.{fraction}" if fraction else str(whole)), d


@given(canonical_amounts())
def test_format_undoes_parse_for_canonical_strings(case: tuple[str, int]) -> None:
    text, d = case
    assert format_amount(parse_amount(text, d), d) == text


@given(st.text(max_size=12), decimals)
def test_parse_either_returns_a_uint256_or_raises_amount_error(text: str, d: int) -> None:
    try:
        base = parse_amount(text, d)
    except AmountError:
        return
    assert 0 <= base <= MAX_UINT256
    assert text.isascii() and text.strip() == text
