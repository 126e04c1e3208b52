// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

import {IPriceOracle} from "../src/interfaces/IPriceOracle.sol";
import {PriceOracle} from "../src/PriceOracle.sol";
import {TestBase} from "./utils/Vm.sol";

/// @notice PriceOracle on its own: rounds, timestamps, bounds, the Chainlink-shaped view, roles.
contract PriceOracleTest is TestBase {
    address internal admin = address(0xAD);
    address internal stranger = address(0x5757);
    address internal nvda = address(0x4E5DA);
    address internal aapl = address(0xAA91);
    uint256 internal constant T0 = 1_750_000_000;

    PriceOracle internal oracle;
    bytes32 internal operatorRole;

    function setUp() public {
        vm.warp(T0);
        oracle = new PriceOracle(admin);
        operatorRole = oracle.OPERATOR_ROLE();
    }

    function _set(address token, uint256 price) internal {
        vm.prank(admin);
        oracle.setPrice(token, price);
    }

    function _pair(address a, address b) internal pure returns (address[] memory tokens) {
        tokens = new address[](2);
        tokens[0] = a;
        tokens[1] = b;
    }

    function _pair(uint256 a, uint256 b) internal pure returns (uint256[] memory prices) {
        prices = new uint256[](2);
        prices[0] = a;
        prices[1] = b;
    }

    function _expectUnauthorized(address who) internal {
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, who, operatorRole)
        );
    }

    // ------------------------------------------------------------------ setPrice

    function test_decimals_isEight() public view {
        vm.assertEq(oracle.decimals(), 8, "decimals");
    }

    function test_setPrice_storesPriceTimestampAndFirstRound() public {
        _set(nvda, 180e8);
        (uint256 price, uint256 updatedAt, uint256 roundId) = oracle.latestPrice(nvda);
        vm.assertEq(price, 180e8, "price");
        vm.assertEq(updatedAt, T0, "updatedAt = block.timestamp");
        vm.assertEq(roundId, 1, "first round is 1");
    }

    function test_setPrice_incrementsRoundAndTakesNewTimestamp() public {
        _set(nvda, 180e8);
        vm.warp(T0 + 90);
        _set(nvda, 181e8);
        (uint256 price, uint256 updatedAt, uint256 roundId) = oracle.latestPrice(nvda);
        vm.assertEq(price, 181e8, "price");
        vm.assertEq(updatedAt, T0 + 90, "updatedAt");
        vm.assertEq(roundId, 2, "round 2");
        _set(nvda, 181e8); // same price, same block: still a new round
        (,, roundId) = oracle.latestPrice(nvda);
        vm.assertEq(roundId, 3, "every update is a round");
    }

    function test_setPrice_roundsArePerToken() public {
        _set(nvda, 180e8);
        _set(nvda, 182e8);
        _set(aapl, 230e8);
        (,, uint256 nvdaRound) = oracle.latestPrice(nvda);
        (uint256 aaplPrice,, uint256 aaplRound) = oracle.latestPrice(aapl);
        vm.assertEq(nvdaRound, 2, "NVDA rounds");
        vm.assertEq(aaplRound, 1, "AAPL rounds independent");
        vm.assertEq(aaplPrice, 230e8, "AAPL price");
    }

    function test_setPrice_emitsPriceUpdated() public {
        _set(nvda, 180e8);
        vm.warp(T0 + 5);
        vm.expectEmit(true, true, true, true, address(oracle));
        emit IPriceOracle.PriceUpdated(nvda, 2, 179e8, T0 + 5);
        _set(nvda, 179e8);
    }

    function test_setPrice_revertsForZero() public {
        vm.expectRevert(abi.encodeWithSelector(IPriceOracle.InvalidPrice.selector, 0));
        vm.prank(admin);
        oracle.setPrice(nvda, 0);
    }

    function test_setPrice_revertsAboveUint128() public {
        uint256 tooBig = uint256(type(uint128).max) + 1;
        vm.expectRevert(abi.encodeWithSelector(IPriceOracle.InvalidPrice.selector, tooBig));
        vm.prank(admin);
        oracle.setPrice(nvda, tooBig);
    }

    function test_setPrice_acceptsOneAndUint128Max() public {
        _set(nvda, 1);
        (uint256 price,,) = oracle.latestPrice(nvda);
        vm.assertEq(price, 1, "smallest price");
        _set(nvda, type(uint128).max);
        (price,,) = oracle.latestPrice(nvda);
        vm.assertEq(price, type(uint128).max, "largest price");
    }

    function testFuzz_setPrice_roundTrip(uint256 price, uint64 timestamp) public {
        price = bound(price, 1, type(uint128).max);
        vm.warp(bound(timestamp, T0, type(uint64).max));
        _set(nvda, price);
        (uint256 p, uint256 updatedAt, uint256 roundId) = oracle.latestPrice(nvda);
        vm.assertEq(p, price, "price");
        vm.assertEq(updatedAt, block.timestamp, "updatedAt");
        vm.assertEq(roundId, 1, "round");
    }

    function test_setPrice_revertsForNonOperator() public {
        _expectUnauthorized(stranger);
        vm.prank(stranger);
        oracle.setPrice(nvda, 1e8);
    }

    // ------------------------------------------------------------------ setPrices

    function test_setPrices_setsEachToken() public {
        vm.expectEmit(true, true, true, true, address(oracle));
        emit IPriceOracle.PriceUpdated(nvda, 1, 180e8, T0);
        vm.expectEmit(true, true, true, true, address(oracle));
        emit IPriceOracle.PriceUpdated(aapl, 1, 230e8, T0);
        vm.prank(admin);
        oracle.setPrices(_pair(nvda, aapl), _pair(180e8, 230e8));
        (uint256 nvdaPrice,,) = oracle.latestPrice(nvda);
        (uint256 aaplPrice,,) = oracle.latestPrice(aapl);
        vm.assertEq(nvdaPrice, 180e8, "NVDA");
        vm.assertEq(aaplPrice, 230e8, "AAPL");
    }

    function test_setPrices_sameTokenTwiceTakesTwoRounds() public {
        vm.prank(admin);
        oracle.setPrices(_pair(nvda, nvda), _pair(180e8, 181e8));
        (uint256 price,, uint256 roundId) = oracle.latestPrice(nvda);
        vm.assertEq(price, 181e8, "last wins");
        vm.assertEq(roundId, 2, "two rounds");
    }

    function test_setPrices_revertsOnLengthMismatch() public {
        uint256[] memory one = new uint256[](1);
        one[0] = 1e8;
        vm.expectRevert(IPriceOracle.LengthMismatch.selector);
        vm.prank(admin);
        oracle.setPrices(_pair(nvda, aapl), one);
    }

    function test_setPrices_isAtomicWhenOnePriceInvalid() public {
        vm.expectRevert(abi.encodeWithSelector(IPriceOracle.InvalidPrice.selector, 0));
        vm.prank(admin);
        oracle.setPrices(_pair(nvda, aapl), _pair(180e8, 0));
        vm.expectRevert(abi.encodeWithSelector(IPriceOracle.PriceUnavailable.selector, nvda));
        oracle.latestPrice(nvda);
    }

    function test_setPrices_acceptsEmptyBatch() public {
        vm.prank(admin);
        oracle.setPrices(new address[](0), new uint256[](0));
    }

    function test_setPrices_revertsForNonOperator() public {
        _expectUnauthorized(stranger);
        vm.prank(stranger);
        oracle.setPrices(_pair(nvda, aapl), _pair(180e8, 230e8));
    }

    // ------------------------------------------------------------------ views

    function test_latestPrice_revertsWhenNeverSet() public {
        vm.expectRevert(abi.encodeWithSelector(IPriceOracle.PriceUnavailable.selector, nvda));
        oracle.latestPrice(nvda);
    }

    function test_latestRoundData_revertsWhenNeverSet() public {
        vm.expectRevert(abi.encodeWithSelector(IPriceOracle.PriceUnavailable.selector, aapl));
        oracle.latestRoundData(aapl);
    }

    function test_latestRoundData_hasChainlinkShape() public {
        _set(nvda, 180e8);
        vm.warp(T0 + 300);
        _set(nvda, 17_912_345_678);
        (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound) =
            oracle.latestRoundData(nvda);
        vm.assertEq(uint256(roundId), 2, "roundId");
        vm.assertEq(answer, int256(17_912_345_678), "answer");
        vm.assertEq(startedAt, T0 + 300, "startedAt = updatedAt");
        vm.assertEq(updatedAt, T0 + 300, "updatedAt");
        vm.assertEq(uint256(answeredInRound), 2, "answeredInRound = roundId");
    }

    function test_latestRoundData_answerIsPositiveAtUint128Max() public {
        _set(nvda, type(uint128).max);
        (, int256 answer,,,) = oracle.latestRoundData(nvda);
        vm.assertEq(answer, int256(uint256(type(uint128).max)), "no sign flip");
    }

    // ------------------------------------------------------------------ roles

    function test_constructor_grantsAdminAndOperatorRoles() public view {
        vm.assertTrue(oracle.hasRole(oracle.DEFAULT_ADMIN_ROLE(), admin), "admin");
        vm.assertTrue(oracle.hasRole(operatorRole, admin), "operator");
        vm.assertFalse(oracle.hasRole(operatorRole, address(this)), "deployer has no role");
    }

    function test_grantedOperator_maySetPrices() public {
        vm.startPrank(admin);
        oracle.grantRole(operatorRole, stranger);
        vm.stopPrank();
        _expectUnauthorized(address(0xBAD));
        vm.prank(address(0xBAD));
        oracle.setPrice(nvda, 1e8);
        vm.prank(stranger);
        oracle.setPrice(nvda, 1e8);
        (uint256 price,,) = oracle.latestPrice(nvda);
        vm.assertEq(price, 1e8, "feed operator");
    }
}
