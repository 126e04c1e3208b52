"""`alphagrid positions AGENT_ID`: what an agent holds, with its exit ladder, read from the chain alone.

The agent's `PositionOpened` logs name its positions; `TradeRouter.position(id)` gives each one's
size, cost basis, ladder hash and fired mask; the latest `ExitLadderSet` log gives the ladder's rules;
`PositionReduced` and `ExitExecuted` give realized PnL. The figures use the contracts' own integer
arithmetic (below, pure and tested), so a rule shown as triggered is one `executeExit` would fire.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from web3.exceptions import ContractCustomError, ContractLogicError

from relayer.amounts import format_amount
from relayer.chain.admin import PRICE_DECIMALS, USDC_DECIMALS
from relayer.cli.output import JsonOption, Output, table
from relayer.cli.session import Deployment, Session

BPS = 10_000
STOP_LOSS = 0
TRIGGER_TYPES = {0: "StopLoss", 1: "TakeProfit"}


class Status(StrEnum):
    open = "open"
    closed = "closed"
    all = "all"


# ------------------------------------------------------------------------------- pure arithmetic


def _scale(token_decimals: int) -> int:
    """size (token units) · price (8 decimals) / scale = USDC base units (6 decimals), as the router."""
    scale: int = 10 ** (token_decimals + PRICE_DECIMALS - USDC_DECIMALS)
    return scale


def value_usdc(size: int, price_base: int, token_decimals: int) -> int:
    """The position's value at ``price_base``, rounded down to USDC base units (TradeRouter)."""
    return size * price_base // _scale(token_decimals)


def entry_price(cost_basis: int, size: int, token_decimals: int) -> int | None:
    """costBasis / size as an oracle price (8 decimals, rounded down); None for an empty position."""
    if size == 0:
        return None
    return cost_basis * _scale(token_decimals) // size


