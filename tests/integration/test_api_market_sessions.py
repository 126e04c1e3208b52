"""The relayer refuses what the router's market gate would (SPEC §5.6) before anything is sent: an open
or add outside the track's sessions is `422 market_closed` with `{marketStatus, nextOpen}`; reduces and
ladder updates go through whatever the status; a token with no status is not gated."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from relayer.domain.calendar import calendar_or_none
from relayer.domain.market import MarketStatus

from .conftest import Api
from .test_api_rejections import (
    LADDER,
    assert_error,
    execute,
    nothing_sent,
    open_position,
    quote_of,
    settle,
    signed,
    submit,
)

NEW_YORK = ZoneInfo("America/New_York")
CLOSED, HALTED, PRE_MARKET, REGULAR = 5, 6, 1, 2


def _status(api: Api, symbol: str, status: int) -> None:
    admin = api.stack.admin
    admin.resync_nonce()
    admin.send(admin.oracle.functions.setMarketStatus(api.stack.manifest.tokens[symbol], status), "status")
    settle(api)


def _track_of(api: Api, agent: int) -> str:
    return str(api.client.get(f"/agents/{api.agent(agent)[0]}").json()["track"]["name"])


def _set_sessions(api: Api, agent: int, sessions: set[MarketStatus]) -> None:
    name = _track_of(api, agent)
    with api.services.state.read():
        track = api.services.state.tracks[api.services.state.track_ids[name]][1]
    api.stack.admin.resync_nonce()
    api.stack.admin.set_track(name, dataclasses.replace(track, sessions=frozenset(sessions)))
    settle(api)


def test_open_and_add_while_closed_are_market_closed_with_next_open(api: Api) -> None:
    assert calendar_or_none("XNYS") is not None  # loaded, so nextOpen is known
    agent_id, _ = api.agent(0)
    position_id = open_position(api)  # NVDA has no status yet: ungated
    _status(api, "NVDA", CLOSED)
    _status(api, "AAPL", CLOSED)
    bodies = {
        "OpenPosition": signed(api, 0, "OpenPosition", symbol="AAPL", usdcAmount="100", exits=LADDER)[1],
        "AddToPosition": signed(api, 0, "AddToPosition", positionId=position_id, usdcAmount="100")[1],
    }
    with nothing_sent(api):
        for primary_type, body in bodies.items():
            err = assert_error(
                submit(api, agent_id, primary_type, body), 422, "market_closed", marketStatus="Closed"
            )
            opens = datetime.fromtimestamp(err["details"]["nextOpen"], NEW_YORK)
            assert (opens.hour, opens.minute) == (9, 30) and opens.weekday() < 5, opens
            assert err["details"]["suggestion"] == {"notBefore": err["details"]["nextOpen"]}
    # Reduces and ladder updates are never blocked by the market.
    execute(api, 0, "ReducePosition", positionId=position_id, tokenAmount="0.1")
    execute(api, 0, "UpdateExitLadder", positionId=position_id, exits=LADDER)
    # The open: the add goes through.
    _status(api, "NVDA", REGULAR)
    execute(api, 0, "AddToPosition", positionId=position_id, usdcAmount="100")


def test_a_halt_refuses_opens_with_no_next_open(api: Api) -> None:
    agent_id, _ = api.agent(0)
    _status(api, "AAPL", HALTED)
    _q, body = signed(api, 0, "OpenPosition", symbol="AAPL", usdcAmount="100", exits=LADDER)
    with nothing_sent(api):
        assert_error(
            submit(api, agent_id, "OpenPosition", body),
            422,
            "market_closed",
            marketStatus="Halted",
            nextOpen=None,
        )


def test_the_tracks_sessions_decide(api: Api) -> None:
    agent_id, _ = api.agent(0)
    _status(api, "AAPL", PRE_MARKET)
    _q, body = signed(api, 0, "OpenPosition", symbol="AAPL", usdcAmount="100", exits=LADDER)
    with nothing_sent(api):
        err = assert_error(
            submit(api, agent_id, "OpenPosition", body), 422, "market_closed", marketStatus="PreMarket"
        )
    assert err["details"]["nextOpen"] is not None
    _set_sessions(api, 0, {MarketStatus.PRE_MARKET, MarketStatus.REGULAR})
    execute(api, 0, "OpenPosition", symbol="AAPL", usdcAmount="100", exits=LADDER)


def test_quotes_say_whether_the_market_allows_the_intent(api: Api) -> None:
    _status(api, "AAPL", CLOSED)
    q: dict[str, Any] = quote_of(api, 0, "OpenPosition", symbol="AAPL", usdcAmount="100", exits=LADDER)
    check = next(c for c in q["checks"] if c["check"] == "market_open")
    assert check["ok"] is False and check["code"] == "market_closed"
    # When it may go: the next regular open (SPEC §5.2's notBefore), 09:30 New York time.
    opens = datetime.fromtimestamp(check["suggestion"]["notBefore"], NEW_YORK)
    assert (opens.hour, opens.minute) == (9, 30) and opens.weekday() < 5, opens
    _status(api, "AAPL", REGULAR)
    q = quote_of(api, 0, "OpenPosition", symbol="AAPL", usdcAmount="100", exits=LADDER)
    assert next(c for c in q["checks"] if c["check"] == "market_open")["ok"] is True
