// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title IExecutionVenue
/// @notice Where USDC becomes equity tokens and back. The caller transfers the input to the venue
///         first, then calls `buy` / `sell`; the venue sends the output to `recipient`. The router
///         books what reaches `recipient` (its balance change), not the returned amount.
interface IExecutionVenue {
    function buy(address token, uint256 usdcIn, address recipient) external returns (uint256 tokensOut);
    function sell(address token, uint256 tokensIn, address recipient) external returns (uint256 usdcOut);
    function quoteBuy(address token, uint256 usdcIn) external view returns (uint256 tokensOut);
    function quoteSell(address token, uint256 tokensIn) external view returns (uint256 usdcOut);
}
