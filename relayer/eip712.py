"""EIP-712 encoding of the TradeRouter's intents: type strings, struct hashes, digests, signatures.

The relayer hashes every intent here and the TradeRouter hashes it again on-chain; the two must
agree bit for bit, or agents get "invalid signature" for intents they signed correctly. So this is
a small encoder written straight from SPEC §1.2-1.3 with ``eth_abi`` and keccak, and it is checked
against two independent encoders (eth-account and Foundry's ``cast``) by the golden vectors in
``tests/vectors/eip712.json``, which the Solidity tests read too.

Signatures are accepted exactly as OpenZeppelin 5 ``ECDSA.tryRecover`` accepts them (65 bytes,
low ``s``, ``v`` of 27 or 28), so the relayer neither relays an intent the contract would reject nor
rejects one it would take. eth-account is laxer (it recovers ``v`` of 0/1 and high-``s``
signatures), which is why recovery does not go through it.

Pure: no I/O, no clock, no chain access.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, ClassVar, Final, Literal, TypeAlias, get_args

from coincurve import PublicKey
from eth_abi.abi import encode

# safe-pysha3's C keccak, not eth_hash.auto's first choice (pycryptodome through ctypes/cffi): about
# 0.7 µs a hash against 5-9 µs, and verifying an intent hashes four or five times.
from eth_hash.backends.pysha3 import keccak256
from eth_typing import ChecksumAddress
from eth_utils.address import is_checksum_address, to_checksum_address
from eth_utils.crypto import keccak

DOMAIN_NAME: Final = "AlphaGrid TradeRouter"
DOMAIN_VERSION: Final = "1"

# SPEC §1.2-1.3, verbatim: every typehash, member list and JSON `types` entry is derived from these.
EIP712_DOMAIN_TYPE: Final = (
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
EXIT_RULE_TYPE: Final = "ExitRule(uint8 triggerType,int32 triggerBps,uint16 exitBps)"
OPEN_POSITION_TYPE: Final = (
    "OpenPosition(uint256 agentId,address vault,address token,uint256 usdcAmount,uint256 minTokenOut,"
    "uint16 maxSlippageBps,bytes32 exitsHash,uint256 deadline,uint256 nonce)"
)
ADD_TO_POSITION_TYPE: Final = (
    "AddToPosition(uint256 agentId,uint256 positionId,uint256 usdcAmount,uint256 minTokenOut,"
    "uint16 maxSlippageBps,uint256 deadline,uint256 nonce)"
)
REDUCE_POSITION_TYPE: Final = (
    "ReducePosition(uint256 agentId,uint256 positionId,uint256 tokenAmount,uint256 minUsdcOut,"
    "uint16 maxSlippageBps,uint256 deadline,uint256 nonce)"
)
UPDATE_EXIT_LADDER_TYPE: Final = (
    "UpdateExitLadder(uint256 agentId,uint256 positionId,bytes32 exitsHash,uint256 deadline,uint256 nonce)"
)

DOMAIN_TYPEHASH: Final = keccak(text=EIP712_DOMAIN_TYPE)
EXIT_RULE_TYPEHASH: Final = keccak(text=EXIT_RULE_TYPE)

SECP256K1_N: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N: Final = SECP256K1_N // 2

_TYPE_STRING = re.compile(r"([A-Za-z][A-Za-z0-9]*)\(([^()]*)\)")
_UNSIGNED = re.compile(r"[0-9]{1,78}", re.ASCII)
_SIGNED = re.compile(r"-?[0-9]{1,78}", re.ASCII)
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}", re.ASCII)
_BYTES32 = re.compile(r"0x[0-9a-fA-F]{64}", re.ASCII)
_HEX = re.compile(r"0x(?:[0-9a-fA-F]{2})*", re.ASCII)


class Eip712Error(ValueError):
    """Base of this module's errors; each carries a stable, machine-readable reason."""


