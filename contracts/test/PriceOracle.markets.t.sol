// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

import {IPriceOracle} from "../src/interfaces/IPriceOracle.sol";
import {PriceOracle} from "../src/PriceOracle.sol";
import {TestBase} from "./utils/Vm.sol";

/// @notice PriceOracle's markets part (SPEC §5.6): statuses, quotes tagged with a multiplier epoch, the
///         multiplier schedule before and after `effectiveAt`, the views, access control.
contract PriceOracleMarketsTest is TestBase {
    address internal admin = address(0xAD);
    address internal stranger = address(0x5757);
    address internal nvda = address(0x4E5DA);
    address internal aapl = address(0xAA91);
    uint256 internal constant T0 = 1_750_000_000;
    uint256 internal constant ONE = 1e18;

    PriceOracle internal oracle;
    bytes32 internal operatorRole;

    function setUp() public {
        vm.warp(T0);
        oracle = new PriceOracle(admin);
        operatorRole = oracle.OPERATOR_ROLE();
    }

    // ------------------------------------------------------------------ helpers

    function _schedule(address token, uint256 multiplier, uint256 at) internal {
        vm.prank(admin);
        oracle.scheduleMultiplier(token, multiplier, at);
    }

    function _quote(address token, uint256 sharePrice, uint256 epoch, IPriceOracle.MarketStatus status) internal {
        vm.prank(admin);
        oracle.setQuote(token, sharePrice, epoch, status);
    }

    function _status(address token, IPriceOracle.MarketStatus status) internal {
        vm.prank(admin);
        oracle.setMarketStatus(token, status);
    }

    function _price(address token) internal view returns (uint256 price) {
        (price,,) = oracle.latestPrice(token);
    }

    function _expectUnauthorized(address who) internal {
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, who, operatorRole)
        );
    }

    function _statusOf(address token) internal view returns (uint256) {
        return uint256(oracle.marketStatus(token));
    }

    // ------------------------------------------------------------------ defaults

    function test_defaults_unknownStatusAndMultiplierOne() public view {
        vm.assertEq(_statusOf(nvda), 0, "Unknown");
        (uint256 current, uint256 next, uint256 at) = oracle.multiplierOf(nvda);
        vm.assertEq(current, ONE, "current");
        vm.assertEq(next, ONE, "next");
        vm.assertEq(at, 0, "effectiveAt");
        (uint256 epoch, uint256 oldM, uint256 newM, uint256 at2) = oracle.multiplierSchedule(nvda);
        vm.assertEq(epoch, 0, "epoch");
        vm.assertEq(oldM, ONE, "old");
        vm.assertEq(newM, ONE, "new");
        vm.assertEq(at2, 0, "at");
        vm.assertEq(oracle.multiplierEpochOf(nvda), 0, "epoch in force");
    }

    function test_setPrice_withDefaultMultiplier_sharePriceEqualsTokenPrice() public {
        vm.prank(admin);
        oracle.setPrice(nvda, 180e8);
        IPriceOracle.Quote memory q = oracle.latestQuote(nvda);
        vm.assertEq(q.price, 180e8, "per token");
        vm.assertEq(q.sharePrice, 180e8, "per share");
        vm.assertEq(q.multiplier, ONE, "multiplier");
        vm.assertEq(q.epoch, 0, "epoch");
        vm.assertEq(q.roundId, 1, "round");
        vm.assertEq(q.updatedAt, T0, "updatedAt");
        vm.assertEq(uint256(q.status), 0, "status untouched by setPrice");
    }

    // ------------------------------------------------------------------ market status

    function test_setMarketStatus_storesAndEmits() public {
        vm.expectEmit(true, true, true, true, address(oracle));
        emit IPriceOracle.MarketStatusSet(nvda, IPriceOracle.MarketStatus.Halted, T0);
        _status(nvda, IPriceOracle.MarketStatus.Halted);
        vm.assertEq(_statusOf(nvda), 6, "Halted");
        vm.assertEq(_statusOf(aapl), 0, "per token");
    }

    function test_setMarketStatus_sameStatusEmitsNothing() public {
        _status(nvda, IPriceOracle.MarketStatus.Regular);
        vm.recordLogs();
        _status(nvda, IPriceOracle.MarketStatus.Regular);
        vm.assertEq(vm.getRecordedLogs().length, 0, "no event for no change");
    }

    function test_setMarketStatus_everyStatusRoundTrips() public {
        for (uint8 s = 0; s <= 6; ++s) {
            _status(nvda, IPriceOracle.MarketStatus(s));
            vm.assertEq(_statusOf(nvda), s, "status");
        }
    }

    function test_setMarketStatus_doesNotTouchThePrice() public {
        vm.prank(admin);
        oracle.setPrice(nvda, 180e8);
        vm.warp(T0 + 3_600);
        _status(nvda, IPriceOracle.MarketStatus.Closed);
        (uint256 price, uint256 updatedAt, uint256 roundId) = oracle.latestPrice(nvda);
        vm.assertEq(price, 180e8, "price");
        vm.assertEq(updatedAt, T0, "a closed market's price keeps its age");
        vm.assertEq(roundId, 1, "no new round");
    }

    function test_setMarketStatus_revertsOnOutOfRangeStatus() public {
        vm.prank(admin);
        (bool ok,) = address(oracle).call(abi.encodeWithSelector(oracle.setMarketStatus.selector, nvda, uint256(7)));
        vm.assertFalse(ok, "status 7 refused by the ABI decoder");
        vm.assertEq(_statusOf(nvda), 0, "unchanged");
    }

    function test_setMarketStatuses_setsEach() public {
        address[] memory tokens = new address[](2);
        tokens[0] = nvda;
        tokens[1] = aapl;
        IPriceOracle.MarketStatus[] memory statuses = new IPriceOracle.MarketStatus[](2);
        statuses[0] = IPriceOracle.MarketStatus.Closed;
        statuses[1] = IPriceOracle.MarketStatus.PreMarket;
        vm.prank(admin);
        oracle.setMarketStatuses(tokens, statuses);
        vm.assertEq(_statusOf(nvda), 5, "NVDA Closed");
        vm.assertEq(_statusOf(aapl), 1, "AAPL PreMarket");
    }

    function test_setMarketStatuses_revertsOnLengthMismatch() public {
        vm.expectRevert(IPriceOracle.LengthMismatch.selector);
        vm.prank(admin);
        oracle.setMarketStatuses(new address[](2), new IPriceOracle.MarketStatus[](1));
    }

    // ------------------------------------------------------------------ setQuote

    function test_setQuote_setsStatusThenPriceInOneCall() public {
        vm.expectEmit(true, true, true, true, address(oracle));
        emit IPriceOracle.MarketStatusSet(nvda, IPriceOracle.MarketStatus.PreMarket, T0);
        vm.expectEmit(true, true, true, true, address(oracle));
        emit IPriceOracle.PriceUpdated(nvda, 1, 180e8, T0);
        vm.expectEmit(true, true, true, true, address(oracle));
        emit IPriceOracle.SharePriceUpdated(nvda, 1, 180e8, ONE, 0, IPriceOracle.MarketStatus.PreMarket);
        _quote(nvda, 180e8, 0, IPriceOracle.MarketStatus.PreMarket);
        vm.assertEq(_price(nvda), 180e8, "price");
        vm.assertEq(_statusOf(nvda), 1, "status");
        vm.assertEq(uint256(oracle.latestQuote(nvda).quotedStatus), 1, "quoted in PreMarket");
    }

    function test_quotedStatus_staysWithTheRoundWhenTheStatusChanges() public {
        _quote(nvda, 180e8, 0, IPriceOracle.MarketStatus.PostMarket);
        vm.warp(T0 + 4 hours);
        _status(nvda, IPriceOracle.MarketStatus.Closed);
        IPriceOracle.Quote memory q = oracle.latestQuote(nvda);
        vm.assertEq(uint256(q.status), 5, "Closed now");
        vm.assertEq(uint256(q.quotedStatus), 3, "the last price was quoted in PostMarket");
        vm.prank(admin);
        oracle.setPrice(nvda, 181e8); // the legacy setter: quoted in the status of the moment
        vm.assertEq(uint256(oracle.latestQuote(nvda).quotedStatus), 5, "quoted while Closed");
    }

    function test_setQuote_unchangedStatusEmitsOnlyThePrice() public {
        _quote(nvda, 180e8, 0, IPriceOracle.MarketStatus.Regular);
        vm.recordLogs();
        _quote(nvda, 181e8, 0, IPriceOracle.MarketStatus.Regular);
        vm.assertEq(vm.getRecordedLogs().length, 2, "PriceUpdated + SharePriceUpdated");
    }

    function test_setQuote_revertsForUnknownEpoch() public {
        vm.expectRevert(abi.encodeWithSelector(IPriceOracle.UnknownMultiplierEpoch.selector, nvda, 1, 0));
        _quote(nvda, 180e8, 1, IPriceOracle.MarketStatus.Regular);
    }

    function test_setQuote_revertsForZeroPrice() public {
        vm.expectRevert(abi.encodeWithSelector(IPriceOracle.InvalidPrice.selector, 0));
        _quote(nvda, 0, 0, IPriceOracle.MarketStatus.Regular);
    }

    function test_setQuotes_setsEach_andIsAtomic() public {
        IPriceOracle.ShareQuote[] memory qs = new IPriceOracle.ShareQuote[](2);
        qs[0] = IPriceOracle.ShareQuote(nvda, 180e8, 0, IPriceOracle.MarketStatus.Regular);
        qs[1] = IPriceOracle.ShareQuote(aapl, 230e8, 0, IPriceOracle.MarketStatus.Halted);
        vm.prank(admin);
        oracle.setQuotes(qs);
        vm.assertEq(_price(nvda), 180e8, "NVDA");
        vm.assertEq(_price(aapl), 230e8, "AAPL");
        vm.assertEq(_statusOf(aapl), 6, "AAPL Halted");

        qs[0].sharePrice = 190e8;
        qs[1].epoch = 3; // unknown: the whole batch reverts
        vm.expectRevert(abi.encodeWithSelector(IPriceOracle.UnknownMultiplierEpoch.selector, aapl, 3, 0));
        vm.prank(admin);
        oracle.setQuotes(qs);
        vm.assertEq(_price(nvda), 180e8, "NVDA unchanged");
    }

    // ------------------------------------------------------------------ multiplier schedule

    function test_scheduleMultiplier_beforeEffectiveAt_oldInForce() public {
        vm.expectEmit(true, true, true, true, address(oracle));
        emit IPriceOracle.MultiplierScheduled(nvda, 1, ONE, 2 * ONE, T0 + 100);
        _schedule(nvda, 2 * ONE, T0 + 100);
        (uint256 current, uint256 next, uint256 at) = oracle.multiplierOf(nvda);
        vm.assertEq(current, ONE, "old in force");
        vm.assertEq(next, 2 * ONE, "next");
        vm.assertEq(at, T0 + 100, "effectiveAt");
        vm.assertEq(oracle.multiplierEpochOf(nvda), 0, "epoch 0 in force");
    }

    function test_scheduleMultiplier_atAndAfterEffectiveAt_newInForceWithoutTransaction() public {
        _schedule(nvda, 2 * ONE, T0 + 100);
        vm.warp(T0 + 100);
        (uint256 current,,) = oracle.multiplierOf(nvda);
        vm.assertEq(current, 2 * ONE, "new in force at effectiveAt");
        vm.assertEq(oracle.multiplierEpochOf(nvda), 1, "epoch 1");
        vm.warp(T0 + 99);
        (current,,) = oracle.multiplierOf(nvda);
        vm.assertEq(current, ONE, "one second before: old");
    }

    function test_scheduleMultiplier_effectiveNow_isInForceAtOnce() public {
        _schedule(nvda, ONE / 10, T0);
        (uint256 current,,) = oracle.multiplierOf(nvda);
        vm.assertEq(current, ONE / 10, "1:10 in force");
    }

    function test_scheduleMultiplier_rollsOnceThePreviousIsInForce() public {
        _schedule(nvda, 2 * ONE, T0 + 100);
        vm.warp(T0 + 200);
        vm.expectEmit(true, true, true, true, address(oracle));
        emit IPriceOracle.MultiplierScheduled(nvda, 2, 2 * ONE, 6 * ONE, T0 + 300);
        _schedule(nvda, 6 * ONE, T0 + 300);
        (uint256 epoch, uint256 oldM, uint256 newM, uint256 at) = oracle.multiplierSchedule(nvda);
        vm.assertEq(epoch, 2, "epoch");
        vm.assertEq(oldM, 2 * ONE, "old = the one in force");
        vm.assertEq(newM, 6 * ONE, "new");
        vm.assertEq(at, T0 + 300, "at");
        // epoch 0 is forgotten
        vm.expectRevert(abi.encodeWithSelector(IPriceOracle.UnknownMultiplierEpoch.selector, nvda, 0, 2));
        _quote(nvda, 100e8, 0, IPriceOracle.MarketStatus.Regular);
    }

    function test_scheduleMultiplier_replacesAPendingChangeNotYetQuoted() public {
        _schedule(nvda, 2 * ONE, T0 + 100);
        vm.expectEmit(true, true, true, true, address(oracle));
        emit IPriceOracle.MultiplierScheduled(nvda, 1, ONE, 3 * ONE, T0 + 500);
        _schedule(nvda, 3 * ONE, T0 + 500);
        (uint256 epoch, uint256 oldM, uint256 newM, uint256 at) = oracle.multiplierSchedule(nvda);
        vm.assertEq(epoch, 1, "same epoch");
        vm.assertEq(oldM, ONE, "old");
        vm.assertEq(newM, 3 * ONE, "replaced");
        vm.assertEq(at, T0 + 500, "new date");
    }

    function test_scheduleMultiplier_refusesToReplaceAQuotedPendingChange() public {
        _schedule(nvda, 2 * ONE, T0 + 100);
        _quote(nvda, 90e8, 1, IPriceOracle.MarketStatus.Regular); // early post-split quote
        vm.expectRevert(abi.encodeWithSelector(IPriceOracle.MultiplierAlreadyQuoted.selector, nvda, 1));
        _schedule(nvda, 3 * ONE, T0 + 500);
        // once the feed quotes under the old epoch again, the pending change may be corrected
        _quote(nvda, 180e8, 0, IPriceOracle.MarketStatus.Regular);
        _schedule(nvda, 3 * ONE, T0 + 500);
    }

    function test_scheduleMultiplier_revertsForEffectiveAtInThePast() public {
        vm.expectRevert(abi.encodeWithSelector(IPriceOracle.InvalidEffectiveAt.selector, T0 - 1, T0));
        _schedule(nvda, 2 * ONE, T0 - 1);
    }

    function test_scheduleMultiplier_revertsForEffectiveAtBeyond40Bits() public {
        uint256 tooLate = uint256(type(uint40).max) + 1;
        vm.expectRevert(abi.encodeWithSelector(IPriceOracle.InvalidEffectiveAt.selector, tooLate, T0));
        _schedule(nvda, 2 * ONE, tooLate);
    }

    function test_scheduleMultiplier_revertsOutsideBounds() public {
        uint256 low = oracle.MIN_MULTIPLIER() - 1;
        uint256 high = oracle.MAX_MULTIPLIER() + 1;
        vm.expectRevert(abi.encodeWithSelector(IPriceOracle.InvalidMultiplier.selector, low));
        _schedule(nvda, low, T0 + 1);
        vm.expectRevert(abi.encodeWithSelector(IPriceOracle.InvalidMultiplier.selector, high));
        _schedule(nvda, high, T0 + 1);
        vm.expectRevert(abi.encodeWithSelector(IPriceOracle.InvalidMultiplier.selector, 0));
        _schedule(nvda, 0, T0 + 1);
        _schedule(nvda, oracle.MIN_MULTIPLIER(), T0 + 1);
        _schedule(nvda, oracle.MAX_MULTIPLIER(), T0 + 1);
    }

    function test_scheduleMultiplier_isPerToken() public {
        _schedule(nvda, 2 * ONE, T0);
        (uint256 current,,) = oracle.multiplierOf(aapl);
        vm.assertEq(current, ONE, "AAPL untouched");
    }

    // ------------------------------------------------------------------ per-token price

    function test_perTokenPrice_isSharePriceTimesMultiplierRoundedDown() public {
        _schedule(nvda, ONE / 3, T0); // 333333333333333333
        _quote(nvda, 10e8 + 1, 1, IPriceOracle.MarketStatus.Regular);
        // (1_000_000_001 * 333333333333333333) / 1e18 = 333333333.66... → 333333333
        vm.assertEq(_price(nvda), 333_333_333, "floor");
        (, int256 share,,,) = oracle.latestShareRoundData(nvda);
        vm.assertEq(share, int256(10e8 + 1), "per share");
        (, int256 answer,,,) = oracle.latestRoundData(nvda);
        vm.assertEq(answer, 333_333_333, "Chainlink view per token");
    }

    function test_setPrice_tagsTheMultiplierInForce() public {
        _schedule(nvda, 2 * ONE, T0 + 100);
        vm.prank(admin);
        oracle.setPrice(nvda, 100e8);
        vm.assertEq(_price(nvda), 100e8, "before: old multiplier");
        vm.warp(T0 + 100);
        vm.prank(admin);
        oracle.setPrice(nvda, 100e8);
        vm.assertEq(_price(nvda), 200e8, "after: new multiplier");
        IPriceOracle.Quote memory q = oracle.latestQuote(nvda);
        vm.assertEq(q.epoch, 1, "tagged epoch 1");
        vm.assertEq(q.multiplier, 2 * ONE, "tagged multiplier");
    }

    function test_push_revertsWhenTokenPriceRoundsToZero() public {
        _schedule(nvda, oracle.MIN_MULTIPLIER(), T0);
        vm.expectRevert(
            abi.encodeWithSelector(IPriceOracle.TokenPriceOutOfRange.selector, 1e8, oracle.MIN_MULTIPLIER())
        );
        _quote(nvda, 1e8, 1, IPriceOracle.MarketStatus.Regular);
    }

    function test_push_revertsWhenTokenPriceOverflows128Bits() public {
        _schedule(nvda, 2 * ONE, T0);
        uint256 share = type(uint128).max;
        vm.expectRevert(abi.encodeWithSelector(IPriceOracle.TokenPriceOutOfRange.selector, share, 2 * ONE));
        _quote(nvda, share, 1, IPriceOracle.MarketStatus.Regular);
    }

    function test_latestQuote_andShareRound_revertWhenNeverSet() public {
        vm.expectRevert(abi.encodeWithSelector(IPriceOracle.PriceUnavailable.selector, nvda));
        oracle.latestQuote(nvda);
        vm.expectRevert(abi.encodeWithSelector(IPriceOracle.PriceUnavailable.selector, nvda));
        oracle.latestShareRoundData(nvda);
    }

    // ------------------------------------------------------------------ access control

    function test_setQuote_revertsForNonOperator() public {
        _expectUnauthorized(stranger);
        vm.prank(stranger);
        oracle.setQuote(nvda, 1e8, 0, IPriceOracle.MarketStatus.Regular);
    }

    function test_setQuotes_revertsForNonOperator() public {
        _expectUnauthorized(stranger);
        vm.prank(stranger);
        oracle.setQuotes(new IPriceOracle.ShareQuote[](0));
    }

    function test_setMarketStatus_revertsForNonOperator() public {
        _expectUnauthorized(stranger);
        vm.prank(stranger);
        oracle.setMarketStatus(nvda, IPriceOracle.MarketStatus.Halted);
    }

    function test_setMarketStatuses_revertsForNonOperator() public {
        _expectUnauthorized(stranger);
        vm.prank(stranger);
        oracle.setMarketStatuses(new address[](0), new IPriceOracle.MarketStatus[](0));
    }

    function test_scheduleMultiplier_revertsForNonOperator() public {
        _expectUnauthorized(stranger);
        vm.prank(stranger);
        oracle.scheduleMultiplier(nvda, 2 * ONE, T0 + 1);
    }

    function test_grantedOperator_maySetStatusAndSchedule() public {
        vm.startPrank(admin);
        oracle.grantRole(operatorRole, stranger);
        vm.stopPrank();
        vm.startPrank(stranger);
        oracle.setMarketStatus(nvda, IPriceOracle.MarketStatus.Closed);
        oracle.scheduleMultiplier(nvda, 2 * ONE, T0 + 1);
        vm.stopPrank();
        vm.assertEq(_statusOf(nvda), 5, "Closed");
    }
}
