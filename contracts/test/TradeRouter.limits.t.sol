// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IAgentRegistry} from "../src/interfaces/IAgentRegistry.sol";
import {ITradeRouter} from "../src/interfaces/ITradeRouter.sol";
import {Fixture} from "./utils/Fixture.sol";

/// @notice Track limits (SPEC §1.5): trade size, allocation headroom, daily turnover and daily loss,
///         with exact boundaries, UTC-day rollover and the `agentState` view. Risk-reducing actions are
///         checked against the same counters to show they pass.
contract TradeRouterLimitsTest is Fixture {
    function _track(uint16 maxTradeSizeBps, uint32 maxDailyTurnoverBps, uint16 maxDailyLossBps)
        internal
        pure
        returns (IAgentRegistry.Track memory t)
    {
        t = _permissiveTrack();
        t.maxTradeSizeBps = maxTradeSizeBps;
        t.maxDailyTurnoverBps = maxDailyTurnoverBps;
        t.maxDailyLossBps = maxDailyLossBps;
    }

    function _sellQuote(uint256 tokensIn, uint256 price, uint256 spreadBps) internal pure returns (uint256) {
        return tokensIn * price * (10_000 - spreadBps) / 1e24;
    }

    function _expectOpenReverts(address token, uint256 usdcAmount, bytes memory err) internal {
        ITradeRouter.OpenPosition memory p = _openIntent(token, usdcAmount, _defaultLadder());
        bytes memory sig = _sign(p, AGENT_KEY);
        ITradeRouter.ExitRule[] memory exits = _defaultLadder();
        vm.expectRevert(err);
        router.openPosition(p, exits, sig);
    }

    function _expectAddReverts(uint256 positionId, uint256 usdcAmount, bytes memory err) internal {
        ITradeRouter.AddToPosition memory p = _addIntent(positionId, usdcAmount);
        bytes memory sig = _sign(p, AGENT_KEY);
        vm.expectRevert(err);
        router.addToPosition(p, sig);
    }

    function _nextUtcMidnight() internal view returns (uint256) {
        return (block.timestamp / 1 days + 1) * 1 days;
    }

    /// @dev Moves to `timestamp` and refreshes both prices so trading is possible there.
    function _warpAndRefresh(uint256 timestamp, uint256 nvdaPrice, uint256 aaplPrice) internal {
        vm.warp(timestamp);
        _setPrice(address(nvda), nvdaPrice);
        _setPrice(address(aapl), aaplPrice);
    }

    function _zeroSpread() internal {
        vm.prank(admin);
        venue.setSpread(0);
    }

    // ------------------------------------------------------------------ trade size

    function test_open_revertsWhenTradeSizeExceeded() public {
        _useTrack(_track(333, 1_000_000, 10_000));
        vm.prank(admin);
        registry.setAllocation(agentId, 100_000e6 + 7);
        // (100,000,000,007 · 333) / 10^4 = 3,330,000,000.2331 → rounded down.
        uint256 allocation = 100_000e6 + 7;
        uint256 maxTradeSize = allocation * 333 / 10_000;
        vm.assertEq(maxTradeSize, 3_330_000_000, "rounded down");
        _expectOpenReverts(
            address(nvda),
            maxTradeSize + 1,
            abi.encodeWithSelector(ITradeRouter.TradeSizeExceeded.selector, maxTradeSize + 1, maxTradeSize)
        );
    }

    function test_open_acceptsTradeSizeAtMax() public {
        _useTrack(_track(333, 1_000_000, 10_000));
        vm.prank(admin);
        registry.setAllocation(agentId, 100_000e6 + 7);
        uint256 id = _open(3_330_000_000);
        vm.assertEq(router.position(id).costBasis, 3_330_000_000, "opened at the maximum");
    }

    function test_add_revertsWhenTradeSizeExceeded() public {
        _useTrack(_track(1_000, 1_000_000, 10_000)); // 10,000 USDC per trade
        uint256 id = _open(10_000e6);
        _expectAddReverts(
            id, 10_000e6 + 1, abi.encodeWithSelector(ITradeRouter.TradeSizeExceeded.selector, uint256(10_000e6 + 1), uint256(10_000e6))
        );
        _add(id, 10_000e6); // each trade is measured alone
        vm.assertEq(router.position(id).costBasis, 20_000e6, "two max-size trades");
    }

    function testFuzz_open_tradeSizeLimit(uint256 allocation, uint256 bps, uint256 amount) public {
        allocation = bound(allocation, 1_000e6, VAULT_FUNDS);
        bps = bound(bps, 1, 10_000);
        uint256 maxTradeSize = allocation * bps / 10_000;
        vm.assume(maxTradeSize >= 1e6); // a trade that buys at least one token base unit
        amount = bound(amount, 1e6, maxTradeSize * 2);
        _useTrack(_track(uint16(bps), 1_000_000, 10_000));
        vm.prank(admin);
        registry.setAllocation(agentId, allocation);
        if (amount > maxTradeSize) {
            _expectOpenReverts(
                address(nvda), amount, abi.encodeWithSelector(ITradeRouter.TradeSizeExceeded.selector, amount, maxTradeSize)
            );
        } else {
            uint256 id = _open(amount);
            vm.assertEq(router.position(id).costBasis, amount, "opened within the limit");
        }
    }

    // ------------------------------------------------------------------ headroom

    function test_open_revertsWhenHeadroomExceeded() public {
        _open(60_000e6); // deployed 60,000 of 100,000
        _expectOpenReverts(
            address(aapl),
            40_000e6 + 1,
            abi.encodeWithSelector(ITradeRouter.HeadroomExceeded.selector, uint256(40_000e6 + 1), uint256(40_000e6))
        );
        uint256 id = _open(address(aapl), 40_000e6, _defaultLadder()); // == headroom accepts
        vm.assertEq(router.agentState(agentId).deployed, ALLOCATION, "fully deployed");
        _expectAddReverts(
            id, 1, abi.encodeWithSelector(ITradeRouter.HeadroomExceeded.selector, uint256(1), uint256(0))
        );
    }

    function test_headroom_closingFreesDeployed() public {
        uint256 id = _open(60_000e6);
        _reduce(id, router.position(id).size);
        vm.assertEq(router.agentState(agentId).deployed, 0, "deployed freed");
        uint256 second = _open(address(aapl), ALLOCATION, _defaultLadder());
        vm.assertEq(router.position(second).costBasis, ALLOCATION, "whole allocation available again");
    }

    function test_headroom_partialReduceFreesRemovedBasis() public {
        uint256 id = _open(60_000e6);
        uint256 size = router.position(id).size;
        uint256 sold = size / 3;
        uint256 removed = uint256(60_000e6) * sold / size;
        _reduce(id, sold);
        uint256 deployed = 60_000e6 - removed;
        vm.assertEq(router.agentState(agentId).deployed, deployed, "deployed = remaining basis");
        vm.assertEq(router.position(id).costBasis, deployed, "matches the position");
        uint256 headroom = ALLOCATION - deployed;
        _expectOpenReverts(
            address(aapl), headroom + 1, abi.encodeWithSelector(ITradeRouter.HeadroomExceeded.selector, headroom + 1, headroom)
        );
        _open(address(aapl), headroom, _defaultLadder());
        vm.assertEq(router.agentState(agentId).deployed, ALLOCATION, "fully deployed");
    }

    function test_headroom_zeroWhenAllocationLoweredBelowDeployed() public {
        uint256 id = _open(60_000e6);
        vm.prank(admin);
        registry.setAllocation(agentId, 50_000e6);
        _expectOpenReverts(
            address(aapl), 1e6, abi.encodeWithSelector(ITradeRouter.HeadroomExceeded.selector, uint256(1e6), uint256(0))
        );
        _expectAddReverts(id, 1e6, abi.encodeWithSelector(ITradeRouter.HeadroomExceeded.selector, uint256(1e6), uint256(0)));
        vm.assertEq(router.agentState(agentId).deployed, 60_000e6, "deployed unchanged");
    }

    function test_headroom_priceMovesDoNotChangeDeployed() public {
        _open(60_000e6);
        _setPrice(address(nvda), NVDA_PRICE * 2); // unrealized gain: headroom stays on cost basis
        _expectOpenReverts(
            address(aapl),
            40_000e6 + 1,
            abi.encodeWithSelector(ITradeRouter.HeadroomExceeded.selector, uint256(40_000e6 + 1), uint256(40_000e6))
        );
    }

    // ------------------------------------------------------------------ daily turnover

    function test_turnover_countsOpensAddsAndReduces() public {
        _useTrack(_track(10_000, 5_000, 10_000)); // 50,000 USDC a day
        uint256 id = _open(20_000e6);
        vm.assertEq(router.agentState(agentId).turnoverToday, 20_000e6, "open");
        _add(id, 10_000e6);
        vm.assertEq(router.agentState(agentId).turnoverToday, 30_000e6, "open + add");
        uint256 sold = router.position(id).size / 4;
        uint256 proceeds = _sellQuote(sold, NVDA_PRICE, SPREAD_BPS);
        _reduce(id, sold);
        vm.assertEq(router.agentState(agentId).turnoverToday, 30_000e6 + proceeds, "open + add + reduce proceeds");
    }

    function test_open_revertsWhenDailyTurnoverExceeded() public {
        _useTrack(_track(10_000, 5_000, 10_000)); // 50,000 USDC a day
        uint256 id = _open(20_000e6);
        _add(id, 10_000e6);
        _reduce(id, router.position(id).size / 4);
        uint256 turnover = router.agentState(agentId).turnoverToday;
        uint256 left = 50_000e6 - turnover;
        _expectOpenReverts(
            address(aapl),
            left + 1,
            abi.encodeWithSelector(ITradeRouter.DailyTurnoverExceeded.selector, uint256(50_000e6 + 1), uint256(50_000e6))
        );
        _open(address(aapl), left, _defaultLadder()); // == maximum accepts
        vm.assertEq(router.agentState(agentId).turnoverToday, 50_000e6, "exactly at the maximum");
    }

    function test_add_revertsWhenDailyTurnoverExceeded() public {
        _useTrack(_track(10_000, 3_000, 10_000)); // 30,000 USDC a day
        uint256 id = _open(20_000e6);
        _expectAddReverts(
            id,
            10_000e6 + 1,
            abi.encodeWithSelector(ITradeRouter.DailyTurnoverExceeded.selector, uint256(30_000e6 + 1), uint256(30_000e6))
        );
        _add(id, 10_000e6);
    }

    function test_turnover_resetsAtUtcMidnight() public {
        _useTrack(_track(10_000, 1_000, 10_000)); // 10,000 USDC a day
        _open(10_000e6);
        uint256 midnight = _nextUtcMidnight();

        // One second before midnight it is still the same UTC day.
        _warpAndRefresh(midnight - 1, NVDA_PRICE, AAPL_PRICE);
        _expectOpenReverts(
            address(aapl),
            1e6,
            abi.encodeWithSelector(ITradeRouter.DailyTurnoverExceeded.selector, uint256(10_001e6), uint256(10_000e6))
        );

        _warpAndRefresh(midnight, NVDA_PRICE, AAPL_PRICE);
        vm.assertEq(router.agentState(agentId).turnoverToday, 0, "view rolls over");
        _open(address(aapl), 10_000e6, _defaultLadder());
        vm.assertEq(router.agentState(agentId).turnoverToday, 10_000e6, "new day's turnover");
    }

    // ------------------------------------------------------------------ daily loss

    /// @dev Spread 0 and round prices make the realized loss exact: 10,000 USDC buys 100 NVDA at $100;
    ///      selling them at `exitPrice` returns 100 · exitPrice.
    function _realizeLoss(uint256 exitPrice) internal returns (uint256 positionId) {
        _zeroSpread();
        _setPrice(address(nvda), 100e8);
        positionId = _open(10_000e6);
        vm.assertEq(router.position(positionId).size, 100e18, "100 NVDA");
        _setPrice(address(nvda), exitPrice);
        _reduce(positionId, 100e18);
    }

    function test_open_revertsWhenDailyLossLimitReached() public {
        _useTrack(_track(10_000, 1_000_000, 100)); // 1,000 USDC a day
        uint256 aaplId = _open(address(aapl), 5_000e6, _defaultLadder());
        _realizeLoss(90e8); // −1,000 USDC exactly: == −limit counts as reached
        vm.assertEq(router.agentState(agentId).realizedPnlToday, -1_000e6, "loss");

        bytes memory err =
            abi.encodeWithSelector(ITradeRouter.DailyLossLimitReached.selector, int256(-1_000e6), uint256(1_000e6));
        _expectOpenReverts(address(nvda), 1_000e6, err);
        _expectAddReverts(aaplId, 1_000e6, err);

        // Risk-reducing actions still go through.
        _updateLadder(aaplId, _ladder(_stopLoss(-200, 10_000)));
        _reduce(aaplId, router.position(aaplId).size / 2);
        vm.assertTrue(router.position(aaplId).open, "half left");
    }

    function test_dailyLoss_oneUnitShortOfLimitStillOpens() public {
        _useTrack(_track(10_000, 1_000_000, 100)); // 1,000 USDC a day
        _realizeLoss(90_00000001); // proceeds 9,000.000001: loss 999.999999 USDC
        vm.assertEq(router.agentState(agentId).realizedPnlToday, -999_999_999, "loss one unit short");
        uint256 id = _open(address(aapl), 1_000e6, _defaultLadder());
        vm.assertTrue(router.position(id).open, "open allowed");
    }

    function test_dailyLoss_gainsOffsetLosses() public {
        _useTrack(_track(10_000, 1_000_000, 100)); // 1,000 USDC a day
        _zeroSpread();
        _setPrice(address(aapl), 100e8);
        uint256 aaplId = _open(address(aapl), 10_000e6, _defaultLadder()); // 100 AAPL
        _realizeLoss(85e8); // −1,500
        _setPrice(address(aapl), 106e8);
        _reduce(aaplId, 100e18); // +600
        vm.assertEq(router.agentState(agentId).realizedPnlToday, -900e6, "net day PnL");
        _open(address(nvda), 1_000e6, _defaultLadder());
    }

    function test_dailyLoss_countsLadderExitLosses() public {
        _useTrack(_track(10_000, 1_000_000, 100)); // 1,000 USDC a day
        _zeroSpread();
        _setPrice(address(nvda), 100e8);
        uint256 id = _open(10_000e6); // stop at −10%
        _setPrice(address(nvda), 89e8);
        router.executeExit(id, _defaultLadder()); // sells 100 NVDA for 8,900
        vm.assertEq(router.agentState(agentId).realizedPnlToday, -1_100e6, "exit loss counted");
        _expectOpenReverts(
            address(aapl),
            1_000e6,
            abi.encodeWithSelector(ITradeRouter.DailyLossLimitReached.selector, int256(-1_100e6), uint256(1_000e6))
        );
    }

    function test_dailyLoss_resetsNextUtcDay() public {
        _useTrack(_track(10_000, 1_000_000, 100));
        _realizeLoss(80e8); // −2,000
        uint256 midnight = _nextUtcMidnight();
        _warpAndRefresh(midnight - 1, 100e8, AAPL_PRICE);
        _expectOpenReverts(
            address(aapl),
            1_000e6,
            abi.encodeWithSelector(ITradeRouter.DailyLossLimitReached.selector, int256(-2_000e6), uint256(1_000e6))
        );
        _warpAndRefresh(midnight, 100e8, AAPL_PRICE);
        vm.assertEq(router.agentState(agentId).realizedPnlToday, 0, "view rolls over");
        uint256 id = _open(address(aapl), 1_000e6, _defaultLadder());
        vm.assertTrue(router.position(id).open, "opens again on the next UTC day");
    }

    function test_dailyLoss_limitRoundsDown() public {
        // 100,000.000099 USDC · 1 bp = 10.0000000099 → 10.000000 USDC.
        _useTrack(_track(10_000, 1_000_000, 1));
        vm.prank(admin);
        registry.setAllocation(agentId, 100_000_000_099);
        _zeroSpread();
        _setPrice(address(nvda), 100e8);
        uint256 id = _open(10_000e6);
        _setPrice(address(nvda), 99_90000000); // 100 NVDA sell for 9,990: −10 USDC
        _reduce(id, 100e18);
        _expectOpenReverts(
            address(aapl),
            1_000e6,
            abi.encodeWithSelector(ITradeRouter.DailyLossLimitReached.selector, int256(-10e6), uint256(10e6))
        );
    }

    // ------------------------------------------------------------------ agentState

    function test_agentState_reflectsCountersAndDayRollover() public {
        ITradeRouter.AgentStateView memory s0 = router.agentState(agentId);
        vm.assertEq(s0.nextNonce, 0, "fresh nonce");
        vm.assertEq(s0.deployed, 0, "fresh deployed");
        vm.assertEq(s0.day, block.timestamp / 1 days, "current UTC day even before any intent");
        vm.assertEq(s0.turnoverToday, 0, "fresh turnover");
        vm.assertEq(s0.realizedPnlToday, int256(0), "fresh pnl");

        _zeroSpread();
        _setPrice(address(nvda), 100e8);
        uint256 id = _open(10_000e6); // 100 NVDA
        _add(id, 5_000e6); // 50 NVDA
        _setPrice(address(nvda), 90e8);
        _reduce(id, 50e18); // proceeds 4,500; removed basis 5,000 → −500
        _updateLadder(id, _ladder(_stopLoss(-500, 10_000)));

        ITradeRouter.AgentStateView memory s1 = router.agentState(agentId);
        vm.assertEq(s1.nextNonce, 4, "four intents");
        vm.assertEq(s1.deployed, 10_000e6, "deployed = remaining basis");
        vm.assertEq(s1.day, block.timestamp / 1 days, "today");
        vm.assertEq(s1.turnoverToday, 15_000e6 + 4_500e6, "turnover: open + add + reduce proceeds");
        vm.assertEq(s1.realizedPnlToday, -500e6, "realized pnl");

        vm.warp(_nextUtcMidnight());
        ITradeRouter.AgentStateView memory s2 = router.agentState(agentId);
        vm.assertEq(s2.nextNonce, 4, "nonce survives the day");
        vm.assertEq(s2.deployed, 10_000e6, "deployed survives the day");
        vm.assertEq(s2.day, s1.day + 1, "next day");
        vm.assertEq(s2.turnoverToday, 0, "turnover reset");
        vm.assertEq(s2.realizedPnlToday, int256(0), "pnl reset");
    }

    function test_agentState_rollsOverWithinAReduce() public {
        _zeroSpread();
        _setPrice(address(nvda), 100e8);
        uint256 id = _open(10_000e6);
        _warpAndRefresh(_nextUtcMidnight() + 1 hours, 110e8, AAPL_PRICE);
        _reduce(id, 50e18); // 5,500 proceeds, 5,000 basis
        ITradeRouter.AgentStateView memory s = router.agentState(agentId);
        vm.assertEq(s.turnoverToday, 5_500e6, "only today's reduce");
        vm.assertEq(s.realizedPnlToday, 500e6, "only today's pnl");
        vm.assertEq(s.deployed, 5_000e6, "deployed carries over");
    }
}