class TypedDataError(Eip712Error):
    """A struct member or typed-data entry is missing, mistyped or out of range."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


SignatureReason: TypeAlias = Literal["encoding", "length", "high_s", "v", "zero", "r_range", "unrecoverable"]


class SignatureError(Eip712Error):
    """The signature would not pass OpenZeppelin's ``ECDSA.tryRecover``.

    ``length`` is ``ECDSAInvalidSignatureLength`` on-chain and ``high_s`` is
    ``ECDSAInvalidSignatureS``; ``v``, ``zero``, ``r_range`` and ``unrecoverable`` all make
    ``ecrecover`` return the zero address (``ECDSAInvalidSignature``). ``encoding`` is a hex string
    that is not hex at all.
    """

    def __init__(self, reason: SignatureReason) -> None:
        super().__init__(f"invalid signature: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class Member:
    """One struct member: its Solidity type, its EIP-712 (camelCase) name and the attribute name."""

    sol_type: str
    name: str
    attr: str


def _parse_type_string(type_string: str) -> tuple[str, tuple[Member, ...]]:
    match = _TYPE_STRING.fullmatch(type_string)
    if match is None:
        raise ValueError(f"not a single-struct EIP-712 type string: {type_string!r}")
    members = []
    for part in match.group(2).split(","):
        sol_type, name = part.split(" ")
        members.append(Member(sol_type, name, re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()))
    return match.group(1), tuple(members)


def _static_word(sol_type: str) -> Callable[[Any], bytes]:
    """The ABI encoding of one static member, a 32-byte word, for a value `_check_value` accepted
    (so in range, checksummed, 32 bytes long): what ``eth_abi.encode`` produces, without its per-call
    type parsing and validation, which cost more than the hashing on the quote and verify paths."""
    if sol_type.startswith("uint"):
        return lambda value: int(value).to_bytes(32, "big")
    if sol_type.startswith("int"):
        return lambda value: int(value).to_bytes(32, "big", signed=True)
    if sol_type == "address":
        return lambda value: bytes(12) + bytes.fromhex(value[2:])
    if sol_type == "bytes32":
        return bytes
    raise TypeError(f"unsupported member type {sol_type}")  # pragma: no cover


class _Struct:
    """Shared by every struct: members come from the type string, so order cannot drift from SPEC."""

    TYPE_STRING: ClassVar[str]
    PRIMARY_TYPE: ClassVar[str]
    MEMBERS: ClassVar[tuple[Member, ...]]
    TYPEHASH: ClassVar[bytes]
    _WORDS: ClassVar[tuple[tuple[str, Callable[[Any], bytes]], ...]]

    def __init_subclass__(cls, *, type_string: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.TYPE_STRING = type_string
        cls.PRIMARY_TYPE, cls.MEMBERS = _parse_type_string(type_string)
        cls.TYPEHASH = keccak(text=type_string)
        cls._WORDS = tuple((m.attr, _static_word(m.sol_type)) for m in cls.MEMBERS)

    def __post_init__(self) -> None:
        for member in self.MEMBERS:
            _check_value(member, getattr(self, member.attr))

    def struct_hash(self) -> bytes:
        """``hashStruct(s) = keccak256(typeHash ‖ encodeData(s))``; every member here is static, so
        encodeData is one 32-byte word per member."""
        data = b"".join(word(getattr(self, attr)) for attr, word in self._WORDS)
        return keccak256(self.TYPEHASH + data)


@functools.lru_cache(maxsize=64)
def _int_bounds(sol_type: str) -> tuple[int, int] | None:
    # Cached: every member of every struct is checked, and the few type strings recur.
    if sol_type.startswith("uint"):
        return 0, 2 ** int(sol_type[4:]) - 1
    if sol_type.startswith("int"):
        bits = int(sol_type[3:])
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return None


def _check_value(member: Member, value: object) -> None:
    bounds = _int_bounds(member.sol_type)
    if bounds is not None:
        # bool is an int subclass; a True amount is a bug, not a 1.
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypedDataError(member.name, "type")
        if not bounds[0] <= value <= bounds[1]:
            raise TypedDataError(member.name, "range")
    elif member.sol_type == "address":
        if not isinstance(value, str) or not _is_checksum_address(value):
            raise TypedDataError(member.name, "checksum")
    elif member.sol_type == "bytes32":
        if not isinstance(value, bytes) or len(value) != 32:
            raise TypedDataError(member.name, "length")
    else:  # pragma: no cover - only reachable by adding a type string with a new member type
        raise TypeError(f"unsupported member type {member.sol_type}")


@functools.lru_cache(maxsize=4096)
def _is_checksum_address(value: str) -> bool:
    # Pure, and every intent carries the same few addresses (vault, tokens, router): EIP-55 costs a
    # keccak per call, which showed up in the quote and verify profiles.
    return is_checksum_address(value)


class TriggerType(IntEnum):
    STOP_LOSS = 0
    TAKE_PROFIT = 1


@dataclass(frozen=True)
class ExitRule(_Struct, type_string=EXIT_RULE_TYPE):
    """One rung of an exit ladder. Policy (signs, 1..8 rules, last exitBps = 10000) lives in domain/."""

    trigger_type: TriggerType
    trigger_bps: int
    exit_bps: int

    def __post_init__(self) -> None:
        try:
            # IntEnum so a plain 0/1 from JSON compares and hashes the same, yet prints as a name.
            object.__setattr__(self, "trigger_type", TriggerType(self.trigger_type))
        except ValueError:
            raise TypedDataError("triggerType", "range") from None
        super().__post_init__()


def exit_rule_hash(rule: ExitRule) -> bytes:
    return rule.struct_hash()


def exits_hash(rules: Sequence[ExitRule]) -> bytes:
    """How EIP-712 encodes an ``ExitRule[]`` member: keccak of the concatenated rule hashes.

    The intents carry this hash rather than the array so the contract's typehash stays flat; an
    empty ladder hashes to keccak("") as an empty array would.
    """
    return _exits_hash(tuple(rules))


@functools.lru_cache(maxsize=4096)
def _exits_hash(rules: tuple[ExitRule, ...]) -> bytes:
    # Pure, and agents reuse a few ladders: every quote and submit of an open hashes one.
    return keccak256(b"".join(rule.struct_hash() for rule in rules))


@dataclass(frozen=True)
class OpenPosition(_Struct, type_string=OPEN_POSITION_TYPE):
    agent_id: int
    vault: ChecksumAddress
    token: ChecksumAddress
    usdc_amount: int
    min_token_out: int
    max_slippage_bps: int
    exits_hash: bytes
    deadline: int
    nonce: int


@dataclass(frozen=True)
class AddToPosition(_Struct, type_string=ADD_TO_POSITION_TYPE):
    agent_id: int
    position_id: int
    usdc_amount: int
    min_token_out: int
    max_slippage_bps: int
    deadline: int
    nonce: int


@dataclass(frozen=True)
class ReducePosition(_Struct, type_string=REDUCE_POSITION_TYPE):
    agent_id: int
    position_id: int
    token_amount: int
    min_usdc_out: int
    max_slippage_bps: int
    deadline: int
    nonce: int


@dataclass(frozen=True)
class UpdateExitLadder(_Struct, type_string=UPDATE_EXIT_LADDER_TYPE):
    agent_id: int
    position_id: int
    exits_hash: bytes
    deadline: int
    nonce: int


Intent: TypeAlias = OpenPosition | AddToPosition | ReducePosition | UpdateExitLadder
INTENT_TYPES: Final[Mapping[str, type[Intent]]] = {cls.PRIMARY_TYPE: cls for cls in get_args(Intent)}

_, _DOMAIN_MEMBERS = _parse_type_string(EIP712_DOMAIN_TYPE)


@dataclass(frozen=True)
class Domain:
    """The TradeRouter's EIP-712 domain; name and version are fixed by SPEC §1.2."""

    chain_id: int
    verifying_contract: ChecksumAddress
    name: str = field(default=DOMAIN_NAME, init=False)
    version: str = field(default=DOMAIN_VERSION, init=False)

    def __post_init__(self) -> None:
        for member in _DOMAIN_MEMBERS[2:]:
            _check_value(member, getattr(self, member.attr))

    def separator(self) -> bytes:
        return _separator(self.chain_id, self.verifying_contract)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }


