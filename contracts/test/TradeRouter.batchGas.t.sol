// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IPriceOracle} from "../src/interfaces/IPriceOracle.sol";
import {ITradeRouter} from "../src/interfaces/ITradeRouter.sol";
import {GasMeter} from "./TradeRouter.gas.t.sol";
import {BatchItems} from "./utils/BatchItems.sol";

/// @notice Gas of `executeIntents` / `executeExits` with 10 and 50 items, measured as the single calls
///         are (TradeRouter.gas.t.sol: state built in `setUp`, every contract cold before the call).
///         Snapshots: `snapshots/TradeRouterBatch.json` (execution) and `snapshots/TradeRouterBatchTx.json`
///         (the transaction with base, calldata and refund; `…_perItem` is that divided by the items).
///         Figures and targets: bench/gas.md.
/// @dev    The state is the single calls' "typical" one, per agent: 50 agents, each has traded before
///         (an AAPL position opened and closed), holds 10,000 USDC of NVDA under `[TP +10% 50%, SL −10% 100%]`,
///         and a second agent's holdings keep the vault's balances and the tokens' supplies nonzero.
abstract contract WarmBatchState is GasMeter {
    uint256 internal constant AGENTS = 50;
    uint256 internal constant KEY_BASE = 0x5EED00;

    uint256[] internal agents;
    uint256[] internal nvdaPositions;

    function setUp() public virtual override {
        super.setUp();
        for (uint256 i; i < AGENTS; ++i) {
            vm.prank(admin);
            uint256 id = registry.registerAgent(vm.addr(KEY_BASE + i), vaultId, testTrackId, ALLOCATION);
            agents.push(id);
            uint256 roundTrip = _openFor(i, address(aapl), 1_000e6);
            ITradeRouter.ReducePosition memory r = _reduceP(i, roundTrip, router.position(roundTrip).size);
            router.reducePosition(r, _sign(r, KEY_BASE + i));
            nvdaPositions.push(_openFor(i, address(nvda), 10_000e6));
        }
        vm.warp(block.timestamp + 12); // a later block, same UTC day
    }

    function _openP(uint256 i, address token, uint256 usdcAmount)
        internal
        view
        returns (ITradeRouter.OpenPosition memory p)
    {
        p = _openIntent(token, usdcAmount, _defaultLadder());
        p.agentId = agents[i];
        p.nonce = router.nextNonce(agents[i]);
    }

    function _openFor(uint256 i, address token, uint256 usdcAmount) internal returns (uint256) {
        ITradeRouter.OpenPosition memory p = _openP(i, token, usdcAmount);
        return router.openPosition(p, _defaultLadder(), _sign(p, KEY_BASE + i));
    }

    function _reduceP(uint256 i, uint256 pid, uint256 amount) internal view returns (ITradeRouter.ReducePosition memory p) {
        p = _reduceIntent(pid, amount);
        p.agentId = agents[i];
        p.nonce = router.nextNonce(agents[i]);
    }

    function _openItem(uint256 i) internal view returns (ITradeRouter.IntentCall memory) {
        ITradeRouter.OpenPosition memory p = _openP(i, address(aapl), 1_000e6);
        return BatchItems.open(p, _defaultLadder(), _sign(p, KEY_BASE + i));
    }

    function _addItem(uint256 i) internal view returns (ITradeRouter.IntentCall memory) {
        ITradeRouter.AddToPosition memory p = _addIntent(nvdaPositions[i], 1_000e6);
        p.agentId = agents[i];
        p.nonce = router.nextNonce(agents[i]);
        return BatchItems.add(p, _sign(p, KEY_BASE + i));
    }

    function _reduceItem(uint256 i) internal view returns (ITradeRouter.IntentCall memory) {
        ITradeRouter.ReducePosition memory p = _reduceP(i, nvdaPositions[i], router.position(nvdaPositions[i]).size / 2);
        return BatchItems.reduce(p, _sign(p, KEY_BASE + i));
    }

    function _ladderItem(uint256 i) internal view returns (ITradeRouter.IntentCall memory) {
        ITradeRouter.ExitRule[] memory exits = _ladder(_takeProfit(1_500, 5_000), _stopLoss(-800, 10_000));
        ITradeRouter.UpdateExitLadder memory p = _ladderIntent(nvdaPositions[i], exits);
        p.agentId = agents[i];
        p.nonce = router.nextNonce(agents[i]);
        return BatchItems.ladder(p, exits, _sign(p, KEY_BASE + i));
    }

    /// @dev Measures `data` and also records the transaction's gas per item.
    function _measureBatch(string memory name, bytes memory data, uint256 items) internal returns (bytes[] memory results) {
        results = abi.decode(_measureIn("TradeRouterBatch", name, keeper, data), (bytes[]));
        vm.assertEq(results.length, items, "one result per item");
        for (uint256 i; i < items; ++i) {
            vm.assertEq(results[i], "", "every item succeeded");
        }
    }
}

