// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

import {IAgentRegistry} from "../src/interfaces/IAgentRegistry.sol";
import {ITradeRouter} from "../src/interfaces/ITradeRouter.sol";
import {BatchItems} from "./utils/BatchItems.sol";
import {BatchOracle} from "./utils/BatchOracle.sol";
import {IntentSigner} from "./utils/IntentSigner.sol";
import {Vm} from "./utils/Vm.sol";

/// @notice `executeIntents` and `executeExits` (SPEC §5.1): every item is checked exactly as its single
///         call and succeeds or fails on its own. Each case is checked against the same items sent one
///         by one through the single functions (utils/BatchOracle.sol): same results, events and books.
contract TradeRouterBatchTest is BatchOracle {
    uint256 internal positionId; // the fixture agent's NVDA position, default ladder
    uint256 internal otherPosition; // the other agent's NVDA position, default ladder

    function setUp() public override {
        super.setUp();
        positionId = _open(1_000e6);
        otherPosition = _openFor(otherAgentId, address(nvda), 1_000e6);
    }

    // ------------------------------------------------------------------ item builders (explicit agent and nonce)

    function _openFor(uint256 id, address token, uint256 usdcAmount) internal returns (uint256) {
        ITradeRouter.ExitRule[] memory exits = _defaultLadder();
        ITradeRouter.OpenPosition memory p = _openP(id, token, usdcAmount, router.nextNonce(id));
        return router.openPosition(p, exits, _sign(p, _keyOf(id)));
    }

    function _openP(uint256 id, address token, uint256 usdcAmount, uint256 nonce)
        internal
        view
        returns (ITradeRouter.OpenPosition memory p)
    {
        p = _openIntent(token, usdcAmount, _defaultLadder());
        p.agentId = id;
        p.nonce = nonce;
    }

    function _openItem(uint256 id, address token, uint256 usdcAmount, uint256 nonce)
        internal
        view
        returns (ITradeRouter.IntentCall memory)
    {
        ITradeRouter.OpenPosition memory p = _openP(id, token, usdcAmount, nonce);
        return BatchItems.open(p, _defaultLadder(), _sign(p, _keyOf(id)));
    }

    function _addItem(uint256 id, uint256 pid, uint256 usdcAmount, uint256 nonce)
        internal
        view
        returns (ITradeRouter.IntentCall memory)
    {
        ITradeRouter.AddToPosition memory p = _addIntent(pid, usdcAmount);
        p.agentId = id;
        p.nonce = nonce;
        return BatchItems.add(p, _sign(p, _keyOf(id)));
    }

    function _reduceItem(uint256 id, uint256 pid, uint256 tokenAmount, uint256 nonce)
        internal
        view
        returns (ITradeRouter.IntentCall memory)
    {
        ITradeRouter.ReducePosition memory p = _reduceIntent(pid, tokenAmount);
        p.agentId = id;
        p.nonce = nonce;
        return BatchItems.reduce(p, _sign(p, _keyOf(id)));
    }

    function _ladderItem(uint256 id, uint256 pid, ITradeRouter.ExitRule[] memory exits, uint256 nonce)
        internal
        view
        returns (ITradeRouter.IntentCall memory)
    {
        ITradeRouter.UpdateExitLadder memory p = _ladderIntent(pid, exits);
        p.agentId = id;
        p.nonce = nonce;
        return BatchItems.ladder(p, exits, _sign(p, _keyOf(id)));
    }

    function _otherLadder() internal pure returns (ITradeRouter.ExitRule[] memory) {
        return _ladder(_takeProfit(1_500, 5_000), _stopLoss(-800, 10_000));
    }

    function _n(uint256 id) internal view returns (uint256) {
        return router.nextNonce(id);
    }

    function _failed(bytes memory result, bytes memory expected) internal pure {
        vm.assertEq(result, expected, "the item's revert data");
    }

    // ------------------------------------------------------------------ each type alone in a batch

    function test_executeIntents_open_asSingle() public {
        Outcome memory o = _checkAgainstSingles(BatchItems.one(_openItem(agentId, address(aapl), 1_000e6, _n(agentId))));
        vm.assertEq(o.results[0], "", "succeeded");
        vm.assertEq(router.openPositionOf(agentId, address(aapl)), 3, "opened");
    }

    function test_executeIntents_add_asSingle() public {
        Outcome memory o = _checkAgainstSingles(BatchItems.one(_addItem(agentId, positionId, 500e6, _n(agentId))));
        vm.assertEq(o.results[0], "", "succeeded");
        vm.assertEq(router.position(positionId).costBasis, 1_500e6, "added");
    }

    function test_executeIntents_reducePartial_asSingle() public {
        uint256 size = router.position(positionId).size;
        Outcome memory o = _checkAgainstSingles(BatchItems.one(_reduceItem(agentId, positionId, size / 3, _n(agentId))));
        vm.assertEq(o.results[0], "", "succeeded");
        vm.assertEq(router.position(positionId).size, size - size / 3, "reduced");
    }

    function test_executeIntents_reduceClose_asSingle() public {
        uint256 size = router.position(positionId).size;
        Outcome memory o = _checkAgainstSingles(BatchItems.one(_reduceItem(agentId, positionId, size, _n(agentId))));
        vm.assertEq(o.results[0], "", "succeeded");
        vm.assertFalse(router.position(positionId).open, "closed");
    }

    function test_executeIntents_updateLadder_asSingle() public {
        Outcome memory o =
            _checkAgainstSingles(BatchItems.one(_ladderItem(agentId, positionId, _otherLadder(), _n(agentId))));
        vm.assertEq(o.results[0], "", "succeeded");
        vm.assertEq(router.position(positionId).exitsHash, IntentSigner.exitsHash(_otherLadder()), "replaced");
    }

    function test_executeIntents_emptyBatch_returnsNothing() public {
        bytes32 before = _books();
        bytes[] memory results = router.executeIntents(new ITradeRouter.IntentCall[](0));
        vm.assertEq(results.length, 0, "no results");
        vm.assertEq(_books(), before, "nothing changed");
    }

    // ------------------------------------------------------------------ many items

    function test_executeIntents_mixedAgentsAndTypes() public {
        ITradeRouter.IntentCall[] memory items = new ITradeRouter.IntentCall[](4);
        items[0] = _openItem(agentId, address(aapl), 2_000e6, _n(agentId));
        items[1] = _addItem(otherAgentId, otherPosition, 700e6, _n(otherAgentId));
        items[2] = _ladderItem(otherAgentId, otherPosition, _otherLadder(), _n(otherAgentId) + 1);
        items[3] = _reduceItem(agentId, positionId, router.position(positionId).size / 2, _n(agentId) + 1);
        Outcome memory o = _checkAgainstSingles(items);
        for (uint256 i; i < items.length; ++i) {
            vm.assertEq(o.results[i], "", "every item succeeded");
        }
        vm.assertEq(router.nextNonce(agentId), 3, "the agent's two nonces used");
        vm.assertEq(router.nextNonce(otherAgentId), 3, "the other agent's two nonces used");
    }

    /// @dev One agent's n, n+1, n+2, n+3 in one batch: open, add to the position just opened, reduce it,
    ///      replace its ladder.
    function test_executeIntents_pipelinedNoncesOfOneAgent() public {
        uint256 n = _n(agentId);
        uint256 next = router.positionCount() + 1;
        ITradeRouter.IntentCall[] memory items = new ITradeRouter.IntentCall[](4);
        items[0] = _openItem(agentId, address(aapl), 1_000e6, n);
        items[1] = _addItem(agentId, next, 500e6, n + 1);
        items[2] = _reduceItem(agentId, next, 1e18, n + 2);
        items[3] = _ladderItem(agentId, next, _otherLadder(), n + 3);
        Outcome memory o = _checkAgainstSingles(items);
        for (uint256 i; i < items.length; ++i) {
            vm.assertEq(o.results[i], "", "every item succeeded");
        }
        vm.assertEq(router.nextNonce(agentId), n + 4, "four nonces used");
        vm.assertEq(router.position(next).costBasis < 1_500e6, true, "reduced after the add");
    }

    /// @dev A bad signature between two good items: only it fails, with `InvalidSigner`; its nonce stays
    ///      unused and the next item of the same agent, signed for that nonce, goes through.
    function test_executeIntents_failingItemInTheMiddle_othersGoThrough() public {
        uint256 n = _n(agentId);
        ITradeRouter.IntentCall memory bad = _addItem(agentId, positionId, 500e6, n);
        ITradeRouter.AddToPosition memory p = abi.decode(bad.intent, (ITradeRouter.AddToPosition));
        bad.signature = _sign(p, OTHER_KEY);
        ITradeRouter.IntentCall[] memory items = BatchItems.three(
            _openItem(otherAgentId, address(aapl), 1_000e6, _n(otherAgentId)),
            bad,
            _ladderItem(agentId, positionId, _otherLadder(), n)
        );
        bytes memory expected =
            abi.encodeWithSelector(ITradeRouter.InvalidSigner.selector, vm.addr(OTHER_KEY), agentSigner);
        (uint256 a, uint256 nonce, bytes32 digest) = _key(bad);

        uint256 snapshot = vm.snapshotState();
        vm.expectEmit(true, true, true, true, address(router));
        emit ITradeRouter.IntentFailed(a, nonce, digest, expected);
        router.executeIntents(items);
        vm.revertToState(snapshot);

        Outcome memory o = _checkAgainstSingles(items);

        vm.assertEq(o.results[0], "", "first succeeded");
        _failed(o.results[1], expected);
        vm.assertEq(o.results[2], "", "third succeeded");
        vm.assertEq(router.nextNonce(agentId), n + 1, "the failed item's nonce went to the next item");
        vm.assertEq(router.position(positionId).costBasis, 1_000e6, "the failed add changed nothing");
    }

    /// @dev n fails (over the track's trade size), so n+1 meets `NonceMismatch`: each as it would alone.
    function test_executeIntents_failedNonceLeavesTheNextOneMismatched() public {
        _useTrack(
            IAgentRegistry.Track({
                maxTradeSizeBps: 1_000,
                maxDailyTurnoverBps: 1_000_000,
                maxDailyLossBps: 10_000,
                maxStopLossBps: 9_000,
                minTakeProfitBps: 1,
                maxTakeProfitBps: 100_000,
                requireStopLoss: true,
                requireTakeProfit: false,
                sessions: 4, // Regular
                exitsWhenClosed: IAgentRegistry.ExitsWhenClosed.Hold
            })
        );
        uint256 n = _n(agentId);
        ITradeRouter.IntentCall[] memory items =
            BatchItems.two(_addItem(agentId, positionId, 20_000e6, n), _addItem(agentId, positionId, 100e6, n + 1));
        Outcome memory o = _checkAgainstSingles(items);
        _failed(o.results[0], abi.encodeWithSelector(ITradeRouter.TradeSizeExceeded.selector, 20_000e6, 10_000e6));
        _failed(o.results[1], abi.encodeWithSelector(ITradeRouter.NonceMismatch.selector, agentId, n, n + 1));
        vm.assertEq(router.nextNonce(agentId), n, "no nonce used");
    }

    function test_executeIntents_eachKindOfRejection_asSingle() public {
        uint256 size = router.position(positionId).size;
        uint256 closed = _openFor(agentId, address(aapl), 1_000e6);
        _reduce(closed, router.position(closed).size);
        uint256 n = _n(agentId);

        ITradeRouter.IntentCall[] memory items = new ITradeRouter.IntentCall[](8);
        items[0] = _openItem(agentId, address(nvda), 1_000e6, n); // PositionExists
        items[1] = _addItem(agentId, closed, 100e6, n); // PositionNotOpen
        items[2] = _reduceItem(agentId, otherPosition, 1e18, n); // PositionNotFound (not the agent's)
        items[3] = _addItem(agentId, positionId, 100e6, n + 7); // NonceMismatch
        items[4] = _addItem(agentId, positionId, ALLOCATION, n); // HeadroomExceeded
        items[5] = _openItem(agentId, address(aapl), 1_000e6, n);
        items[5].exits = _otherLadder(); // ExitsHashMismatch
        ITradeRouter.ReducePosition memory expired = _reduceIntent(positionId, size);
        expired.deadline = block.timestamp - 1;
        items[6] = BatchItems.reduce(expired, _sign(expired, AGENT_KEY)); // DeadlineExpired
        items[7] = _ladderItem(agentId, positionId, _ladder(_takeProfit(500, 5_000)), n); // ExitLadderInvalid
        Outcome memory o = _checkAgainstSingles(items);
        for (uint256 i; i < items.length; ++i) {
            vm.assertGt(o.results[i].length, 0, "every item failed");
        }
        vm.assertEq(bytes4(o.results[0]), ITradeRouter.PositionExists.selector, "PositionExists");
        vm.assertEq(bytes4(o.results[1]), ITradeRouter.PositionNotOpen.selector, "PositionNotOpen");
        vm.assertEq(bytes4(o.results[2]), ITradeRouter.PositionNotFound.selector, "PositionNotFound");
        vm.assertEq(bytes4(o.results[3]), ITradeRouter.NonceMismatch.selector, "NonceMismatch");
        vm.assertEq(bytes4(o.results[4]), ITradeRouter.HeadroomExceeded.selector, "HeadroomExceeded");
        vm.assertEq(bytes4(o.results[5]), ITradeRouter.ExitsHashMismatch.selector, "ExitsHashMismatch");
        vm.assertEq(bytes4(o.results[6]), ITradeRouter.DeadlineExpired.selector, "DeadlineExpired");
        vm.assertEq(bytes4(o.results[7]), ITradeRouter.ExitLadderInvalid.selector, "ExitLadderInvalid");
        vm.assertEq(router.nextNonce(agentId), n, "no nonce used");
    }

    // ------------------------------------------------------------------ malformed items

    function _assertMalformed(ITradeRouter.IntentCall memory bad) internal {
        _assertMalformed(bad, 0, 0, bytes32(0));
    }

    /// @dev `bad` sits between two good items: only it fails, with `MalformedIntent(1)`; `IntentFailed`
    ///      carries the key given (zeros when the bytes cannot be read).
    function _assertMalformed(ITradeRouter.IntentCall memory bad, uint256 a, uint256 nonce, bytes32 digest) internal {
        uint256 n = _n(agentId);
        ITradeRouter.IntentCall[] memory items = BatchItems.three(
            _addItem(agentId, positionId, 100e6, n), bad, _addItem(otherAgentId, otherPosition, 100e6, _n(otherAgentId))
        );
        bytes memory expected = abi.encodeWithSelector(ITradeRouter.MalformedIntent.selector, 1);
        bytes32 before = _books();
        vm.expectEmit(true, true, true, true, address(router));
        emit ITradeRouter.IntentFailed(a, nonce, digest, expected);
        bytes[] memory results = router.executeIntents(items);
        vm.assertEq(results[0], "", "the item before went through");
        vm.assertEq(results[1], expected, "MalformedIntent(1)");
        vm.assertEq(results[2], "", "the item after went through");
        vm.assertTrue(_books() != before, "the good items ran");
        vm.assertEq(router.nextNonce(agentId), n + 1, "one nonce used: the good item's");
    }

    function test_executeIntents_intentTooShort_failsOnlyThatItem() public {
        ITradeRouter.IntentCall memory bad = _openItem(agentId, address(aapl), 1_000e6, _n(agentId) + 1);
        bytes memory data = bad.intent;
        assembly ("memory-safe") {
            mstore(data, sub(mload(data), 1))
        }
        _assertMalformed(bad);
    }

    function test_executeIntents_intentOfAnotherType_failsOnlyThatItem() public {
        ITradeRouter.IntentCall memory bad = _addItem(agentId, positionId, 100e6, _n(agentId) + 1);
        bad.intentType = ITradeRouter.IntentType.Open; // 224 bytes where an OpenPosition takes 288
        bad.exits = _defaultLadder();
        _assertMalformed(bad);
    }

    function test_executeIntents_intentTooLong_failsOnlyThatItem() public {
        ITradeRouter.IntentCall memory bad = _ladderItem(agentId, positionId, _otherLadder(), _n(agentId) + 1);
        bad.intent = bytes.concat(bad.intent, bytes32(0));
        _assertMalformed(bad);
    }

    function test_executeIntents_dirtyAddressInOpen_failsOnlyThatItem() public {
        ITradeRouter.IntentCall memory bad = _openItem(agentId, address(aapl), 1_000e6, _n(agentId) + 1);
        bytes memory data = bad.intent;
        assembly ("memory-safe") {
            mstore8(add(data, add(32, 64)), 1) // the high byte of `token` (word 2)
        }
        _assertMalformed(bad);
    }

    function test_executeIntents_slippageAboveUint16_failsOnlyThatItem() public {
        ITradeRouter.IntentCall memory bad = _reduceItem(agentId, positionId, 1e18, _n(agentId) + 1);
        bytes memory data = bad.intent;
        assembly ("memory-safe") {
            mstore(add(data, add(32, 128)), 0x10000) // maxSlippageBps (word 4)
        }
        _assertMalformed(bad);
    }

    function test_executeIntents_exitsOnAnAdd_failsOnlyThatItem() public {
        ITradeRouter.IntentCall memory bad = _addItem(agentId, positionId, 100e6, _n(agentId) + 1);
        bad.exits = _defaultLadder();
        (uint256 a, uint256 nonce, bytes32 digest) = _key(bad); // readable: IntentFailed names it
        _assertMalformed(bad, a, nonce, digest);
    }

    // ------------------------------------------------------------------ the whole batch

    function test_executeIntents_paused_revertsTheBatch() public {
        vm.prank(admin);
        router.pause();
        ITradeRouter.IntentCall[] memory items = BatchItems.one(_addItem(agentId, positionId, 100e6, _n(agentId)));
        vm.expectRevert(abi.encodeWithSelector(Pausable.EnforcedPause.selector));
        router.executeIntents(items);
        ITradeRouter.ExitCall[] memory exits = new ITradeRouter.ExitCall[](1);
        exits[0] = BatchItems.exit(positionId, _defaultLadder());
        vm.expectRevert(abi.encodeWithSelector(Pausable.EnforcedPause.selector));
        router.executeExits(exits);
    }

    function test_itemEntries_onlyTheRouterItself() public {
        ITradeRouter.IntentCall memory item = _addItem(agentId, positionId, 100e6, _n(agentId));
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.OnlySelf.selector));
        router.executeIntentItem(item, 0);
        _setPrice(address(nvda), _priceAtPnl(positionId, -1_200));
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.OnlySelf.selector));
        router.executeExitItem(positionId, _defaultLadder());
    }

    // ------------------------------------------------------------------ exits

    function test_executeExits_firesTriggeredAndSkipsTheRest() public {
        ITradeRouter.ExitRule[] memory two = _ladder(_takeProfit(500, 5_000), _stopLoss(-1_000, 10_000));
        uint256 aaplPosition = _openFor(otherAgentId, address(aapl), 1_000e6);
        _updateLadderFor(otherAgentId, aaplPosition, two);
        uint256 closed = _openFor(agentId, address(aapl), 1_000e6);
        _reduce(closed, router.position(closed).size);
        // NVDA to −12%: both NVDA positions' stops are triggered; AAPL unchanged: not triggered.
        _setPrice(address(nvda), _priceAtPnl(positionId, -1_200));

        ITradeRouter.ExitCall[] memory items = new ITradeRouter.ExitCall[](5);
        items[0] = BatchItems.exit(positionId, _defaultLadder());
        items[1] = BatchItems.exit(aaplPosition, two); // ExitNotTriggered
        items[2] = BatchItems.exit(closed, _defaultLadder()); // PositionNotOpen
        items[3] = BatchItems.exit(otherPosition, _otherLadder()); // LadderMismatch
        items[4] = BatchItems.exit(otherPosition, _defaultLadder());
        Outcome memory o = _checkAgainstSingles(items);

        vm.assertEq(o.results[0], "", "stop fired");
        vm.assertEq(bytes4(o.results[1]), ITradeRouter.ExitNotTriggered.selector, "not triggered");
        vm.assertEq(o.results[2], abi.encodeWithSelector(ITradeRouter.PositionNotOpen.selector, closed), "closed");
        vm.assertEq(bytes4(o.results[3]), ITradeRouter.LadderMismatch.selector, "wrong ladder");
        vm.assertEq(o.results[4], "", "the other stop fired");
        vm.assertFalse(router.position(positionId).open, "closed by its stop");
        vm.assertFalse(router.position(otherPosition).open, "closed by its stop");
        vm.assertTrue(router.position(aaplPosition).open, "untouched");
    }

    function test_executeExits_samePositionTwice_secondIsNotOpen() public {
        _setPrice(address(nvda), _priceAtPnl(positionId, -1_200));
        ITradeRouter.ExitCall[] memory items = new ITradeRouter.ExitCall[](2);
        items[0] = BatchItems.exit(positionId, _defaultLadder());
        items[1] = BatchItems.exit(positionId, _defaultLadder());
        uint256 snapshot = vm.snapshotState();
        vm.expectEmit(true, true, true, true, address(router));
        emit ITradeRouter.ExitSkipped(positionId, abi.encodeWithSelector(ITradeRouter.PositionNotOpen.selector, positionId));
        router.executeExits(items);
        vm.revertToState(snapshot);

        Outcome memory o = _checkAgainstSingles(items);
        vm.assertEq(o.results[0], "", "fired");
        vm.assertEq(o.results[1], abi.encodeWithSelector(ITradeRouter.PositionNotOpen.selector, positionId), "then closed");
    }

    function test_executeExits_partialTakeProfit_asSingle() public {
        _setPrice(address(nvda), _priceAtPnl(positionId, 1_200));
        ITradeRouter.ExitCall[] memory items = new ITradeRouter.ExitCall[](2);
        items[0] = BatchItems.exit(positionId, _defaultLadder());
        items[1] = BatchItems.exit(otherPosition, _defaultLadder());
        Outcome memory o = _checkAgainstSingles(items);
        vm.assertEq(o.results[0], "", "fired");
        vm.assertEq(o.results[1], "", "fired");
        vm.assertTrue(router.position(positionId).open, "half left");
    }

    /// @dev A rule field outside its type (exitBps past uint16) cannot be read: the batch reverts whole
    ///      and nothing fires. The router forwards the rules to the item as they are and the item's
    ///      ladder hash rejects them (without data, so the batch fails as an item starved of gas would).
    ///      The same bytes with the field clean fire the stop.
    function test_executeExits_ruleFieldOutsideItsType_revertsTheBatch() public {
        _setPrice(address(nvda), _priceAtPnl(positionId, -1_200));
        ITradeRouter.ExitCall[] memory items = new ITradeRouter.ExitCall[](1);
        items[0] = BatchItems.exit(positionId, _defaultLadder());
        bytes memory clean = abi.encodeCall(ITradeRouter.executeExits, (items));
        bytes memory dirty = bytes.concat(clean);
        // after the selector: array offset, length, item offset, positionId, exits offset, exits length,
        // then rule 0: triggerType, triggerBps, exitBps (word 8)
        uint256 at = 0x20 + 4 + 32 * 8;
        uint256 word;
        assembly ("memory-safe") {
            word := mload(add(clean, at))
            mstore(add(dirty, at), 0x10000)
        }
        vm.assertEq(word, 5_000, "rule 0's exitBps");

        (bool ok,) = address(router).call{gas: 2_000_000}(dirty);
        vm.assertFalse(ok, "the batch reverts");
        vm.assertTrue(router.position(positionId).open, "nothing fired");

        (ok,) = address(router).call{gas: 2_000_000}(clean);
        vm.assertTrue(ok, "the clean batch runs");
        vm.assertFalse(router.position(positionId).open, "and fires the stop");
    }

    function _updateLadderFor(uint256 id, uint256 pid, ITradeRouter.ExitRule[] memory exits) internal {
        ITradeRouter.UpdateExitLadder memory p = _ladderIntent(pid, exits);
        p.agentId = id;
        p.nonce = router.nextNonce(id);
        router.updateExitLadder(p, exits, _sign(p, _keyOf(id)));
    }
}
