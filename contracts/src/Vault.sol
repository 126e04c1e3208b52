// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {IVault} from "./interfaces/IVault.sol";

/// @title Vault
/// @notice One vault's capital: USDC and the equity tokens its agents' positions hold. Anyone may
///         fund it with a plain transfer; only the router (ROUTER_ROLE) moves funds out for trades.
///         A sale's tokens do not pass through here: their issuer (the venue, at the router's call)
///         redeems them from this vault (`EquityToken.redeem`) and pays the USDC in. So ROUTER_ROLE
///         gates buys, not sales: to stop sales, pause the router or revoke its TRADER_ROLE on the venue.
contract Vault is IVault, AccessControl {
    using SafeERC20 for IERC20;

    bytes32 public constant ROUTER_ROLE = keccak256("ROUTER_ROLE");

    address public immutable usdc;

    constructor(address admin, address usdc_) {
        usdc = usdc_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @inheritdoc IVault
    function pay(address token, address to, uint256 amount) external onlyRole(ROUTER_ROLE) {
        IERC20(token).safeTransfer(to, amount);
    }

    /// @inheritdoc IVault
    function withdrawUsdc(address to, uint256 amount) external onlyRole(DEFAULT_ADMIN_ROLE) {
        IERC20(usdc).safeTransfer(to, amount);
        emit Withdrawn(to, amount);
    }
}