contract TradeRouterBatchOpenGasTest is WarmBatchState {
    function _opens(uint256 n) internal view returns (bytes memory) {
        ITradeRouter.IntentCall[] memory items = new ITradeRouter.IntentCall[](n);
        for (uint256 i; i < n; ++i) {
            items[i] = _openItem(i);
        }
        return abi.encodeCall(ITradeRouter.executeIntents, (items));
    }

    function test_executeIntents_open10_gas() public {
        _measureBatch("executeIntents_open10", _opens(10), 10);
        vm.assertGt(router.openPositionOf(agents[9], address(aapl)), 0, "opened");
    }

    function test_executeIntents_open50_gas() public {
        _measureBatch("executeIntents_open50", _opens(50), 50);
        vm.assertGt(router.openPositionOf(agents[49], address(aapl)), 0, "opened");
    }
}

/// @dev Each agent one item, the kinds in turn: open, add, reduce half, replace the ladder.
contract TradeRouterBatchMixedGasTest is WarmBatchState {
    function _mixed(uint256 n) internal view returns (bytes memory) {
        ITradeRouter.IntentCall[] memory items = new ITradeRouter.IntentCall[](n);
        for (uint256 i; i < n; ++i) {
            uint256 kind = i % 4;
            items[i] = kind == 0 ? _openItem(i) : kind == 1 ? _addItem(i) : kind == 2 ? _reduceItem(i) : _ladderItem(i);
        }
        return abi.encodeCall(ITradeRouter.executeIntents, (items));
    }

    function test_executeIntents_mixed10_gas() public {
        _measureBatch("executeIntents_mixed10", _mixed(10), 10);
    }

    function test_executeIntents_mixed50_gas() public {
        _measureBatch("executeIntents_mixed50", _mixed(50), 50);
    }
}

/// @dev NVDA at −12% (set in `setUp`, as an oracle update is never in the exits' transaction): every
///      agent's stop fires and closes its position.
contract TradeRouterBatchExitGasTest is WarmBatchState {
    function setUp() public override {
        super.setUp();
        _setPrice(address(nvda), _priceAtPnl(nvdaPositions[0], -1_200));
    }

    function _exits(uint256 n) internal view returns (bytes memory) {
        ITradeRouter.ExitCall[] memory items = new ITradeRouter.ExitCall[](n);
        for (uint256 i; i < n; ++i) {
            items[i] = BatchItems.exit(nvdaPositions[i], _defaultLadder());
        }
        return abi.encodeCall(ITradeRouter.executeExits, (items));
    }

    function test_executeExits_stopLoss10_gas() public {
        _measureBatch("executeExits_stopLoss10", _exits(10), 10);
        vm.assertFalse(router.position(nvdaPositions[9]).open, "closed");
    }

    function test_executeExits_stopLoss50_gas() public {
        _measureBatch("executeExits_stopLoss50", _exits(50), 50);
        vm.assertFalse(router.position(nvdaPositions[49]).open, "closed");
    }
}

/// @dev The same batch with the market gate engaged (SPEC §5.6): NVDA's price quoted in Regular, so
///      each item also reads its track's policy (`exitPolicyOf`, hold track: in session, it fires).
contract TradeRouterBatchExitRegularSessionGasTest is WarmBatchState {
    function setUp() public override {
        super.setUp();
        uint256 crossed = _priceAtPnl(nvdaPositions[0], -1_200); // before the prank: a call would use it up
        vm.prank(admin);
        oracle.setQuote(address(nvda), crossed, 0, IPriceOracle.MarketStatus.Regular);
    }

    function _exits(uint256 n) internal view returns (bytes memory) {
        ITradeRouter.ExitCall[] memory items = new ITradeRouter.ExitCall[](n);
        for (uint256 i; i < n; ++i) {
            items[i] = BatchItems.exit(nvdaPositions[i], _defaultLadder());
        }
        return abi.encodeCall(ITradeRouter.executeExits, (items));
    }

    function test_executeExits_stopLoss10_regularSession_gas() public {
        _measureBatch("executeExits_stopLoss10_regularSession", _exits(10), 10);
        vm.assertFalse(router.position(nvdaPositions[9]).open, "closed");
    }

    function test_executeExits_stopLoss50_regularSession_gas() public {
        _measureBatch("executeExits_stopLoss50_regularSession", _exits(50), 50);
        vm.assertFalse(router.position(nvdaPositions[49]).open, "closed");
    }
}