@functools.lru_cache(maxsize=64)
def _separator(chain_id: int, verifying_contract: str) -> bytes:
    # A relayer has one domain; hashing it again for every digest was a third of `digest`'s cost.
    return keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                DOMAIN_TYPEHASH,
                keccak(text=DOMAIN_NAME),
                keccak(text=DOMAIN_VERSION),
                chain_id,
                verifying_contract,
            ],
        )
    )


def digest(domain: Domain, intent: Intent) -> bytes:
    """The 32 bytes that are signed: ``keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(intent))``."""
    return keccak256(b"\x19\x01" + domain.separator() + intent.struct_hash())


# --- eth_signTypedData_v4 JSON ---------------------------------------------------------------------


def _types_json(members: tuple[Member, ...]) -> list[dict[str, str]]:
    return [{"name": m.name, "type": m.sol_type} for m in members]


def _value_json(member: Member, value: Any) -> Any:
    # SPEC §2.1: uint256 base units travel as decimal strings (JSON numbers lose precision past
    # 2**53 in JavaScript); the small uint16 fields stay JSON ints, as the API's bps are.
    if member.sol_type == "uint256":
        return str(value)
    if member.sol_type == "bytes32":
        return "0x" + bytes(value).hex()
    return value


def typed_data(domain: Domain, intent: Intent) -> dict[str, Any]:
    """The intent as ``eth_signTypedData_v4`` JSON, signable unchanged by eth-account and cast.

    ``ExitRule`` is not listed in ``types``: no intent member references it, and tools that derive
    the primary type (eth-account) refuse a ``types`` map with an unreferenced struct.
    """
    return {
        "domain": domain.to_json(),
        "types": {
            "EIP712Domain": _types_json(_DOMAIN_MEMBERS),
            intent.PRIMARY_TYPE: _types_json(intent.MEMBERS),
        },
        "primaryType": intent.PRIMARY_TYPE,
        "message": {m.name: _value_json(m, getattr(intent, m.attr)) for m in intent.MEMBERS},
    }


