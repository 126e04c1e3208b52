// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {IExecutionVenue} from "../../src/interfaces/IExecutionVenue.sol";
import {Reentrant} from "./Reentrant.sol";

/// @notice An execution venue that calls back mid-fill: it has received the vault's input and not
///         yet delivered the output (the router has not written its books) when it makes its armed
///         call. It then fills honestly through `inner`, so only the callback is hostile.
/// @dev    The router's venue is immutable and set by its admin, so a hostile venue means a wrong or
///         compromised deployment; the tests show what such a venue can still not do.
contract HostileVenue is IExecutionVenue, Reentrant {
    using SafeERC20 for IERC20;

    IExecutionVenue public immutable inner;
    IERC20 public immutable usdc;

    constructor(IExecutionVenue inner_, IERC20 usdc_) {
        inner = inner_;
        usdc = usdc_;
    }

    function buy(address token, uint256 usdcIn, address recipient) external returns (uint256) {
        _reenter();
        usdc.safeTransfer(address(inner), usdcIn);
        return inner.buy(token, usdcIn, recipient);
    }

    function sell(address token, uint256 tokensIn, address recipient) external returns (uint256) {
        _reenter();
        IERC20(token).safeTransfer(address(inner), tokensIn);
        return inner.sell(token, tokensIn, recipient);
    }

    function quoteBuy(address token, uint256 usdcIn) external view returns (uint256) {
        return inner.quoteBuy(token, usdcIn);
    }

    function quoteSell(address token, uint256 tokensIn) external view returns (uint256) {
        return inner.quoteSell(token, tokensIn);
    }
}
