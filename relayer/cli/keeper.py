"""`alphagrid keeper`: the exit-ladder keeper on its own (with the indexer and sender it needs, no HTTP
API), for operators who run the API elsewhere. With several keepers on one PostgreSQL database only
one acts; the others wait to take over."""

from __future__ import annotations

import threading

from relayer.cli.errors import CliError
from relayer.cli.output import JsonOption, Output, fields
from relayer.cli.session import Session
from relayer.cli.signals import on_stop_signal
from relayer.service import build_services


def keeper(json_out: JsonOption = False) -> None:
    """Run the exit-ladder keeper against $ALPHAGRID_HOME/deployment.json until Ctrl-C/SIGTERM."""
    session = Session.load()
    deployment = session.deployment(signs="relayer")
    settings = session.settings.model_copy(update={"rpc_url": deployment.rpc_url, "keeper": True})
    services = build_services(settings, deployment.manifest)
    stop = threading.Event()
    out = Output(json_out)
    with on_stop_signal(lambda _sig: stop.set()):
        try:
            services.start()
            doc = {
                "rpcUrl": deployment.rpc_url,
                "database": settings.database_url,
                "indexedBlock": services.state.block_number,
                "indexedRules": len(services.keeper.index),
            }
            out.emit(doc, lambda console: console.print(fields("AlphaGrid keeper", list(doc.items()))))
            while not stop.wait(0.5):
                dead = services.dead_workers()
                if dead:
                    raise CliError(f"keeper stopped: worker {', '.join(dead)} died")
        finally:
            services.close()
