"""The keeper and market sessions on a real chain (SPEC §5.6): it holds what the router's gate would
refuse, audits why once per market state ("market closed until Mon 8 Dec 09:30 ET"), and fires at the
first tradable price with the gap report in the position's history."""

from __future__ import annotations

import dataclasses
import math
import time
from decimal import Decimal

from relayer.chain.seed import price_base
from relayer.domain.calendar import calendar_or_none
from relayer.domain.market import ExitsWhenClosed

from .conftest import Api
from .test_keeper import _actions, _exit_requests, _exits, _open, _position, _wait_position

UNKNOWN, REGULAR, CLOSED, HALTED = 0, 2, 5, 6
GAP_FIELDS = ("triggerPrice", "oraclePrice", "fillPrice", "slippageBps", "gapBps")


def _send(api: Api, fn: object, what: str) -> None:
    admin = api.stack.admin
    admin.resync_nonce()
    admin.send(fn, what)  # type: ignore[arg-type]


def _quote(api: Api, symbol: str, price: str, status: int) -> None:
    """The feed's call: a price quoted in `status` (which becomes the status now too)."""
    oracle = api.stack.admin.oracle
    token = api.stack.manifest.tokens[symbol]
    _send(api, oracle.functions.setQuote(token, price_base(Decimal(price)), 0, status), "quote")


def _status(api: Api, symbol: str, status: int) -> None:
    oracle = api.stack.admin.oracle
    _send(api, oracle.functions.setMarketStatus(api.stack.manifest.tokens[symbol], status), "status")


def _held(p: dict[str, object]) -> list[str]:
    return [str(a["outcome"]) for a in p["audit"] if a["action"] == "held"]  # type: ignore[attr-defined,index]


def test_a_closed_market_holds_the_stop_until_a_price_quoted_in_session(api: Api) -> None:
    assert calendar_or_none("XNYS") is not None  # loaded, so the audit says until when
    position_id = _open(api)  # NVDA has no status: opened ungated
    _status(api, "NVDA", CLOSED)
    _quote(api, "NVDA", "160", CLOSED)  # the last price of the week, through the stop (−12 %)
    p = _wait_position(api, position_id, lambda p: len(p["audit"]) > 0)
    [closed] = _held(p)
    assert closed.startswith("market closed until ") and closed.endswith(" 09:30 ET"), closed
    # More prices while closed: the same market state, not audited again; nothing is sent.
    _quote(api, "NVDA", "159", CLOSED)
    time.sleep(0.5)
    assert _held(_position(api, position_id)) == [closed]
    # The open, before a new price: Friday's price is not one quoted in session.
    _status(api, "NVDA", REGULAR)
    p = _wait_position(api, position_id, lambda p: len(_held(p)) == 2)
    assert _held(p)[1] == "waiting for a price quoted in the track's sessions (the last was quoted Closed)"
    time.sleep(0.5)
    assert _exit_requests(api) == [] and _position(api, position_id)["status"] == "open"
    # The first Regular price fires it, and the history reports the gap.
    _quote(api, "NVDA", "158", REGULAR)
    p = _wait_position(
        api, position_id, lambda p: p["status"] == "closed" and p["audit"][-1]["action"] == "confirmed"
    )
    assert _actions(p) == [(1, "held"), (1, "held"), (1, "sent"), (1, "confirmed")]
    [gap] = _exits(p)
    assert gap["ruleIndex"] == 1 and gap["oraclePrice"] == "158"
    assert all(gap[k] is not None for k in GAP_FIELDS), gap
    # The stop's trigger is about 164 (−10 % of the cost): the market reopened at 158, ~3.8 % past it.
    trigger = Decimal(gap["triggerPrice"])
    assert 160 < trigger < 170 and gap["gapBps"] == math.floor((158 - trigger) * 10_000 / trigger) < -300
    assert gap["slippageBps"] <= gap["gapBps"]  # the venue's spread comes on top of the gap


def test_a_halt_holds_even_a_fire_track_which_then_fires_on_the_last_price(api: Api) -> None:
    agent_id, _ = api.agent(0)
    name = api.client.get(f"/agents/{agent_id}").json()["track"]["name"]
    state = api.services.state
    with state.read():
        track = state.tracks[state.track_ids[name]][1]
    api.stack.admin.resync_nonce()
    api.stack.admin.set_track(name, dataclasses.replace(track, exits_when_closed=ExitsWhenClosed.FIRE))
    position_id = _open(api)
    _status(api, "NVDA", HALTED)
    _quote(api, "NVDA", "160", HALTED)
    p = _wait_position(api, position_id, lambda p: len(p["audit"]) > 0)
    assert _held(p) == ["market halted"]
    time.sleep(0.5)
    assert _exit_requests(api) == []
    # The halt becomes a close: a fire track fires on the last price (quoted in the halt), no new price.
    _status(api, "NVDA", CLOSED)
    p = _wait_position(
        api, position_id, lambda p: p["status"] == "closed" and p["audit"][-1]["action"] == "confirmed"
    )
    assert [e["oraclePrice"] for e in _exits(p)] == ["160"]
    assert _actions(p) == [(1, "held"), (1, "sent"), (1, "confirmed")]


def test_a_feed_without_status_is_not_gated(api: Api) -> None:
    position_id = _open(api)
    _quote(api, "NVDA", "160", UNKNOWN)
    p = _wait_position(api, position_id, lambda p: p["status"] == "closed")
    assert [e["ruleIndex"] for e in _exits(p)] == [1]
