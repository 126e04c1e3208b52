// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IAgentRegistry} from "../src/interfaces/IAgentRegistry.sol";
import {IPriceOracle} from "../src/interfaces/IPriceOracle.sol";
import {ITradeRouter} from "../src/interfaces/ITradeRouter.sol";
import {BatchItems} from "./utils/BatchItems.sol";
import {Fixture} from "./utils/Fixture.sol";
import {IntentSigner} from "./utils/IntentSigner.sol";
import {Vm} from "./utils/Vm.sol";

/// @notice Market sessions on chain (SPEC §5.6): every market status × intent type (open, add, reduce,
///         ladder update, exit single and batched) × track policy (sessions sets, hold / fire).
/// @dev    The rules under test, as `TradeRouter._openPrice` / `_exitGate` state them:
///         - a token whose status is Unknown (a feed that publishes none) is never gated;
///         - open / add: the status must be in the track's sessions, else `MarketClosed(token, status)`;
///         - exit: Halted → `MarketHalted(token)`; a `Fire` track fires on the last price; a `Hold` track
///           needs the status now (else `MarketClosed(token, status)`) and the price's quoted status
///           (else `MarketClosed(token, quotedStatus)`) in its sessions;
///         - reduces and ladder updates are never blocked.
///         Each case runs from one snapshot, so the matrices are exhaustive, not sampled.
contract TradeRouterMarketsTest is Fixture {
    uint8 internal constant UNKNOWN = 0;
    uint8 internal constant PRE = 1;
    uint8 internal constant REGULAR = 2;
    uint8 internal constant POST = 3;
    uint8 internal constant OVERNIGHT = 4;
    uint8 internal constant CLOSED = 5;
    uint8 internal constant HALTED = 6;
    uint8 internal constant STATUSES = 7;

    uint8 internal constant REGULAR_ONLY = uint8(1 << REGULAR);
    uint8 internal constant EXTENDED = uint8((1 << PRE) | (1 << REGULAR) | (1 << POST));
    uint8 internal constant ALL_BUT_HALTED = 63; // Unknown..Closed

    IAgentRegistry.ExitsWhenClosed internal constant HOLD = IAgentRegistry.ExitsWhenClosed.Hold;
    IAgentRegistry.ExitsWhenClosed internal constant FIRE = IAgentRegistry.ExitsWhenClosed.Fire;

    // ------------------------------------------------------------------ helpers

    function _sessionSets() internal pure returns (uint8[3] memory) {
        return [REGULAR_ONLY, EXTENDED, ALL_BUT_HALTED];
    }

    function _track(uint8 sessions, IAgentRegistry.ExitsWhenClosed policy) internal {
        IAgentRegistry.Track memory t = _permissiveTrack();
        t.sessions = sessions;
        t.exitsWhenClosed = policy;
        _useTrack(t);
    }

    function _setStatus(address token, uint8 status) internal {
        vm.prank(admin);
        oracle.setMarketStatus(token, IPriceOracle.MarketStatus(status));
    }

    /// @dev The feed's call: a price quoted in `status` (which becomes the status now too).
    function _quote(address token, uint256 price, uint8 status) internal {
        uint256 epoch = oracle.multiplierEpochOf(token);
        vm.prank(admin);
        oracle.setQuote(token, price, epoch, IPriceOracle.MarketStatus(status));
    }

    function _in(uint8 sessions, uint8 status) internal pure returns (bool) {
        return (sessions >> status) & 1 == 1;
    }

    function _closed(address token, uint8 status) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(ITradeRouter.MarketClosed.selector, token, status);
    }

    function _halted(address token) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(ITradeRouter.MarketHalted.selector, token);
    }

    /// @dev What an open or add gets: empty for "goes through".
    function _expectedBuy(uint8 sessions, uint8 status) internal view returns (bytes memory) {
        if (status == UNKNOWN || _in(sessions, status)) return "";
        return _closed(address(nvda), status);
    }

    /// @dev What an exit of a crossed rule gets: empty for "fires".
    function _expectedExit(uint8 sessions, IAgentRegistry.ExitsWhenClosed policy, uint8 status, uint8 quoted)
        internal
        view
        returns (bytes memory)
    {
        if (status == UNKNOWN) return "";
        if (status == HALTED) return _halted(address(nvda));
        if (policy == FIRE) return "";
        if (!_in(sessions, status)) return _closed(address(nvda), status);
        if (!_in(sessions, quoted)) return _closed(address(nvda), quoted);
        return "";
    }

    function _call(bytes memory data) internal returns (bool ok, bytes memory ret) {
        (ok, ret) = address(router).call(data);
    }

    function _assertOutcome(bool ok, bytes memory ret, bytes memory expected, string memory what) internal pure {
        if (expected.length == 0) {
            vm.assertTrue(ok, string.concat(what, ": goes through"));
        } else {
            vm.assertFalse(ok, string.concat(what, ": reverts"));
            vm.assertEq(ret, expected, string.concat(what, ": reason"));
        }
    }

    function _label(string memory what, uint8 sessions, uint8 a, uint8 b) internal pure returns (string memory) {
        return string.concat(
            what,
            " sessions=",
            vm.toString(uint256(sessions)),
            " status=",
            vm.toString(uint256(a)),
            " quoted=",
            vm.toString(uint256(b))
        );
    }

    function _openCall(uint256 usdcAmount) internal view returns (bytes memory) {
        ITradeRouter.ExitRule[] memory exits = _defaultLadder();
        ITradeRouter.OpenPosition memory p = _openIntent(address(nvda), usdcAmount, exits);
        return abi.encodeCall(ITradeRouter.openPosition, (p, exits, _sign(p, AGENT_KEY)));
    }

    /// @dev A position opened while the token has no status; then the price is pushed through its stop
    ///      (−10%) quoted in `quoted`, and the status set to `status`.
    function _crossedPosition(uint8 quoted, uint8 status) internal returns (uint256 positionId) {
        positionId = _open(10_000e6);
        _quote(address(nvda), _priceAtPnl(positionId, -1_500), quoted);
        _setStatus(address(nvda), status);
    }

    // ------------------------------------------------------------------ opens and adds

    function test_open_everyStatusBySessions() public {
        uint8[3] memory sets = _sessionSets();
        for (uint256 k; k < sets.length; ++k) {
            for (uint8 s; s < STATUSES; ++s) {
                uint256 snap = vm.snapshotState();
                _track(sets[k], HOLD);
                _setStatus(address(nvda), s);
                (bool ok, bytes memory ret) = _call(_openCall(1_000e6));
                _assertOutcome(ok, ret, _expectedBuy(sets[k], s), _label("open", sets[k], s, s));
                vm.revertToState(snap);
            }
        }
    }

    function test_add_everyStatusBySessions() public {
        uint256 positionId = _open(1_000e6);
        uint8[3] memory sets = _sessionSets();
        for (uint256 k; k < sets.length; ++k) {
            for (uint8 s; s < STATUSES; ++s) {
                uint256 snap = vm.snapshotState();
                _track(sets[k], FIRE); // the exit policy has no say over adds
                _setStatus(address(nvda), s);
                ITradeRouter.AddToPosition memory p = _addIntent(positionId, 1_000e6);
                (bool ok, bytes memory ret) =
                    _call(abi.encodeCall(ITradeRouter.addToPosition, (p, _sign(p, AGENT_KEY))));
                _assertOutcome(ok, ret, _expectedBuy(sets[k], s), _label("add", sets[k], s, s));
                vm.revertToState(snap);
            }
        }
    }

    function test_open_closedBeatsStale() public {
        // A closed market's last price ages over the weekend: the reason is the session, not the age.
        _setStatus(address(nvda), CLOSED);
        vm.warp(block.timestamp + 2 days);
        (bool ok, bytes memory ret) = _call(_openCall(1_000e6));
        _assertOutcome(ok, ret, _closed(address(nvda), CLOSED), "weekend open");
        // In session, a stale price is still refused for its age.
        _setStatus(address(nvda), REGULAR);
        (ok, ret) = _call(_openCall(1_000e6));
        vm.assertFalse(ok, "stale in session");
        vm.assertEq(bytes4(ret), ITradeRouter.OraclePriceStale.selector, "stale reason");
    }

    function test_open_otherTokenUngatedWhileOneIsClosed() public {
        _setStatus(address(nvda), CLOSED);
        ITradeRouter.ExitRule[] memory exits = _defaultLadder();
        vm.assertEq(_open(address(aapl), 1_000e6, exits), 1, "AAPL (no status) opens");
    }

    // ------------------------------------------------------------------ reduces and ladder updates

    function test_reduceAndLadderUpdate_neverBlocked() public {
        uint256 positionId = _open(10_000e6);
        uint256 size = router.position(positionId).size;
        for (uint8 s; s < STATUSES; ++s) {
            uint256 snap = vm.snapshotState();
            _track(REGULAR_ONLY, HOLD);
            _quote(address(nvda), NVDA_PRICE, s);
            _reduce(positionId, size / 4);
            vm.assertEq(router.position(positionId).size, size - size / 4, _label("reduce", REGULAR_ONLY, s, s));
            ITradeRouter.ExitRule[] memory exits = _ladder(_stopLoss(-500, 10_000));
            _updateLadder(positionId, exits);
            vm.assertEq(
                router.position(positionId).exitsHash,
                IntentSigner.exitsHash(exits),
                _label("ladder update", REGULAR_ONLY, s, s)
            );
            vm.revertToState(snap);
        }
    }

    // ------------------------------------------------------------------ exits

    function test_exit_everyStatusQuotedStatusAndPolicy() public {
        uint8[3] memory sets = _sessionSets();
        IAgentRegistry.ExitsWhenClosed[2] memory policies = [HOLD, FIRE];
        for (uint256 k; k < sets.length; ++k) {
            for (uint256 j; j < 2; ++j) {
                for (uint8 q; q < STATUSES; ++q) {
                    for (uint8 s; s < STATUSES; ++s) {
                        uint256 snap = vm.snapshotState();
                        _track(sets[k], policies[j]);
                        uint256 positionId = _crossedPosition(q, s);
                        (bool ok, bytes memory ret) =
                            _call(abi.encodeCall(ITradeRouter.executeExit, (positionId, _defaultLadder())));
                        bytes memory expected = _expectedExit(sets[k], policies[j], s, q);
                        string memory what = _label(j == 0 ? "exit hold" : "exit fire", sets[k], s, q);
                        _assertOutcome(ok, ret, expected, what);
                        vm.assertEq(router.position(positionId).open, expected.length != 0, what);
                        vm.revertToState(snap);
                    }
                }
            }
        }
    }

    function test_executeExits_everyStatusQuotedStatusAndPolicy_perItem() public {
        IAgentRegistry.ExitsWhenClosed[2] memory policies = [HOLD, FIRE];
        for (uint256 j; j < 2; ++j) {
            for (uint8 q; q < STATUSES; ++q) {
                for (uint8 s; s < STATUSES; ++s) {
                    uint256 snap = vm.snapshotState();
                    _track(EXTENDED, policies[j]);
                    uint256 positionId = _crossedPosition(q, s);
                    // A second position, in a token without status, crossed too: it always fires.
                    uint256 other = _open(address(aapl), 10_000e6, _defaultLadder());
                    _setPrice(address(aapl), _priceAtPnl(other, -1_500));
                    ITradeRouter.ExitCall[] memory items = new ITradeRouter.ExitCall[](2);
                    items[0] = BatchItems.exit(positionId, _defaultLadder());
                    items[1] = BatchItems.exit(other, _defaultLadder());
                    bytes memory expected = _expectedExit(EXTENDED, policies[j], s, q);
                    string memory what = _label(j == 0 ? "batch hold" : "batch fire", EXTENDED, s, q);
                    if (expected.length != 0) {
                        vm.expectEmit(true, true, true, true, address(router));
                        emit ITradeRouter.ExitSkipped(positionId, expected);
                    }
                    bytes[] memory results = router.executeExits(items);
                    vm.assertEq(results[0], expected, what);
                    vm.assertEq(results[1].length, 0, string.concat(what, ": the other fires"));
                    vm.assertEq(router.position(positionId).open, expected.length != 0, what);
                    vm.assertFalse(router.position(other).open, string.concat(what, ": other closed"));
                    vm.revertToState(snap);
                }
            }
        }
    }

    function test_executeIntents_openAndAddOutsideSessions_failPerItem() public {
        uint256 positionId = _open(1_000e6);
        _setStatus(address(nvda), CLOSED);
        ITradeRouter.ExitRule[] memory exits = _defaultLadder();
        ITradeRouter.OpenPosition memory o = _openIntent(address(aapl), 1_000e6, exits);
        ITradeRouter.IntentCall memory openAapl = BatchItems.open(o, exits, _sign(o, AGENT_KEY));
        ITradeRouter.AddToPosition memory a = _addIntent(positionId, 1_000e6);
        a.nonce += 1; // signed after the open
        ITradeRouter.IntentCall memory addNvda = BatchItems.add(a, _sign(a, AGENT_KEY));
        ITradeRouter.ReducePosition memory r = _reduceIntent(positionId, router.position(positionId).size / 4);
        r.nonce += 1; // the add fails, so its nonce is not used: the reduce takes it
        ITradeRouter.IntentCall memory reduceNvda = BatchItems.reduce(r, _sign(r, AGENT_KEY));
        bytes[] memory results = router.executeIntents(BatchItems.three(openAapl, addNvda, reduceNvda));
        vm.assertEq(results[0].length, 0, "open AAPL (no status)");
        vm.assertEq(results[1], _closed(address(nvda), CLOSED), "add NVDA while closed");
        vm.assertEq(results[2].length, 0, "reduce NVDA while closed");
    }

    function test_heldExit_releasedByTheFirstPriceQuotedInSession() public {
        _track(REGULAR_ONLY, HOLD);
        uint256 positionId = _open(10_000e6);
        uint256 crossed = _priceAtPnl(positionId, -1_500);
        // Friday: the close, then the last price through the stop, quoted Closed.
        _quote(address(nvda), crossed, CLOSED);
        vm.expectRevert(_closed(address(nvda), CLOSED));
        router.executeExit(positionId, _defaultLadder());
        // Monday 09:30: Regular, but no new price yet: Friday's close does not fire it.
        vm.warp(block.timestamp + 30 minutes);
        _setStatus(address(nvda), REGULAR);
        vm.expectRevert(_closed(address(nvda), CLOSED));
        router.executeExit(positionId, _defaultLadder());
        // The first Regular price (still through the stop, the gap) releases it.
        _quote(address(nvda), crossed - 1e8, REGULAR);
        vm.assertEq(router.executeExit(positionId, _defaultLadder()), 1, "fired at the first tradable price");
        vm.assertFalse(router.position(positionId).open, "closed");
    }

    function test_heldExit_notReleasedByAPriceQuotedOutsideSessions() public {
        _track(REGULAR_ONLY, HOLD);
        uint256 positionId = _open(10_000e6);
        _quote(address(nvda), _priceAtPnl(positionId, -1_500), CLOSED);
        _quote(address(nvda), _priceAtPnl(positionId, -1_600), PRE); // pre-market: not the track's
        vm.expectRevert(_closed(address(nvda), PRE));
        router.executeExit(positionId, _defaultLadder());
        _setStatus(address(nvda), REGULAR); // the open, before a Regular price
        vm.expectRevert(_closed(address(nvda), PRE));
        router.executeExit(positionId, _defaultLadder());
    }

    function test_fireTrack_firesOnTheLastPriceWhileClosed() public {
        _track(REGULAR_ONLY, FIRE);
        uint256 positionId = _open(10_000e6);
        _quote(address(nvda), _priceAtPnl(positionId, -1_500), CLOSED);
        vm.assertEq(router.executeExit(positionId, _defaultLadder()), 1, "fired while closed");
    }

    function test_fireTrack_stillHeldInAHalt_andStaleStillRefused() public {
        _track(REGULAR_ONLY, FIRE);
        uint256 positionId = _open(10_000e6);
        _quote(address(nvda), _priceAtPnl(positionId, -1_500), REGULAR);
        _setStatus(address(nvda), HALTED);
        vm.expectRevert(_halted(address(nvda)));
        router.executeExit(positionId, _defaultLadder());
        // Closed and the last price too old: fire still needs a fresh price.
        _setStatus(address(nvda), CLOSED);
        vm.warp(block.timestamp + MAX_PRICE_AGE + 1);
        vm.expectRevert();
        router.executeExit(positionId, _defaultLadder());
        // Resumes: a fresh price fires it.
        _quote(address(nvda), _priceAtPnl(positionId, -1_500), REGULAR);
        vm.assertEq(router.executeExit(positionId, _defaultLadder()), 1, "fired after the halt");
    }

    function test_exitPolicyChange_appliesToOpenPositions() public {
        _track(REGULAR_ONLY, HOLD);
        uint256 positionId = _open(10_000e6);
        _quote(address(nvda), _priceAtPnl(positionId, -1_500), CLOSED);
        vm.expectRevert(_closed(address(nvda), CLOSED));
        router.executeExit(positionId, _defaultLadder());
        _track(REGULAR_ONLY, FIRE); // the operator switches the track to fire
        vm.assertEq(router.executeExit(positionId, _defaultLadder()), 1, "fires under the new policy");
    }

    function test_heldExit_notTriggeredIsStillHeldFirst() public {
        // Outside the sessions the gate answers before the trigger check: a keeper learns why it waits.
        _track(REGULAR_ONLY, HOLD);
        uint256 positionId = _open(10_000e6);
        _setStatus(address(nvda), CLOSED);
        vm.expectRevert(_closed(address(nvda), CLOSED));
        router.executeExit(positionId, _defaultLadder());
        _setStatus(address(nvda), REGULAR);
        _quote(address(nvda), NVDA_PRICE, REGULAR);
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.ExitNotTriggered.selector, positionId, NVDA_PRICE));
        router.executeExit(positionId, _defaultLadder());
    }

    // ------------------------------------------------------------------ fuzz

    /// @dev Any status pair, sessions mask and policy: the exit goes through exactly when the rule says.
    function testFuzz_exit_matchesTheRule(uint8 sessionsSeed, bool fire, uint8 statusSeed, uint8 quotedSeed) public {
        uint8 sessions = uint8(bound(sessionsSeed, 1, 63));
        uint8 s = uint8(bound(statusSeed, 0, 6));
        uint8 q = uint8(bound(quotedSeed, 0, 6));
        IAgentRegistry.ExitsWhenClosed policy = fire ? FIRE : HOLD;
        _track(sessions, policy);
        uint256 positionId = _crossedPosition(q, s);
        (bool ok, bytes memory ret) = _call(abi.encodeCall(ITradeRouter.executeExit, (positionId, _defaultLadder())));
        _assertOutcome(ok, ret, _expectedExit(sessions, policy, s, q), _label("fuzz exit", sessions, s, q));
    }

    function testFuzz_open_matchesTheRule(uint8 sessionsSeed, uint8 statusSeed) public {
        uint8 sessions = uint8(bound(sessionsSeed, 1, 63));
        uint8 s = uint8(bound(statusSeed, 0, 6));
        _track(sessions, HOLD);
        _setStatus(address(nvda), s);
        (bool ok, bytes memory ret) = _call(_openCall(1_000e6));
        _assertOutcome(ok, ret, _expectedBuy(sessions, s), _label("fuzz open", sessions, s, s));
    }
}
