// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

import {IAgentRegistry} from "../src/interfaces/IAgentRegistry.sol";
import {ITradeRouter} from "../src/interfaces/ITradeRouter.sol";
import {Fixture} from "./utils/Fixture.sol";
import {IntentSigner} from "./utils/IntentSigner.sol";
import {Vm} from "./utils/Vm.sol";

/// @notice Shared by the exit and fuzz suites: the trigger rule of ExitLadder's NatSpec recomputed
///         here, boundary prices found by search, and decoding of `ExitExecuted` logs.
abstract contract ExitHelpers is Fixture {
    uint8 internal constant SL = 0;
    uint8 internal constant TP = 1;
    uint256 internal constant SCALE = 1e20; // 18-decimal token · 8-decimal price → 6-decimal USDC
    uint256 internal constant BPS = 10_000;

    /// @dev value = floor(size·price/1e20); SL iff value·1e4 ≤ cb·(1e4+t); TP iff ≥.
    function _triggeredAt(uint256 size, uint256 costBasis, uint256 price, uint8 kind, int256 triggerBps)
        internal
        pure
        returns (bool)
    {
        uint256 value = size * price / SCALE;
        uint256 threshold = costBasis * uint256(int256(BPS) + triggerBps);
        return kind == SL ? value * BPS <= threshold : value * BPS >= threshold;
    }

    /// @dev The highest oracle price at which a stop at `triggerBps` is triggered for the position as it stands.
    function _stopBoundary(uint256 positionId, int256 triggerBps) internal view returns (uint256) {
        ITradeRouter.PositionView memory p = router.position(positionId);
        uint256 lo = 1; // triggered
        uint256 hi = _priceAtPnl(positionId, 0) * 2; // not triggered
        require(_triggeredAt(p.size, p.costBasis, lo, SL, triggerBps), "search: lo");
        require(!_triggeredAt(p.size, p.costBasis, hi, SL, triggerBps), "search: hi");
        while (hi - lo > 1) {
            uint256 mid = (lo + hi) / 2;
            if (_triggeredAt(p.size, p.costBasis, mid, SL, triggerBps)) lo = mid;
            else hi = mid;
        }
        return lo;
    }

    /// @dev The lowest oracle price at which a take-profit at `triggerBps` is triggered.
    function _takeProfitBoundary(uint256 positionId, int256 triggerBps) internal view returns (uint256) {
        ITradeRouter.PositionView memory p = router.position(positionId);
        uint256 lo = 1; // not triggered
        uint256 hi = _priceAtPnl(positionId, triggerBps) * 2; // triggered
        require(!_triggeredAt(p.size, p.costBasis, lo, TP, triggerBps), "search: lo");
        require(_triggeredAt(p.size, p.costBasis, hi, TP, triggerBps), "search: hi");
        while (hi - lo > 1) {
            uint256 mid = (lo + hi) / 2;
            if (_triggeredAt(p.size, p.costBasis, mid, TP, triggerBps)) hi = mid;
            else lo = mid;
        }
        return hi;
    }

    /// @dev Price at about `pnlBps`; callers pick levels well away from any rule's trigger.
    function _priceAt(uint256 positionId, int256 pnlBps) internal view returns (uint256) {
        return _priceAtPnl(positionId, pnlBps);
    }

    function _exitFills(Vm.Log[] memory logs) internal view returns (ITradeRouter.ExitFill[] memory fills) {
        uint256 n;
        for (uint256 i; i < logs.length; ++i) {
            if (_isExitLog(logs[i])) ++n;
        }
        fills = new ITradeRouter.ExitFill[](n);
        n = 0;
        for (uint256 i; i < logs.length; ++i) {
            if (_isExitLog(logs[i])) fills[n++] = abi.decode(logs[i].data, (ITradeRouter.ExitFill));
        }
    }

    function _isExitLog(Vm.Log memory log) private view returns (bool) {
        return log.emitter == address(router) && log.topics.length > 0
            && log.topics[0] == ITradeRouter.ExitExecuted.selector;
    }

    function _countLogs(Vm.Log[] memory logs, bytes32 topic0) internal view returns (uint256 n) {
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter == address(router) && logs[i].topics.length > 0 && logs[i].topics[0] == topic0) ++n;
        }
    }

    /// @dev What the venue pays for `tokensIn` at `price` with the fixture's spread, rounded down.
    function _sellProceeds(uint256 tokensIn, uint256 price) internal pure returns (uint256) {
        return tokensIn * price * (BPS - SPREAD_BPS) / (SCALE * BPS);
    }

    function _hash(ITradeRouter.ExitRule[] memory exits) internal pure returns (bytes32) {
        return IntentSigner.exitsHash(exits);
    }
}

