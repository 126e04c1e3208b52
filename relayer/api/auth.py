"""Operator authentication (SPEC §5.5): `Authorization: Bearer <key>` with a scope. Agent endpoints
do not use this: their intents' signatures are their authority.

    @router.post("/webhooks")
    def create(..., caller: OperatorDep) -> ...

No or a garbled key, an unknown or revoked one → 401 `unauthorized`; a key without the scope → 403
`forbidden`, both in the `{code, message, details}` shape.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from relayer.api.deps import ServicesDep
from relayer.errors import RelayerError
from relayer.operators.keys import Principal, Scope
from relayer.service import Services

# auto_error=False: a missing or non-Bearer header reaches us as None and is answered in the spec's
# shape, not FastAPI's; the scheme still documents the endpoints in /openapi.json.
bearer = HTTPBearer(auto_error=False, description="An operator API key (`alphagrid keys create`).")


def _authenticate(services: Services, presented: str | None) -> Principal:
    with services.sessions() as session:
        return services.keys.authenticate(session, presented)


def require(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    async def dependency(
        services: ServicesDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        presented = credentials.credentials if credentials is not None else None
        principal = await run_in_threadpool(_authenticate, services, presented)
        if not principal.allows(scope):
            raise RelayerError(
                "forbidden",
                f"the key {principal.name!r} has scope {principal.scope.value!r}; this needs {scope.value!r}",
                {"scope": principal.scope.value, "required": scope.value},
            )
        return principal

    return dependency


OperatorDep = Annotated[Principal, Depends(require(Scope.OPERATOR))]
ApproverDep = Annotated[Principal, Depends(require(Scope.APPROVER))]
