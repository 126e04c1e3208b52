"""`alphagrid webhooks add | list | remove | rotate` (SPEC §5.5), on the relayer's database. A running
relayer picks a change up within a second (its subscription snapshot refreshes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from relayer.cli.keys import operator_db
from relayer.cli.output import JsonOption, Output, fields, table

if TYPE_CHECKING:
    from rich.console import Console

webhooks_app = typer.Typer(
    help="Webhook subscriptions: add (secret shown once), list with deliveries, remove, rotate.",
    no_args_is_help=True,
)


@webhooks_app.command("add")
def add(
    url: Annotated[str, typer.Argument(metavar="URL", help="http(s) URL that receives the POSTs.")],
    events: Annotated[
        str,
        typer.Option(
            "--events",
            help="Comma-separated: intent_status, fill, exit_fired, ladder_updated, position_closed, or *.",
        ),
    ] = "*",
    agent: Annotated[int | None, typer.Option("--agent", min=0, help="Only this agent's events.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Subscribe URL to events; prints the signing secret once."""
    from relayer.operators import webhooks

    out = Output(as_json)
    wanted = [e.strip() for e in events.split(",") if e.strip()]
    with operator_db() as session:
        row = webhooks.create(session, url, wanted, agent, created_by="cli")
        doc = {"id": str(row.id), "secret": row.secret, "url": row.url, "events": row.events}

    def render(console: Console) -> None:
        console.print(fields(f"Webhook {doc['id']}", list(doc.items())))
        console.print("Store the secret now: it is shown only this once.")

    out.emit(doc, render)


def _rows(docs: list[dict[str, Any]]) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for d in docs:
        n, last = d["deliveries"], d["lastAttempt"] or {}
        last_text = (
            f"{last['at']} {last['statusCode'] or ''} {last['error'] or 'ok'}".strip() if last else "none yet"
        )
        out.append(
            (
                d["id"],
                d["url"],
                ",".join(d["events"]),
                d["agentId"] or "all",
                n["delivered"],
                n["pending"],
                n["retrying"],
                n["failed"],
                last_text,
            )
        )
    return out


@webhooks_app.command("list")
def list_webhooks(as_json: JsonOption = False) -> None:
    """Every subscription with its deliveries: delivered, pending, retrying, failed, the last attempt."""
    from relayer.operators import webhooks

    out = Output(as_json)
    with operator_db() as session:
        docs = webhooks.list_all(session)
    columns = ("id", "url", "events", "agent", "delivered", "pending", "retrying", "failed", "last attempt")
    out.emit({"webhooks": docs}, lambda console: console.print(table("Webhooks", columns, _rows(docs))))


@webhooks_app.command("remove")
def remove(
    webhook_id: Annotated[int, typer.Argument(metavar="ID", min=1)],
    as_json: JsonOption = False,
) -> None:
    """Remove a subscription; what it still had to deliver is cancelled."""
    from relayer.operators import webhooks

    out = Output(as_json)
    with operator_db() as session:
        webhooks.remove(session, webhook_id)
    doc = {"id": str(webhook_id), "deleted": True}
    out.emit(doc, lambda console: console.print(f"Webhook {webhook_id} removed."))


@webhooks_app.command("rotate")
def rotate(
    webhook_id: Annotated[int, typer.Argument(metavar="ID", min=1)],
    grace_s: Annotated[
        int,
        typer.Option("--grace-s", min=0, help="How long the old secret keeps signing too (0: stop at once)."),
    ] = 24 * 3600,
    as_json: JsonOption = False,
) -> None:
    """A new signing secret, printed once."""
    from relayer.operators import webhooks

    out = Output(as_json)
    with operator_db() as session:
        row = webhooks.rotate(session, webhook_id, grace_s)
        doc = {"id": str(row.id), "secret": row.secret}
    out.emit(
        doc, lambda console: console.print(fields(f"Webhook {webhook_id}: new secret", list(doc.items())))
    )
