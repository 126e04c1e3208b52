"""`alphagrid track set | list`: the named risk policies agents are put on (SPEC §1.5)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import typer
from rich.console import Console

from relayer.cli import inputs
from relayer.cli.errors import BadInput
from relayer.cli.output import JsonOption, Output
from relayer.cli.session import Session
from relayer.cli.views import read_tracks, track_json, tracks_table
from relayer.domain.market import ExitsWhenClosed, MarketError, parse_sessions
from relayer.domain.track import Track

track_app = typer.Typer(help="Tracks: create or change one, list them.", no_args_is_help=True)

U16 = 2**16 - 1
U32 = 2**32 - 1


def _bps(flag: str, maximum: int, text: str) -> Any:
    return typer.Option(flag, min=0, max=maximum, metavar="BPS", help=text)


# Track field → its option's name, for the message that lists what a new track still needs.
_FLAGS = {
    "max_trade_size_bps": "--max-trade-size-bps",
    "max_daily_turnover_bps": "--max-daily-turnover-bps",
    "max_daily_loss_bps": "--max-daily-loss-bps",
    "max_stop_loss_bps": "--max-stop-loss-bps",
    "min_take_profit_bps": "--min-take-profit-bps",
    "max_take_profit_bps": "--max-take-profit-bps",
}


def merge_track(current: Track | None, changes: dict[str, object]) -> Track:
    """The track to write: ``current`` with the given changes; a new track needs every bps limit
    and by default requires a stop-loss but not a take-profit, trades the Regular session and holds
    exits while the market is closed."""
    given = {k: v for k, v in changes.items() if v is not None}
    if current is not None:
        return dataclasses.replace(current, **given)  # type: ignore[arg-type]
    missing = [flag for key, flag in _FLAGS.items() if key not in given]
    if missing:
        raise BadInput(f"a new track needs {', '.join(missing)}")
    given.setdefault("require_stop_loss", True)
    given.setdefault("require_take_profit", False)
    return Track(**given)  # type: ignore[arg-type]


@track_app.command("set")
def set_track(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The track's name, e.g. evaluation.")],
    max_trade_size_bps: Annotated[
        int | None, _bps("--max-trade-size-bps", U16, "Largest open/add, bps of the allocation.")
    ] = None,
    max_daily_turnover_bps: Annotated[
        int | None, _bps("--max-daily-turnover-bps", U32, "Daily opens+adds+reduces, bps of the allocation.")
    ] = None,
    max_daily_loss_bps: Annotated[
        int | None,
        _bps("--max-daily-loss-bps", U16, "Daily realized loss that stops opens, bps of the allocation."),
    ] = None,
    max_stop_loss_bps: Annotated[
        int | None, _bps("--max-stop-loss-bps", U16, "Deepest stop-loss trigger allowed.")
    ] = None,
    min_take_profit_bps: Annotated[
        int | None, _bps("--min-take-profit-bps", U32, "Lowest take-profit trigger allowed.")
    ] = None,
    max_take_profit_bps: Annotated[
        int | None, _bps("--max-take-profit-bps", U32, "Highest take-profit trigger allowed.")
    ] = None,
    require_stop_loss: Annotated[
        bool | None,
        typer.Option(
            "--require-stop-loss/--no-require-stop-loss",
            help="Every ladder needs a stop-loss (new track: yes).",
        ),
    ] = None,
    require_take_profit: Annotated[
        bool | None,
        typer.Option(
            "--require-take-profit/--no-require-take-profit",
            help="Every ladder needs a take-profit (new track: no).",
        ),
    ] = None,
    sessions: Annotated[
        str | None,
        typer.Option(
            "--sessions",
            metavar="STATUSES",
            help="Market statuses in which opens and adds are allowed, e.g. Regular,PreMarket "
            "(PreMarket, Regular, PostMarket, Overnight, Closed, Unknown; new track: Regular).",
        ),
    ] = None,
    exits_when_closed: Annotated[
        ExitsWhenClosed | None,
        typer.Option(
            "--exits-when-closed",
            case_sensitive=False,
            help="hold: a crossed exit waits for a price quoted in the track's sessions; "
            "fire: it fires on the last price (a halt holds every exit). New track: hold.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a track, or change an existing one (options not given keep their current values)."""
    out = Output(as_json)
    track_name = inputs.track_name(name)
    try:
        session_set = parse_sessions(sessions) if sessions is not None else None
    except MarketError as exc:
        raise BadInput(f"--sessions: {exc}") from None
    dep = Session.load().deployment()
    registry = dep.admin.agents
    track_id = int(registry.functions.trackIdOf(track_name).call())
    current = Track.from_tuple(tuple(registry.functions.track(track_id).call()[1])) if track_id else None
    track = merge_track(
        current,
        {
            "max_trade_size_bps": max_trade_size_bps,
            "max_daily_turnover_bps": max_daily_turnover_bps,
            "max_daily_loss_bps": max_daily_loss_bps,
            "max_stop_loss_bps": max_stop_loss_bps,
            "min_take_profit_bps": min_take_profit_bps,
            "max_take_profit_bps": max_take_profit_bps,
            "require_stop_loss": require_stop_loss,
            "require_take_profit": require_take_profit,
            "sessions": session_set,
            "exits_when_closed": exits_when_closed,
        },
    )
    new_id = dep.admin.set_track(track_name, track)
    doc = {**track_json(new_id, track_name, track.as_tuple()), "created": current is None}

    def render(console: Console) -> None:
        verb = "created" if current is None else "updated"
        console.print(tracks_table([doc], f"Track {track_name} {verb} (bps)"))

    out.emit(doc, render)


@track_app.command("list")
def list_tracks(as_json: JsonOption = False) -> None:
    """Every track and its limits."""
    out = Output(as_json)
    dep = Session.load().deployment(signs="nothing")
    tracks = read_tracks(dep.admin)
    out.emit({"tracks": tracks}, lambda console: console.print(tracks_table(tracks)))
