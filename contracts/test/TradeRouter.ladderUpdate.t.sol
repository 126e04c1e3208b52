// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IAgentRegistry} from "../src/interfaces/IAgentRegistry.sol";
import {ITradeRouter} from "../src/interfaces/ITradeRouter.sol";
import {Fixture} from "./utils/Fixture.sol";
import {IntentSigner} from "./utils/IntentSigner.sol";

/// @notice `updateExitLadder`: replaces the ladder hash and re-arms every rule, validates against the
///         agent's current track, and is never blocked by track limits.
contract TradeRouterLadderUpdateTest is Fixture {
    uint256 internal positionId;

    function setUp() public override {
        super.setUp();
        positionId = _open(1_000e6); // default ladder: [TP +1000 50%, SL −1000 100%]
    }

    function _ladderError(uint256 index, ITradeRouter.LadderError reason) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(ITradeRouter.ExitLadderInvalid.selector, index, reason);
    }

    function _expectUpdateReverts(uint256 id, ITradeRouter.ExitRule[] memory exits, bytes memory err) internal {
        ITradeRouter.UpdateExitLadder memory p = _ladderIntent(id, exits);
        bytes memory sig = _sign(p, AGENT_KEY);
        vm.expectRevert(err);
        router.updateExitLadder(p, exits, sig);
    }

    // ------------------------------------------------------------------ replace and re-arm

    function test_updateLadder_replacesHashAndRuleCount() public {
        ITradeRouter.ExitRule[] memory exits =
            _ladder(_takeProfit(2000, 3000), _takeProfit(3000, 5000), _stopLoss(-500, 10_000));
        _updateLadder(positionId, exits);
        ITradeRouter.PositionView memory v = router.position(positionId);
        vm.assertEq(v.exitsHash, IntentSigner.exitsHash(exits), "new hash stored");
        vm.assertEq(uint256(v.ruleCount), 3, "new rule count");
        vm.assertEq(uint256(v.firedMask), 0, "armed");
        vm.assertEq(v.costBasis, 1_000e6, "position untouched");
        vm.assertEq(router.nextNonce(agentId), 2, "nonce consumed");
    }

    function test_updateLadder_emitsExitLadderSetWithFullRules() public {
        ITradeRouter.ExitRule[] memory exits =
            _ladder(_stopLoss(-300, 2500), _takeProfit(1500, 5000), _stopLoss(-800, 10_000));
        ITradeRouter.UpdateExitLadder memory p = _ladderIntent(positionId, exits);
        bytes memory sig = _sign(p, AGENT_KEY);
        vm.expectEmit(true, true, true, true, address(router));
        emit ITradeRouter.ExitLadderSet(positionId, agentId, IntentSigner.exitsHash(exits), exits);
        router.updateExitLadder(p, exits, sig);
    }

    function test_updateLadder_reArmsAfterPartialExitFired() public {
        // +11%: the take-profit (rule 0) sells half; the stop stays armed.
        uint256 price = _priceAtPnl(positionId, 1_100);
        _setPrice(address(nvda), price);
        vm.prank(keeper);
        vm.assertEq(router.executeExit(positionId, _defaultLadder()), 1, "one rule fired");
        ITradeRouter.PositionView memory fired = router.position(positionId);
        vm.assertEq(uint256(fired.firedMask), 1, "rule 0 fired");
        vm.assertTrue(fired.open, "half left");

        // The fired take-profit cannot fire again under the same ladder.
        vm.prank(keeper);
        vm.expectRevert(
            abi.encodeWithSelector(ITradeRouter.ExitNotTriggered.selector, positionId, price)
        );
        router.executeExit(positionId, _defaultLadder());

        // Setting the same rules again re-arms them all.
        _updateLadder(positionId, _defaultLadder());
        ITradeRouter.PositionView memory rearmed = router.position(positionId);
        vm.assertEq(uint256(rearmed.firedMask), 0, "fired mask back to 0");
        vm.assertEq(rearmed.exitsHash, IntentSigner.exitsHash(_defaultLadder()), "same hash");
        vm.assertEq(uint256(rearmed.ruleCount), 2, "rule count");

        vm.prank(keeper);
        vm.assertEq(router.executeExit(positionId, _defaultLadder()), 1, "the take-profit fires again");
        vm.assertEq(uint256(router.position(positionId).firedMask), 1, "fired again");
    }

    function test_updateLadder_oldLadderNoLongerExecutes() public {
        ITradeRouter.ExitRule[] memory exits = _ladder(_takeProfit(500, 5000), _stopLoss(-2000, 10_000));
        _updateLadder(positionId, exits);
        _setPrice(address(nvda), _priceAtPnl(positionId, 1_100));
        vm.expectRevert(
            abi.encodeWithSelector(
                ITradeRouter.LadderMismatch.selector,
                positionId,
                IntentSigner.exitsHash(exits),
                IntentSigner.exitsHash(_defaultLadder())
            )
        );
        router.executeExit(positionId, _defaultLadder());
        vm.assertEq(router.executeExit(positionId, exits), 1, "the new ladder executes");
    }

    function test_updateLadder_keepsPositionAndLimitsCounters() public {
        ITradeRouter.AgentStateView memory before = router.agentState(agentId);
        uint256 sizeBefore = router.position(positionId).size;
        _updateLadder(positionId, _ladder(_stopLoss(-500, 10_000)));
        ITradeRouter.AgentStateView memory afterUpdate = router.agentState(agentId);
        vm.assertEq(afterUpdate.deployed, before.deployed, "deployed");
        vm.assertEq(afterUpdate.turnoverToday, before.turnoverToday, "no turnover");
        vm.assertEq(afterUpdate.realizedPnlToday, before.realizedPnlToday, "pnl");
        vm.assertEq(router.position(positionId).size, sizeBefore, "size");
    }

    // ------------------------------------------------------------------ validation

    function test_updateLadder_revertsOnExitsHashMismatch() public {
        ITradeRouter.ExitRule[] memory signed = _ladder(_stopLoss(-500, 10_000));
        ITradeRouter.ExitRule[] memory sent = _ladder(_stopLoss(-600, 10_000));
        ITradeRouter.UpdateExitLadder memory p = _ladderIntent(positionId, signed);
        bytes memory sig = _sign(p, AGENT_KEY);
        vm.expectRevert(
            abi.encodeWithSelector(
                ITradeRouter.ExitsHashMismatch.selector, IntentSigner.exitsHash(sent), IntentSigner.exitsHash(signed)
            )
        );
        router.updateExitLadder(p, sent, sig);
    }

    function test_updateLadder_revertsOnEmptyLadder() public {
        _expectUpdateReverts(positionId, new ITradeRouter.ExitRule[](0), _ladderError(0, ITradeRouter.LadderError.Empty));
    }

    function test_updateLadder_revertsOnNineRules() public {
        ITradeRouter.ExitRule[] memory exits = new ITradeRouter.ExitRule[](9);
        for (uint256 i; i < 9; ++i) {
            exits[i] = _stopLoss(-int32(int256(100 * (i + 1))), 10_000);
        }
        _expectUpdateReverts(positionId, exits, _ladderError(8, ITradeRouter.LadderError.TooManyRules));
    }

    function test_updateLadder_revertsWhenLastRuleNotFull() public {
        _expectUpdateReverts(
            positionId,
            _ladder(_stopLoss(-500, 10_000), _stopLoss(-900, 5_000)),
            _ladderError(1, ITradeRouter.LadderError.LastRuleNotFull)
        );
    }

    function test_updateLadder_revertsWhenStopLossRequired() public {
        _expectUpdateReverts(
            positionId, _ladder(_takeProfit(1000, 10_000)), _ladderError(1, ITradeRouter.LadderError.StopLossRequired)
        );
    }

    function test_updateLadder_revertsOnStopLossBeyondTrack() public {
        IAgentRegistry.Track memory t = _permissiveTrack();
        t.maxStopLossBps = 1_500;
        _useTrack(t);
        _expectUpdateReverts(
            positionId,
            _ladder(_stopLoss(-1_000, 5000), _stopLoss(-1_501, 10_000)),
            _ladderError(1, ITradeRouter.LadderError.StopLossBeyondTrack)
        );
        _updateLadder(positionId, _ladder(_stopLoss(-1_000, 5000), _stopLoss(-1_500, 10_000)));
    }

    function test_updateLadder_revertsOnTakeProfitBelowTrack() public {
        IAgentRegistry.Track memory t = _permissiveTrack();
        t.minTakeProfitBps = 300;
        _useTrack(t);
        _expectUpdateReverts(
            positionId,
            _ladder(_takeProfit(299, 5000), _stopLoss(-1000, 10_000)),
            _ladderError(0, ITradeRouter.LadderError.TakeProfitBelowTrack)
        );
        _updateLadder(positionId, _ladder(_takeProfit(300, 5000), _stopLoss(-1000, 10_000)));
    }

    function test_updateLadder_revertsOnTakeProfitAboveTrack() public {
        IAgentRegistry.Track memory t = _permissiveTrack();
        t.maxTakeProfitBps = 4_000;
        _useTrack(t);
        _expectUpdateReverts(
            positionId,
            _ladder(_takeProfit(4_001, 5000), _stopLoss(-1000, 10_000)),
            _ladderError(0, ITradeRouter.LadderError.TakeProfitAboveTrack)
        );
        _updateLadder(positionId, _ladder(_takeProfit(4_000, 5000), _stopLoss(-1000, 10_000)));
    }

    function test_updateLadder_revertsWhenTakeProfitRequired() public {
        IAgentRegistry.Track memory t = _permissiveTrack();
        t.requireTakeProfit = true;
        _useTrack(t);
        _expectUpdateReverts(
            positionId, _ladder(_stopLoss(-1000, 10_000)), _ladderError(1, ITradeRouter.LadderError.TakeProfitRequired)
        );
    }

    /// @dev The track is read at update time: an agent moved to a stricter track must follow it.
    function test_updateLadder_validatesAgainstCurrentTrack() public {
        IAgentRegistry.Track memory t = _permissiveTrack();
        t.maxStopLossBps = 500; // the open's −1000 stop is now too wide
        _useTrack(t);
        _expectUpdateReverts(
            positionId, _defaultLadder(), _ladderError(1, ITradeRouter.LadderError.StopLossBeyondTrack)
        );
    }

    function test_updateLadder_revertsOnInvalidRule() public {
        _expectUpdateReverts(
            positionId,
            _ladder(_takeProfit(1000, 10_001), _stopLoss(-1000, 10_000)),
            _ladderError(0, ITradeRouter.LadderError.ExitBpsOutOfRange)
        );
    }

    // ------------------------------------------------------------------ position

    function test_updateLadder_revertsWhenPositionUnknown() public {
        _expectUpdateReverts(
            999, _defaultLadder(), abi.encodeWithSelector(ITradeRouter.PositionNotFound.selector, uint256(999))
        );
    }

    function test_updateLadder_revertsOnAnotherAgentsPosition() public {
        vm.prank(admin);
        uint256 other = registry.registerAgent(vm.addr(OTHER_KEY), vaultId, testTrackId, ALLOCATION);
        ITradeRouter.OpenPosition memory o = _openIntent(address(aapl), 1_000e6, _defaultLadder());
        o.agentId = other;
        o.nonce = 0;
        uint256 theirs = router.openPosition(o, _defaultLadder(), _sign(o, OTHER_KEY));
        _expectUpdateReverts(
            theirs, _ladder(_stopLoss(-100, 10_000)), abi.encodeWithSelector(ITradeRouter.PositionNotFound.selector, theirs)
        );
        vm.assertEq(router.position(theirs).exitsHash, IntentSigner.exitsHash(_defaultLadder()), "their ladder kept");
    }

    function test_updateLadder_revertsWhenPositionClosed() public {
        _reduce(positionId, router.position(positionId).size);
        _expectUpdateReverts(
            positionId, _defaultLadder(), abi.encodeWithSelector(ITradeRouter.PositionNotOpen.selector, positionId)
        );
    }

    function test_updateLadder_revertsAfterLadderExitClosedPosition() public {
        _setPrice(address(nvda), _priceAtPnl(positionId, -1_100)); // the stop sells everything
        router.executeExit(positionId, _defaultLadder());
        _expectUpdateReverts(
            positionId, _defaultLadder(), abi.encodeWithSelector(ITradeRouter.PositionNotOpen.selector, positionId)
        );
    }

    // ------------------------------------------------------------------ never blocked by limits

    function test_updateLadder_notBlockedByDailyLossLimit() public {
        IAgentRegistry.Track memory t = _permissiveTrack();
        t.maxDailyLossBps = 1; // 10 USDC
        _useTrack(t);
        uint256 other = _open(address(aapl), 1_000e6, _defaultLadder());
        _setPrice(address(aapl), AAPL_PRICE * 9 / 10);
        _reduce(other, router.position(other).size);
        vm.assertLe(router.agentState(agentId).realizedPnlToday, -10e6, "limit reached");
        _updateLadder(positionId, _ladder(_stopLoss(-200, 10_000)));
        vm.assertEq(
            router.position(positionId).exitsHash, IntentSigner.exitsHash(_ladder(_stopLoss(-200, 10_000))), "updated"
        );
    }

    function test_updateLadder_notBlockedWhenTurnoverExhausted() public {
        IAgentRegistry.Track memory t = _permissiveTrack();
        t.maxDailyTurnoverBps = 100; // 1,000 USDC: the open used it all
        _useTrack(t);
        _updateLadder(positionId, _ladder(_stopLoss(-200, 10_000)));
        vm.assertEq(uint256(router.position(positionId).ruleCount), 1, "updated");
    }

    function test_updateLadder_notBlockedWhenAllocationCutToZero() public {
        vm.prank(admin);
        registry.setAllocation(agentId, 0);
        _updateLadder(positionId, _ladder(_stopLoss(-200, 10_000)));
        vm.assertEq(uint256(router.position(positionId).ruleCount), 1, "updated");
    }

    function test_updateLadder_notBlockedByStalePrice() public {
        vm.warp(START_TIME + 10 * MAX_PRICE_AGE);
        _updateLadder(positionId, _ladder(_stopLoss(-200, 10_000)));
        vm.assertEq(uint256(router.position(positionId).ruleCount), 1, "no price needed");
    }
}
