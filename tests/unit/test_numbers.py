"""relayer.numbers: the one strict parser for integers that arrive as text, and the strict JSON decoder
(hardening item 8)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relayer.numbers import MAX_DB_ID, NumberError, loads_strict, parse_id, parse_uint


@pytest.mark.parametrize("text", ["²", "①", "١", "٣", "𝟙", "1²", "⁷"])
def test_unicode_digits_are_refused(text: str) -> None:
    with pytest.raises(NumberError) as exc:
        parse_id(text)
    assert exc.value.reason == "syntax"


@pytest.mark.parametrize("text", ["", " 7", "7 ", "+7", "-7", "1_0", "7.0", "1e3", "0x10", "seven"])
def test_anything_but_plain_digits_is_refused(text: str) -> None:
    with pytest.raises(NumberError):
        parse_id(text)


def test_ids_are_bounded_to_int64_and_positive() -> None:
    assert parse_id(str(MAX_DB_ID)) == MAX_DB_ID
    assert parse_id("007") == 7
    for text in ("0", str(MAX_DB_ID + 1), "9" * 30, "1" * 5000, "0" * 5000 + "1" + "0" * 19):
        with pytest.raises(NumberError) as exc:
            parse_id(text)
        assert exc.value.reason == "range"


def test_a_5000_digit_number_is_refused_without_int_conversion() -> None:
    # int() of more than 4300 digits raises its own ValueError; the bound comes first.
    with pytest.raises(NumberError, match="out of range"):
        parse_uint("9" * 5000, high=2**256 - 1)


def test_non_strings_are_refused() -> None:
    for value in (7, None, 7.0, b"7"):
        with pytest.raises(NumberError) as exc:
            parse_uint(value, high=10)
        assert exc.value.reason == "type"


@given(st.integers(min_value=0, max_value=2**256 - 1))
def test_every_uint256_round_trips(value: int) -> None:
    assert parse_uint(str(value), high=2**256 - 1) == value


@given(st.text(max_size=30))
def test_parse_uint_raises_only_number_error(text: str) -> None:
    try:
        value = parse_uint(text, high=MAX_DB_ID)
    except NumberError:
        return
    assert text.isascii() and text.isdigit() and int(text) == value


def test_duplicate_json_keys_are_malformed_at_any_depth() -> None:
    with pytest.raises(json.JSONDecodeError, match="duplicate key 'nonce'"):
        loads_strict('{"nonce": 1, "nonce": 2}')
    with pytest.raises(json.JSONDecodeError, match="duplicate key 'exitBps'"):
        loads_strict('{"exits": [{"exitBps": 1, "exitBps": 10000}]}')
    assert loads_strict('{"a": {"a": 1}}') == {"a": {"a": 1}}


def test_over_long_integers_and_constants_are_malformed() -> None:
    with pytest.raises(json.JSONDecodeError, match="more than 100 digits"):
        loads_strict("[" + "9" * 5000 + "]")
    with pytest.raises(json.JSONDecodeError, match="more than 100 digits"):
        loads_strict('{"triggerBps": -' + "9" * 101 + "}")
    assert loads_strict(str(2**256)) == 2**256
    for constant in ("NaN", "Infinity", "-Infinity"):
        with pytest.raises(json.JSONDecodeError, match="is not JSON"):
            loads_strict(f"[{constant}]")
