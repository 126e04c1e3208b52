"""JSON views of agents and positions for the API: human units, ids as strings (SPEC §2.1–2.2)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any

from relayer.amounts import format_amount
from relayer.domain import exits as exit_math
from relayer.domain.calendar import ExchangeCalendar
from relayer.domain.ladder import exits_to_json
from relayer.domain.limits import AgentBook, usage
from relayer.domain.market import MarketStatus
from relayer.state import AgentInfo, ChainState, PositionInfo
from relayer.store.models import KeeperAudit, PositionEvent

USDC = 6
PRICE = 8


def usd(base: int) -> str:
    return format_amount(base, USDC)


def _price(value: int) -> str:
    return format_amount(value, PRICE)


def market_json(state: ChainState, token: str, now: int, calendar: ExchangeCalendar | None) -> dict[str, Any]:
    """A token's market (SPEC §5.6), additive to its price: ``marketStatus`` (the oracle's),
    ``nextOpen`` (unix s: the calendar's next regular open while the market is not Regular; null when
    Regular, Halted — a halt ends when it ends — or without a calendar), ``multiplier`` (in force, the
    next one and its ``effectiveAt`` while pending, the epoch) and ``sharePrice`` (as quoted)."""
    status = state.status_of(token)
    next_open: int | None = None
    if calendar is not None and status not in (MarketStatus.REGULAR, MarketStatus.HALTED):
        opens = calendar.next_open(datetime.fromtimestamp(now, UTC))
        next_open = int(opens.timestamp()) if opens is not None else None
    share = state.share_prices.get(token)
    return {
        "marketStatus": status.label,
        "nextOpen": next_open,
        "multiplier": state.schedule_of(token).to_json(now),
        "sharePrice": _price(share.share_price) if share is not None else None,
    }


def agent_json(state: ChainState, agent: AgentInfo, now: int, next_nonce: int) -> dict[str, Any]:
    track_name, track = state.tracks[agent.track_id]
    c = state.counters_on(agent.agent_id, now)
    book = AgentBook(agent.allocation, c.deployed, c.turnover_today, c.realized_pnl_today)
    u = usage(book, track)
    return {
        "agentId": str(agent.agent_id),
        "signer": agent.signer,
        "vaultId": agent.vault_id,
        "vault": agent.vault,
        "active": agent.active,
        "track": {"id": agent.track_id, "name": track_name, "limits": track.to_json()},
        "allocation": usd(agent.allocation),
        "deployed": usd(c.deployed),
        "headroom": usd(u.headroom),
        "turnoverToday": usd(c.turnover_today),
        "realizedPnlToday": usd(c.realized_pnl_today),
        "limits": u.to_json(),
        "nextNonce": next_nonce,
    }


def position_json(state: ChainState, p: PositionInfo) -> dict[str, Any]:
    token = state.tokens[p.token]
    dec = token.decimals
    price = state.prices.get(p.token)
    entry = (
        Decimal(p.cost_basis) / Decimal(10**USDC) / (Decimal(p.size) / Decimal(10**dec)) if p.size else None
    )
    out: dict[str, Any] = {
        "id": str(p.position_id),
        "agentId": str(p.agent_id),
        "status": "open" if p.open else "closed",
        "symbol": token.symbol,
        "token": token.address,
        "size": format_amount(p.size, dec),
        "costBasis": usd(p.cost_basis),
        "entryPrice": str(entry.quantize(Decimal("0.000001"), rounding=ROUND_DOWN))
        if entry is not None
        else None,
        "openedAt": p.opened_at,
        "openTx": p.open_tx,
        "closedAt": p.closed_at,
        "closeTx": p.close_tx,
        "currentPrice": _price(price.price) if price else None,
        "realizedPnl": usd(p.realized_pnl),
        "exitsHash": p.exits_hash,
    }
    if price is not None and p.open:
        value = exit_math.position_value(p.size, price.price, dec)
        out["value"] = usd(value)
        out["unrealizedPnl"] = usd(value - p.cost_basis)
    else:
        out["value"] = "0"
        out["unrealizedPnl"] = "0"
    ladder = []
    for i, (rule, raw) in enumerate(zip(p.rules, exits_to_json(p.rules), strict=True)):
        threshold = exit_math.display_trigger_price(rule, p.size, p.cost_basis, dec) if p.size else None
        ladder.append(
            {
                **raw,
                "index": i,
                "fired": bool(p.fired_mask >> i & 1),
                "triggerPrice": str(threshold.quantize(Decimal("0.000001"), rounding=ROUND_DOWN))
                if threshold
                else None,
            }
        )
    out["ladder"] = ladder
    return out


def history_json(state: ChainState, p: PositionInfo, e: PositionEvent) -> dict[str, Any]:
    dec = state.tokens[p.token].decimals
    d = e.data
    out: dict[str, Any] = {
        "kind": e.kind,
        "blockNumber": e.block_number,
        "timestamp": e.block_timestamp,
        "transactionHash": e.tx_hash,
    }
    if e.kind in ("opened", "increased"):
        out.update(
            usdc=usd(d["usdcIn"]),
            tokens=format_amount(d["tokensOut"], dec),
            oraclePrice=_price(d["oraclePrice"]),
        )
    elif e.kind == "reduced":
        out.update(
            usdc=usd(d["usdcOut"]),
            tokens=format_amount(d["tokensIn"], dec),
            oraclePrice=_price(d["oraclePrice"]),
            realizedPnl=usd(d["realizedPnl"]),
        )
    elif e.kind == "exit":
        f = d["fill"]
        out.update(
            ruleIndex=f["ruleIndex"],
            usdc=usd(f["usdcOut"]),
            tokens=format_amount(f["tokensIn"], dec),
            oraclePrice=_price(f["oraclePrice"]),
            oracleRoundId=f["oracleRoundId"],
            realizedPnl=usd(f["realizedPnl"]),
        )
    elif e.kind == "ladder":
        out.update(
            exitsHash=d["exitsHash"],
            rules=[
                {
                    "triggerType": "StopLoss" if r["triggerType"] == 0 else "TakeProfit",
                    "triggerBps": r["triggerBps"],
                    "exitBps": r["exitBps"],
                }
                for r in d["rules"]
            ],
        )
    return out


def audit_json(a: KeeperAudit) -> dict[str, Any]:
    return {
        "ruleIndex": a.rule_index,
        "oraclePrice": _price(a.price),
        "roundId": a.round_id,
        "triggered": a.triggered,
        "action": a.action,
        "outcome": a.outcome,
        "transactionHash": a.tx_hash,
        "at": a.at.isoformat(),
    }