contract TradeRouterExitTest is ExitHelpers {
    uint256 internal constant SIZE_USDC = 10_000e6;

    // ------------------------------------------------------------------ trigger boundaries

    function test_executeExit_stopLossFiresAtExactTriggerPrice() public {
        uint256 id = _open(address(nvda), SIZE_USDC, _ladder(_stopLoss(-1_000, 10_000)));
        uint256 boundary = _stopBoundary(id, -1_000);
        // The boundary is within one USDC unit's worth of price of the exact −10% price.
        vm.assertApproxEqAbs(boundary, _priceAtPnl(id, -1_000), SCALE / router.position(id).size + 1, "near -10%");

        _setPrice(address(nvda), boundary);
        vm.prank(keeper);
        vm.assertEq(router.executeExit(id, _ladder(_stopLoss(-1_000, 10_000))), 1, "fired");
        vm.assertFalse(router.position(id).open, "closed");
    }

    function test_executeExit_stopLossDoesNotFireOneTickAboveTrigger() public {
        uint256 id = _open(address(nvda), SIZE_USDC, _ladder(_stopLoss(-1_000, 10_000)));
        uint256 price = _stopBoundary(id, -1_000) + 1;
        _setPrice(address(nvda), price);
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.ExitNotTriggered.selector, id, price));
        router.executeExit(id, _ladder(_stopLoss(-1_000, 10_000)));
    }

    function test_executeExit_takeProfitFiresAtExactTriggerPrice() public {
        ITradeRouter.ExitRule[] memory exits = _ladder(_takeProfit(1_000, 10_000), _stopLoss(-1_000, 10_000));
        uint256 id = _open(address(nvda), SIZE_USDC, exits);
        uint256 boundary = _takeProfitBoundary(id, 1_000);
        vm.assertApproxEqAbs(boundary, _priceAtPnl(id, 1_000), SCALE / router.position(id).size + 1, "near +10%");

        _setPrice(address(nvda), boundary);
        vm.recordLogs();
        vm.assertEq(router.executeExit(id, exits), 1, "fired");
        vm.assertEq(_exitFills(vm.getRecordedLogs())[0].ruleIndex, 0, "the take-profit fired");
        vm.assertFalse(router.position(id).open, "closed");
    }

    function test_executeExit_takeProfitDoesNotFireOneTickBelowTrigger() public {
        ITradeRouter.ExitRule[] memory exits = _ladder(_takeProfit(1_000, 10_000), _stopLoss(-1_000, 10_000));
        uint256 id = _open(address(nvda), SIZE_USDC, exits);
        uint256 price = _takeProfitBoundary(id, 1_000) - 1;
        _setPrice(address(nvda), price);
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.ExitNotTriggered.selector, id, price));
        router.executeExit(id, exits);
    }

    // ------------------------------------------------------------------ SPEC §1.6 example

    function test_executeExit_specExample_takeProfitSellsHalfThenStopClosesRest() public {
        uint256 id = _open(SIZE_USDC);
        uint256 size0 = router.position(id).size;

        _setPrice(address(nvda), _takeProfitBoundary(id, 1_000));
        vm.prank(keeper);
        vm.assertEq(router.executeExit(id, _defaultLadder()), 1, "TP fired alone");
        ITradeRouter.PositionView memory p = router.position(id);
        vm.assertTrue(p.open, "still open");
        vm.assertEq(p.size, size0 - size0 * 5_000 / BPS, "half sold");
        vm.assertEq(p.costBasis, SIZE_USDC - SIZE_USDC * (size0 * 5_000 / BPS) / size0, "half the basis removed");
        vm.assertEq(p.firedMask, 1, "TP marked fired, stop armed");

        _setPrice(address(nvda), _stopBoundary(id, -1_000));
        vm.prank(keeper);
        vm.assertEq(router.executeExit(id, _defaultLadder()), 1, "stop fired");
        vm.assertFalse(router.position(id).open, "closed by the stop");
        vm.assertEq(nvda.balanceOf(address(vault)), 0, "nothing left in the vault");
    }

    function test_executeExit_specExample_fallFirstClosesAndTakeProfitNeverFires() public {
        uint256 id = _open(SIZE_USDC);
        _setPrice(address(nvda), _stopBoundary(id, -1_000));
        vm.recordLogs();
        vm.prank(keeper);
        vm.assertEq(router.executeExit(id, _defaultLadder()), 1, "only the stop fired");
        ITradeRouter.ExitFill[] memory fills = _exitFills(vm.getRecordedLogs());
        vm.assertEq(fills[0].ruleIndex, 1, "rule 1 (the stop)");
        vm.assertEq(fills[0].size, 0, "sold everything");
        vm.assertFalse(router.position(id).open, "closed");

        // A later rally finds nothing to take profit on.
        _setPrice(address(nvda), NVDA_PRICE * 2);
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.PositionNotOpen.selector, id));
        router.executeExit(id, _defaultLadder());
    }

    // ------------------------------------------------------------------ order and repetition

    function test_executeExit_gapFiresTwoRulesInOneCall() public {
        ITradeRouter.ExitRule[] memory exits =
            _ladder(_takeProfit(500, 5_000), _takeProfit(1_000, 10_000), _stopLoss(-1_000, 10_000));
        uint256 id = _open(address(nvda), SIZE_USDC, exits);
        uint256 size0 = router.position(id).size;

        _setPrice(address(nvda), _priceAt(id, 2_000)); // gaps through both take-profits
        vm.recordLogs();
        vm.prank(keeper);
        uint256 fired = router.executeExit(id, exits);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        ITradeRouter.ExitFill[] memory fills = _exitFills(logs);

        vm.assertEq(fired, 2, "fired");
        vm.assertEq(fills.length, 2, "two ExitExecuted events");
        vm.assertEq(fills[0].ruleIndex, 0, "first event: rule 0");
        vm.assertEq(fills[0].tokensIn, size0 * 5_000 / BPS, "rule 0 sold half");
        vm.assertEq(fills[1].ruleIndex, 1, "second event: rule 1");
        vm.assertEq(fills[1].tokensIn, size0 - fills[0].tokensIn, "rule 1 sold the rest");
        vm.assertEq(fills[1].size, 0, "nothing left");
        vm.assertEq(_countLogs(logs, ITradeRouter.PositionClosed.selector), 1, "one PositionClosed");
    }

    function test_executeExit_rulesRunInArrayOrder() public {
        // Rule 0 (+10%, all) comes before rule 1 (+5%, half): at +15% rule 0 fires first and closes,
        // so rule 1 never fires even though its trigger is lower.
        ITradeRouter.ExitRule[] memory exits =
            _ladder(_takeProfit(1_000, 10_000), _takeProfit(500, 5_000), _stopLoss(-1_000, 10_000));
        uint256 id = _open(address(nvda), SIZE_USDC, exits);
        _setPrice(address(nvda), _priceAt(id, 1_500));
        vm.recordLogs();
        vm.assertEq(router.executeExit(id, exits), 1, "fired once");
        ITradeRouter.ExitFill[] memory fills = _exitFills(vm.getRecordedLogs());
        vm.assertEq(fills.length, 1, "one event");
        vm.assertEq(fills[0].ruleIndex, 0, "rule 0 first");
        vm.assertFalse(router.position(id).open, "closed");
    }

    function test_executeExit_lowestIndexTriggeredRuleFiresFirst() public {
        // Two stops, the shallower first: a gap to −15% fires rule 0 (half), then rule 1 (the rest).
        ITradeRouter.ExitRule[] memory exits = _ladder(_stopLoss(-500, 5_000), _stopLoss(-1_000, 10_000));
        uint256 id = _open(address(nvda), SIZE_USDC, exits);
        uint256 size0 = router.position(id).size;
        _setPrice(address(nvda), _priceAt(id, -1_500));
        vm.recordLogs();
        vm.assertEq(router.executeExit(id, exits), 2, "fired twice");
        ITradeRouter.ExitFill[] memory fills = _exitFills(vm.getRecordedLogs());
        vm.assertEq(fills[0].ruleIndex, 0, "rule 0 first");
        vm.assertEq(fills[0].tokensIn, size0 / 2, "half");
        vm.assertEq(fills[1].ruleIndex, 1, "rule 1 second");
        vm.assertEq(fills[1].tokensIn, size0 - size0 / 2, "rest");
    }

    function test_executeExit_ruleFiresAtMostOnce() public {
        uint256 id = _open(SIZE_USDC);
        uint256 price = _priceAt(id, 1_200);
        _setPrice(address(nvda), price);
        vm.assertEq(router.executeExit(id, _defaultLadder()), 1, "first call fires");

        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.ExitNotTriggered.selector, id, price));
        router.executeExit(id, _defaultLadder());

        // Still not after a new round at a higher price.
        uint256 higher = price * 2;
        _setPrice(address(nvda), higher);
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.ExitNotTriggered.selector, id, higher));
        router.executeExit(id, _defaultLadder());
    }

    function test_executeExit_fullExitOnNonLastRuleClosesPosition() public {
        ITradeRouter.ExitRule[] memory exits = _ladder(_takeProfit(1_000, 10_000), _stopLoss(-1_000, 10_000));
        uint256 id = _open(address(nvda), SIZE_USDC, exits);
        uint256 size0 = router.position(id).size;
        _setPrice(address(nvda), _priceAt(id, 1_200));
        vm.recordLogs();
        vm.assertEq(router.executeExit(id, exits), 1, "fired");
        ITradeRouter.ExitFill[] memory fills = _exitFills(vm.getRecordedLogs());
        vm.assertEq(fills[0].ruleIndex, 0, "rule 0");
        vm.assertEq(fills[0].tokensIn, size0, "sold all");
        vm.assertEq(fills[0].costBasis, 0, "no basis left");
        vm.assertFalse(router.position(id).open, "closed");
    }

    // ------------------------------------------------------------------ who and where

    function test_executeExit_callableByAnyoneProceedsToVault() public {
        uint256 id = _open(SIZE_USDC);
        uint256 size0 = router.position(id).size;
        uint256 price = _priceAt(id, -1_200);
        _setPrice(address(nvda), price);

        address stranger = address(0xBEEF);
        uint256 vaultUsdc = usdc.balanceOf(address(vault));
        uint256 vaultNvda = nvda.balanceOf(address(vault));
        vm.recordLogs();
        vm.prank(stranger);
        vm.assertEq(router.executeExit(id, _defaultLadder()), 1, "fired");
        ITradeRouter.ExitFill memory fill = _exitFills(vm.getRecordedLogs())[0];

        vm.assertEq(fill.tokensIn, size0, "sold the position");
        vm.assertEq(fill.usdcOut, _sellProceeds(size0, price), "venue price");
        vm.assertEq(usdc.balanceOf(address(vault)), vaultUsdc + fill.usdcOut, "vault USDC up by usdcOut");
        vm.assertEq(nvda.balanceOf(address(vault)), vaultNvda - fill.tokensIn, "vault NVDA down by tokensIn");
        vm.assertEq(usdc.balanceOf(stranger), 0, "caller gets no USDC");
        vm.assertEq(nvda.balanceOf(stranger), 0, "caller gets no NVDA");
        vm.assertEq(usdc.balanceOf(address(router)), 0, "router holds no USDC");
        vm.assertEq(nvda.balanceOf(address(router)), 0, "router holds no NVDA");
    }

    function test_executeExit_emitsExactFill() public {
        uint256 id = _open(SIZE_USDC);
        ITradeRouter.PositionView memory p = router.position(id);
        uint256 price = _priceAt(id, 1_200);
        _setPrice(address(nvda), price);
        (,, uint256 roundId) = oracle.latestPrice(address(nvda));
        vm.assertEq(roundId, 2, "second NVDA round");

        uint256 tokensIn = p.size * 5_000 / BPS;
        uint256 usdcOut = _sellProceeds(tokensIn, price);
        uint256 removed = p.costBasis * tokensIn / p.size;
        ITradeRouter.ExitFill memory expected = ITradeRouter.ExitFill({
            ruleIndex: 0,
            tokensIn: tokensIn,
            usdcOut: usdcOut,
            oraclePrice: price,
            oracleRoundId: roundId,
            realizedPnl: int256(usdcOut) - int256(removed),
            size: p.size - tokensIn,
            costBasis: p.costBasis - removed
        });
        vm.expectEmit(true, true, true, true, address(router));
        emit ITradeRouter.ExitExecuted(id, agentId, expected);
        router.executeExit(id, _defaultLadder());

        vm.assertGt(uint256(expected.realizedPnl), 0, "a profit");
        p = router.position(id);
        vm.assertEq(p.size, expected.size, "stored size");
        vm.assertEq(p.costBasis, expected.costBasis, "stored basis");
    }

    function test_executeExit_closeEmitsPositionClosedAndClearsHolding() public {
        uint256 id = _open(SIZE_USDC);
        _setPrice(address(nvda), _priceAt(id, -1_200));
        vm.expectEmit(true, true, true, true, address(router));
        emit ITradeRouter.PositionClosed(id, agentId, address(nvda));
        router.executeExit(id, _defaultLadder());

        ITradeRouter.PositionView memory p = router.position(id);
        vm.assertFalse(p.open, "closed");
        vm.assertEq(p.size, 0, "size");
        vm.assertEq(p.costBasis, 0, "basis");
        vm.assertEq(p.exitsHash, bytes32(0), "ladder cleared");
        vm.assertEq(p.agentId, agentId, "owner kept");
        vm.assertEq(router.openPositionOf(agentId, address(nvda)), 0, "no open NVDA position");
        // The token is free again: a new position can be opened.
        uint256 next = _open(SIZE_USDC);
        vm.assertEq(next, id + 1, "new id");
    }

    function test_executeExit_partialDoesNotEmitPositionClosed() public {
        uint256 id = _open(SIZE_USDC);
        _setPrice(address(nvda), _priceAt(id, 1_200));
        vm.recordLogs();
        router.executeExit(id, _defaultLadder());
        vm.assertEq(_countLogs(vm.getRecordedLogs(), ITradeRouter.PositionClosed.selector), 0, "no PositionClosed");
        vm.assertEq(router.openPositionOf(agentId, address(nvda)), id, "still open");
    }

    // ------------------------------------------------------------------ ladder hash

    function test_executeExit_revertsOnWrongLadder() public {
        uint256 id = _open(SIZE_USDC);
        _setPrice(address(nvda), _priceAt(id, -1_200));
        ITradeRouter.ExitRule[] memory wrong = _ladder(_takeProfit(1_000, 5_000), _stopLoss(-900, 10_000));
        vm.expectRevert(
            abi.encodeWithSelector(ITradeRouter.LadderMismatch.selector, id, _hash(_defaultLadder()), _hash(wrong))
        );
        router.executeExit(id, wrong);
    }

    function test_executeExit_revertsOnEmptyLadder() public {
        uint256 id = _open(SIZE_USDC);
        ITradeRouter.ExitRule[] memory none = new ITradeRouter.ExitRule[](0);
        vm.expectRevert(
            abi.encodeWithSelector(ITradeRouter.LadderMismatch.selector, id, _hash(_defaultLadder()), _hash(none))
        );
        router.executeExit(id, none);
    }

    function test_executeExit_afterUpdate_oldLadderRejectedNewLadderArmed() public {
        uint256 id = _open(SIZE_USDC);
        ITradeRouter.ExitRule[] memory next = _ladder(_stopLoss(-500, 10_000));
        _updateLadder(id, next);

        uint256 price = _priceAt(id, -700); // above the old stop, below the new one
        _setPrice(address(nvda), price);
        vm.expectRevert(
            abi.encodeWithSelector(ITradeRouter.LadderMismatch.selector, id, _hash(next), _hash(_defaultLadder()))
        );
        router.executeExit(id, _defaultLadder());

        vm.assertEq(router.executeExit(id, next), 1, "new stop fired");
        vm.assertFalse(router.position(id).open, "closed");
    }

    function test_executeExit_afterUpdate_firedRuleIsReArmed() public {
        uint256 id = _open(SIZE_USDC);
        uint256 price = _priceAt(id, 1_200);
        _setPrice(address(nvda), price);
        router.executeExit(id, _defaultLadder());
        vm.assertEq(router.position(id).firedMask, 1, "TP fired");
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.ExitNotTriggered.selector, id, price));
        router.executeExit(id, _defaultLadder());

        _updateLadder(id, _defaultLadder()); // same rules, re-armed
        vm.assertEq(router.position(id).firedMask, 0, "mask cleared");
        uint256 size1 = router.position(id).size;
        vm.recordLogs();
        vm.assertEq(router.executeExit(id, _defaultLadder()), 1, "TP fires again");
        ITradeRouter.ExitFill memory fill = _exitFills(vm.getRecordedLogs())[0];
        vm.assertEq(fill.ruleIndex, 0, "rule 0 again");
        vm.assertEq(fill.tokensIn, size1 * 5_000 / BPS, "half of what was left");
    }

    // ------------------------------------------------------------------ oracle

    function test_executeExit_revertsWhenPriceStale() public {
        uint256 id = _open(SIZE_USDC);
        _setPrice(address(nvda), _priceAt(id, -1_200));
        (, uint256 updatedAt,) = oracle.latestPrice(address(nvda));
        vm.warp(updatedAt + MAX_PRICE_AGE + 1);
        vm.expectRevert(
            abi.encodeWithSelector(ITradeRouter.OraclePriceStale.selector, address(nvda), updatedAt, MAX_PRICE_AGE)
        );
        router.executeExit(id, _defaultLadder());
    }

    function test_executeExit_acceptsPriceExactlyMaxAgeOld() public {
        uint256 id = _open(SIZE_USDC);
        _setPrice(address(nvda), _priceAt(id, -1_200));
        (, uint256 updatedAt,) = oracle.latestPrice(address(nvda));
        vm.warp(updatedAt + MAX_PRICE_AGE);
        vm.assertEq(router.executeExit(id, _defaultLadder()), 1, "fires at the age limit");
    }

    function test_executeExit_staleCheckFollowsMaxPriceAgeSetting() public {
        uint256 id = _open(SIZE_USDC);
        _setPrice(address(nvda), _priceAt(id, -1_200));
        (, uint256 updatedAt,) = oracle.latestPrice(address(nvda));
        vm.prank(admin);
        router.setMaxPriceAge(60);
        vm.warp(updatedAt + 61);
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.OraclePriceStale.selector, address(nvda), updatedAt, 60));
        router.executeExit(id, _defaultLadder());
    }

    function test_executeExit_revertsWhenNotTriggered() public {
        uint256 id = _open(SIZE_USDC);
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.ExitNotTriggered.selector, id, NVDA_PRICE));
        router.executeExit(id, _defaultLadder());
    }

    // ------------------------------------------------------------------ position state

    function test_executeExit_revertsForUnknownPosition() public {
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.PositionNotFound.selector, 999));
        router.executeExit(999, _defaultLadder());
    }

    function test_executeExit_revertsForPositionZero() public {
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.PositionNotFound.selector, 0));
        router.executeExit(0, _defaultLadder());
    }

    function test_executeExit_revertsForClosedPosition() public {
        uint256 id = _open(SIZE_USDC);
        _reduce(id, router.position(id).size);
        _setPrice(address(nvda), NVDA_PRICE / 2);
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.PositionNotOpen.selector, id));
        router.executeExit(id, _defaultLadder());
    }

    function test_executeExit_revertsForClosedPositionAfterReopen() public {
        uint256 id = _open(SIZE_USDC);
        _reduce(id, router.position(id).size);
        uint256 id2 = _open(SIZE_USDC);
        _setPrice(address(nvda), NVDA_PRICE / 2);
        // The old id does not reach the new holding in the same token.
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.PositionNotOpen.selector, id));
        router.executeExit(id, _defaultLadder());
        vm.assertEq(router.executeExit(id2, _defaultLadder()), 1, "the new one exits");
    }

    function test_executeExit_revertsWhenPaused() public {
        uint256 id = _open(SIZE_USDC);
        _setPrice(address(nvda), _priceAt(id, -1_200));
        vm.prank(admin);
        router.pause();
        vm.expectRevert(abi.encodeWithSelector(Pausable.EnforcedPause.selector));
        router.executeExit(id, _defaultLadder());

        vm.prank(admin);
        router.unpause();
        vm.assertEq(router.executeExit(id, _defaultLadder()), 1, "fires after unpause");
    }

    // ------------------------------------------------------------------ never blocked

    function test_executeExit_notBlockedByLimits() public {
        uint256 id = _open(SIZE_USDC);
        // The tightest track, and no allocation: opens and adds are now impossible, and the ladder
        // no longer fits the track's bounds.
        _useTrack(
            IAgentRegistry.Track({
                maxTradeSizeBps: 1,
                maxDailyTurnoverBps: 1,
                maxDailyLossBps: 1,
                maxStopLossBps: 1,
                minTakeProfitBps: 1,
                maxTakeProfitBps: 1,
                requireStopLoss: true,
                requireTakeProfit: true,
                sessions: 4, // Regular
                exitsWhenClosed: IAgentRegistry.ExitsWhenClosed.Hold
            })
        );
        vm.prank(admin);
        registry.setAllocation(agentId, 0);

        ITradeRouter.AddToPosition memory add = _addIntent(id, 1e6);
        bytes memory sig = _sign(add, AGENT_KEY);
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.DailyLossLimitReached.selector, int256(0), uint256(0)));
        router.addToPosition(add, sig);

        _setPrice(address(nvda), _priceAt(id, 1_200));
        vm.assertEq(router.executeExit(id, _defaultLadder()), 1, "TP fires");
        _setPrice(address(nvda), _priceAt(id, -1_200));
        vm.assertEq(router.executeExit(id, _defaultLadder()), 1, "stop fires");
        vm.assertFalse(router.position(id).open, "closed");
        vm.assertEq(router.agentState(agentId).deployed, 0, "nothing deployed");
    }

    function test_executeExit_notBlockedAfterDailyLossReached() public {
        ITradeRouter.ExitRule[] memory exits = _ladder(_stopLoss(-500, 5_000), _stopLoss(-1_000, 10_000));
        uint256 id = _open(address(nvda), SIZE_USDC, exits);
        _useTrack(
            IAgentRegistry.Track({
                maxTradeSizeBps: 10_000,
                maxDailyTurnoverBps: 1_000_000,
                maxDailyLossBps: 1, // 10 USDC on 100k
                maxStopLossBps: 9_000,
                minTakeProfitBps: 1,
                maxTakeProfitBps: 100_000,
                requireStopLoss: true,
                requireTakeProfit: false,
                sessions: 4, // Regular
                exitsWhenClosed: IAgentRegistry.ExitsWhenClosed.Hold
            })
        );
        _setPrice(address(nvda), _priceAt(id, -700));
        router.executeExit(id, exits);
        int256 pnl = router.agentState(agentId).realizedPnlToday;
        vm.assertLe(pnl, -int256(ALLOCATION / BPS), "daily loss limit reached");

        _setPrice(address(nvda), _priceAt(id, -1_200));
        vm.assertEq(router.executeExit(id, exits), 1, "second stop still fires");
        vm.assertFalse(router.position(id).open, "closed");
    }

    function test_executeExit_notBlockedWhenAgentInactive() public {
        uint256 id = _open(SIZE_USDC);
        vm.prank(admin);
        registry.setActive(agentId, false);

        ITradeRouter.AddToPosition memory add = _addIntent(id, 1e6);
        bytes memory sig = _sign(add, AGENT_KEY);
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.AgentInactive.selector, agentId));
        router.addToPosition(add, sig);

        _setPrice(address(nvda), _priceAt(id, -1_200));
        vm.assertEq(router.executeExit(id, _defaultLadder()), 1, "stop fires for an inactive agent");
        vm.assertFalse(router.position(id).open, "closed");
    }

    // ------------------------------------------------------------------ accounting

    function test_executeExit_realizedPnlAndDeployedAfterPartialExit() public {
        uint256 id = _open(SIZE_USDC);
        uint256 size0 = router.position(id).size;
        vm.assertEq(router.agentState(agentId).deployed, SIZE_USDC, "deployed at open");
        uint256 price = _priceAt(id, 1_200);
        _setPrice(address(nvda), price);
        router.executeExit(id, _defaultLadder());

        uint256 tokensIn = size0 * 5_000 / BPS;
        uint256 removed = SIZE_USDC * tokensIn / size0;
        ITradeRouter.AgentStateView memory st = router.agentState(agentId);
        vm.assertEq(st.realizedPnlToday, int256(_sellProceeds(tokensIn, price)) - int256(removed), "realized PnL");
        vm.assertEq(st.deployed, SIZE_USDC - removed, "deployed drops by the removed basis");
        vm.assertEq(st.turnoverToday, SIZE_USDC, "exits do not count as turnover");
    }

    function test_executeExit_realizedLossAndDeployedAfterStop() public {
        uint256 id = _open(SIZE_USDC);
        uint256 size0 = router.position(id).size;
        uint256 price = _priceAt(id, -1_200);
        _setPrice(address(nvda), price);
        router.executeExit(id, _defaultLadder());

        ITradeRouter.AgentStateView memory st = router.agentState(agentId);
        vm.assertEq(st.realizedPnlToday, int256(_sellProceeds(size0, price)) - int256(SIZE_USDC), "realized loss");
        vm.assertLt(uint256(-st.realizedPnlToday), SIZE_USDC * 13 / 100, "about -12%");
        vm.assertEq(st.deployed, 0, "nothing deployed");
    }

    function test_executeExit_dustRuleMarkedFiredWithoutSelling() public {
        // At $2e14 a share, 1 USDC buys under 10^4 token units, so a 1 bps exit rounds to zero tokens.
        uint256 hugePrice = 2e22;
        _setPrice(address(nvda), hugePrice);
        ITradeRouter.ExitRule[] memory exits = _ladder(_takeProfit(1_000, 1), _stopLoss(-1_000, 10_000));
        uint256 id = _open(address(nvda), 1e6, exits);
        ITradeRouter.PositionView memory p = router.position(id);
        vm.assertLt(p.size * 1, BPS, "size * exitBps < 1e4");
        vm.assertEq(p.size * 1 / BPS, 0, "the rule's share rounds to zero");

        uint256 price = hugePrice * 12 / 10;
        _setPrice(address(nvda), price);
        uint256 vaultUsdc = usdc.balanceOf(address(vault));
        ITradeRouter.ExitFill memory expected = ITradeRouter.ExitFill({
            ruleIndex: 0,
            tokensIn: 0,
            usdcOut: 0,
            oraclePrice: price,
            oracleRoundId: 3,
            realizedPnl: 0,
            size: p.size,
            costBasis: p.costBasis
        });
        vm.expectEmit(true, true, true, true, address(router));
        emit ITradeRouter.ExitExecuted(id, agentId, expected);
        vm.assertEq(router.executeExit(id, exits), 1, "fired");

        ITradeRouter.PositionView memory after_ = router.position(id);
        vm.assertTrue(after_.open, "still open");
        vm.assertEq(after_.size, p.size, "nothing sold");
        vm.assertEq(after_.costBasis, p.costBasis, "basis unchanged");
        vm.assertEq(after_.firedMask, 1, "rule 0 marked fired");
        vm.assertEq(usdc.balanceOf(address(vault)), vaultUsdc, "no proceeds");
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.ExitNotTriggered.selector, id, price));
        router.executeExit(id, exits);
    }
}
