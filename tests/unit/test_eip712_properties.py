"""Properties of relayer/eip712.py against eth-account as the independent encoder and signer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_abi.abi import encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from relayer import eip712
from relayer.eip712 import SECP256K1_N, Domain, ExitRule, Intent, SignatureError, TriggerType

DOMAIN = Domain(
    chain_id=31337, verifying_contract=to_checksum_address("0x5fbdb2315678afecb367f032d93f642f64180aa3")
)

addresses = st.binary(min_size=20, max_size=20).map(to_checksum_address)
rules = st.builds(
    ExitRule,
    trigger_type=st.sampled_from(TriggerType),
    trigger_bps=st.integers(-(2**31), 2**31 - 1),
    exit_bps=st.integers(0, 2**16 - 1),
)
ladders = st.lists(rules, max_size=8)
private_keys = st.integers(1, SECP256K1_N - 1).map(lambda k: k.to_bytes(32, "big"))


def member_values(sol_type: str) -> st.SearchStrategy[Any]:
    if sol_type == "address":
        return addresses
    if sol_type == "bytes32":
        return st.binary(min_size=32, max_size=32)
    bits = int(sol_type.removeprefix("uint"))
    return st.integers(0, 2**bits - 1)


intents: st.SearchStrategy[Intent] = st.one_of(
    [
        st.builds(cls, **{m.attr: member_values(m.sol_type) for m in cls.MEMBERS})
        for cls in eip712.INTENT_TYPES.values()
    ]
)
domains = st.builds(Domain, chain_id=st.integers(0, 2**256 - 1), verifying_contract=addresses)


def eth_account_digest(full_message: dict[str, Any]) -> bytes:
    signable = encode_typed_data(full_message=full_message)
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


@given(ladders)
def test_exits_hash_is_how_eip712_encodes_an_exit_rule_array(ladder: list[ExitRule]) -> None:
    rules_json = [
        {"triggerType": int(r.trigger_type), "triggerBps": r.trigger_bps, "exitBps": r.exit_bps}
        for r in ladder
    ]
    wrapper = encode_typed_data(
        full_message={
            "types": {
                "ExitRule": [
                    {"name": "triggerType", "type": "uint8"},
                    {"name": "triggerBps", "type": "int32"},
                    {"name": "exitBps", "type": "uint16"},
                ],
                "Wrapper": [{"name": "rules", "type": "ExitRule[]"}],
            },
            "primaryType": "Wrapper",
            "domain": DOMAIN.to_json(),
            "message": {"rules": rules_json},
        }
    )
    wrapper_typehash = keccak(text="Wrapper(ExitRule[] rules)" + eip712.EXIT_RULE_TYPE)
    expected = keccak(encode(["bytes32", "bytes32"], [wrapper_typehash, eip712.exits_hash(ladder)]))
    assert wrapper.body == expected


@given(domains, intents)
def test_digest_matches_eth_account_on_our_typed_data(domain: Domain, intent: Intent) -> None:
    data = eip712.typed_data(domain, intent)
    # Through JSON as a client would receive it: nothing in it may depend on Python types.
    assert eth_account_digest(json.loads(json.dumps(data))) == eip712.digest(domain, intent)


@given(domains, intents)
def test_typed_data_round_trips(domain: Domain, intent: Intent) -> None:
    data = json.loads(json.dumps(eip712.typed_data(domain, intent)))
    assert eip712.from_typed_data(data) == (domain, intent)


@given(intents)
def test_message_accepts_json_ints_as_well_as_decimal_strings(intent: Intent) -> None:
    message = eip712.typed_data(DOMAIN, intent)["message"]
    as_ints = {k: int(v) if isinstance(v, str) and not v.startswith("0x") else v for k, v in message.items()}
    assert eip712.intent_from_message(intent.PRIMARY_TYPE, as_ints) == intent


@settings(max_examples=50)
@given(intents, private_keys)
def test_eth_account_signatures_recover_to_the_signer(intent: Intent, key: bytes) -> None:
    account = Account.from_key(key)
    signed = Account.sign_message(encode_typed_data(full_message=eip712.typed_data(DOMAIN, intent)), key)
    assert eip712.recover_signer(eip712.digest(DOMAIN, intent), signed.signature) == account.address


def _sign(digest: bytes, key: bytes) -> bytes:
    return bytes(Account.unsafe_sign_hash(digest, key).signature)


@settings(max_examples=50)
@given(st.binary(min_size=32, max_size=32), private_keys)
def test_high_s_twin_is_rejected_although_it_recovers_the_same_key(digest: bytes, key: bytes) -> None:
    sig = _sign(digest, key)
    s, v = int.from_bytes(sig[32:64], "big"), sig[64]
    twin = sig[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])
    # The twin is a valid ECDSA signature (eth-account recovers it); only the contract's rule bans it.
    assert Account._recover_hash(digest, signature=twin) == Account.from_key(key).address
    with pytest.raises(SignatureError) as err:
        eip712.recover_signer(digest, twin)
    assert err.value.reason == "high_s"


@settings(max_examples=50)
@given(st.binary(min_size=32, max_size=32), private_keys)
def test_v_of_0_or_1_is_rejected(digest: bytes, key: bytes) -> None:
    sig = _sign(digest, key)
    with pytest.raises(SignatureError) as err:
        eip712.recover_signer(digest, sig[:64] + bytes([sig[64] - 27]))
    assert err.value.reason == "v"


@given(st.binary(min_size=32, max_size=32), private_keys, st.sampled_from([64, 66]), st.binary(max_size=1))
def test_64_and_66_byte_signatures_are_rejected(digest: bytes, key: bytes, length: int, pad: bytes) -> None:
    sig = (_sign(digest, key) + pad.ljust(1, b"\x00"))[:length]
    for form in (sig, "0x" + sig.hex()):
        with pytest.raises(SignatureError) as err:
            eip712.recover_signer(digest, form)
        assert err.value.reason == "length"
