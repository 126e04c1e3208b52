"""relayer/eip712.py case by case: schema, strict parsing, and OpenZeppelin's signature rules."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from eth_account import Account
from eth_utils.address import to_checksum_address

from relayer import eip712
from relayer.eip712 import (
    SECP256K1_N,
    AddToPosition,
    Domain,
    ExitRule,
    OpenPosition,
    Signature,
    SignatureError,
    TriggerType,
    TypedDataError,
    UpdateExitLadder,
)

VAULT = to_checksum_address("0xe7f1725e7734ce288f8367e1bb143e90bb3f0512")
TOKEN = to_checksum_address("0x9fe46736679d2d9a65f0992f2272de9f3c7fa6e0")
DOMAIN = Domain(
    chain_id=31337, verifying_contract=to_checksum_address("0x5fbdb2315678afecb367f032d93f642f64180aa3")
)
KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
HALF_N = SECP256K1_N // 2

OPEN = OpenPosition(
    agent_id=7,
    vault=VAULT,
    token=TOKEN,
    usdc_amount=100_000_000,
    min_token_out=0,
    max_slippage_bps=100,
    exits_hash=eip712.exits_hash([ExitRule(TriggerType.STOP_LOSS, -500, 10_000)]),
    deadline=1_735_689_600,
    nonce=0,
)
OPEN_MESSAGE: dict[str, Any] = eip712.typed_data(DOMAIN, OPEN)["message"]


# --- schema ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [ExitRule, *eip712.INTENT_TYPES.values()], ids=lambda c: c.__name__)
def test_dataclass_fields_follow_the_spec_member_order(cls: type[Any]) -> None:
    assert [f.name for f in dataclasses.fields(cls)] == [m.attr for m in cls.MEMBERS]
    assert cls.TYPE_STRING.startswith(cls.PRIMARY_TYPE + "(")


def test_typed_data_lists_only_the_domain_and_primary_type() -> None:
    data = eip712.typed_data(DOMAIN, OPEN)
    assert list(data["types"]) == ["EIP712Domain", "OpenPosition"]
    assert data["primaryType"] == "OpenPosition"
    assert data["domain"] == {
        "name": "AlphaGrid TradeRouter",
        "version": "1",
        "chainId": 31337,
        "verifyingContract": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
    }


def test_typed_data_message_uses_decimal_strings_for_uint256_only() -> None:
    message = eip712.typed_data(DOMAIN, OPEN)["message"]
    assert message == {
        "agentId": "7",
        "vault": VAULT,
        "token": TOKEN,
        "usdcAmount": "100000000",
        "minTokenOut": "0",
        "maxSlippageBps": 100,
        "exitsHash": "0x" + OPEN.exits_hash.hex(),
        "deadline": "1735689600",
        "nonce": "0",
    }


def test_exits_hash_of_empty_ladder_is_keccak_of_nothing() -> None:
    assert eip712.exits_hash([]).hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"


def test_exit_rule_coerces_plain_ints_to_trigger_type() -> None:
    rule = ExitRule(1, 100, 5000)  # type: ignore[arg-type]
    assert rule.trigger_type is TriggerType.TAKE_PROFIT
    assert eip712.exit_rule_hash(rule) == ExitRule(TriggerType.TAKE_PROFIT, 100, 5000).struct_hash()


# --- construction ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "field", "reason"),
    [
        (lambda: ExitRule(2, -1, 1), "triggerType", "range"),  # type: ignore[arg-type]
        (lambda: ExitRule(TriggerType.STOP_LOSS, -(2**31) - 1, 1), "triggerBps", "range"),
        (lambda: ExitRule(TriggerType.STOP_LOSS, -1, 65_536), "exitBps", "range"),
        (lambda: dataclasses.replace(OPEN, usdc_amount=2**256), "usdcAmount", "range"),
        (lambda: dataclasses.replace(OPEN, usdc_amount=-1), "usdcAmount", "range"),
        (lambda: dataclasses.replace(OPEN, usdc_amount=True), "usdcAmount", "type"),
        (lambda: dataclasses.replace(OPEN, usdc_amount="1"), "usdcAmount", "type"),  # type: ignore[arg-type]
        (lambda: dataclasses.replace(OPEN, max_slippage_bps=65_536), "maxSlippageBps", "range"),
        (lambda: dataclasses.replace(OPEN, vault=VAULT.lower()), "vault", "checksum"),  # type: ignore[arg-type]
        (lambda: dataclasses.replace(OPEN, exits_hash=bytes(31)), "exitsHash", "length"),
        (lambda: Domain(chain_id=-1, verifying_contract=VAULT), "chainId", "range"),
    ],
    ids=[
        "trigger_type_2",
        "trigger_bps_below_int32",
        "exit_bps_above_uint16",
        "amount_2_pow_256",
        "amount_negative",
        "amount_bool",
        "amount_str",
        "slippage_above_uint16",
        "address_lowercase",
        "exits_hash_31_bytes",
        "negative_chain_id",
    ],
)
def test_constructors_reject_out_of_range_members(build: Any, field: str, reason: str) -> None:
    with pytest.raises(TypedDataError) as err:
        build()
    assert (err.value.field, err.value.reason) == (field, reason)


# --- parsing messages ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("agentId", 7),
        ("agentId", "007"),
        ("vault", VAULT.lower()),
        ("vault", "0x" + VAULT[2:].upper()),
        ("maxSlippageBps", "100"),
        ("exitsHash", "0x" + OPEN.exits_hash.hex().upper()),
    ],
)
def test_message_parsing_accepts_unambiguous_spellings(field: str, value: object) -> None:
    assert eip712.intent_from_message("OpenPosition", OPEN_MESSAGE | {field: value}) == OPEN


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        # Each of these is signed without complaint by eth-account's encoder.
        ("agentId", " 7", "type"),
        ("agentId", "+7", "type"),
        ("agentId", "1_000", "type"),
        ("agentId", "\u0667", "type"),  # ARABIC-INDIC DIGIT SEVEN
        ("agentId", "0x7", "type"),
        ("agentId", 7.0, "type"),
        ("agentId", True, "type"),
        ("agentId", "-1", "type"),
        ("agentId", "1" * 79, "type"),
        ("usdcAmount", str(2**256), "range"),
        ("maxSlippageBps", 65_536, "range"),
        ("vault", VAULT.replace("e", "E", 1), "checksum"),
        ("vault", "0x1234", "type"),
        ("exitsHash", "0xab", "length"),
        ("exitsHash", "a" * 64, "length"),
        ("exitsHash", "0x" + "ab" * 33, "length"),
    ],
)
def test_message_parsing_rejects_what_signers_would_guess_at(field: str, value: object, reason: str) -> None:
    with pytest.raises(TypedDataError) as err:
        eip712.intent_from_message("OpenPosition", OPEN_MESSAGE | {field: value})
    assert (err.value.field, err.value.reason) == (field, reason)


def test_message_parsing_rejects_missing_unexpected_and_unknown() -> None:
    missing = {k: v for k, v in OPEN_MESSAGE.items() if k != "nonce"}
    with pytest.raises(TypedDataError, match="nonce: missing"):
        eip712.intent_from_message("OpenPosition", missing)
    with pytest.raises(TypedDataError, match="exits: unexpected"):
        eip712.intent_from_message("OpenPosition", OPEN_MESSAGE | {"exits": []})
    with pytest.raises(TypedDataError, match="primaryType: unknown"):
        eip712.intent_from_message("ExitRule", OPEN_MESSAGE)


def _tamper(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    node[last] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (
            "types.OpenPosition",
            list(reversed(eip712.typed_data(DOMAIN, OPEN)["types"]["OpenPosition"])),
            "types",
        ),
        ("types.ExitRule", [{"name": "triggerType", "type": "uint8"}], "types"),
        ("domain.name", "AlphaGrid", "name"),
        ("domain.version", "2", "version"),
        ("domain.salt", "0x" + "00" * 32, "domain"),
        ("primaryType", "AddToPosition", "types"),
        ("extra", 1, "typedData"),
    ],
)
def test_from_typed_data_insists_on_our_schema(path: str, value: Any, field: str) -> None:
    with pytest.raises(TypedDataError) as err:
        eip712.from_typed_data(_tamper(eip712.typed_data(DOMAIN, OPEN), path, value))
    assert err.value.field == field


def test_from_typed_data_accepts_chain_id_as_decimal_string() -> None:
    data = _tamper(eip712.typed_data(DOMAIN, OPEN), "domain.chainId", "31337")
    assert eip712.from_typed_data(data) == (DOMAIN, OPEN)


# --- signatures ------------------------------------------------------------------------------------


def _good_signature() -> tuple[bytes, bytes]:
    digest = eip712.digest(DOMAIN, OPEN)
    return digest, bytes(Account.unsafe_sign_hash(digest, KEY).signature)


def _not_an_x_coordinate() -> int:
    p = 2**256 - 2**32 - 977
    # Euler's criterion: x**3 + 7 has no square root mod p, so no curve point has this x.
    return next(x for x in range(1, 100) if pow(x**3 + 7, (p - 1) // 2, p) != 1)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda sig: sig[:64], "length"),
        (lambda sig: sig + b"\x1b", "length"),
        (lambda sig: b"", "length"),
        (lambda sig: sig[:64] + b"\x00", "v"),
        (lambda sig: sig[:64] + b"\x01", "v"),
        (lambda sig: sig[:64] + b"\x1d", "v"),
        (lambda sig: bytes(32) + sig[32:], "zero"),
        (lambda sig: sig[:32] + bytes(32) + sig[64:], "zero"),
        (lambda sig: SECP256K1_N.to_bytes(32, "big") + sig[32:], "r_range"),
        (lambda sig: sig[:32] + (HALF_N + 1).to_bytes(32, "big") + sig[64:], "high_s"),
        # OpenZeppelin checks s before v: a high-s signature with v = 0 reverts InvalidSignatureS.
        (lambda sig: sig[:32] + (HALF_N + 1).to_bytes(32, "big") + b"\x00", "high_s"),
        (lambda sig: _not_an_x_coordinate().to_bytes(32, "big") + sig[32:], "unrecoverable"),
    ],
    ids=[
        "64_bytes",
        "66_bytes",
        "empty",
        "v_0",
        "v_1",
        "v_29",
        "r_zero",
        "s_zero",
        "r_equals_n",
        "s_half_n_plus_1",
        "high_s_before_v",
        "r_not_on_curve",
    ],
)
def test_recover_signer_rejects_what_openzeppelin_rejects(mutate: Any, reason: str) -> None:
    digest, sig = _good_signature()
    with pytest.raises(SignatureError) as err:
        eip712.recover_signer(digest, mutate(sig))
    assert err.value.reason == reason


def test_s_of_exactly_half_n_is_accepted() -> None:
    # OpenZeppelin rejects s > n/2, not s >= n/2; recovery then yields some unrelated address.
    _, sig = _good_signature()
    signature = eip712.parse_signature(sig[:32] + HALF_N.to_bytes(32, "big") + sig[64:])
    assert signature.s == HALF_N


@pytest.mark.parametrize("text", ["0xzz", "abcd", "0x123", "0X" + "00" * 65])
def test_parse_signature_rejects_malformed_hex(text: str) -> None:
    with pytest.raises(SignatureError) as err:
        eip712.parse_signature(text)
    assert err.value.reason == "encoding"


def test_recover_signer_accepts_bytes_hex_and_parsed_signature() -> None:
    digest, sig = _good_signature()
    signer = Account.from_key(KEY).address
    parsed = eip712.parse_signature(sig)
    assert parsed.to_bytes() == sig and parsed.to_hex() == "0x" + sig.hex()
    for form in (sig, "0x" + sig.hex(), parsed):
        assert eip712.recover_signer(digest, form) == signer


def test_signature_dataclass_cannot_hold_a_rejected_signature() -> None:
    with pytest.raises(SignatureError, match="high_s"):
        Signature(r=1, s=HALF_N + 1, v=27)


def test_recover_signer_needs_a_32_byte_digest() -> None:
    _, sig = _good_signature()
    with pytest.raises(ValueError, match="32 bytes"):
        eip712.recover_signer(b"\x00" * 31, sig)


def test_a_different_intent_recovers_a_different_address() -> None:
    digest, sig = _good_signature()
    other = eip712.digest(DOMAIN, dataclasses.replace(OPEN, nonce=1))
    assert eip712.recover_signer(other, sig) != eip712.recover_signer(digest, sig)


def test_intent_types_registry() -> None:
    assert set(eip712.INTENT_TYPES) == {"OpenPosition", "AddToPosition", "ReducePosition", "UpdateExitLadder"}
    assert eip712.INTENT_TYPES["AddToPosition"] is AddToPosition
    assert eip712.INTENT_TYPES["UpdateExitLadder"] is UpdateExitLadder
