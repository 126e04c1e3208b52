"""`alphagrid serve`: the relayer API and exit keeper against a deployed manifest, until Ctrl-C/SIGTERM."""

from __future__ import annotations

import threading

import typer

from relayer.cli.errors import CliError
from relayer.cli.output import JsonOption, Output, fields
from relayer.cli.session import Session
from relayer.cli.signals import on_stop_signal
from relayer.server import RelayerServer
from relayer.supervisor import Supervisor


def serve(
    json_out: JsonOption = False,
    keeper: bool = typer.Option(
        True, "--keeper/--no-keeper", help="Run the exit-ladder keeper in this process"
    ),
    api_processes: int | None = typer.Option(
        None,
        "--api-processes",
        min=0,
        max=64,
        help="Serve the API from N processes on one port beside one engine process (PostgreSQL only; "
        "default $ALPHAGRID_API_PROCESSES or 0: one process)",
    ),
) -> None:
    """Relayer API + keeper for the chain in $ALPHAGRID_HOME/deployment.json."""
    session = Session.load()
    processes = session.settings.api_processes if api_processes is None else api_processes
    if processes and not session.settings.database_url.startswith("postgresql"):
        raise CliError(
            "--api-processes needs PostgreSQL: set ALPHAGRID_DATABASE_URL=postgresql+psycopg://… "
            "(the processes share the database and signal each other through it)"
        )
    deployment = session.deployment(signs="relayer")  # checks the chain id and that the contracts are there
    settings = session.settings.model_copy(
        update={"rpc_url": deployment.rpc_url, "keeper": keeper, "api_processes": processes}
    )
    server: RelayerServer | Supervisor = (
        Supervisor(settings, deployment.manifest, processes)
        if processes
        else RelayerServer(settings, deployment.manifest)
    )
    stop = threading.Event()
    out = Output(json_out)
    with on_stop_signal(lambda _sig: stop.set()):
        try:
            server.start()
            doc = {
                "apiUrl": settings.api_url,
                "rpcUrl": deployment.rpc_url,
                "database": settings.database_url,
                "keeper": keeper,
                "apiProcesses": processes,
                "docs": f"{settings.api_url}/docs",
            }
            out.emit(doc, lambda console: console.print(fields("AlphaGrid relayer", list(doc.items()))))
            while not stop.wait(0.5):
                problem = server.failure()
                if problem:
                    raise CliError(f"relayer stopped: {problem}")
        finally:
            server.stop()
