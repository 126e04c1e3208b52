"""Rebuild the typed message an agent signed from its request body and its on-chain registration."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from relayer import eip712
from relayer.amounts import AmountError, parse_amount
from relayer.domain.ladder import ExitsFormatError, parse_exits
from relayer.errors import RelayerError, invalid_request
from relayer.intents.bodies import AddBody, LadderBody, OpenBody, ReduceBody, SubmitBody
from relayer.state import AgentInfo, ChainState, PositionInfo, TokenInfo

USDC_DECIMALS = 6
_SYMBOL = re.compile(r"[A-Z0-9.]{1,11}")
# Ids are plain ASCII decimals: int() would also take " 7", "+7", "1_0" and non-ASCII digits.
_ID = re.compile(r"[0-9]{1,78}", re.ASCII)


@dataclass(frozen=True)
class Built:
    """A request turned into exactly what the router will hash, plus what the checks need."""

    primary_type: str
    agent: AgentInfo
    intent: eip712.Intent
    exits: tuple[eip712.ExitRule, ...] | None
    token: TokenInfo
    position: PositionInfo | None
    signature: eip712.Signature | None
    usdc_amount: int = 0  # buys only: what the limits count

    def digest(self, domain: eip712.Domain) -> bytes:
        return eip712.digest(domain, self.intent)


def _id(raw: int | str) -> int | None:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    return int(raw) if isinstance(raw, str) and _ID.fullmatch(raw) else None


def agent_of(state: ChainState, agent_id: int | str) -> AgentInfo:
    key = _id(agent_id)
    if key is None:
        raise invalid_request(f"agent id {agent_id!r} is not an integer")
    agent = state.agents.get(key)
    if agent is None:
        raise RelayerError("agent_not_found", f"no agent {key}", {"agentId": str(key)})
    return agent


def token_of(state: ChainState, symbol: str) -> TokenInfo:
    if not _SYMBOL.fullmatch(symbol):
        raise invalid_request(f"{symbol!r} is not a symbol (1-11 of A-Z, 0-9, '.')", field="symbol")
    token = state.token_by_symbol(symbol)
    if token is None:
        raise RelayerError("symbol_not_found", f"no token with symbol {symbol}", {"symbol": symbol})
    return token


def position_of(state: ChainState, agent: AgentInfo, position_id: int | str) -> PositionInfo:
    key = _id(position_id)
    if key is None:
        raise invalid_request(f"position id {position_id!r} is not an integer", field="positionId")
    position = state.positions.get(key)
    if position is None or position.agent_id != agent.agent_id:
        raise RelayerError(
            "position_not_found", f"agent {agent.agent_id} has no position {key}", {"positionId": str(key)}
        )
    return position


def amount(text: str, decimals: int, field: str) -> int:
    try:
        return parse_amount(text, decimals)
    except AmountError as exc:
        raise invalid_request(f"{field}: {exc}", field=field, reason=exc.reason) from None


def exits_of(raw: Any) -> tuple[eip712.ExitRule, ...]:
    try:
        return tuple(parse_exits(raw))
    except ExitsFormatError as exc:
        raise invalid_request(str(exc), field=exc.path, reason=exc.reason) from None


def signature_of(raw: str) -> eip712.Signature:
    try:
        return eip712.parse_signature(raw)
    except eip712.SignatureError as exc:
        raise invalid_request(
            f"bad signature encoding: {exc.reason}", field="signature", reason=exc.reason
        ) from None


def _check_uint(value: int, field: str) -> int:
    if not 0 <= value < 2**256:
        raise invalid_request(f"{field} is out of range", field=field)
    return value


def build(body: SubmitBody, agent: AgentInfo, state: ChainState, *, signed: bool = True) -> Built:
    """Raises RelayerError (400/404) for anything that cannot be the signed struct."""
    signature = signature_of(body.signature) if signed else None
    deadline = _check_uint(body.deadline, "deadline")
    nonce = _check_uint(body.nonce, "nonce")
    vault = eip712.checksum(agent.vault)
    if isinstance(body, OpenBody):
        token = token_of(state, body.symbol)
        exits = exits_of(body.exits)
        usdc = amount(body.usdcAmount, USDC_DECIMALS, "usdcAmount")
        intent: eip712.Intent = eip712.OpenPosition(
            agent_id=agent.agent_id,
            vault=vault,
            token=eip712.checksum(token.address),
            usdc_amount=usdc,
            min_token_out=amount(body.minTokenOut, token.decimals, "minTokenOut"),
            max_slippage_bps=body.maxSlippageBps,
            exits_hash=eip712.exits_hash(exits),
            deadline=deadline,
            nonce=nonce,
        )
        return Built("OpenPosition", agent, intent, exits, token, None, signature, usdc)
    position = position_of(state, agent, body.positionId)
    token = state.tokens[position.token]
    if isinstance(body, AddBody):
        usdc = amount(body.usdcAmount, USDC_DECIMALS, "usdcAmount")
        intent = eip712.AddToPosition(
            agent_id=agent.agent_id,
            position_id=position.position_id,
            usdc_amount=usdc,
            min_token_out=amount(body.minTokenOut, token.decimals, "minTokenOut"),
            max_slippage_bps=body.maxSlippageBps,
            deadline=deadline,
            nonce=nonce,
        )
        return Built("AddToPosition", agent, intent, None, token, position, signature, usdc)
    if isinstance(body, ReduceBody):
        intent = eip712.ReducePosition(
            agent_id=agent.agent_id,
            position_id=position.position_id,
            token_amount=amount(body.tokenAmount, token.decimals, "tokenAmount"),
            min_usdc_out=amount(body.minUsdcOut, USDC_DECIMALS, "minUsdcOut"),
            max_slippage_bps=body.maxSlippageBps,
            deadline=deadline,
            nonce=nonce,
        )
        return Built("ReducePosition", agent, intent, None, token, position, signature)
    assert isinstance(body, LadderBody)
    exits = exits_of(body.exits)
    intent = eip712.UpdateExitLadder(
        agent_id=agent.agent_id,
        position_id=position.position_id,
        exits_hash=eip712.exits_hash(exits),
        deadline=deadline,
        nonce=nonce,
    )
    return Built("UpdateExitLadder", agent, intent, exits, token, position, signature)