def _parse_int(member: Member, raw: object) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    # Only plain ASCII decimal: Python's int() would also take " 7", "+7", "1_000" and Arabic-Indic
    # digits, and eth-account signs all of those, so two clients could disagree on what was signed.
    # Leading zeros are accepted: they cannot change the value that is hashed.
    pattern = _SIGNED if member.sol_type.startswith("int") else _UNSIGNED
    if isinstance(raw, str) and pattern.fullmatch(raw):
        return int(raw)
    raise TypedDataError(member.name, "type")


def _parse_member(member: Member, raw: object) -> Any:
    if _int_bounds(member.sol_type) is not None:
        return _parse_int(member, raw)
    if member.sol_type == "address":
        if not isinstance(raw, str) or not _ADDRESS.fullmatch(raw):
            raise TypedDataError(member.name, "type")
        # EIP-55: all-lower/all-upper carry no checksum; mixed case must be the right one.
        body = raw[2:]
        if body != body.lower() and body != body.upper() and not is_checksum_address(raw):
            raise TypedDataError(member.name, "checksum")
        return to_checksum_address(raw)
    if member.sol_type == "bytes32":
        # eth-account right-pads short hex and even hashes non-hex text; a bytes32 must be 32 bytes.
        if not isinstance(raw, str) or not _BYTES32.fullmatch(raw):
            raise TypedDataError(member.name, "length")
        return bytes.fromhex(raw[2:])
    raise TypeError(f"unsupported member type {member.sol_type}")  # pragma: no cover


def intent_from_message(primary_type: str, message: Mapping[str, object]) -> Intent:
    """Parse a v4 ``message`` back into its intent; uint fields may be ints or decimal strings.

    Missing and unexpected keys are both errors: an extra key is silently ignored by signers, so a
    client that put one there believes it signed something it did not.
    """
    cls = INTENT_TYPES.get(primary_type)
    if cls is None:
        raise TypedDataError("primaryType", "unknown")
    names = {m.name for m in cls.MEMBERS}
    for key in message:
        if key not in names:
            raise TypedDataError(str(key), "unexpected")
    kwargs: dict[str, Any] = {}
    for member in cls.MEMBERS:
        if member.name not in message:
            raise TypedDataError(member.name, "missing")
        kwargs[member.attr] = _parse_member(member, message[member.name])
    return cls(**kwargs)


