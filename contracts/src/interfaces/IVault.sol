// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title IVault
/// @notice Holds one vault's USDC and equity tokens. Only the router moves them out, except the tokens
///         a sale sells, which their issuer (the venue) redeems from the vault at the router's call.
interface IVault {
    event Withdrawn(address indexed to, uint256 amount);

    /// @notice Sends `amount` of `token` to `to`; router only.
    function pay(address token, address to, uint256 amount) external;
    /// @notice Sends USDC (never equity tokens, which back open positions) to `to`; admin only.
    function withdrawUsdc(address to, uint256 amount) external;
    function usdc() external view returns (address);
}
