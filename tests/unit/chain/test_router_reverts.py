"""`relayer.chain.router.Revert`: a simulated router revert → the API's code and details (SPEC §2.1, §5.6)."""

from __future__ import annotations

from relayer.chain.reverts import DecodedRevert
from relayer.chain.router import Revert, RevertKind

NVDA = "0x" + "11" * 20


def test_market_closed_maps_to_market_closed_with_the_status() -> None:
    r = Revert(DecodedRevert("MarketClosed", {"token": NVDA, "status": 5}, "0x"))
    assert r.code == "market_closed" and r.kind is RevertKind.REFUSED
    error = r.error()
    assert (error.code, error.status) == ("market_closed", 422)
    assert error.details["marketStatus"] == "Closed" and error.details["nextOpen"] is None
    assert error.details["revert"]["error"] == "MarketClosed"


def test_market_closed_for_the_quoted_status() -> None:
    # a hold track's exit refused because the last price was quoted in PreMarket
    error = Revert(DecodedRevert("MarketClosed", {"token": NVDA, "status": 1}, "0x")).error()
    assert error.details["marketStatus"] == "PreMarket"


def test_market_halted_maps_to_market_closed_halted() -> None:
    error = Revert(DecodedRevert("MarketHalted", {"token": NVDA}, "0x")).error()
    assert error.code == "market_closed"
    assert error.details["marketStatus"] == "Halted" and error.details["nextOpen"] is None
