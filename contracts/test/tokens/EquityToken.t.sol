// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";

import {EquityToken} from "../../src/tokens/EquityToken.sol";
import {TestBase} from "../utils/Vm.sol";

contract EquityTokenTest is TestBase {
    address internal minter = address(0x1550E); // the venue, in the deployed system
    address internal holder = address(0x40D);
    address internal stranger = address(0x5757);

    EquityToken internal token;

    function setUp() public {
        token = new EquityToken("NVIDIA (tokenized)", "NVDA", minter);
    }

    function test_metadata() public view {
        vm.assertEq(uint256(token.decimals()), 18, "18 decimals");
        vm.assertEq(token.symbol(), "NVDA", "symbol");
        vm.assertEq(token.name(), "NVIDIA (tokenized)", "name");
        vm.assertEq(token.minter(), minter, "minter");
        vm.assertEq(token.totalSupply(), 0, "no premint");
    }

    function test_mint_minterMints() public {
        vm.prank(minter);
        token.mint(holder, 2.5e18);
        vm.assertEq(token.balanceOf(holder), 2.5e18, "balance");
        vm.assertEq(token.totalSupply(), 2.5e18, "supply");
    }

    function test_mint_revertsWithNotMinterForOthers() public {
        vm.expectRevert(abi.encodeWithSelector(EquityToken.NotMinter.selector, stranger));
        vm.prank(stranger);
        token.mint(stranger, 1);
    }

    function test_mint_revertsForHolderAndDeployer() public {
        vm.expectRevert(abi.encodeWithSelector(EquityToken.NotMinter.selector, holder));
        vm.prank(holder);
        token.mint(holder, 1);
        vm.expectRevert(abi.encodeWithSelector(EquityToken.NotMinter.selector, address(this)));
        token.mint(address(this), 1);
    }

    function test_burn_holderBurnsOwnTokens() public {
        vm.prank(minter);
        token.mint(holder, 3e18);
        vm.prank(holder);
        token.burn(1e18);
        vm.assertEq(token.balanceOf(holder), 2e18, "balance");
        vm.assertEq(token.totalSupply(), 2e18, "supply");
    }

    function test_burn_revertsBeyondBalance() public {
        vm.prank(minter);
        token.mint(holder, 1e18);
        vm.expectRevert(abi.encodeWithSelector(IERC20Errors.ERC20InsufficientBalance.selector, holder, 1e18, 1e18 + 1));
        vm.prank(holder);
        token.burn(1e18 + 1);
    }

    function test_burnFrom_needsAllowance() public {
        vm.prank(minter);
        token.mint(holder, 1e18);
        vm.expectRevert(abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, stranger, 0, 1));
        vm.prank(stranger);
        token.burnFrom(holder, 1);

        vm.prank(holder);
        token.approve(stranger, 0.4e18);
        vm.prank(stranger);
        token.burnFrom(holder, 0.4e18);
        vm.assertEq(token.balanceOf(holder), 0.6e18, "burnt with allowance");
        vm.assertEq(token.allowance(holder, stranger), 0, "allowance spent");
    }

    function test_redeem_minterBurnsFromHolderWithoutAllowance() public {
        vm.prank(minter);
        token.mint(holder, 3e18);
        vm.prank(minter);
        token.redeem(holder, 1e18);
        vm.assertEq(token.balanceOf(holder), 2e18, "balance");
        vm.assertEq(token.totalSupply(), 2e18, "supply");
        vm.assertEq(token.allowance(holder, minter), 0, "no allowance needed");
    }

    function test_redeem_revertsBeyondBalance() public {
        vm.prank(minter);
        token.mint(holder, 1e18);
        vm.expectRevert(abi.encodeWithSelector(IERC20Errors.ERC20InsufficientBalance.selector, holder, 1e18, 1e18 + 1));
        vm.prank(minter);
        token.redeem(holder, 1e18 + 1);
    }

    /// @dev Burning a holder's tokens without its allowance is the issuer's alone: not a stranger, not
    ///      the holder (it has `burn`), not the deployer, not even with the holder's full allowance.
    function test_redeem_revertsWithNotMinterForOthers() public {
        vm.prank(minter);
        token.mint(holder, 1e18);
        vm.prank(holder);
        token.approve(stranger, type(uint256).max);

        vm.expectRevert(abi.encodeWithSelector(EquityToken.NotMinter.selector, stranger));
        vm.prank(stranger);
        token.redeem(holder, 1);
        vm.expectRevert(abi.encodeWithSelector(EquityToken.NotMinter.selector, holder));
        vm.prank(holder);
        token.redeem(holder, 1);
        vm.expectRevert(abi.encodeWithSelector(EquityToken.NotMinter.selector, address(this)));
        token.redeem(holder, 1);
        vm.assertEq(token.balanceOf(holder), 1e18, "the holder keeps its tokens");
    }

    function testFuzz_redeem_onlyMinter(address caller, uint256 amount) public {
        vm.assume(caller != minter);
        vm.prank(minter);
        token.mint(holder, 1e18);
        amount = bound(amount, 0, 1e18);
        vm.expectRevert(abi.encodeWithSelector(EquityToken.NotMinter.selector, caller));
        vm.prank(caller);
        token.redeem(holder, amount);
        vm.assertEq(token.balanceOf(holder), 1e18, "the holder keeps its tokens");
    }

    function testFuzz_mint_onlyMinter(address caller, uint256 amount) public {
        vm.assume(caller != minter);
        vm.expectRevert(abi.encodeWithSelector(EquityToken.NotMinter.selector, caller));
        vm.prank(caller);
        token.mint(holder, amount);
    }
}
