"""Oracle prices and a vault's tradable tokens."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from relayer.api.deps import ServicesDep
from relayer.domain.calendar import calendar_if_loaded
from relayer.errors import RelayerError, invalid_request
from relayer.intents.build import token_of
from relayer.quotes import price_json
from relayer.views import market_json

router = APIRouter(tags=["markets"])


@router.get("/prices")
def prices(services: ServicesDep, symbols: str | None = Query(default=None)) -> dict[str, Any]:
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
    return {"prices": out}


@router.get("/vaults/{vault_id}/tokens")
def vault_tokens(vault_id: str, services: ServicesDep) -> dict[str, Any]:
    if not vault_id.isdigit():
        raise invalid_request("vault id must be an integer", field="vaultId")
    state = services.state
    with state.read():
        vault = state.vaults.get(int(vault_id))
        if vault is None:
            raise RelayerError("vault_not_found", f"no vault {vault_id}", {"vaultId": vault_id})
        tokens = [
            {"symbol": t.symbol, "address": t.address, "decimals": t.decimals}
            for t in sorted(state.tokens.values(), key=lambda t: t.symbol)
            if (int(vault_id), t.address) in state.allowed
        ]
    return {"vaultId": vault_id, "vault": vault, "tokens": tokens}
