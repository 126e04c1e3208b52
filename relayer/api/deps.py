"""Request dependencies: routes read like prose (`services: ServicesDep`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from relayer.service import Services


async def get_services(request: Request) -> Services:
    # async: FastAPI runs a plain `def` dependency in the thread pool, a hop per request for an
    # attribute read.
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