def from_typed_data(data: Mapping[str, Any]) -> tuple[Domain, Intent]:
    """Parse a whole v4 document and check that it is *our* schema, not merely a valid one.

    A client that reorders members or renames a type still produces a well-formed document that
    signers accept, but it hashes differently from what the contract rebuilds.
    """
    if set(data) != {"domain", "types", "primaryType", "message"}:
        raise TypedDataError("typedData", "keys")
    primary_type = data["primaryType"]
    cls = INTENT_TYPES.get(primary_type) if isinstance(primary_type, str) else None
    if cls is None:
        raise TypedDataError("primaryType", "unknown")
    expected = {"EIP712Domain": _types_json(_DOMAIN_MEMBERS), cls.PRIMARY_TYPE: _types_json(cls.MEMBERS)}
    if data["types"] != expected:
        raise TypedDataError("types", "mismatch")
    raw_domain = data["domain"]
    if not isinstance(raw_domain, Mapping) or set(raw_domain) != {m.name for m in _DOMAIN_MEMBERS}:
        raise TypedDataError("domain", "keys")
    if raw_domain["name"] != DOMAIN_NAME:
        raise TypedDataError("name", "mismatch")
    if raw_domain["version"] != DOMAIN_VERSION:
        raise TypedDataError("version", "mismatch")
    chain_member, contract_member = _DOMAIN_MEMBERS[2:]
    domain = Domain(
        chain_id=_parse_member(chain_member, raw_domain["chainId"]),
        verifying_contract=_parse_member(contract_member, raw_domain["verifyingContract"]),
    )
    message = data["message"]
    if not isinstance(message, Mapping):
        raise TypedDataError("message", "type")
    return domain, intent_from_message(cls.PRIMARY_TYPE, message)


# --- signatures ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    """A 65-byte ``r‖s‖v`` signature that OpenZeppelin's ``ECDSA.tryRecover`` would try to recover.

    The checks run in the order OpenZeppelin applies them, so the reason matches its revert.
    """

    r: int
    s: int
    v: int

    def __post_init__(self) -> None:
        if self.s > _HALF_N:
            raise SignatureError("high_s")
        # OZ passes v to ecrecover unchanged, and the precompile only knows 27 and 28.
        if self.v not in (27, 28):
            raise SignatureError("v")
        if self.r == 0 or self.s == 0:
            raise SignatureError("zero")
        if self.r >= SECP256K1_N:
            raise SignatureError("r_range")

    def to_bytes(self) -> bytes:
        return self.r.to_bytes(32, "big") + self.s.to_bytes(32, "big") + bytes([self.v])

    def to_hex(self) -> str:
        return "0x" + self.to_bytes().hex()


def parse_signature(sig: bytes | str) -> Signature:
    """Accept exactly 65 bytes ``r‖s‖v`` (raw or 0x-hex), low ``s``, ``v`` ∈ {27, 28}."""
    if isinstance(sig, str):
        if not _HEX.fullmatch(sig):
            raise SignatureError("encoding")
        sig = bytes.fromhex(sig[2:])
    if len(sig) != 65:
        raise SignatureError("length")
    return Signature(r=int.from_bytes(sig[:32], "big"), s=int.from_bytes(sig[32:64], "big"), v=sig[64])


def recover_signer(digest: bytes, signature: bytes | str | Signature) -> ChecksumAddress:
    """The address that signed ``digest``, or ``SignatureError``; never the zero address."""
    if len(digest) != 32:
        raise ValueError("digest must be 32 bytes")
    sig = signature if isinstance(signature, Signature) else parse_signature(signature)
    compact = sig.r.to_bytes(32, "big") + sig.s.to_bytes(32, "big") + bytes([sig.v - 27])
    try:
        public_key = PublicKey.from_signature_and_message(compact, digest, hasher=None)
    except ValueError:
        # r is not the x-coordinate of a curve point: ecrecover returns 0 for these as well.
        raise SignatureError("unrecoverable") from None
    address = keccak256(public_key.format(compressed=False)[1:])[12:]
    if address == bytes(20):  # pragma: no cover - would need a keccak preimage of zero
        raise SignatureError("unrecoverable")
    return checksum(address)


@functools.lru_cache(maxsize=4096)
def checksum(address: str | bytes) -> ChecksumAddress:
    """EIP-55 form of an address, cached: it costs a keccak and a Python loop per call (as much as a
    third of a signature recovery), and the addresses the relayer meets (signers, vaults, tokens, its
    own keys) are few and recurring."""
    return to_checksum_address(address)
