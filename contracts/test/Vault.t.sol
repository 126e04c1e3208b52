// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";

import {IVault} from "../src/interfaces/IVault.sol";
import {EquityToken} from "../src/tokens/EquityToken.sol";
import {MockUSDC} from "../src/tokens/MockUSDC.sol";
import {Vault} from "../src/Vault.sol";
import {TestBase} from "./utils/Vm.sol";

/// @notice Vault on its own: only the router moves funds for trades; the admin withdraws USDC only.
contract VaultTest is TestBase {
    address internal admin = address(0xAD);
    address internal router = address(0x2007E2);
    address internal stranger = address(0x5757);
    address internal treasury = address(0x7EA5);
    address internal issuer = address(0x1550E);

    MockUSDC internal usdc;
    EquityToken internal nvda;
    Vault internal vault;
    bytes32 internal routerRole;
    bytes32 internal adminRole;

    function setUp() public {
        usdc = new MockUSDC(admin);
        nvda = new EquityToken("NVIDIA (tokenized)", "NVDA", issuer);
        vault = new Vault(admin, address(usdc));
        routerRole = vault.ROUTER_ROLE();
        adminRole = vault.DEFAULT_ADMIN_ROLE();
        vm.startPrank(admin);
        vault.grantRole(routerRole, router);
        usdc.mint(address(vault), 1_000_000e6);
        vm.stopPrank();
        vm.prank(issuer);
        nvda.mint(address(vault), 50e18);
    }

    function test_constructor_setsUsdcAndAdminOnly() public {
        Vault fresh = new Vault(admin, address(usdc));
        vm.assertEq(fresh.usdc(), address(usdc), "usdc");
        vm.assertTrue(fresh.hasRole(adminRole, admin), "admin");
        vm.assertFalse(fresh.hasRole(routerRole, admin), "admin is not a router");
        vm.assertFalse(fresh.hasRole(adminRole, address(this)), "deployer has no role");
        vm.assertEq(routerRole, keccak256("ROUTER_ROLE"), "role id");
    }

    function test_anyoneMayFundWithPlainTransfer() public {
        vm.prank(admin);
        usdc.mint(stranger, 10e6);
        vm.prank(stranger);
        usdc.transfer(address(vault), 10e6);
        vm.assertEq(usdc.balanceOf(address(vault)), 1_000_010e6, "funded");
    }

    // ------------------------------------------------------------------ pay

    function test_pay_routerMovesUsdcAndEquity() public {
        vm.startPrank(router);
        vault.pay(address(usdc), treasury, 250e6);
        vault.pay(address(nvda), treasury, 1.5e18);
        vm.stopPrank();
        vm.assertEq(usdc.balanceOf(treasury), 250e6, "usdc paid");
        vm.assertEq(usdc.balanceOf(address(vault)), 1_000_000e6 - 250e6, "usdc left");
        vm.assertEq(nvda.balanceOf(treasury), 1.5e18, "nvda paid");
        vm.assertEq(nvda.balanceOf(address(vault)), 48.5e18, "nvda left");
    }

    function test_pay_revertsForNonRouter() public {
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, stranger, routerRole)
        );
        vm.prank(stranger);
        vault.pay(address(usdc), stranger, 1);
    }

    function test_pay_revertsForAdminWithoutRouterRole() public {
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, admin, routerRole)
        );
        vm.prank(admin);
        vault.pay(address(nvda), admin, 1);
    }

    function test_pay_revertsWhenRouterRoleRevoked() public {
        vm.prank(admin);
        vault.revokeRole(routerRole, router);
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, router, routerRole)
        );
        vm.prank(router);
        vault.pay(address(usdc), router, 1);
    }

    function test_pay_revertsBeyondBalance() public {
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientBalance.selector, address(vault), 50e18, 50e18 + 1)
        );
        vm.prank(router);
        vault.pay(address(nvda), treasury, 50e18 + 1);
    }

    // ------------------------------------------------------------------ withdrawUsdc

    function test_withdrawUsdc_adminWithdrawsAndEmits() public {
        vm.expectEmit(true, true, true, true, address(vault));
        emit IVault.Withdrawn(treasury, 400e6);
        vm.prank(admin);
        vault.withdrawUsdc(treasury, 400e6);
        vm.assertEq(usdc.balanceOf(treasury), 400e6, "treasury");
        vm.assertEq(usdc.balanceOf(address(vault)), 1_000_000e6 - 400e6, "vault");
    }

    function test_withdrawUsdc_movesOnlyUsdcNeverEquity() public {
        vm.prank(admin);
        vault.withdrawUsdc(treasury, 1_000_000e6);
        vm.assertEq(usdc.balanceOf(address(vault)), 0, "all usdc out");
        vm.assertEq(nvda.balanceOf(address(vault)), 50e18, "equity backing positions stays");
        vm.assertEq(nvda.balanceOf(treasury), 0, "no equity withdrawn");
    }

    function test_withdrawUsdc_revertsForNonAdmin() public {
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, stranger, adminRole)
        );
        vm.prank(stranger);
        vault.withdrawUsdc(stranger, 1);
    }

    function test_withdrawUsdc_revertsForRouter() public {
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, router, adminRole)
        );
        vm.prank(router);
        vault.withdrawUsdc(router, 1);
    }

    function test_withdrawUsdc_revertsBeyondBalance() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IERC20Errors.ERC20InsufficientBalance.selector, address(vault), 1_000_000e6, 1_000_000e6 + 1
            )
        );
        vm.prank(admin);
        vault.withdrawUsdc(treasury, 1_000_000e6 + 1);
    }
}
