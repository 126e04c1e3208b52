"""relayer/eip712.py against the golden vectors made by eth-account and cast (tests/vectors/eip712.json).

The file is committed data shared with the Solidity tests; it is read here, never rewritten.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak

from relayer import eip712
from relayer.eip712 import Domain, ExitRule, Intent, SignatureError, TriggerType

ROOT = Path(__file__).resolve().parents[2]
VECTORS_PATH = ROOT / "tests" / "vectors" / "eip712.json"
GENERATOR = ROOT / "scripts" / "gen-eip712-vectors"
CAST = ROOT / "node_modules" / "@foundry-rs" / "cast-linux-amd64" / "bin" / "cast"

GOLDEN: dict[str, Any] = json.loads(VECTORS_PATH.read_text())
VECTORS: list[dict[str, Any]] = GOLDEN["vectors"]
DOMAIN = Domain(
    chain_id=GOLDEN["domain"]["chainId"], verifying_contract=GOLDEN["domain"]["verifyingContract"]
)

by_name = pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])


def h(data: bytes) -> str:
    return "0x" + data.hex()


def rules(raw: list[dict[str, int]]) -> list[ExitRule]:
    return [ExitRule(TriggerType(r["triggerType"]), r["triggerBps"], r["exitBps"]) for r in raw]


def intent_of(vector: dict[str, Any]) -> Intent:
    return eip712.intent_from_message(vector["primaryType"], vector["fields"])


def test_vectors_cover_every_intent_type_twice_and_both_signers() -> None:
    per_type = {t: sum(v["primaryType"] == t for v in VECTORS) for t in eip712.INTENT_TYPES}
    assert all(count >= 2 for count in per_type.values()), per_type
    assert {v["signedBy"] for v in VECTORS} == {"eth-account", "cast"}


def test_domain_separator_and_typehashes() -> None:
    assert DOMAIN.to_json() == GOLDEN["domain"]
    assert h(DOMAIN.separator()) == GOLDEN["domainSeparator"]
    assert h(eip712.EXIT_RULE_TYPEHASH) == GOLDEN["exitRuleTypehash"]
    ours = {"EIP712Domain": eip712.EIP712_DOMAIN_TYPE, "ExitRule": eip712.EXIT_RULE_TYPE}
    ours |= {name: cls.TYPE_STRING for name, cls in eip712.INTENT_TYPES.items()}
    assert ours == GOLDEN["typeStrings"]
    assert {k: h(keccak(text=v)) for k, v in ours.items()} == GOLDEN["typehashes"]
    assert h(eip712.DOMAIN_TYPEHASH) == GOLDEN["typehashes"]["EIP712Domain"]


@pytest.mark.parametrize("case", GOLDEN["exitsHashes"], ids=[c["name"] for c in GOLDEN["exitsHashes"]])
def test_exits_hash_matches_golden(case: dict[str, Any]) -> None:
    assert h(eip712.exits_hash(rules(case["rules"]))) == case["exitsHash"]


@by_name
def test_typed_data_rebuilt_from_fields_is_the_golden_one(vector: dict[str, Any]) -> None:
    assert eip712.typed_data(DOMAIN, intent_of(vector)) == vector["typedData"]


@by_name
def test_golden_typed_data_parses_back_to_the_same_intent(vector: dict[str, Any]) -> None:
    assert eip712.from_typed_data(vector["typedData"]) == (DOMAIN, intent_of(vector))


@by_name
def test_struct_hash_and_digest(vector: dict[str, Any]) -> None:
    intent = intent_of(vector)
    assert h(intent.struct_hash()) == vector["structHash"]
    assert h(eip712.digest(DOMAIN, intent)) == vector["digest"]


WITH_EXITS = [v for v in VECTORS if "exits" in v]


@pytest.mark.parametrize("vector", WITH_EXITS, ids=[v["name"] for v in WITH_EXITS])
def test_exits_listed_in_a_vector_hash_to_its_field(vector: dict[str, Any]) -> None:
    assert h(eip712.exits_hash(rules(vector["exits"]))) == vector["fields"]["exitsHash"]


@by_name
def test_signature_recovers_to_signer(vector: dict[str, Any]) -> None:
    digest = bytes.fromhex(vector["digest"][2:])
    assert eip712.recover_signer(digest, vector["signature"]) == vector["signer"]


@by_name
def test_eth_account_hashes_our_typed_data_to_our_digest(vector: dict[str, Any]) -> None:
    intent = intent_of(vector)
    signable = encode_typed_data(full_message=eip712.typed_data(DOMAIN, intent))
    assert keccak(b"\x19" + signable.version + signable.header + signable.body) == eip712.digest(
        DOMAIN, intent
    )


@by_name
def test_fields_are_flat_strings_for_forge(vector: dict[str, Any]) -> None:
    fields = vector["fields"]
    assert list(fields) == list(vector["typedData"]["message"])
    assert all(isinstance(value, str) for value in fields.values())


@pytest.mark.parametrize("case", GOLDEN["badSignatures"], ids=[c["name"] for c in GOLDEN["badSignatures"]])
def test_bad_signatures_are_rejected_for_the_stated_reason(case: dict[str, str]) -> None:
    with pytest.raises(SignatureError) as err:
        eip712.recover_signer(bytes.fromhex(case["digest"][2:]), case["signature"])
    assert err.value.reason == case["reason"]


def test_generator_reproduces_the_committed_file() -> None:
    # eth-account and cast both sign with RFC 6979, so a rerun must be byte-identical.
    if not CAST.is_file() and shutil.which("cast") is None:
        pytest.skip("cast is not installed (scripts/test installs it)")
    cast = str(CAST) if CAST.is_file() else str(shutil.which("cast"))
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--check", "--out", str(VECTORS_PATH), "--cast", cast],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
