// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

import {MockUSDC} from "../../src/tokens/MockUSDC.sol";
import {TestBase} from "../utils/Vm.sol";

contract MockUSDCTest is TestBase {
    address internal owner = address(0xAD);
    address internal stranger = address(0x5757);

    MockUSDC internal usdc;

    function setUp() public {
        usdc = new MockUSDC(owner);
    }

    function test_metadata() public view {
        vm.assertEq(uint256(usdc.decimals()), 6, "6 decimals like USDC");
        vm.assertEq(usdc.symbol(), "USDC", "symbol");
        vm.assertEq(usdc.name(), "USD Coin (mock)", "name");
        vm.assertEq(usdc.owner(), owner, "owner");
        vm.assertEq(usdc.totalSupply(), 0, "no premint");
    }

    function test_mint_ownerMints() public {
        vm.prank(owner);
        usdc.mint(stranger, 1_000e6);
        vm.assertEq(usdc.balanceOf(stranger), 1_000e6, "balance");
        vm.assertEq(usdc.totalSupply(), 1_000e6, "supply");
    }

    function test_mint_revertsForNonOwner() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        vm.prank(stranger);
        usdc.mint(stranger, 1);
    }

    function test_mint_revertsForDeployerWhoIsNotOwner() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, address(this)));
        usdc.mint(address(this), 1);
    }

    function test_constructor_revertsForZeroOwner() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableInvalidOwner.selector, address(0)));
        new MockUSDC(address(0));
    }

    function test_transferOwnership_movesMintRight() public {
        vm.prank(owner);
        usdc.transferOwnership(stranger);
        vm.prank(stranger);
        usdc.mint(stranger, 5e6);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, owner));
        vm.prank(owner);
        usdc.mint(owner, 1);
        vm.assertEq(usdc.balanceOf(stranger), 5e6, "new owner minted");
    }

    function testFuzz_mint_anyAmount(address to, uint256 amount) public {
        vm.assume(to != address(0));
        vm.prank(owner);
        usdc.mint(to, amount);
        vm.assertEq(usdc.balanceOf(to), amount, "balance");
    }
}
