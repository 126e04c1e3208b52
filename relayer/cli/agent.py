"""`alphagrid agent register | set-track | set-allocation | activate | deactivate | show | clear-strikes`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from relayer.amounts import format_amount
from relayer.chain.admin import USDC_DECIMALS
from relayer.cli import inputs
from relayer.cli.output import JsonOption, Output, fields
from relayer.cli.session import Deployment, Session
from relayer.cli.views import track_json

if TYPE_CHECKING:
    from relayer.config import Settings

agent_app = typer.Typer(
    help="Agents: register them and change their track, allocation and status.", no_args_is_help=True
)

AgentId = Annotated[int, typer.Argument(min=1, metavar="AGENT_ID", help="The agent's id (AgentRegistry).")]
BPS = 10_000


def _usdc(base: int) -> str:
    return format_amount(base, USDC_DECIMALS)


def agent_json(dep: Deployment, agent_id: int) -> dict[str, Any]:
    """Registration (AgentRegistry.agentConfig) and counters (TradeRouter.agentState) of one agent."""
    signer, vault, vault_id, track_id, allocation, active, limits = dep.agent(agent_id)
    track_name = str(dep.admin.agents.functions.track(track_id).call()[0])
    next_nonce, deployed, day, turnover, pnl = dep.admin.router.functions.agentState(agent_id).call()
    track = track_json(int(track_id), track_name, tuple(limits))
    allocation = int(allocation)
    return {
        "agentId": agent_id,
        "signer": signer,
        "vaultId": int(vault_id),
        "vault": vault,
        "track": track,
        "active": bool(active),
        "allocation": _usdc(allocation),
        "deployed": _usdc(int(deployed)),
        "headroom": _usdc(max(0, allocation - int(deployed))),
        "maxTradeSize": _usdc(allocation * track["maxTradeSizeBps"] // BPS),
        "day": datetime.fromtimestamp(int(day) * 86_400, UTC).date().isoformat(),
        "turnoverToday": _usdc(int(turnover)),
        "maxDailyTurnover": _usdc(allocation * track["maxDailyTurnoverBps"] // BPS),
        "realizedPnlToday": _usdc(int(pnl)),
        "maxDailyLoss": _usdc(allocation * track["maxDailyLossBps"] // BPS),
        "nonce": int(next_nonce),
    }


def _render(title: str, doc: dict[str, Any]) -> Any:
    def render(console: Console) -> None:
        console.print(
            fields(
                title,
                [
                    ("agent", doc["agentId"]),
                    ("signer", doc["signer"]),
                    ("vault", f"{doc['vaultId']} ({doc['vault']})"),
                    ("track", doc["track"]["name"]),
                    ("active", "yes" if doc["active"] else "NO"),
                    ("allocation", f"{doc['allocation']} USDC"),
                    ("deployed", f"{doc['deployed']} USDC (headroom {doc['headroom']})"),
                    ("max trade", f"{doc['maxTradeSize']} USDC"),
                    (f"turnover {doc['day']}", f"{doc['turnoverToday']} of {doc['maxDailyTurnover']} USDC"),
                    (
                        f"realized PnL {doc['day']}",
                        f"{doc['realizedPnlToday']} USDC (loss limit {doc['maxDailyLoss']})",
                    ),
                    ("next nonce", doc["nonce"]),
                    *_status_fields(doc),
                ],
            )
        )

    return render


def _status_fields(doc: dict[str, Any]) -> list[tuple[str, Any]]:
    status = doc.get("relayerStatus")
    if "relayerStatus" not in doc:
        return []
    if status is None:
        return [("relayer", "in good standing")]
    return [("relayer", f"{status['status'].upper()} until {status['until']}: {status['reason']}")]


def relayer_status(settings: Settings, agent_id: int) -> dict[str, Any] | None:
    """Whether the relayer throttles or suspends the agent (its database's strikes); None when in good
    standing or when there is no relayer database yet."""
    from sqlalchemy.exc import SQLAlchemyError

    from relayer.intents import strikes
    from relayer.store.db import make_engine, make_session_factory
    from relayer.store.models import utcnow

    url = settings.database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return None
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            standing = strikes.standing_of(session, agent_id, utcnow(), settings.strike_policy)
    except SQLAlchemyError:  # no relayer schema (yet) in that database
        return None
    finally:
        engine.dispose()
    return standing.to_json() if standing is not None else None


@agent_app.command("register")
def register(
    signer: Annotated[
        str, typer.Option("--signer", metavar="ADDRESS", help="The address that signs the agent's intents.")
    ],
    vault: Annotated[
        int, typer.Option("--vault", metavar="VAULT_ID", min=1, help="The vault it trades from.")
    ],
    track: Annotated[str, typer.Option("--track", metavar="NAME", help="Its track, e.g. evaluation.")],
    allocation: Annotated[
        str, typer.Option("--allocation", metavar="AMOUNT", help="USDC it may deploy, e.g. 10000.")
    ],
    as_json: JsonOption = False,
) -> None:
    """Register an agent: its signer, vault, track and allocation."""
    out = Output(as_json)
    signer_address = inputs.address(signer, "signer address")
    name = inputs.track_name(track)
    allocation_base = inputs.usdc(allocation, "allocation", positive=True)
    dep = Session.load().deployment()
    dep.vault(vault)
    dep.track_id(name)
    agent_id = dep.admin.register_agent(signer_address, vault, name, allocation_base)
    doc = agent_json(dep, agent_id)
    out.emit(doc, _render(f"Agent {agent_id} registered", doc))


@agent_app.command("set-track")
def set_track(
    agent_id: AgentId,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The track's name.")],
    as_json: JsonOption = False,
) -> None:
    """Move an agent to another track."""
    out = Output(as_json)
    track = inputs.track_name(name)
    dep = Session.load().deployment()
    dep.agent(agent_id)
    dep.track_id(track)
    dep.admin.set_agent_track(agent_id, track)
    doc = agent_json(dep, agent_id)
    out.emit(doc, _render(f"Agent {agent_id} is on track {track}", doc))


@agent_app.command("set-allocation")
def set_allocation(
    agent_id: AgentId,
    amount: Annotated[str, typer.Argument(metavar="AMOUNT", help="USDC, e.g. 10000")],
    as_json: JsonOption = False,
) -> None:
    """Change the USDC an agent may deploy."""
    out = Output(as_json)
    base = inputs.usdc(amount, "allocation")
    dep = Session.load().deployment()
    dep.agent(agent_id)
    dep.admin.set_allocation(agent_id, base)
    doc = agent_json(dep, agent_id)
    out.emit(doc, _render(f"Agent {agent_id} allocation set", doc))


def _set_active(agent_id: int, active: bool, as_json: bool) -> None:
    out = Output(as_json)
    dep = Session.load().deployment()
    dep.agent(agent_id)
    dep.admin.set_active(agent_id, active)
    doc = agent_json(dep, agent_id)
    out.emit(doc, _render(f"Agent {agent_id} {'activated' if active else 'deactivated'}", doc))


@agent_app.command("deactivate")
def deactivate(agent_id: AgentId, as_json: JsonOption = False) -> None:
    """Stop an agent from opening or changing positions (its exit ladders still fire)."""
    _set_active(agent_id, False, as_json)


@agent_app.command("activate")
def activate(agent_id: AgentId, as_json: JsonOption = False) -> None:
    """Let a deactivated agent trade again."""
    _set_active(agent_id, True, as_json)


@agent_app.command("show")
def show(agent_id: AgentId, as_json: JsonOption = False) -> None:
    """An agent's registration and today's counters, read from the chain."""
    out = Output(as_json)
    session = Session.load()
    dep = session.deployment(signs="nothing")
    doc = agent_json(dep, agent_id)
    doc["relayerStatus"] = relayer_status(session.settings, agent_id)
    out.emit(doc, _render(f"Agent {agent_id}", doc))


@agent_app.command("clear-strikes")
def clear_strikes(agent_id: AgentId, as_json: JsonOption = False) -> None:
    """Forget the agent's front-running strikes: lifts the relayer's throttling or suspension."""
    from relayer.intents import strikes
    from relayer.store.db import make_engine, make_session_factory
    from relayer.store.migrate import upgrade

    out = Output(as_json)
    settings = Session.load().settings
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
        with make_session_factory(engine).begin() as db:
            cleared = strikes.clear(db, agent_id)
    finally:
        engine.dispose()
    doc = {"agentId": agent_id, "cleared": cleared, "relayerStatus": None}

    def render(console: Console) -> None:
        console.print(f"Agent {agent_id}: {cleared} strike(s) cleared; in good standing with the relayer")

    out.emit(doc, render)
