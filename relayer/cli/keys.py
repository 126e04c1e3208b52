"""`alphagrid keys create | list | revoke`: operator API keys (SPEC §5.5), written to the relayer's
database ($ALPHAGRID_DATABASE_URL, default $ALPHAGRID_HOME/relayer.db). The key is printed once;
only its SHA-256 is stored. Heavy imports happen inside the commands."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from relayer.cli.output import JsonOption, Output, fields, table

if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy.orm import Session

keys_app = typer.Typer(help="Operator API keys: create (shown once), list, revoke.", no_args_is_help=True)


@contextmanager
def operator_db() -> Iterator[Session]:
    """One transaction on the relayer's database (migrated first, as `serve` does); the operator
    layer's rejections become `BadInput`, an unreachable database a `CliError`."""
    from sqlalchemy.exc import OperationalError

    from relayer.cli.errors import BadInput, CliError
    from relayer.config import Settings
    from relayer.errors import RelayerError
    from relayer.store.db import make_engine, make_session_factory
    from relayer.store.migrate import upgrade

    settings = Settings()
    if settings.database_url.startswith("sqlite"):
        settings.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
        with make_session_factory(engine).begin() as session:
            yield session
    except RelayerError as exc:
        raise BadInput(exc.message) from None
    except OperationalError as exc:
        raise CliError(f"cannot use the database ({settings.database_url}): {exc.orig}") from None
    finally:
        engine.dispose()


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="A unique name; it is recorded as the actor.")],
    scope: Annotated[str, typer.Option("--scope", metavar="operator|approver", help="What the key may do.")],
    as_json: JsonOption = False,
) -> None:
    """Create a key and print it once (it cannot be shown again)."""
    from relayer.cli.errors import BadInput
    from relayer.operators import keys

    if scope not in {s.value for s in keys.Scope}:
        raise BadInput(f"invalid scope {scope!r}: operator or approver")
    out = Output(as_json)
    with operator_db() as session:
        row, key = keys.create(session, name, keys.Scope(scope))
        doc = {**keys.key_json(row), "key": key}

    def render(console: Console) -> None:
        console.print(fields(f"Key {name} ({scope})", [("key", key), ("keyId", doc["keyId"])]))
        console.print("Store it now: it is shown only this once (only its hash is kept).")

    out.emit(doc, render)


@keys_app.command("list")
def list_keys(as_json: JsonOption = False) -> None:
    """Every key: name, scope, created, last used, revoked."""
    from relayer.operators import keys

    out = Output(as_json)
    with operator_db() as session:
        docs = [keys.key_json(row) for row in keys.list_keys(session)]
    rows = [
        (d["name"], d["scope"], d["keyId"], d["createdAt"], d["lastUsedAt"] or "never", d["revokedAt"] or "")
        for d in docs
    ]
    out.emit(
        {"keys": docs},
        lambda console: console.print(
            table("API keys", ("name", "scope", "key id", "created", "last used", "revoked"), rows)
        ),
    )


@keys_app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The key's name.")],
    as_json: JsonOption = False,
) -> None:
    """Revoke a key: every request with it is refused (401) from now on."""
    from relayer.operators import keys

    out = Output(as_json)
    with operator_db() as session:
        doc = keys.key_json(keys.revoke(session, name))
    out.emit(doc, lambda console: console.print(f"Key {name} revoked at {doc['revokedAt']}."))
