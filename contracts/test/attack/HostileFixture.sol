// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IExecutionVenue} from "../../src/interfaces/IExecutionVenue.sol";
import {EquityToken} from "../../src/tokens/EquityToken.sol";
import {MockUSDC} from "../../src/tokens/MockUSDC.sol";
import {Fixture} from "../utils/Fixture.sol";
import {HostileEquityToken, HostileUSDC} from "./HostileTokens.sol";
import {HostileVenue} from "./HostileVenue.sol";

/// @notice The fixture's system with hostile parts in place, each behaving honestly until armed:
///         USDC and NVDA with transfer hooks, and a venue that fills through the fixture's venue.
/// @dev    Venue, USDC and equity tokens are all chosen by the operator (router constructor, token
///         registry), so each hostile part stands for a wrong or compromised deployment.
abstract contract HostileFixture is Fixture {
    HostileUSDC internal hUsdc;
    HostileEquityToken internal hNvda;
    HostileVenue internal hVenue;

    function _newUsdc() internal override returns (MockUSDC) {
        hUsdc = new HostileUSDC(admin);
        return hUsdc;
    }

    function _newEquity(string memory name, string memory symbol) internal override returns (EquityToken) {
        if (keccak256(bytes(symbol)) != keccak256("NVDA")) return super._newEquity(name, symbol);
        hNvda = new HostileEquityToken(name, symbol, address(venue));
        return hNvda;
    }

    /// @dev The router trades through the hostile venue, which fills through the fixture's venue.
    function _routerVenue() internal override returns (IExecutionVenue) {
        hVenue = new HostileVenue(venue, usdc);
        venue.grantRole(venue.TRADER_ROLE(), address(hVenue));
        return hVenue;
    }

    /// @dev Opens NVDA under the default ladder and moves its price to `pnlBps`.
    function _openAt(int256 pnlBps) internal returns (uint256 positionId) {
        positionId = _open(1_000e6);
        _setPrice(address(nvda), _priceAtPnl(positionId, pnlBps));
    }
}
