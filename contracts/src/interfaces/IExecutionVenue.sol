// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title IExecutionVenue
/// @notice Where USDC becomes equity tokens and back; the venue sends the output to `recipient`. The
///         router books what reaches `recipient` (its balance change), not the returned amount, and
///         checks that a sale took no more than `tokensIn` from `from`.
interface IExecutionVenue {
    /// @notice The caller transfers `usdcIn` to the venue first.
    function buy(address token, uint256 usdcIn, address recipient) external returns (uint256 tokensOut);
    /// @notice Takes `tokensIn` of `token` from `from` itself (the caller transfers nothing): the issuer
    ///         redeems them (burns them from `from`); a venue that is not the issuer would pull them
    ///         with `from`'s allowance. Only the venue's traders (the router) may call it, as `from`
    ///         is any holder.
    function sell(address token, uint256 tokensIn, address from, address recipient)
        external
        returns (uint256 usdcOut);
    function quoteBuy(address token, uint256 usdcIn) external view returns (uint256 tokensOut);
    function quoteSell(address token, uint256 tokensIn) external view returns (uint256 usdcOut);
}
