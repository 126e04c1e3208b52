// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IAgentRegistry} from "../../src/interfaces/IAgentRegistry.sol";
import {ITradeRouter} from "../../src/interfaces/ITradeRouter.sol";
import {ExitLadder} from "../../src/libraries/ExitLadder.sol";
import {TestBase} from "../utils/Vm.sol";

/// @notice Exposes the library's internal functions; they take calldata arrays, so the harness's
///         external functions give them calldata.
contract ExitLadderHarness {
    function validate(ITradeRouter.ExitRule[] calldata rules, IAgentRegistry.Track memory track) external pure {
        ExitLadder.validate(rules, track);
    }

    function isTriggered(ITradeRouter.ExitRule calldata rule, uint256 value, uint256 costBasis)
        external
        pure
        returns (bool)
    {
        return ExitLadder.isTriggered(rule, value, costBasis);
    }

    function firstTriggered(
        ITradeRouter.ExitRule[] calldata rules,
        uint256 firedMask,
        uint256 value,
        uint256 costBasis
    ) external pure returns (uint256) {
        return ExitLadder.firstTriggered(rules, firedMask, value, costBasis);
    }
}

contract ExitLadderTest is TestBase {
    uint8 internal constant SL = 0;
    uint8 internal constant TP = 1;
    uint256 internal constant NONE = type(uint256).max;

    ExitLadderHarness internal harness;

    function setUp() public {
        harness = new ExitLadderHarness();
    }

    // ------------------------------------------------------------------ helpers

    /// @dev SPEC §2.3's example bounds: stops down to −20%, take-profits +1%..+50%, stop required.
    function _track() internal pure returns (IAgentRegistry.Track memory) {
        return IAgentRegistry.Track({
            maxTradeSizeBps: 1_000,
            maxDailyTurnoverBps: 20_000,
            maxDailyLossBps: 500,
            maxStopLossBps: 2_000,
            minTakeProfitBps: 100,
            maxTakeProfitBps: 5_000,
            requireStopLoss: true,
            requireTakeProfit: false,
            sessions: 4, // Regular
            exitsWhenClosed: IAgentRegistry.ExitsWhenClosed.Hold
        });
    }

    function _trackNoRequirements() internal pure returns (IAgentRegistry.Track memory t) {
        t = _track();
        t.requireStopLoss = false;
    }

    function _r(uint8 triggerType, int32 triggerBps, uint16 exitBps) internal pure returns (ITradeRouter.ExitRule memory) {
        return ITradeRouter.ExitRule({triggerType: triggerType, triggerBps: triggerBps, exitBps: exitBps});
    }

    function _l(ITradeRouter.ExitRule memory a) internal pure returns (ITradeRouter.ExitRule[] memory l) {
        l = new ITradeRouter.ExitRule[](1);
        l[0] = a;
    }

    function _l(ITradeRouter.ExitRule memory a, ITradeRouter.ExitRule memory b)
        internal
        pure
        returns (ITradeRouter.ExitRule[] memory l)
    {
        l = new ITradeRouter.ExitRule[](2);
        l[0] = a;
        l[1] = b;
    }

    function _l(ITradeRouter.ExitRule memory a, ITradeRouter.ExitRule memory b, ITradeRouter.ExitRule memory c)
        internal
        pure
        returns (ITradeRouter.ExitRule[] memory l)
    {
        l = new ITradeRouter.ExitRule[](3);
        l[0] = a;
        l[1] = b;
        l[2] = c;
    }

    /// @dev `n` rules: stops at −100, −200, … bps selling 10%, the last one selling everything.
    function _stops(uint256 n) internal pure returns (ITradeRouter.ExitRule[] memory l) {
        l = new ITradeRouter.ExitRule[](n);
        for (uint256 i; i < n; ++i) {
            l[i] = _r(SL, -int32(int256(100 * (i + 1))), i == n - 1 ? 10_000 : 1_000);
        }
    }

    function _expectInvalid(uint256 ruleIndex, ITradeRouter.LadderError reason) internal {
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.ExitLadderInvalid.selector, ruleIndex, reason));
    }

    /// @dev The NatSpec's rule, in signed arithmetic with no clamping.
    function _reference(ITradeRouter.ExitRule memory rule, uint256 value, uint256 costBasis) internal pure returns (bool) {
        int256 lhs = int256(value) * 10_000;
        int256 rhs = int256(costBasis) * (10_000 + int256(rule.triggerBps));
        return rule.triggerType == SL ? lhs <= rhs : lhs >= rhs;
    }

    // ------------------------------------------------------------------ validate: every LadderError

    function test_validate_revertsWhenEmpty() public {
        _expectInvalid(0, ITradeRouter.LadderError.Empty);
        harness.validate(new ITradeRouter.ExitRule[](0), _track());
    }

    function test_validate_revertsWithNineRules() public {
        _expectInvalid(8, ITradeRouter.LadderError.TooManyRules);
        harness.validate(_stops(9), _track());
    }

    function test_validate_revertsOnUnknownTriggerType() public {
        _expectInvalid(1, ITradeRouter.LadderError.InvalidTriggerType);
        harness.validate(_l(_r(SL, -500, 5_000), _r(2, 500, 10_000)), _track());
    }

    function test_validate_revertsOnTriggerTypeMax() public {
        _expectInvalid(0, ITradeRouter.LadderError.InvalidTriggerType);
        harness.validate(_l(_r(type(uint8).max, -500, 10_000)), _track());
    }

    function test_validate_revertsWhenStopLossIsZero() public {
        _expectInvalid(1, ITradeRouter.LadderError.StopLossNotNegative);
        harness.validate(_l(_r(SL, -500, 5_000), _r(SL, 0, 10_000)), _track());
    }

    function test_validate_revertsWhenStopLossIsPositive() public {
        _expectInvalid(0, ITradeRouter.LadderError.StopLossNotNegative);
        harness.validate(_l(_r(SL, 500, 10_000)), _track());
    }

    function test_validate_revertsWhenTakeProfitIsZero() public {
        _expectInvalid(0, ITradeRouter.LadderError.TakeProfitNotPositive);
        harness.validate(_l(_r(TP, 0, 5_000), _r(SL, -500, 10_000)), _track());
    }

    function test_validate_revertsWhenTakeProfitIsNegative() public {
        _expectInvalid(1, ITradeRouter.LadderError.TakeProfitNotPositive);
        harness.validate(_l(_r(SL, -500, 5_000), _r(TP, -500, 10_000)), _track());
    }

    function test_validate_revertsWhenExitBpsIsZero() public {
        _expectInvalid(0, ITradeRouter.LadderError.ExitBpsOutOfRange);
        harness.validate(_l(_r(SL, -500, 0), _r(SL, -1_000, 10_000)), _track());
    }

    function test_validate_revertsWhenExitBpsAboveFull() public {
        _expectInvalid(1, ITradeRouter.LadderError.ExitBpsOutOfRange);
        harness.validate(_l(_r(SL, -500, 5_000), _r(TP, 500, 10_001), _r(SL, -1_000, 10_000)), _track());
    }

    function test_validate_revertsWhenLastRuleExitBpsAboveFull() public {
        // Range is checked per rule before the last rule's "full" check.
        _expectInvalid(0, ITradeRouter.LadderError.ExitBpsOutOfRange);
        harness.validate(_l(_r(SL, -500, 10_001)), _track());
    }

    function test_validate_revertsWhenLastRuleNotFull() public {
        _expectInvalid(2, ITradeRouter.LadderError.LastRuleNotFull);
        harness.validate(_l(_r(TP, 500, 5_000), _r(SL, -500, 10_000), _r(TP, 1_000, 9_999)), _track());
    }

    function test_validate_revertsWhenSingleRuleNotFull() public {
        _expectInvalid(0, ITradeRouter.LadderError.LastRuleNotFull);
        harness.validate(_l(_r(SL, -500, 5_000)), _track());
    }

    function test_validate_revertsWhenStopLossBeyondTrack() public {
        _expectInvalid(1, ITradeRouter.LadderError.StopLossBeyondTrack);
        harness.validate(_l(_r(TP, 500, 5_000), _r(SL, -2_001, 10_000)), _track());
    }

    function test_validate_revertsWhenTakeProfitBelowTrack() public {
        _expectInvalid(0, ITradeRouter.LadderError.TakeProfitBelowTrack);
        harness.validate(_l(_r(TP, 99, 5_000), _r(SL, -500, 10_000)), _track());
    }

    function test_validate_revertsWhenTakeProfitAboveTrack() public {
        _expectInvalid(1, ITradeRouter.LadderError.TakeProfitAboveTrack);
        harness.validate(_l(_r(SL, -500, 5_000), _r(TP, 5_001, 10_000)), _track());
    }

    function test_validate_revertsWhenStopLossRequiredAndMissing() public {
        _expectInvalid(2, ITradeRouter.LadderError.StopLossRequired);
        harness.validate(_l(_r(TP, 500, 5_000), _r(TP, 1_000, 10_000)), _track());
    }

    function test_validate_revertsWhenTakeProfitRequiredAndMissing() public {
        IAgentRegistry.Track memory t = _track();
        t.requireTakeProfit = true;
        _expectInvalid(3, ITradeRouter.LadderError.TakeProfitRequired);
        harness.validate(_l(_r(SL, -500, 3_000), _r(SL, -1_000, 5_000), _r(SL, -2_000, 10_000)), t);
    }

    function test_validate_reportsFirstOffendingRule() public {
        // Rules 1 and 2 are both bad; the error names rule 1.
        _expectInvalid(1, ITradeRouter.LadderError.StopLossBeyondTrack);
        harness.validate(_l(_r(SL, -500, 5_000), _r(SL, -3_000, 5_000), _r(TP, 9_000, 10_000)), _track());
    }

    // ------------------------------------------------------------------ validate: boundaries accepted

    function test_validate_acceptsStopLossAtTrackMax() public view {
        harness.validate(_l(_r(SL, -2_000, 10_000)), _track());
    }

    function test_validate_acceptsStopLossOfOneBps() public view {
        harness.validate(_l(_r(SL, -1, 10_000)), _track());
    }

    function test_validate_acceptsTakeProfitAtTrackMin() public view {
        harness.validate(_l(_r(TP, 100, 5_000), _r(SL, -500, 10_000)), _track());
    }

    function test_validate_acceptsTakeProfitAtTrackMax() public view {
        harness.validate(_l(_r(TP, 5_000, 5_000), _r(SL, -500, 10_000)), _track());
    }

    function test_validate_acceptsExitBpsOfOne() public view {
        harness.validate(_l(_r(TP, 500, 1), _r(SL, -500, 10_000)), _track());
    }

    function test_validate_acceptsEightRules() public view {
        harness.validate(_stops(8), _track());
    }

    function test_validate_acceptsFullExitOnNonLastRule() public view {
        harness.validate(_l(_r(TP, 1_000, 10_000), _r(SL, -1_000, 10_000)), _track());
    }

    function test_validate_acceptsBothRequiredTypes() public view {
        IAgentRegistry.Track memory t = _track();
        t.requireTakeProfit = true;
        harness.validate(_l(_r(TP, 1_000, 5_000), _r(SL, -1_000, 10_000)), t);
    }

    function test_validate_acceptsNoStopWhenNotRequired() public view {
        harness.validate(_l(_r(TP, 1_000, 10_000)), _trackNoRequirements());
    }

    // ------------------------------------------------------------------ isTriggered

    function test_isTriggered_boundaryTable() public view {
        // (type, triggerBps, value, costBasis) → triggered; the threshold is costBasis·(1e4+triggerBps)/1e4.
        _checkTriggered(SL, -1_000, 900, 1_000, true); // exactly −10%
        _checkTriggered(SL, -1_000, 901, 1_000, false); // one unit above
        _checkTriggered(SL, -1_000, 899, 1_000, true);
        _checkTriggered(SL, -1_000, 900, 1_001, true); // threshold 900.9: 900 is below
        _checkTriggered(SL, -1_000, 901, 1_001, false); // 901 is above 900.9
        _checkTriggered(TP, 1_000, 1_100, 1_000, true); // exactly +10%
        _checkTriggered(TP, 1_000, 1_099, 1_000, false); // one unit below
        _checkTriggered(TP, 1_000, 1_101, 1_000, true);
        _checkTriggered(TP, 1_000, 1_101, 1_001, false); // threshold 1101.1: 1101 is below
        _checkTriggered(TP, 1_000, 1_102, 1_001, true);
        _checkTriggered(SL, -1, 9_999, 10_000, true); // −1 bps exactly
        _checkTriggered(SL, -1, 10_000, 10_000, false); // at cost: a stop is not triggered
        _checkTriggered(TP, 1, 10_001, 10_000, true); // +1 bps exactly
        _checkTriggered(TP, 1, 10_000, 10_000, false); // at cost: a take-profit is not triggered
        _checkTriggered(SL, -10_000, 0, 1_000, true); // −100% stop fires at total loss
        _checkTriggered(SL, -10_000, 1, 1_000, false);
        _checkTriggered(TP, 10_000, 2_000, 1_000, true); // +100%
        _checkTriggered(TP, 10_000, 1_999, 1_000, false);
        _checkTriggered(TP, 1_000, 0, 0, true); // zero basis: 0 ≥ 0
        _checkTriggered(SL, -1_000, 0, 0, true); // zero basis: 0 ≤ 0
    }

    function _checkTriggered(uint8 t, int32 bps, uint256 value, uint256 costBasis, bool expected) internal view {
        vm.assertEq(harness.isTriggered(_r(t, bps, 10_000), value, costBasis), expected, "isTriggered");
        vm.assertEq(_reference(_r(t, bps, 10_000), value, costBasis), expected, "reference agrees with the table");
    }

    /// @dev Below −100% the library clamps the threshold to 0 (its documented choice; unreachable
    ///      through the router since tracks cap maxStopLossBps at 10000): such a stop fires only at
    ///      value 0, where the unclamped formula would say never.
    function test_isTriggered_stopBeyondTotalLossFiresOnlyAtZeroValue() public view {
        vm.assertTrue(harness.isTriggered(_r(SL, -15_000, 10_000), 0, 1_000), "stop at -150% at value 0");
        vm.assertFalse(harness.isTriggered(_r(SL, -15_000, 10_000), 1, 1_000), "stop at -150% at value 1");
        vm.assertFalse(harness.isTriggered(_r(SL, type(int32).min, 10_000), 1, 1), "int32 min");
    }

    function test_isTriggered_takeProfitBelowTotalLossAlwaysFires() public view {
        vm.assertTrue(harness.isTriggered(_r(TP, -15_000, 10_000), 0, 1_000), "factor < 0");
        vm.assertTrue(harness.isTriggered(_r(TP, -10_000, 10_000), 0, 1_000), "factor = 0");
    }

    // ------------------------------------------------------------------ firstTriggered

    function test_firstTriggered_returnsLowestTriggeredIndex() public view {
        // At −15%: rules 1 (−5%) and 2 (−10%) are triggered, rule 0 (TP) is not.
        ITradeRouter.ExitRule[] memory l = _l(_r(TP, 1_000, 5_000), _r(SL, -500, 5_000), _r(SL, -1_000, 10_000));
        vm.assertEq(harness.firstTriggered(l, 0, 850, 1_000), 1, "lowest triggered");
    }

    function test_firstTriggered_followsArrayOrderNotTriggerLevel() public view {
        // The deeper stop comes first in the array, so it is the one that fires first.
        ITradeRouter.ExitRule[] memory l = _l(_r(SL, -1_000, 5_000), _r(SL, -500, 10_000));
        vm.assertEq(harness.firstTriggered(l, 0, 850, 1_000), 0, "index 0 first");
    }

    function test_firstTriggered_skipsFiredRules() public view {
        ITradeRouter.ExitRule[] memory l = _l(_r(SL, -500, 5_000), _r(SL, -1_000, 5_000), _r(SL, -1_500, 10_000));
        vm.assertEq(harness.firstTriggered(l, 0, 800, 1_000), 0, "none fired");
        vm.assertEq(harness.firstTriggered(l, 1, 800, 1_000), 1, "rule 0 fired");
        vm.assertEq(harness.firstTriggered(l, 2, 800, 1_000), 0, "only rule 1 fired");
        vm.assertEq(harness.firstTriggered(l, 3, 800, 1_000), 2, "rules 0 and 1 fired");
        vm.assertEq(harness.firstTriggered(l, 7, 800, 1_000), NONE, "all fired");
    }

    function test_firstTriggered_ignoresMaskBitsBeyondLadder() public view {
        ITradeRouter.ExitRule[] memory l = _l(_r(SL, -500, 10_000));
        vm.assertEq(harness.firstTriggered(l, 0xFE, 900, 1_000), 0, "bits 1..7 do not concern rule 0");
    }

    function test_firstTriggered_returnsNoneWhenNothingTriggered() public view {
        ITradeRouter.ExitRule[] memory l = _l(_r(TP, 1_000, 5_000), _r(SL, -1_000, 10_000));
        vm.assertEq(harness.firstTriggered(l, 0, 1_000, 1_000), NONE, "at cost");
        vm.assertEq(harness.firstTriggered(l, 0, 1_099, 1_000), NONE, "just below TP");
        vm.assertEq(harness.firstTriggered(l, 0, 901, 1_000), NONE, "just above SL");
    }

    // ------------------------------------------------------------------ fuzz

    function testFuzz_validate_acceptsAnyValidLadder(
        uint256 n,
        uint256[8] memory typeSeeds,
        uint256[8] memory triggerSeeds,
        uint256[8] memory exitSeeds,
        uint256 trackSeed
    ) public view {
        n = bound(n, 1, 8);
        IAgentRegistry.Track memory t = _track();
        t.maxStopLossBps = uint16(bound(trackSeed, 1, 10_000));
        t.maxTakeProfitBps = uint32(bound(trackSeed >> 16, 1, uint32(type(int32).max)));
        t.minTakeProfitBps = uint32(bound(trackSeed >> 48, 1, t.maxTakeProfitBps));
        t.requireStopLoss = (trackSeed >> 80) & 1 == 1;
        t.requireTakeProfit = (trackSeed >> 81) & 1 == 1;

        ITradeRouter.ExitRule[] memory l = new ITradeRouter.ExitRule[](n);
        for (uint256 i; i < n; ++i) {
            uint8 kind = uint8(typeSeeds[i] & 1);
            // Put the required types on the first rules so every track can be satisfied.
            if (i == 0 && t.requireStopLoss) kind = SL;
            else if (i == (t.requireStopLoss ? 1 : 0) && t.requireTakeProfit) kind = TP;
            int256 trigger = kind == SL
                ? -int256(bound(triggerSeeds[i], 1, t.maxStopLossBps))
                : int256(bound(triggerSeeds[i], t.minTakeProfitBps, t.maxTakeProfitBps));
            uint16 exitBps = i == n - 1 ? 10_000 : uint16(bound(exitSeeds[i], 1, 10_000));
            l[i] = _r(kind, int32(trigger), exitBps);
        }
        if (n == 1 && t.requireStopLoss && t.requireTakeProfit) t.requireTakeProfit = false;

        harness.validate(l, t);
    }

    function testFuzz_isTriggered_matchesSignedReference(
        bool isStop,
        int256 triggerBps,
        uint256 value,
        uint256 costBasis
    ) public view {
        // Every trigger a track can admit: stops down to −100%, take-profits up to int32.
        triggerBps = isStop ? boundInt(triggerBps, -10_000, -1) : boundInt(triggerBps, 1, type(int32).max);
        value = bound(value, 0, type(uint128).max);
        costBasis = bound(costBasis, 0, type(uint64).max);
        ITradeRouter.ExitRule memory rule = _r(isStop ? SL : TP, int32(triggerBps), 10_000);
        vm.assertEq(harness.isTriggered(rule, value, costBasis), _reference(rule, value, costBasis), "isTriggered");
    }

    function testFuzz_firstTriggered_matchesLinearScan(
        uint256 n,
        uint256[8] memory seeds,
        uint256 firedMask,
        uint256 value,
        uint256 costBasis
    ) public view {
        n = bound(n, 1, 8);
        firedMask = bound(firedMask, 0, 255);
        costBasis = bound(costBasis, 1, type(uint64).max);
        value = bound(value, 0, costBasis * 3);
        ITradeRouter.ExitRule[] memory l = new ITradeRouter.ExitRule[](n);
        uint256 expected = NONE;
        for (uint256 i; i < n; ++i) {
            bool stop = seeds[i] & 1 == 0;
            int256 trigger = stop ? -int256(bound(seeds[i] >> 1, 1, 10_000)) : int256(bound(seeds[i] >> 1, 1, 20_000));
            l[i] = _r(stop ? SL : TP, int32(trigger), 10_000);
            if (expected == NONE && (firedMask >> i) & 1 == 0 && _reference(l[i], value, costBasis)) expected = i;
        }
        vm.assertEq(harness.firstTriggered(l, firedMask, value, costBasis), expected, "firstTriggered");
    }
}
