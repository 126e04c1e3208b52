// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ITradeRouter} from "../interfaces/ITradeRouter.sol";
import {IAgentRegistry} from "../interfaces/IAgentRegistry.sol";

/// @title ExitLadder
/// @notice The exit-ladder rules of SPEC §1.4/§1.6 as pure functions: validation against a track,
///         and whether a rule is triggered for a position at a price.
/// @dev    Trigger semantics, exact in integers: the position's value is `size · price` rounded down
///         to USDC base units; with `factor = max(0, 10⁴ + triggerBps)`, a StopLoss is triggered when
///         `value · 10⁴ ≤ costBasis · factor`, a TakeProfit when `value · 10⁴ ≥ costBasis · factor`. That
///         is `pnlBps ≤ / ≥ triggerBps` without the rounding of an intermediate `pnlBps`; rounding the
///         value down lets a stop fire no later than the exact figure would.
library ExitLadder {
    uint256 internal constant MAX_RULES = 8;
    uint256 internal constant BPS = 10_000;
    uint8 internal constant STOP_LOSS = 0;
    uint8 internal constant TAKE_PROFIT = 1;

    function validate(ITradeRouter.ExitRule[] calldata rules, IAgentRegistry.Track memory track) internal pure {
        uint256 n = rules.length;
        if (n == 0) revert ITradeRouter.ExitLadderInvalid(0, ITradeRouter.LadderError.Empty);
        if (n > MAX_RULES) revert ITradeRouter.ExitLadderInvalid(MAX_RULES, ITradeRouter.LadderError.TooManyRules);
        bool hasStop;
        bool hasTake;
        for (uint256 i; i < n; ++i) {
            ITradeRouter.ExitRule calldata r = rules[i];
            int256 t = r.triggerBps;
            if (r.triggerType == STOP_LOSS) {
                if (t >= 0) revert ITradeRouter.ExitLadderInvalid(i, ITradeRouter.LadderError.StopLossNotNegative);
                if (t < -int256(uint256(track.maxStopLossBps))) {
                    revert ITradeRouter.ExitLadderInvalid(i, ITradeRouter.LadderError.StopLossBeyondTrack);
                }
                hasStop = true;
            } else if (r.triggerType == TAKE_PROFIT) {
                if (t <= 0) revert ITradeRouter.ExitLadderInvalid(i, ITradeRouter.LadderError.TakeProfitNotPositive);
                if (t < int256(uint256(track.minTakeProfitBps))) {
                    revert ITradeRouter.ExitLadderInvalid(i, ITradeRouter.LadderError.TakeProfitBelowTrack);
                }
                if (t > int256(uint256(track.maxTakeProfitBps))) {
                    revert ITradeRouter.ExitLadderInvalid(i, ITradeRouter.LadderError.TakeProfitAboveTrack);
                }
                hasTake = true;
            } else {
                revert ITradeRouter.ExitLadderInvalid(i, ITradeRouter.LadderError.InvalidTriggerType);
            }
            if (r.exitBps == 0 || r.exitBps > BPS) {
                revert ITradeRouter.ExitLadderInvalid(i, ITradeRouter.LadderError.ExitBpsOutOfRange);
            }
        }
        if (rules[n - 1].exitBps != BPS) {
            revert ITradeRouter.ExitLadderInvalid(n - 1, ITradeRouter.LadderError.LastRuleNotFull);
        }
        if (track.requireStopLoss && !hasStop) {
            revert ITradeRouter.ExitLadderInvalid(n, ITradeRouter.LadderError.StopLossRequired);
        }
        if (track.requireTakeProfit && !hasTake) {
            revert ITradeRouter.ExitLadderInvalid(n, ITradeRouter.LadderError.TakeProfitRequired);
        }
    }

    /// @param value the position's value at the oracle price, USDC base units rounded down
    function isTriggered(ITradeRouter.ExitRule calldata rule, uint256 value, uint256 costBasis)
        internal
        pure
        returns (bool)
    {
        int256 factor = int256(BPS) + int256(rule.triggerBps);
        // Below −100% the threshold is clamped to 0: such a stop fires only once the position is
        // worth nothing, and such a take-profit always. Validation keeps both out of real ladders
        // (maxStopLossBps ≤ 10000); the clamp keeps the arithmetic unsigned and defined.
        if (factor < 0) factor = 0;
        uint256 threshold = costBasis * uint256(factor);
        uint256 scaledValue = value * BPS;
        return rule.triggerType == STOP_LOSS ? scaledValue <= threshold : scaledValue >= threshold;
    }

    /// @notice Index of the lowest armed rule triggered at `value`, or `type(uint256).max` if none.
    function firstTriggered(ITradeRouter.ExitRule[] calldata rules, uint256 firedMask, uint256 value, uint256 costBasis)
        internal
        pure
        returns (uint256)
    {
        for (uint256 i; i < rules.length; ++i) {
            if (firedMask & (1 << i) == 0 && isTriggered(rules[i], value, costBasis)) return i;
        }
        return type(uint256).max;
    }
}
