// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ITradeRouter} from "../src/interfaces/ITradeRouter.sol";
import {BatchItems} from "./utils/BatchItems.sol";
import {BatchOracle} from "./utils/BatchOracle.sol";

/// @notice A fuzzed batch of good and bad items from two agents (SPEC §5.1): exactly the bad items
///         fail, and the batch does what the good items do when sent alone, one by one, on the same
///         state — same books, same events — plus one `IntentFailed` per bad item, whose reason is what
///         that item's single call reverts with at its place in the sequence.
contract TradeRouterBatchFuzzTest is BatchOracle {
    uint256 internal constant MAX_ITEMS = 10;

    /// @dev Per agent: an open NVDA position, and a closed AAPL one (so AAPL can be opened in a batch).
    mapping(uint256 agentId => uint256) internal nvdaPosition;
    mapping(uint256 agentId => uint256) internal closedPosition;

    // Per run: the nonce each agent's next good item takes, and whether it has opened AAPL.
    mapping(uint256 agentId => uint256) internal expectedNonce;
    mapping(uint256 agentId => bool) internal openedAapl;

    enum Mode {
        Good,
        BadSignature,
        StaleNonce,
        OverLimitOrClosed,
        Expired
    }

    function setUp() public override {
        super.setUp();
        uint256[2] memory ids = [agentId, otherAgentId];
        for (uint256 k; k < 2; ++k) {
            uint256 id = ids[k];
            ITradeRouter.OpenPosition memory p = _openIntent(address(aapl), 1_000e6, _defaultLadder());
            (p.agentId, p.nonce) = (id, router.nextNonce(id));
            uint256 closed = router.openPosition(p, _defaultLadder(), _sign(p, _keyOf(id)));
            ITradeRouter.ReducePosition memory r = _reduceIntent(closed, type(uint128).max);
            (r.agentId, r.nonce) = (id, router.nextNonce(id));
            router.reducePosition(r, _sign(r, _keyOf(id)));
            closedPosition[id] = closed;

            p = _openIntent(address(nvda), 5_000e6, _defaultLadder());
            (p.agentId, p.nonce) = (id, router.nextNonce(id));
            nvdaPosition[id] = router.openPosition(p, _defaultLadder(), _sign(p, _keyOf(id)));
        }
    }

    function testFuzz_executeIntents_exactlyTheBadItemsFail(uint256 seed, uint256 countSeed) public {
        uint256 n = bound(countSeed, 1, MAX_ITEMS);
        expectedNonce[agentId] = router.nextNonce(agentId);
        expectedNonce[otherAgentId] = router.nextNonce(otherAgentId);

        ITradeRouter.IntentCall[] memory items = new ITradeRouter.IntentCall[](n);
        bool[] memory bad = new bool[](n);
        uint256 goods;
        for (uint256 i; i < n; ++i) {
            uint256 r = uint256(keccak256(abi.encode(seed, i)));
            (items[i], bad[i]) = _item(r);
            if (!bad[i]) ++goods;
        }
        ITradeRouter.IntentCall[] memory goodItems = new ITradeRouter.IntentCall[](goods);
        for ((uint256 i, uint256 j) = (0, 0); i < n; ++i) {
            if (!bad[i]) goodItems[j++] = items[i];
        }

        // The good items alone, one by one: each succeeds.
        uint256 snapshot = vm.snapshotState();
        Outcome memory alone = _oneByOne(goodItems);
        for (uint256 j; j < goods; ++j) {
            vm.assertEq(alone.results[j], "", "a good item succeeds alone");
        }
        vm.revertToState(snapshot);

        // The batch: checked against all items one by one, then against the good ones alone.
        Outcome memory batch = _checkAgainstSingles(items);
        for (uint256 i; i < n; ++i) {
            vm.assertEq(batch.results[i].length != 0, bad[i], "exactly the bad items fail");
        }
        vm.assertEq(batch.effects, alone.effects, "the items' events are the good items' alone");
        vm.assertEq(batch.books, alone.books, "the books are the good items' alone");
    }

    struct Spec {
        uint256 id;
        uint256 nonce;
        uint256 deadline;
        uint256 key;
        uint256 target; // the position an add / reduce / ladder update names
        bool overOrClosed;
        uint256 r;
    }

    /// @return item one item from `r`; @return isBad whether it is built to fail
    function _item(uint256 r) internal returns (ITradeRouter.IntentCall memory item, bool isBad) {
        Spec memory s;
        s.r = r;
        s.id = r % 2 == 0 ? agentId : otherAgentId;
        uint256 kind = (r >> 8) % 4;
        uint256 m = (r >> 16) % 8;
        Mode mode = m < 4 ? Mode.Good : Mode(m - 3);
        isBad = mode != Mode.Good;
        if (kind == 0 && openedAapl[s.id]) kind = 1; // one open per token: a second becomes an add

        s.nonce = mode == Mode.StaleNonce ? expectedNonce[s.id] + 1 + (r >> 24) % 3 : expectedNonce[s.id];
        s.deadline = mode == Mode.Expired ? block.timestamp - 1 : block.timestamp + 5 minutes;
        s.key = mode == Mode.BadSignature ? _keyOf(s.id == agentId ? otherAgentId : agentId) : _keyOf(s.id);
        s.overOrClosed = mode == Mode.OverLimitOrClosed;
        s.target = s.overOrClosed ? closedPosition[s.id] : nvdaPosition[s.id];

        if (kind == 0) {
            item = _openItem(s);
            if (!isBad) openedAapl[s.id] = true;
        } else if (kind == 1) {
            item = _addItem(s);
        } else if (kind == 2) {
            item = _reduceItem(s);
        } else {
            item = _ladderItem(s);
        }
        if (!isBad) ++expectedNonce[s.id];
    }

    function _openItem(Spec memory s) internal view returns (ITradeRouter.IntentCall memory) {
        ITradeRouter.OpenPosition memory p =
            _openIntent(address(aapl), s.overOrClosed ? ALLOCATION + 1 : 1_000e6, _defaultLadder());
        (p.agentId, p.nonce, p.deadline) = (s.id, s.nonce, s.deadline);
        return BatchItems.open(p, _defaultLadder(), _sign(p, s.key));
    }

    /// @dev Over the limit: more than the allocation (TradeSizeExceeded); an add never names the closed position.
    function _addItem(Spec memory s) internal view returns (ITradeRouter.IntentCall memory) {
        ITradeRouter.AddToPosition memory p = _addIntent(nvdaPosition[s.id], s.overOrClosed ? ALLOCATION + 1 : 100e6);
        (p.agentId, p.nonce, p.deadline) = (s.id, s.nonce, s.deadline);
        return BatchItems.add(p, _sign(p, s.key));
    }

    function _reduceItem(Spec memory s) internal view returns (ITradeRouter.IntentCall memory) {
        ITradeRouter.ReducePosition memory p = _reduceIntent(s.target, 1e17 + (s.r >> 32) % 1e17);
        (p.agentId, p.nonce, p.deadline) = (s.id, s.nonce, s.deadline);
        return BatchItems.reduce(p, _sign(p, s.key));
    }

    function _ladderItem(Spec memory s) internal view returns (ITradeRouter.IntentCall memory) {
        ITradeRouter.ExitRule[] memory exits = (s.r >> 40) % 2 == 0
            ? _ladder(_takeProfit(1_500, 5_000), _stopLoss(-800, 10_000))
            : _ladder(_stopLoss(-500, 10_000));
        ITradeRouter.UpdateExitLadder memory p = _ladderIntent(s.target, exits);
        (p.agentId, p.nonce, p.deadline) = (s.id, s.nonce, s.deadline);
        return BatchItems.ladder(p, exits, _sign(p, s.key));
    }
}
