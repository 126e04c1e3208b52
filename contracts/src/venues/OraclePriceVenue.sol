// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

import {IExecutionVenue} from "../interfaces/IExecutionVenue.sol";
import {IPriceOracle} from "../interfaces/IPriceOracle.sol";
import {EquityToken} from "../tokens/EquityToken.sol";

/// @title OraclePriceVenue
/// @notice The local execution venue: fills at the oracle price ± `spreadBps`, minting equity tokens
///         on a buy and redeeming (burning) them from the seller on a sell, as a tokenized-equity
///         issuer does. Sells are paid from the USDC that buys left here (plus whatever the operator
///         seeded).
/// @dev    Trusts its traders (the router) to have transferred a buy's USDC before calling, and to
///         name as a sale's `from` only an account whose tokens they may sell (the router: the vault).
///         Outputs round down: the venue never pays out more than the price says.
contract OraclePriceVenue is IExecutionVenue, AccessControl {
    using SafeERC20 for IERC20;

    bytes32 public constant TRADER_ROLE = keccak256("TRADER_ROLE");
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
    uint256 private constant BPS = 10_000;
    uint256 public constant MAX_SPREAD_BPS = 1_000;

    IPriceOracle public immutable oracle;
    IERC20 public immutable usdc;
    uint16 public spreadBps;

    error SpreadTooLarge(uint256 spreadBps);
    error InsufficientLiquidity(uint256 available, uint256 needed);

    event SpreadSet(uint256 spreadBps);

    constructor(address admin, IPriceOracle oracle_, IERC20 usdc_, uint16 spreadBps_) {
        oracle = oracle_;
        usdc = usdc_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(OPERATOR_ROLE, admin);
        _setSpread(spreadBps_);
    }

    function setSpread(uint16 spreadBps_) external onlyRole(OPERATOR_ROLE) {
        _setSpread(spreadBps_);
    }

    /// @inheritdoc IExecutionVenue
    function buy(address token, uint256 usdcIn, address recipient)
        external
        onlyRole(TRADER_ROLE)
        returns (uint256 tokensOut)
    {
        tokensOut = quoteBuy(token, usdcIn);
        EquityToken(token).mint(recipient, tokensOut);
    }

    /// @inheritdoc IExecutionVenue
    function sell(address token, uint256 tokensIn, address from, address recipient)
        external
        onlyRole(TRADER_ROLE)
        returns (uint256 usdcOut)
    {
        usdcOut = quoteSell(token, tokensIn);
        EquityToken(token).redeem(from, tokensIn);
        // Paid first, the liquidity read only when the payment fails: a balance read on every sale
        // costs more than the rare failure's second attempt.
        if (!usdc.trySafeTransfer(recipient, usdcOut)) {
            uint256 available = usdc.balanceOf(address(this));
            if (available < usdcOut) revert InsufficientLiquidity(available, usdcOut);
            usdc.safeTransfer(recipient, usdcOut); // failed for another reason: revert as USDC does
        }
    }

    /// @inheritdoc IExecutionVenue
    function quoteBuy(address token, uint256 usdcIn) public view returns (uint256) {
        (uint256 price,,) = oracle.latestPrice(token);
        return Math.mulDiv(usdcIn, _scale(token) * BPS, price * (BPS + spreadBps));
    }

    /// @inheritdoc IExecutionVenue
    function quoteSell(address token, uint256 tokensIn) public view returns (uint256) {
        (uint256 price,,) = oracle.latestPrice(token);
        return Math.mulDiv(tokensIn, price * (BPS - spreadBps), _scale(token) * BPS);
    }

    function _scale(address token) private view returns (uint256) {
        return 10 ** (uint256(IERC20Metadata(token).decimals()) + 2);
    }

    function _setSpread(uint16 spreadBps_) private {
        if (spreadBps_ > MAX_SPREAD_BPS) revert SpreadTooLarge(spreadBps_);
        spreadBps = spreadBps_;
        emit SpreadSet(spreadBps_);
    }
}
