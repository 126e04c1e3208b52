// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {IExecutionVenue} from "../../src/interfaces/IExecutionVenue.sol";
import {Reentrant} from "./Reentrant.sol";

/// @notice An execution venue that calls back mid-fill: it has received the vault's input and not
///         yet delivered the output (the router has not written its books) when it makes its armed
///         call. It fills through `inner`, and may also lie: deliver only `deliverBps` of the fill to
///         the recipient (keeping the rest) while reporting `reportBps` of it as the amount sent; and,
///         as a sale takes the tokens from the seller itself, take `takeBps` of the tokens sold.
/// @dev    The router's venue is immutable and set by its admin, so a hostile venue means a wrong or
///         compromised deployment; the tests show what such a venue can still not do.
contract HostileVenue is IExecutionVenue, Reentrant {
    using SafeERC20 for IERC20;

    uint256 private constant BPS = 10_000;

    IExecutionVenue public immutable inner;
    IERC20 public immutable usdc;
    uint256 public deliverBps = BPS;
    uint256 public reportBps = BPS;
    uint256 public takeBps = BPS;

    constructor(IExecutionVenue inner_, IERC20 usdc_) {
        inner = inner_;
        usdc = usdc_;
    }

    function setLies(uint256 deliverBps_, uint256 reportBps_) external {
        deliverBps = deliverBps_;
        reportBps = reportBps_;
    }

    function setTake(uint256 takeBps_) external {
        takeBps = takeBps_;
    }

    function buy(address token, uint256 usdcIn, address recipient) external returns (uint256) {
        _reenter();
        usdc.safeTransfer(address(inner), usdcIn);
        if (!_lying()) return inner.buy(token, usdcIn, recipient);
        return _pass(IERC20(token), inner.buy(token, usdcIn, address(this)), recipient);
    }

    function sell(address token, uint256 tokensIn, address from, address recipient) external returns (uint256) {
        _reenter();
        uint256 taken = tokensIn * takeBps / BPS;
        if (!_lying()) return inner.sell(token, taken, from, recipient);
        return _pass(usdc, inner.sell(token, taken, from, address(this)), recipient);
    }

    function quoteBuy(address token, uint256 usdcIn) external view returns (uint256) {
        return inner.quoteBuy(token, usdcIn);
    }

    function quoteSell(address token, uint256 tokensIn) external view returns (uint256) {
        return inner.quoteSell(token, tokensIn);
    }

    function _lying() private view returns (bool) {
        return deliverBps != BPS || reportBps != BPS;
    }

    /// @return reported what the venue claims it sent
    function _pass(IERC20 asset, uint256 filled, address recipient) private returns (uint256 reported) {
        asset.safeTransfer(recipient, filled * deliverBps / BPS);
        return filled * reportBps / BPS;
    }
}
