// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

import {IPriceOracle} from "./interfaces/IPriceOracle.sol";

/// @title PriceOracle
/// @notice Operator-pushed USD prices (8 decimals) per token, one Chainlink-style round per update.
///         On a local chain the operator is the price feed; elsewhere a keeper mirrors a real feed.
contract PriceOracle is IPriceOracle, AccessControl {
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");

    /// @dev One slot per token.
    struct Feed {
        uint128 price;
        uint64 updatedAt;
        uint64 roundId;
    }

    mapping(address token => Feed) private _feeds;

    constructor(address admin) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(OPERATOR_ROLE, admin);
    }

    /// @inheritdoc IPriceOracle
    function setPrice(address token, uint256 price) external onlyRole(OPERATOR_ROLE) {
        _setPrice(token, price);
    }

    /// @inheritdoc IPriceOracle
    function setPrices(address[] calldata tokens, uint256[] calldata prices) external onlyRole(OPERATOR_ROLE) {
        if (tokens.length != prices.length) revert LengthMismatch();
        for (uint256 i; i < tokens.length; ++i) {
            _setPrice(tokens[i], prices[i]);
        }
    }

    /// @inheritdoc IPriceOracle
    function latestPrice(address token) external view returns (uint256 price, uint256 updatedAt, uint256 roundId) {
        Feed memory f = _feeds[token];
        if (f.roundId == 0) revert PriceUnavailable(token);
        return (f.price, f.updatedAt, f.roundId);
    }

    /// @inheritdoc IPriceOracle
    function latestRoundData(address token)
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        Feed memory f = _feeds[token];
        if (f.roundId == 0) revert PriceUnavailable(token);
        return (f.roundId, int256(uint256(f.price)), f.updatedAt, f.updatedAt, f.roundId);
    }

    /// @inheritdoc IPriceOracle
    function decimals() external pure returns (uint8) {
        return 8;
    }

    function _setPrice(address token, uint256 price) private {
        if (price == 0 || price > type(uint128).max) revert InvalidPrice(price);
        uint64 roundId = _feeds[token].roundId + 1;
        _feeds[token] = Feed({price: uint128(price), updatedAt: uint64(block.timestamp), roundId: roundId});
        emit PriceUpdated(token, roundId, price, block.timestamp);
    }
}
