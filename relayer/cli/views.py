"""Chain reads shared by several commands (tracks, oracle prices, contracts), as JSON-ready dicts, and
the tables that show them. Amounts are decimal strings in human units, like the API's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.table import Table

from relayer.amounts import format_amount
from relayer.cli.inputs import PRICE_DECIMALS
from relayer.cli.output import table
from relayer.domain.track import Track

if TYPE_CHECKING:
    from relayer.chain.admin import Admin
    from relayer.manifest import Manifest


def track_json(track_id: int, name: str, limits: Sequence[Any]) -> dict[str, Any]:
    return {"trackId": track_id, "name": name, **Track.from_tuple(tuple(limits)).to_json()}


def read_tracks(admin: Admin) -> list[dict[str, Any]]:
    registry = admin.agents
    out = []
    for track_id in range(1, int(registry.functions.trackCount().call()) + 1):
        name, limits = registry.functions.track(track_id).call()
        out.append(track_json(track_id, str(name), tuple(limits)))
    return out


def read_prices(admin: Admin, tokens: Mapping[str, str]) -> list[dict[str, Any]]:
    """The oracle's quote for each token: price (per token), updatedAt, roundId and whether the router
    would find it too old (`stale`, against `TradeRouter.maxPriceAge` and the latest block's time);
    and its market: `marketStatus`, `sharePrice` (as quoted) and `multiplier` (in force, and the next
    one while a change is pending)."""
    from relayer.feed import read_market

    max_age_s = int(admin.router.functions.maxPriceAge().call())
    now = int(admin.w3.eth.get_block("latest")["timestamp"])
    out: list[dict[str, Any]] = []
    for symbol, token in tokens.items():
        market = read_market(admin, token)
        doc: dict[str, Any] = {"symbol": symbol, "token": token}
        if market.price is None or market.updated_at is None:  # PriceUnavailable: never set
            doc.update(price=None, updatedAt=None, ageS=None, roundId=None, stale=True)
        else:
            doc.update(
                price=format_amount(market.price, PRICE_DECIMALS),
                updatedAt=market.updated_at,
                ageS=max(0, now - market.updated_at),
                roundId=market.round_id,
                stale=now - market.updated_at > max_age_s,
            )
        doc.update(market.to_json(now))
        out.append(doc)
    return out


_TRACK_COLUMNS = (
    ("name", "track"),
    ("maxTradeSizeBps", "max trade"),
    ("maxDailyTurnoverBps", "max daily turnover"),
    ("maxDailyLossBps", "max daily loss"),
    ("maxStopLossBps", "max stop-loss"),
    ("minTakeProfitBps", "min take-profit"),
    ("maxTakeProfitBps", "max take-profit"),
    ("requireStopLoss", "stop-loss required"),
    ("requireTakeProfit", "take-profit required"),
    ("sessions", "sessions"),
    ("exitsWhenClosed", "exits when closed"),
)


def _yes(value: object) -> object:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return ("yes" if value else "no") if isinstance(value, bool) else value


def tracks_table(tracks: Sequence[Mapping[str, Any]], title: str | None = "Tracks (bps)") -> Table:
    return table(
        title,
        ["id", *(label for _, label in _TRACK_COLUMNS)],
        [[t["trackId"], *(_yes(t[key]) for key, _ in _TRACK_COLUMNS)] for t in tracks],
    )


def _when(updated_at: int | None, age_s: int | None) -> str:
    if updated_at is None:
        return "never"
    stamp = datetime.fromtimestamp(updated_at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return f"{stamp} ({age_s}s ago)"


def _multiplier(p: Mapping[str, Any]) -> str:
    m = p.get("multiplier") or {}
    text = str(m.get("current", "1"))
    if m.get("next") is not None:
        at = datetime.fromtimestamp(m["effectiveAt"], UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        text += f" → {m['next']} at {at}"
    return text


def prices_table(prices: Sequence[Mapping[str, Any]], title: str | None = "Oracle prices (USD)") -> Table:
    return table(
        title,
        ["symbol", "price", "status", "multiplier", "updated at", "round", "stale", "token"],
        [
            [
                p["symbol"],
                p["price"] or "-",
                p.get("marketStatus", "-"),
                _multiplier(p),
                _when(p["updatedAt"], p["ageS"]),
                p["roundId"] or "-",
                "STALE" if p["stale"] else "",
                p["token"],
            ]
            for p in prices
        ],
    )


def contracts_table(manifest: Manifest) -> Table:
    contracts = manifest.contracts.model_dump(by_alias=True)
    return table("Contracts", ["contract", "address"], sorted(contracts.items()))
