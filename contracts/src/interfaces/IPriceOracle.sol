// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title IPriceOracle
/// @notice USD price per token with 8 decimals and the time it was set, in Chainlink's round shape.
interface IPriceOracle {
    error PriceUnavailable(address token);
    error InvalidPrice(uint256 price);
    error LengthMismatch();

    event PriceUpdated(address indexed token, uint256 indexed roundId, uint256 price, uint256 updatedAt);

    function setPrice(address token, uint256 price) external;
    function setPrices(address[] calldata tokens, uint256[] calldata prices) external;

    /// @notice Reverts with `PriceUnavailable` for a token that never had a price.
    function latestPrice(address token) external view returns (uint256 price, uint256 updatedAt, uint256 roundId);
    /// @notice `AggregatorV3Interface.latestRoundData`, per token.
    function latestRoundData(address token)
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
    function decimals() external pure returns (uint8);
}
