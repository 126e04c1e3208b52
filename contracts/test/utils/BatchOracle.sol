// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ITradeRouter} from "../../src/interfaces/ITradeRouter.sol";
import {Fixture} from "./Fixture.sol";
import {IntentSigner} from "./IntentSigner.sol";
import {Vm} from "./Vm.sol";

/// @notice The reference a batch is checked against: the same items sent one by one through the single
///         functions, on a snapshot of the same state. A batch must leave the same books, emit the same
///         events (plus one `IntentFailed` / `ExitSkipped` per failed item, in its place) and report,
///         per item, what the single call reverted with (empty when it succeeded).
/// @dev    forge's `recordLogs` also records the logs of calls that reverted, which a chain drops. The
///         logs compared are those a chain keeps: a reverted single call's are dropped; in a batch, a
///         failed intent's are those between its `NonceUsed` (the first log any intent frame emits:
///         nothing before the signature check logs) and its `IntentFailed`. A failed exit emits nothing
///         before it reverts in every case here; if one did, the comparison would fail, not pass.
abstract contract BatchOracle is Fixture {
    uint256 internal otherAgentId;

    struct Outcome {
        bytes[] results;
        bytes32 logs; // rolling hash of every log, in order
        bytes32 effects; // the same without the batch's own IntentFailed / ExitSkipped
        bytes32 books;
    }

    function setUp() public virtual override {
        super.setUp();
        vm.prank(admin);
        otherAgentId = registry.registerAgent(vm.addr(OTHER_KEY), vaultId, testTrackId, ALLOCATION);
    }

    // ------------------------------------------------------------------ what any call could change

    function _books() internal view returns (bytes32) {
        bytes memory b = abi.encode(
            router.agentState(agentId),
            router.agentState(otherAgentId),
            router.positionCount(),
            usdc.balanceOf(address(vault)),
            nvda.balanceOf(address(vault)),
            aapl.balanceOf(address(vault)),
            usdc.balanceOf(address(venue)),
            nvda.totalSupply(),
            aapl.totalSupply()
        );
        uint256 count = router.positionCount();
        for (uint256 id = 1; id <= count; ++id) {
            b = bytes.concat(b, abi.encode(router.position(id)));
        }
        return keccak256(b);
    }

    function _fold(bytes32 acc, Vm.Log[] memory logs) internal pure returns (bytes32) {
        for (uint256 i; i < logs.length; ++i) {
            acc = keccak256(abi.encode(acc, logs[i].emitter, logs[i].topics, logs[i].data));
        }
        return acc;
    }

    /// @dev `_fold` without the batches' failure events: what the items themselves emitted.
    function _foldEffects(bytes32 acc, Vm.Log[] memory logs) internal view returns (bytes32) {
        for (uint256 i; i < logs.length; ++i) {
            bytes32 topic = logs[i].topics.length == 0 ? bytes32(0) : logs[i].topics[0];
            bool failure = topic == ITradeRouter.IntentFailed.selector || topic == ITradeRouter.ExitSkipped.selector;
            if (failure && logs[i].emitter == address(router)) continue;
            acc = keccak256(abi.encode(acc, logs[i].emitter, logs[i].topics, logs[i].data));
        }
        return acc;
    }

    /// @dev The logs of an intent batch that a chain keeps: drops each failed item's logs (from its
    ///      `NonceUsed`, which carries the digest its `IntentFailed` names, up to its `IntentFailed`),
    ///      keeps everything else in order. An item that failed before its `NonceUsed` has no logs;
    ///      the only way the latest `NonceUsed` can carry its digest then is the same intent having just
    ///      succeeded, and then it failed with `NonceMismatch`.
    function _keptIntentLogs(Vm.Log[] memory logs) internal view returns (Vm.Log[] memory kept) {
        kept = new Vm.Log[](logs.length);
        uint256 n; // kept so far
        uint256 segment; // where the latest NonceUsed sits in `kept`
        bytes32 segmentDigest; // its digest (0: none since the last IntentFailed)
        for (uint256 i; i < logs.length; ++i) {
            bytes32 topic = logs[i].topics.length == 0 ? bytes32(0) : logs[i].topics[0];
            bool fromRouter = logs[i].emitter == address(router);
            if (fromRouter && topic == ITradeRouter.NonceUsed.selector) {
                (,, segmentDigest) = abi.decode(logs[i].data, (uint256, uint8, bytes32));
                segment = n;
            } else if (fromRouter && topic == ITradeRouter.IntentFailed.selector) {
                (, bytes32 digest, bytes memory reason) = abi.decode(logs[i].data, (uint256, bytes32, bytes));
                bool ownNonceUsed = segmentDigest != bytes32(0) && digest == segmentDigest
                    && bytes4(reason) != ITradeRouter.NonceMismatch.selector;
                if (ownNonceUsed) n = segment; // its logs were reverted
                segmentDigest = bytes32(0);
            }
            kept[n++] = logs[i];
        }
        assembly ("memory-safe") {
            mstore(kept, n)
        }
    }

    function _foldOne(bytes32 acc, address emitter, bytes32[] memory topics, bytes memory data)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(acc, emitter, topics, data));
    }

    function _topics(bytes32 a, bytes32 b) internal pure returns (bytes32[] memory t) {
        t = new bytes32[](2);
        t[0] = a;
        t[1] = b;
    }

    // ------------------------------------------------------------------ one by one

    /// @return agentId_ nonce digest of a well-formed item, as `IntentFailed` reports them
    function _key(ITradeRouter.IntentCall memory item)
        internal
        view
        returns (uint256 agentId_, uint256 nonce, bytes32 digest)
    {
        bytes32 structHash;
        if (item.intentType == ITradeRouter.IntentType.Open) {
            ITradeRouter.OpenPosition memory p = abi.decode(item.intent, (ITradeRouter.OpenPosition));
            (agentId_, nonce, structHash) = (p.agentId, p.nonce, IntentSigner.structHash(p));
        } else if (item.intentType == ITradeRouter.IntentType.Add) {
            ITradeRouter.AddToPosition memory p = abi.decode(item.intent, (ITradeRouter.AddToPosition));
            (agentId_, nonce, structHash) = (p.agentId, p.nonce, IntentSigner.structHash(p));
        } else if (item.intentType == ITradeRouter.IntentType.Reduce) {
            ITradeRouter.ReducePosition memory p = abi.decode(item.intent, (ITradeRouter.ReducePosition));
            (agentId_, nonce, structHash) = (p.agentId, p.nonce, IntentSigner.structHash(p));
        } else {
            ITradeRouter.UpdateExitLadder memory p = abi.decode(item.intent, (ITradeRouter.UpdateExitLadder));
            (agentId_, nonce, structHash) = (p.agentId, p.nonce, IntentSigner.structHash(p));
        }
        digest = IntentSigner.digest(_separator(), structHash);
    }

    /// @dev The single call an item stands for.
    function _singleCall(ITradeRouter.IntentCall memory item) internal pure returns (bytes memory) {
        if (item.intentType == ITradeRouter.IntentType.Open) {
            ITradeRouter.OpenPosition memory p = abi.decode(item.intent, (ITradeRouter.OpenPosition));
            return abi.encodeCall(ITradeRouter.openPosition, (p, item.exits, item.signature));
        } else if (item.intentType == ITradeRouter.IntentType.Add) {
            ITradeRouter.AddToPosition memory p = abi.decode(item.intent, (ITradeRouter.AddToPosition));
            return abi.encodeCall(ITradeRouter.addToPosition, (p, item.signature));
        } else if (item.intentType == ITradeRouter.IntentType.Reduce) {
            ITradeRouter.ReducePosition memory p = abi.decode(item.intent, (ITradeRouter.ReducePosition));
            return abi.encodeCall(ITradeRouter.reducePosition, (p, item.signature));
        }
        ITradeRouter.UpdateExitLadder memory p = abi.decode(item.intent, (ITradeRouter.UpdateExitLadder));
        return abi.encodeCall(ITradeRouter.updateExitLadder, (p, item.exits, item.signature));
    }

    /// @dev Sends the items one by one through the single functions; state is left as they leave it.
    function _oneByOne(ITradeRouter.IntentCall[] memory items) internal returns (Outcome memory o) {
        o.results = new bytes[](items.length);
        vm.recordLogs();
        for (uint256 i; i < items.length; ++i) {
            (bool ok, bytes memory ret) = address(router).call(_singleCall(items[i]));
            Vm.Log[] memory logs = vm.getRecordedLogs();
            if (ok) {
                o.logs = _fold(o.logs, logs);
                o.effects = _fold(o.effects, logs);
                continue;
            }
            vm.assertGt(ret.length, 0, "a single call reverted with data");
            o.results[i] = ret;
            (uint256 a, uint256 nonce, bytes32 digest) = _key(items[i]);
            o.logs = _foldOne(
                o.logs,
                address(router),
                _topics(ITradeRouter.IntentFailed.selector, bytes32(a)),
                abi.encode(nonce, digest, ret)
            );
        }
        o.books = _books();
    }

    function _oneByOne(ITradeRouter.ExitCall[] memory items) internal returns (Outcome memory o) {
        o.results = new bytes[](items.length);
        vm.recordLogs();
        for (uint256 i; i < items.length; ++i) {
            vm.prank(keeper);
            (bool ok, bytes memory ret) =
                address(router).call(abi.encodeCall(ITradeRouter.executeExit, (items[i].positionId, items[i].exits)));
            Vm.Log[] memory logs = vm.getRecordedLogs();
            if (ok) {
                o.logs = _fold(o.logs, logs);
                o.effects = _fold(o.effects, logs);
                continue;
            }
            o.results[i] = ret;
            o.logs = _foldOne(
                o.logs,
                address(router),
                _topics(ITradeRouter.ExitSkipped.selector, bytes32(items[i].positionId)),
                abi.encode(ret)
            );
        }
        o.books = _books();
    }

    function _batch(ITradeRouter.IntentCall[] memory items) internal returns (Outcome memory o) {
        vm.recordLogs();
        vm.prank(keeper); // anyone may send a batch
        o.results = router.executeIntents(items);
        Vm.Log[] memory logs = _keptIntentLogs(vm.getRecordedLogs());
        o.logs = _fold(bytes32(0), logs);
        o.effects = _foldEffects(bytes32(0), logs);
        o.books = _books();
    }

    function _batch(ITradeRouter.ExitCall[] memory items) internal returns (Outcome memory o) {
        vm.recordLogs();
        vm.prank(keeper);
        o.results = router.executeExits(items);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        o.logs = _fold(bytes32(0), logs);
        o.effects = _foldEffects(bytes32(0), logs);
        o.books = _books();
    }

    function _assertSame(Outcome memory batch, Outcome memory single) internal pure {
        vm.assertEq(batch.results.length, single.results.length, "one result per item");
        for (uint256 i; i < batch.results.length; ++i) {
            vm.assertEq(batch.results[i], single.results[i], "the item's result is its single call's");
        }
        vm.assertEq(batch.logs, single.logs, "the same events, in order");
        vm.assertEq(batch.effects, single.effects, "the same item events, in order");
        vm.assertEq(batch.books, single.books, "the same books");
    }

    /// @dev Checks the batch against the items one by one; leaves the batch's state in place.
    function _checkAgainstSingles(ITradeRouter.IntentCall[] memory items) internal returns (Outcome memory batch) {
        uint256 snapshot = vm.snapshotState();
        Outcome memory single = _oneByOne(items);
        vm.revertToState(snapshot);
        batch = _batch(items);
        _assertSame(batch, single);
    }

    function _checkAgainstSingles(ITradeRouter.ExitCall[] memory items) internal returns (Outcome memory batch) {
        uint256 snapshot = vm.snapshotState();
        Outcome memory single = _oneByOne(items);
        vm.revertToState(snapshot);
        batch = _batch(items);
        _assertSame(batch, single);
    }

    // ------------------------------------------------------------------ signing for either agent

    function _keyOf(uint256 id) internal view returns (uint256) {
        return id == agentId ? AGENT_KEY : OTHER_KEY;
    }
}
