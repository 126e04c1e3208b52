"""Oracle prices and a vault's tradable tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from relayer.api.deps import ServicesDep
from relayer.api.routes._common import public
from relayer.api.routing import StrictJsonRoute
from relayer.api.schemas.common import VaultIdPath, error_responses
from relayer.api.schemas.reads import PricesPublic, VaultTokensPublic
from relayer.domain.calendar import calendar_if_loaded
from relayer.errors import RelayerError
from relayer.intents.build import token_of
from relayer.quotes import price_json
from relayer.views import market_json

router = APIRouter(tags=["markets"], route_class=StrictJsonRoute)

Symbols = Annotated[
    str | None,
    Query(max_length=1200, description="Comma-separated symbols (NVDA,AAPL); default: every token."),
]


@router.get("/prices", response_model=PricesPublic, responses=error_responses("symbol_not_found"))
def prices(services: ServicesDep, symbols: Symbols = None) -> JSONResponse:
    state = services.state
    now = services.intents.chain_now()
    calendar = calendar_if_loaded(services.settings.market_calendar)  # never waits for pandas
    with state.read():
        wanted = [s.strip() for s in symbols.split(",") if s.strip()] if symbols else sorted(state.symbols)
        out = []
        for symbol in wanted:
            token = token_of(state, symbol)
            out.append(
                {
                    "symbol": symbol,
                    "token": token.address,
                    **price_json(services.intents, token, now),
                    **market_json(state, token.address, now, calendar),
                }
            )
    return public({"prices": out})


@router.get(
    "/vaults/{vault_id}/tokens",
    response_model=VaultTokensPublic,
    responses=error_responses("vault_not_found"),
)
def vault_tokens(vault_id: VaultIdPath, services: ServicesDep) -> JSONResponse:
    state = services.state
    with state.read():
        vault = state.vaults.get(vault_id)
        if vault is None:
            raise RelayerError("vault_not_found", f"no vault {vault_id}", {"vaultId": str(vault_id)})
        tokens = [
            {"symbol": t.symbol, "address": t.address, "decimals": t.decimals}
            for t in sorted(state.tokens.values(), key=lambda t: t.symbol)
            if (vault_id, t.address) in state.allowed
        ]
    return public({"vaultId": str(vault_id), "vault": vault, "tokens": tokens})
