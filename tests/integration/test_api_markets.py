"""GET /prices shows each token's market (SPEC §5.6): `marketStatus` and `multiplier` from the oracle's
events as the relayer indexed them, `nextOpen` from the NYSE calendar, `sharePrice` as quoted."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from relayer.domain.calendar import calendar_or_none

from .conftest import Api
from .test_api_rejections import chain_time, rpc, settle

NEW_YORK = ZoneInfo("America/New_York")
ONE = 10**18


def _send(api: Api, fn: Any) -> None:
    admin = api.stack.admin
    admin.resync_nonce()
    admin.send(fn, "oracle")


def test_prices_never_wait_for_the_calendar(api: Api) -> None:
    """A relayer whose calendar is not loaded yet answers at once, with nextOpen null (or a value,
    if the background load finished first), never after seconds of pandas."""
    api.services.settings.market_calendar = "XNYS"
    prices = api.client.get("/prices", params={"symbols": "NVDA"}, timeout=2).json()["prices"]
    assert prices[0]["nextOpen"] is None or prices[0]["nextOpen"] > 0
    api.services.settings.market_calendar = ""
    assert api.client.get("/prices", params={"symbols": "NVDA"}).json()["prices"][0]["nextOpen"] is None


def _prices(api: Api) -> dict[str, dict[str, Any]]:
    return {p["symbol"]: p for p in api.client.get("/prices").json()["prices"]}


def test_prices_show_status_next_open_and_multiplier(api: Api) -> None:
    assert calendar_or_none("XNYS") is not None  # loaded (the relayer loads it in the background)
    oracle = api.stack.admin.oracle
    tokens = api.stack.manifest.tokens
    now = chain_time(api)
    _send(api, oracle.functions.setMarketStatus(tokens["NVDA"], 5))  # Closed
    _send(api, oracle.functions.setMarketStatus(tokens["AAPL"], 6))  # Halted
    _send(api, oracle.functions.setQuote(tokens["TSLA"], 250 * 10**8, 0, 2))  # Regular
    _send(api, oracle.functions.scheduleMultiplier(tokens["MSFT"], 2 * ONE, now + 3_600))
    settle(api)
    prices = _prices(api)

    nvda = prices["NVDA"]
    assert nvda["marketStatus"] == "Closed"
    opens = datetime.fromtimestamp(nvda["nextOpen"], NEW_YORK)
    assert (opens.hour, opens.minute) == (9, 30) and opens.weekday() < 5, opens
    assert 0 < nvda["nextOpen"] - chain_time(api) < 5 * 86_400
    assert nvda["multiplier"] == {"current": "1", "next": None, "effectiveAt": None, "epoch": 0}

    assert (prices["AAPL"]["marketStatus"], prices["AAPL"]["nextOpen"]) == ("Halted", None)
    tsla = prices["TSLA"]
    assert (tsla["marketStatus"], tsla["nextOpen"], tsla["sharePrice"], tsla["price"]) == (
        "Regular",
        None,
        "250",
        "250",
    )
    # the seed pushes plain prices: no status yet, and the calendar still says when it opens
    assert prices["SPY"]["marketStatus"] == "Unknown" and prices["SPY"]["nextOpen"] is not None

    msft = prices["MSFT"]
    assert msft["multiplier"] == {"current": "1", "next": "2", "effectiveAt": now + 3_600, "epoch": 0}
    rpc(api, "evm_increaseTime", 3_601)
    rpc(api, "evm_mine")
    settle(api)
    msft = _prices(api)["MSFT"]
    assert msft["multiplier"] == {"current": "2", "next": None, "effectiveAt": None, "epoch": 1}
    assert msft["price"] == prices["MSFT"]["price"], "the split alone moves no price"


def test_state_projects_status_and_schedule_events(api: Api) -> None:
    """The market fields are a projection of the oracle's events into the relayer's state."""
    oracle = api.stack.admin.oracle
    tokens = api.stack.manifest.tokens
    _send(api, oracle.functions.setMarketStatus(tokens["NVDA"], 1))
    _send(api, oracle.functions.scheduleMultiplier(tokens["NVDA"], ONE // 10, chain_time(api) + 10))
    settle(api)
    state = api.services.state
    with state.read():
        assert state.status_of(tokens["NVDA"]).label == "PreMarket"
        assert state.schedule_of(tokens["NVDA"]).new == ONE // 10
    assert _prices(api)["NVDA"]["marketStatus"] == "PreMarket"
