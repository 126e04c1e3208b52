"""The keeper and market sessions on a real chain (SPEC §5.6): it holds what the router's gate would
refuse, audits why once per market state ("market closed until Mon 7 Dec 09:30 ET"), and fires at the
first tradable price with the gap report in the position's history."""

from __future__ import annotations

import dataclasses
import math
import time
from decimal import Decimal

import pytest

from relayer.chain.seed import price_base
from relayer.domain.calendar import calendar_or_none
from relayer.domain.market import ExitsWhenClosed

from .conftest import Api
from .test_api_rejections import chain_time, rpc
from .test_keeper import (
    ENTRY,
    _actions,
    _exit_requests,
    _exits,
    _indexed_price,
    _open,
    _position,
    _wait,
    _wait_position,
)

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


@pytest.mark.parametrize(
    ("ratio", "early"),
    [(Decimal(2), True), (Decimal(2), False), (Decimal("0.1"), True), (Decimal("0.1"), False)],
    ids=["2:1-quoted-early", "2:1-quoted-late", "1:10-quoted-early", "1:10-quoted-late"],
)
def test_a_split_never_fires_a_stop_by_itself(api: Api, ratio: Decimal, early: bool) -> None:
    """A 2:1 split and a 1:10 reverse split around `effectiveAt`, the feed publishing the post-split
    share price before it (early) or the pre-split one after it (late): each round is priced under the
    multiplier it was quoted with, so the per-token price the stops watch never moves and nothing is
    held or fired; a real fall afterwards still fires the stop (−10 %: 164.115)."""
    oracle = api.stack.admin.oracle
    token = api.stack.manifest.tokens["NVDA"]
    position_id = _open(api)
    before = _position(api, position_id)
    effective_at = chain_time(api) + 600
    _send(api, oracle.functions.scheduleMultiplier(token, int(ratio * 10**18), effective_at), "split")

    def quote(share_price: Decimal, epoch: int) -> None:
        _send(api, oracle.functions.setQuote(token, price_base(share_price), epoch, REGULAR), "quote")
        _wait(lambda: _indexed_price(api, "NVDA") == price_base(ENTRY), "the per-token price indexed")

    post_split = ENTRY / ratio  # 91.175 a share after 2:1, 1823.5 after 1:10
    if early:
        quote(post_split, 1)  # the new share price, tagged with the new epoch, before effectiveAt
    rpc(api, "evm_increaseTime", 601)
    rpc(api, "evm_mine")
    if not early:
        quote(ENTRY, 0)  # a late pre-split quote, after effectiveAt
    quote(post_split, 1)
    time.sleep(0.5)  # a keeper step or two: nothing to hold, nothing to fire
    p = _position(api, position_id)
    assert p["status"] == "open" and p["audit"] == [] and _exit_requests(api) == []
    assert (p["size"], p["costBasis"]) == (before["size"], before["costBasis"])
    assert Decimal(p["currentPrice"]) == ENTRY, "the position is worth what it was"
    assert p["multiplier"]["current"] == str(ratio.normalize())
    # A real fall through the stop, quoted post-split: fired on the per-token price.
    _send(api, oracle.functions.setQuote(token, price_base(Decimal(160) / ratio), 1, REGULAR), "quote")
    p = _wait_position(api, position_id, lambda p: p["status"] == "closed")
    assert [e["ruleIndex"] for e in _exits(p)] == [1] and _exits(p)[0]["oraclePrice"] == "160"
