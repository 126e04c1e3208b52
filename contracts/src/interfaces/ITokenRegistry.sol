// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title ITokenRegistry
/// @notice `symbol → token` for tradable equity tokens, and each vault's allowlist of them.
interface ITokenRegistry {
    error InvalidSymbol(string symbol);
    error SymbolTaken(string symbol, address token);
    error TokenAlreadyRegistered(address token);
    error UnknownToken(address token);
    error ZeroAddress();

    event TokenRegistered(string symbol, address indexed token, uint8 decimals);
    event TokenAllowed(uint256 indexed vaultId, address indexed token, bool allowed);

    /// @notice `symbol` is 1–11 characters of A–Z, 0–9 and '.'.
    function registerToken(string calldata symbol, address token) external;
    function setAllowed(uint256 vaultId, address token, bool allowed) external;

    function isAllowed(uint256 vaultId, address token) external view returns (bool);
    /// @return token for `symbol`, the zero address if unknown
    function tokenOf(string calldata symbol) external view returns (address);
    /// @return symbol of `token`, empty if unknown
    function symbolOf(address token) external view returns (string memory);
    function tokens() external view returns (address[] memory);
}