def trigger_price(entry_price_base: int, trigger_bps: int) -> int:
    """SPEC §3: entryPrice · (10⁴ + triggerBps) / 10⁴."""
    return max(0, entry_price_base * (BPS + trigger_bps) // BPS)


def is_triggered(trigger_type: int, trigger_bps: int, value: int, cost_basis: int) -> bool:
    """ExitLadder.isTriggered, exactly: no intermediate rounding of pnlBps."""
    threshold = cost_basis * max(0, BPS + trigger_bps)
    scaled = value * BPS
    return scaled <= threshold if trigger_type == STOP_LOSS else scaled >= threshold


def pnl_bps(value: int, cost_basis: int) -> int | None:
    if cost_basis == 0:
        return None
    diff = (value - cost_basis) * BPS
    return diff // cost_basis if diff >= 0 else -((-diff) // cost_basis)


@dataclass(frozen=True)
class Rule:
    trigger_type: int
    trigger_bps: int
    exit_bps: int


def ladder_json(
    rules: Sequence[Rule], fired_mask: int, *, entry: int | None, value: int | None, cost_basis: int
) -> list[dict[str, Any]]:
    out = []
    for i, r in enumerate(rules):
        fired = bool(fired_mask >> i & 1)
        out.append(
            {
                "index": i,
                "triggerType": TRIGGER_TYPES.get(r.trigger_type, str(r.trigger_type)),
                "triggerBps": r.trigger_bps,
                "exitBps": r.exit_bps,
                "triggerPrice": format_amount(trigger_price(entry, r.trigger_bps), PRICE_DECIMALS)
                if entry is not None
                else None,
                "fired": fired,
                "triggered": (
                    not fired
                    and value is not None
                    and cost_basis > 0
                    and is_triggered(r.trigger_type, r.trigger_bps, value, cost_basis)
                ),
            }
        )
    return out


# ------------------------------------------------------------------------------- chain reads


def _order(log: Any) -> tuple[int, int]:
    return int(log["blockNumber"]), int(log["logIndex"])


def _logs(dep: Deployment, event: str, agent_id: int) -> list[Any]:
    contract_event = dep.admin.router.events[event]()
    logs = contract_event.get_logs(
        argument_filters={"agentId": agent_id}, from_block=dep.manifest.start_block
    )
    return sorted(logs, key=_order)


def read_positions(dep: Deployment, agent_id: int, status: Status) -> list[dict[str, Any]]:
    dep.agent(agent_id)
    admin = dep.admin
    router = admin.router
    opened = _logs(dep, "PositionOpened", agent_id)
    ladders: dict[int, Any] = {}
    for log in _logs(dep, "ExitLadderSet", agent_id):
        ladders[int(log["args"]["positionId"])] = log
    realized: dict[int, int] = defaultdict(int)
    for log in _logs(dep, "PositionReduced", agent_id):
        realized[int(log["args"]["positionId"])] += int(log["args"]["realizedPnl"])
    # A closed position's stored fired mask is gone; its exits since the last ladder say which fired.
    fired_by_logs: dict[int, int] = defaultdict(int)
    for log in _logs(dep, "ExitExecuted", agent_id):
        position_id = int(log["args"]["positionId"])
        realized[position_id] += int(log["args"]["fill"]["realizedPnl"])
        ladder_log = ladders.get(position_id)
        if ladder_log is None or _order(log) > _order(ladder_log):
            fired_by_logs[position_id] |= 1 << int(log["args"]["fill"]["ruleIndex"])

    symbols: dict[str, str] = {}
    decimals: dict[str, int] = {}
    prices: dict[str, int | None] = {}
    out = []
    for log in opened:
        position_id = int(log["args"]["positionId"])
        _, _, token, is_open, size, cost_basis, exits_hash, _rule_count, fired_mask = (
            router.functions.position(position_id).call()
        )
        if (status is Status.open and not is_open) or (status is Status.closed and is_open):
            continue
        if token not in symbols:
            symbols[token] = str(admin.tokens.functions.symbolOf(token).call())
            decimals[token] = dep.token_decimals(token)
            try:
                prices[token] = int(admin.oracle.functions.latestPrice(token).call()[0])
            except (ContractCustomError, ContractLogicError):
                prices[token] = None
        dec, price = decimals[token], prices[token]
        size, cost_basis = int(size), int(cost_basis)
        entry = entry_price(cost_basis, size, dec)
        value = value_usdc(size, price, dec) if price is not None else None
        ladder = ladders.get(position_id)
        rules = [
            Rule(int(r["triggerType"]), int(r["triggerBps"]), int(r["exitBps"]))
            for r in (ladder["args"]["rules"] if ladder is not None else [])
        ]
        fired = int(fired_mask) if is_open else fired_by_logs[position_id]
        block = dep.w3.eth.get_block(log["blockNumber"])
        out.append(
            {
                "id": position_id,
                "status": "open" if is_open else "closed",
                "symbol": symbols[token],
                "token": token,
                "size": format_amount(size, dec),
                "costBasis": format_amount(cost_basis, USDC_DECIMALS),
                "entryPrice": format_amount(entry, PRICE_DECIMALS) if entry is not None else None,
                "price": format_amount(price, PRICE_DECIMALS) if price is not None else None,
                "value": format_amount(value, USDC_DECIMALS) if value is not None else None,
                "unrealizedPnl": format_amount(value - cost_basis, USDC_DECIMALS)
                if value is not None
                else None,
                "pnlBps": pnl_bps(value, cost_basis) if value is not None else None,
                "realizedPnl": format_amount(realized[position_id], USDC_DECIMALS),
                "openedAt": int(block["timestamp"]),
                "openedBlock": int(log["blockNumber"]),
                "openTx": "0x" + bytes(log["transactionHash"]).hex(),
                "exitsHash": "0x" + bytes(exits_hash).hex(),
                "ladder": ladder_json(
                    rules,
                    fired,
                    entry=entry,
                    value=value if is_open else None,
                    cost_basis=cost_basis,
                ),
            }
        )
    return out


def _ladder_text(ladder: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for r in ladder:
        mark = " fired" if r["fired"] else " TRIGGERED" if r["triggered"] else ""
        kind = "SL" if r["triggerType"] == "StopLoss" else "TP"
        at = f" @{r['triggerPrice']}" if r["triggerPrice"] else ""
        parts.append(f"{kind} {r['triggerBps']:+d}bps{at} sell {r['exitBps'] / 100:g}%{mark}")
    return "\n".join(parts) or "-"


def positions(
    agent_id: Annotated[int, typer.Argument(min=1, metavar="AGENT_ID", help="The agent's id.")],
    status: Annotated[Status, typer.Option("--status", help="Which positions.")] = Status.open,
    as_json: JsonOption = False,
) -> None:
    """An agent's positions: size, cost basis, entry and current price, PnL and the exit ladder."""
    out = Output(as_json)
    dep = Session.load().deployment(signs="nothing")
    rows = read_positions(dep, agent_id, status)
    doc = {"agentId": agent_id, "status": status.value, "positions": rows}

    def render(console: Console) -> None:
        if not rows:
            which = "" if status is Status.all else f"{status.value} "
            console.print(f"Agent {agent_id} has no {which}positions.")
            return
        console.print(
            table(
                f"Agent {agent_id} positions ({status.value})",
                [
                    "id",
                    "status",
                    "symbol",
                    "size",
                    "cost basis",
                    "entry",
                    "price",
                    "unrealized PnL",
                    "realized PnL",
                    "ladder (trigger price, USD)",
                ],
                [
                    [
                        p["id"],
                        p["status"],
                        p["symbol"],
                        p["size"],
                        p["costBasis"],
                        p["entryPrice"] or "-",
                        p["price"] or "-",
                        f"{p['unrealizedPnl']} ({p['pnlBps']:+d} bps)"
                        if p["pnlBps"] is not None
                        else p["unrealizedPnl"] or "-",
                        p["realizedPnl"],
                        _ladder_text(p["ladder"]),
                    ]
                    for p in rows
                ],
            )
        )

    out.emit(doc, render)
