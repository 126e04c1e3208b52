"""Quotes (SPEC §2.3): the typed data to sign with the agent's next nonce (counting intents in flight),
its limits and exit bounds, the price, and the checks that can be made before signing. Served from the
in-memory state and one indexed query; no RPC call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from relayer import eip712
from relayer.amounts import format_amount
from relayer.domain import exits as exit_math
from relayer.domain.ladder import MAX_RULES, exits_to_json
from relayer.domain.limits import usage
from relayer.domain.track import Track
from relayer.errors import RelayerError, invalid_request
from relayer.intents import checks
from relayer.intents.build import USDC_DECIMALS, Built, agent_of, amount, exits_of, position_of, token_of
from relayer.intents.pipeline import IntentService
from relayer.numbers import NumberError, loads_strict, parse_uint
from relayer.state import AgentInfo, PositionInfo, TokenInfo

DEFAULT_SLIPPAGE_BPS = 100
DEFAULT_DEADLINE_S = 300
PRICE_DECIMALS = 8
BPS = 10_000
MAX_BOOKED_USDC = 2**64 - 1  # base units: the router's uint64 turnover and deployed figures


def default_ladder(track: Track) -> tuple[eip712.ExitRule, ...]:
    """A ladder the track accepts: a take-profit on half when one is required, then a full stop."""
    stop = eip712.ExitRule(eip712.TriggerType.STOP_LOSS, -min(1_000, track.max_stop_loss_bps), BPS)
    if not track.require_take_profit:
        return (stop,)
    tp_bps = min(max(2_000, track.min_take_profit_bps), track.max_take_profit_bps)
    return (eip712.ExitRule(eip712.TriggerType.TAKE_PROFIT, tp_bps, 5_000), stop)


def _int_param(params: Mapping[str, str], name: str, default: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        return parse_uint(raw, high=high)
    except NumberError:
        raise invalid_request(f"{name} must be an integer from 0 to {high}", field=name) from None


def _exits_param(
    params: Mapping[str, str], track: Track, defaulted: list[str]
) -> tuple[eip712.ExitRule, ...]:
    raw = params.get("exits")
    if raw is None:
        defaulted.append("exits")
        return default_ladder(track)
    try:
        decoded = loads_strict(raw)
    except ValueError as exc:  # JSONDecodeError, and UnicodeDecodeError's kin
        raise invalid_request(f"exits must be a URL-encoded JSON array ({exc})", field="exits") from None
    return exits_of(decoded)


def price_json(service: IntentService, token: TokenInfo, now: int) -> dict[str, Any]:
    p = service.state.prices.get(token.address)
    if p is None:
        return {"price": None, "updatedAt": None, "roundId": None, "stale": True}
    return {
        "price": format_amount(p.price, PRICE_DECIMALS),
        "updatedAt": p.updated_at,
        "roundId": p.round_id,
        "stale": now > p.updated_at + service.state.max_price_age_s,
    }


def bounds_json(track: Track) -> dict[str, Any]:
    return {
        "maxStopLossBps": track.max_stop_loss_bps,
        "minTakeProfitBps": track.min_take_profit_bps,
        "maxTakeProfitBps": track.max_take_profit_bps,
        "requireStopLoss": track.require_stop_loss,
        "requireTakeProfit": track.require_take_profit,
        "maxRules": MAX_RULES,
    }


def _resolve_position(service: IntentService, agent: AgentInfo, params: Mapping[str, str]) -> PositionInfo:
    if "positionId" in params:
        return position_of(service.state, agent, params["positionId"])
    symbol = params.get("symbol")
    if symbol is None:
        raise invalid_request("give positionId or symbol", field="positionId")
    token = token_of(service.state, symbol)
    position_id = service.state.open_positions.get((agent.agent_id, token.address))
    if position_id is None:
        raise RelayerError(
            "position_not_found",
            f"agent {agent.agent_id} has no open position in {symbol}",
            {"symbol": symbol},
        )
    return service.state.positions[position_id]


def quote(
    service: IntentService, agent_id: int | str, primary_type: str, params: Mapping[str, str]
) -> dict[str, Any]:
    now = service.chain_now()
    with service.sessions() as session, service.state.read():
        agent = agent_of(service.state, agent_id)
        ctx = service.context(session, agent, now)
        track_name, track = service.state.tracks[agent.track_id]
        defaulted: list[str] = []
        missing: list[str] = []
        slippage = _int_param(params, "maxSlippageBps", DEFAULT_SLIPPAGE_BPS, BPS)
        deadline = _int_param(params, "deadline", now + DEFAULT_DEADLINE_S, 2**256 - 1)
        position: PositionInfo | None = None
        exits: tuple[eip712.ExitRule, ...] | None = None
        usdc = 0
        if primary_type == "OpenPosition":
            token = token_of(service.state, params.get("symbol") or _missing("symbol"))
        else:
            position = _resolve_position(service, agent, params)
            token = service.state.tokens[position.token]
        price = service.state.prices.get(token.address)
        spread = service.state.spread_bps

        intent: eip712.Intent
        if primary_type in ("OpenPosition", "AddToPosition"):
            if "usdcAmount" in params:
                usdc = amount(params["usdcAmount"], USDC_DECIMALS, "usdcAmount")
                if usdc > MAX_BOOKED_USDC:
                    # The router books USDC in uint64 (AmountTooLarge past it): no such buy can pass,
                    # and its expected fill would not even fit the signed struct.
                    raise invalid_request(
                        f"usdcAmount is above the {format_amount(MAX_BOOKED_USDC, USDC_DECIMALS)} USDC "
                        "the router can book",
                        field="usdcAmount",
                        reason="too_large",
                    )
            else:
                missing.append("usdcAmount")
            expected = exit_math.venue_buy_out(usdc, price.price, spread, token.decimals) if price else 0
            min_out = _min_out(params, "minTokenOut", token.decimals, expected, slippage, defaulted)
            if primary_type == "OpenPosition":
                exits = _exits_param(params, track, defaulted)
                intent = eip712.OpenPosition(
                    agent.agent_id,
                    eip712.checksum(agent.vault),
                    eip712.checksum(token.address),
                    usdc,
                    min_out,
                    slippage,
                    eip712.exits_hash(exits),
                    deadline,
                    ctx.expected_nonce,
                )
            else:
                assert position is not None
                intent = eip712.AddToPosition(
                    agent.agent_id,
                    position.position_id,
                    usdc,
                    min_out,
                    slippage,
                    deadline,
                    ctx.expected_nonce,
                )
        elif primary_type == "ReducePosition":
            assert position is not None
            if "tokenAmount" in params:
                tokens = amount(params["tokenAmount"], token.decimals, "tokenAmount")
            else:
                tokens = position.size
                defaulted.append("tokenAmount")
            sold = min(tokens, position.size)
            expected = exit_math.venue_sell_out(sold, price.price, spread, token.decimals) if price else 0
            min_out = _min_out(params, "minUsdcOut", USDC_DECIMALS, expected, slippage, defaulted)
            intent = eip712.ReducePosition(
                agent.agent_id, position.position_id, tokens, min_out, slippage, deadline, ctx.expected_nonce
            )
        else:
            assert position is not None
            exits = _exits_param(params, track, defaulted)
            intent = eip712.UpdateExitLadder(
                agent.agent_id, position.position_id, eip712.exits_hash(exits), deadline, ctx.expected_nonce
            )
        built = Built(primary_type, agent, intent, exits, token, position, None, usdc)
        results = checks.run(built, ctx, checks.QUOTE_CHECKS)
        u = usage(ctx.book, track)
        out: dict[str, Any] = {
            "agentId": str(agent.agent_id),
            "symbol": token.symbol,
            "token": token.address,
            "vault": agent.vault,
            "nonce": ctx.expected_nonce,
            "price": price_json(service, token, now),
            "allocation": u.to_json(),
            "track": track_name,
            "exitBounds": bounds_json(track),
            "exitRuleType": eip712.EXIT_RULE_TYPE,
            "typedData": eip712.typed_data(service.domain, intent),
            "checks": [c.to_json() for c in results],
        }
        if position is not None:
            out["positionId"] = str(position.position_id)
            out["size"] = format_amount(position.size, token.decimals)
        if exits is not None:
            out["exits"] = exits_to_json(exits)
            out["exitsHash"] = "0x" + eip712.exits_hash(exits).hex()
        if defaulted:
            out["defaulted"] = defaulted
        if missing:
            out["missing"] = missing
        return out


def _missing(name: str) -> str:
    raise invalid_request(f"{name} is required", field=name)


def _min_out(
    params: Mapping[str, str], name: str, decimals: int, expected: int, slippage: int, defaulted: list[str]
) -> int:
    if name in params:
        return amount(params[name], decimals, name)
    defaulted.append(name)
    # The venue's expected output less the slippage allowance: a floor that a fair fill always clears.
    return expected * (BPS - slippage) // BPS
