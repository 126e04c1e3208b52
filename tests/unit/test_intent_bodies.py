"""Submit bodies case by case (SPEC §2.1, §2.3): the strict pydantic models of relayer/intents/bodies.py,
the pipeline's `parse_body`, and `build`, which turns a parsed body plus the agent's registration into
the struct the router hashes. Pure: a hand-made ChainState, no chain, no database."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from eth_utils.address import to_checksum_address

from relayer import eip712
from relayer.eip712 import SECP256K1_N
from relayer.errors import RelayerError
from relayer.intents.bodies import AddBody, LadderBody, OpenBody, ReduceBody
from relayer.intents.build import Built, agent_of, build
from relayer.intents.pipeline import parse_body
from relayer.state import AgentInfo, ChainState, PositionInfo, TokenInfo

KEY = "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba"
SIGNER = Account.from_key(KEY).address
VAULT = to_checksum_address("0xe7f1725e7734ce288f8367e1bb143e90bb3f0512")
NVDA = to_checksum_address("0x9fe46736679d2d9a65f0992f2272de9f3c7fa6e0")
AAPL = to_checksum_address("0xcf7ed3acca5a467e9e704c703e8d87f634fb0fc9")
DOMAIN = eip712.Domain(31337, to_checksum_address("0x5fbdb2315678afecb367f032d93f642f64180aa3"))
LADDER = [{"triggerType": "StopLoss", "triggerBps": -500, "exitBps": 10000}]


def _state() -> ChainState:
    state = ChainState()
    state.vaults[1] = VAULT
    state.agents[1] = AgentInfo(1, SIGNER, 1, VAULT, 1, 100_000 * 10**6, True)
    state.agents[2] = AgentInfo(2, SIGNER, 1, VAULT, 1, 25_000 * 10**6, True)
    for symbol, address in (("NVDA", NVDA), ("AAPL", AAPL)):
        state.tokens[address] = TokenInfo(symbol, address, 18)
        state.symbols[symbol] = address
    state.positions[1] = PositionInfo(1, 1, NVDA, 10**18, 100 * 10**6, "0x" + "00" * 32, (), 0, True, 0, "0x")
    state.positions[2] = PositionInfo(2, 2, AAPL, 10**18, 100 * 10**6, "0x" + "00" * 32, (), 0, True, 0, "0x")
    return state


STATE = _state()
VALID_SIG = "0x" + "11" * 32 + "22" * 32 + "1b"

BODIES: dict[str, dict[str, Any]] = {
    "OpenPosition": {
        "symbol": "NVDA",
        "usdcAmount": "100",
        "minTokenOut": "0",
        "maxSlippageBps": 100,
        "exits": LADDER,
        "deadline": 2_000_000_000,
        "nonce": 0,
        "signature": VALID_SIG,
    },
    "AddToPosition": {
        "positionId": "1",
        "usdcAmount": "100",
        "minTokenOut": "0.25",
        "maxSlippageBps": 100,
        "deadline": 2_000_000_000,
        "nonce": 1,
        "signature": VALID_SIG,
    },
    "ReducePosition": {
        "positionId": 1,
        "tokenAmount": "0.5",
        "minUsdcOut": "10.5",
        "maxSlippageBps": 100,
        "deadline": 2_000_000_000,
        "nonce": 2,
        "signature": VALID_SIG,
    },
    "UpdateExitLadder": {
        "positionId": "1",
        "exits": LADDER,
        "deadline": 2_000_000_000,
        "nonce": 3,
        "signature": VALID_SIG,
    },
}
TYPES = list(BODIES)
AMOUNT_FIELD = {"OpenPosition": "usdcAmount", "AddToPosition": "usdcAmount", "ReducePosition": "tokenAmount"}


def _with(primary_type: str, **changes: Any) -> dict[str, Any]:
    return {**BODIES[primary_type], **changes}


def _without(primary_type: str, name: str) -> dict[str, Any]:
    return {k: v for k, v in BODIES[primary_type].items() if k != name}


def _build(primary_type: str, raw: dict[str, Any], agent_id: int = 1) -> Built:
    return build(parse_body(primary_type, raw), agent_of(STATE, agent_id), STATE)


def _rejects(primary_type: str, raw: dict[str, Any], code: str = "invalid_request") -> RelayerError:
    with pytest.raises(RelayerError) as caught:
        _build(primary_type, raw)
    assert caught.value.code == code, caught.value.to_json()
    return caught.value


# ---------------------------------------------------------------------- what is accepted


def test_the_models_are_the_four_intents() -> None:
    assert {type(parse_body(t, BODIES[t])) for t in TYPES} == {OpenBody, AddBody, ReduceBody, LadderBody}


@pytest.mark.parametrize("primary_type", TYPES)
def test_a_valid_body_builds_the_struct_in_base_units(primary_type: str) -> None:
    b = _build(primary_type, BODIES[primary_type])
    assert b.primary_type == primary_type == b.intent.PRIMARY_TYPE
    assert b.intent.agent_id == 1 and b.intent.deadline == 2_000_000_000
    assert b.signature is not None and b.signature.to_hex() == VALID_SIG
    intent = b.intent
    if isinstance(intent, eip712.OpenPosition):
        assert (intent.vault, intent.token, intent.usdc_amount) == (VAULT, NVDA, 100 * 10**6)
        assert b.usdc_amount == 100 * 10**6
        assert intent.exits_hash == eip712.exits_hash(
            [eip712.ExitRule(eip712.TriggerType.STOP_LOSS, -500, 10000)]
        )
    elif isinstance(intent, eip712.AddToPosition):
        assert (intent.position_id, intent.usdc_amount, intent.min_token_out) == (1, 100 * 10**6, 25 * 10**16)
    elif isinstance(intent, eip712.ReducePosition):
        assert (intent.token_amount, intent.min_usdc_out) == (5 * 10**17, 10_500_000)
        assert b.usdc_amount == 0  # a reduce is not a buy: the limits do not count it
    else:
        assert b.exits is not None and len(b.exits) == 1


def test_ids_may_be_strings_or_integers_and_uints_reach_2_256_minus_1() -> None:
    assert (
        _build("AddToPosition", _with("AddToPosition", positionId=1)).intent
        == _build("AddToPosition", _with("AddToPosition", positionId="1")).intent
    )
    b = _build("UpdateExitLadder", _with("UpdateExitLadder", nonce=2**256 - 1, deadline=2**256 - 1))
    assert b.intent.nonce == b.intent.deadline == 2**256 - 1


def test_an_unsigned_build_is_for_quotes_and_verify_only() -> None:
    b = build(
        parse_body("OpenPosition", _with("OpenPosition", signature="")), STATE.agents[1], STATE, signed=False
    )
    assert b.signature is None


# ---------------------------------------------------------------------- the JSON shape


@pytest.mark.parametrize("primary_type", TYPES)
def test_unknown_and_missing_fields_are_rejected(primary_type: str) -> None:
    for raw, field in [
        (_with(primary_type, extra=1), "extra"),
        (_with(primary_type, agentId="1"), "agentId"),  # the path carries it
        (_with(primary_type, token=NVDA), "token"),
        *[(_without(primary_type, name), name) for name in BODIES[primary_type]],
    ]:
        with pytest.raises(RelayerError) as caught:
            parse_body(primary_type, raw)
        assert caught.value.code == "invalid_request"
        assert caught.value.details["field"] == field, (field, caught.value.to_json())


@pytest.mark.parametrize("primary_type", TYPES)
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("nonce", True),
        ("nonce", 1.0),
        ("nonce", "1"),
        ("nonce", -1),
        ("nonce", 2**256),
        ("nonce", None),
        ("deadline", False),
        ("deadline", 2e9),
        ("deadline", "2000000000"),
        ("deadline", 2**256),
        ("signature", 123),
        ("signature", "0x" + "ab" * 200),
        ("signature", None),
    ],
)
def test_json_types_are_strict(primary_type: str, field: str, value: Any) -> None:
    with pytest.raises(RelayerError) as caught:
        parse_body(primary_type, _with(primary_type, **{field: value}))
    assert caught.value.code == "invalid_request" and caught.value.details["field"] == field


@pytest.mark.parametrize("primary_type", ["OpenPosition", "AddToPosition", "ReducePosition"])
@pytest.mark.parametrize("value", [True, 100, -1, 65_536, 1.5, "100"])
def test_max_slippage_bps_is_a_uint16_json_integer(primary_type: str, value: Any) -> None:
    if value == 100:
        assert _build(primary_type, _with(primary_type, maxSlippageBps=value)).intent.max_slippage_bps == 100
        return
    with pytest.raises(RelayerError) as caught:
        parse_body(primary_type, _with(primary_type, maxSlippageBps=value))
    assert caught.value.details["field"] == "maxSlippageBps"


@pytest.mark.parametrize("primary_type", ["AddToPosition", "ReducePosition", "UpdateExitLadder"])
def test_position_id_is_an_integer_or_its_decimal_string(primary_type: str) -> None:
    for bad in (True, 1.0, None, [1]):
        with pytest.raises(RelayerError):
            parse_body(primary_type, _with(primary_type, positionId=bad))
    for bad in ("abc", "", "0x1", "1.0", " 1", "1_0", "+1", "\u0661"):
        error = _rejects(primary_type, _with(primary_type, positionId=bad))
        assert error.details["field"] == "positionId", bad


def test_an_unknown_position_or_another_agents_position_is_not_found() -> None:
    for position_id in ("99", 2):
        error = _rejects(
            "AddToPosition", _with("AddToPosition", positionId=position_id), "position_not_found"
        )
        assert error.details == {"positionId": str(position_id)}


def test_agent_ids_are_decimal_integers() -> None:
    assert agent_of(STATE, "1").agent_id == 1
    with pytest.raises(RelayerError) as caught:
        agent_of(STATE, "7")
    assert caught.value.code == "agent_not_found" and caught.value.status == 404
    for bad in ("x", "1_0", " 1", "\u0661", "1.0"):
        with pytest.raises(RelayerError) as caught:
            agent_of(STATE, bad)
        assert caught.value.code == "invalid_request", bad


# ---------------------------------------------------------------------- amounts


@pytest.mark.parametrize("primary_type", ["OpenPosition", "AddToPosition", "ReducePosition"])
@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("-1", "sign"),
        ("+1", "sign"),
        ("1e6", "syntax"),
        ("1,5", "syntax"),
        (" 1", "syntax"),
        (".5", "syntax"),
        ("", "empty"),
        ("01", "leading_zero"),
        (str(2**256), "too_large"),
        ("\u0661", "syntax"),
    ],
)
def test_bad_amounts_are_invalid_requests_naming_the_field(primary_type: str, text: str, reason: str) -> None:
    field = AMOUNT_FIELD[primary_type]
    if text == "":  # caught by the model (min_length) before the amount parser
        with pytest.raises(RelayerError) as caught:
            parse_body(primary_type, _with(primary_type, **{field: text}))
        assert caught.value.details["field"] == field
        return
    error = _rejects(primary_type, _with(primary_type, **{field: text}))
    assert error.details == {"field": field, "reason": reason}


@pytest.mark.parametrize("primary_type", ["OpenPosition", "AddToPosition"])
def test_usdc_has_six_decimals_and_tokens_eighteen(primary_type: str) -> None:
    assert _build(primary_type, _with(primary_type, usdcAmount="1.000001")).usdc_amount == 1_000_001
    error = _rejects(primary_type, _with(primary_type, usdcAmount="1.0000001"))
    assert error.details == {"field": "usdcAmount", "reason": "too_many_decimals"}
    assert (
        _build(primary_type, _with(primary_type, minTokenOut="0." + "0" * 17 + "1")).intent.min_token_out == 1
    )
    error = _rejects(primary_type, _with(primary_type, minTokenOut="0." + "0" * 18 + "1"))
    assert error.details == {"field": "minTokenOut", "reason": "too_many_decimals"}


def test_reduce_amounts_use_the_positions_token_decimals_and_usdc_for_the_floor() -> None:
    error = _rejects("ReducePosition", _with("ReducePosition", minUsdcOut="0.0000001"))
    assert error.details == {"field": "minUsdcOut", "reason": "too_many_decimals"}
    error = _rejects("ReducePosition", _with("ReducePosition", tokenAmount="1." + "0" * 19))
    assert error.details == {"field": "tokenAmount", "reason": "too_many_decimals"}


@pytest.mark.parametrize("primary_type", ["OpenPosition", "AddToPosition", "ReducePosition"])
def test_amounts_are_json_strings_not_numbers(primary_type: str) -> None:
    field = AMOUNT_FIELD[primary_type]
    for value in (100, 100.0, True, None):
        with pytest.raises(RelayerError) as caught:
            parse_body(primary_type, _with(primary_type, **{field: value}))
        assert caught.value.details["field"] == field


@pytest.mark.parametrize("primary_type", ["OpenPosition", "AddToPosition", "ReducePosition"])
def test_a_zero_amount_parses_and_is_left_to_the_amount_check(primary_type: str) -> None:
    # "0" is a well-formed amount; `checks._amounts` refuses it (the router's ZeroAmount).
    b = _build(primary_type, _with(primary_type, **{AMOUNT_FIELD[primary_type]: "0"}))
    assert (
        b.intent.token_amount if isinstance(b.intent, eip712.ReducePosition) else b.intent.usdc_amount
    ) == 0


# ---------------------------------------------------------------------- symbols and exits


def test_symbols_are_validated_before_lookup() -> None:
    for bad in ("nvda", "NV DA", "", "ABCDEFGHIJKL", "NVDA\n"):
        assert _rejects("OpenPosition", _with("OpenPosition", symbol=bad)).details["field"] == "symbol"
    error = _rejects("OpenPosition", _with("OpenPosition", symbol="ZZZZ"), "symbol_not_found")
    assert error.details == {"symbol": "ZZZZ"}


@pytest.mark.parametrize("primary_type", ["OpenPosition", "UpdateExitLadder"])
@pytest.mark.parametrize(
    ("exits", "field", "reason"),
    [
        ({"triggerType": "StopLoss"}, "exits", "type"),
        ([1], "exits[0]", "type"),
        ([{"triggerType": "Stop", "triggerBps": -1, "exitBps": 1}], "exits[0].triggerType", "unknown"),
        ([{"triggerType": 0, "triggerBps": -1, "exitBps": 1}], "exits[0].triggerType", "type"),
        ([{"triggerType": "StopLoss", "triggerBps": "-1", "exitBps": 1}], "exits[0].triggerBps", "type"),
        ([{"triggerType": "StopLoss", "triggerBps": -1.0, "exitBps": 1}], "exits[0].triggerBps", "type"),
        ([{"triggerType": "StopLoss", "triggerBps": -1, "exitBps": True}], "exits[0].exitBps", "type"),
        (
            [{"triggerType": "StopLoss", "triggerBps": -(2**31) - 1, "exitBps": 1}],
            "exits[0].triggerBps",
            "range",
        ),
        ([{"triggerType": "StopLoss", "triggerBps": -1, "exitBps": 65_536}], "exits[0].exitBps", "range"),
        ([{"triggerType": "StopLoss", "triggerBps": -1}], "exits[0].exitBps", "missing"),
        ([{"triggerType": "StopLoss", "triggerBps": -1, "exitBps": 1, "x": 0}], "exits[0].x", "unexpected"),
    ],
)
def test_malformed_exits_are_invalid_requests(primary_type: str, exits: Any, field: str, reason: str) -> None:
    if not isinstance(exits, list):  # the model wants a list before the ladder parser sees it
        with pytest.raises(RelayerError) as caught:
            parse_body(primary_type, _with(primary_type, exits=exits))
        assert caught.value.details["field"] == "exits"
        return
    error = _rejects(primary_type, _with(primary_type, exits=exits))
    assert error.details == {"field": field, "reason": reason}


def test_a_well_formed_but_invalid_ladder_still_builds() -> None:
    # 0 or 9 rules, a stop beyond the track: the ladder check (422) judges those, not the parser (400).
    for exits in ([], LADDER * 9, [{"triggerType": "StopLoss", "triggerBps": -9000, "exitBps": 10000}]):
        b = _build("UpdateExitLadder", _with("UpdateExitLadder", exits=exits))
        assert b.exits is not None and len(b.exits) == len(exits)


# ---------------------------------------------------------------------- signatures


def _good_signature() -> tuple[Built, bytes]:
    b = _build("OpenPosition", BODIES["OpenPosition"])
    digest = b.digest(DOMAIN)
    signed = Account.unsafe_sign_hash(digest, KEY)
    return b, bytes(signed.signature)


def _hex(raw: bytes) -> str:
    return "0x" + raw.hex()


def test_a_real_signature_recovers_to_its_signer() -> None:
    b, sig = _good_signature()
    built = _build("OpenPosition", _with("OpenPosition", signature=_hex(sig)))
    assert built.signature is not None
    assert eip712.recover_signer(b.digest(DOMAIN), built.signature) == SIGNER


@pytest.mark.parametrize("primary_type", TYPES)
def test_bad_signature_encodings_are_invalid_requests(primary_type: str) -> None:
    _b, sig = _good_signature()
    r, s, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    high_s = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])  # the malleated twin
    cases = {
        "length": [_hex(sig[:64]), _hex(sig + b"\x00"), "0x", _hex(sig[:64] + b"\x1b\x00")],
        "v": [_hex(sig[:64] + bytes([v - 27])), _hex(sig[:64] + bytes([0])), _hex(sig[:64] + bytes([1]))],
        "high_s": [_hex(high_s)],
        "encoding": ["0x" + "zz" * 65, sig.hex(), "0x" + sig.hex()[:-1], "0X" + sig.hex()],
        "zero": ["0x" + "00" * 64 + "1b"],
    }
    for reason, signatures in cases.items():
        for signature in signatures:
            error = _rejects(primary_type, _with(primary_type, signature=signature))
            assert error.details == {"field": "signature", "reason": reason}, (signature, error.to_json())
