// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IPriceOracle} from "../src/interfaces/IPriceOracle.sol";
import {ITradeRouter} from "../src/interfaces/ITradeRouter.sol";
import {Fixture} from "./utils/Fixture.sol";
import {IntentSigner} from "./utils/IntentSigner.sol";
import {Vm} from "./utils/Vm.sol";

/// @dev `vm.cool` is not declared in utils/Vm.sol: marks an account and its storage cold again.
interface VmCool {
    function cool(address target) external;
}

/// @notice Measures one router call the way a transaction would pay for it.
/// @dev    Method. The state a measurement needs is built in `setUp`, which forge runs as its own
///         transaction, so inside the test every slot's "original value" (EIP-2200) is what a real
///         transaction would see. Just before the measured call every contract the call touches is
///         made cold again (`vm.cool`), as it is at the start of a transaction (EIP-2929). The measured
///         call is the first call of the test that writes anything (price moves for exits happen in
///         `setUp` too: with the price set inside the test, exits came out 2.0k–2.5k below the real
///         transaction).
///         - `snapshots/TradeRouter.json`: execution gas of the call frame, before refunds.
///         - `snapshots/TradeRouterTx.json`: what the transaction costs with the 21,000 base:
///           `max(21000 + calldata + execution − refund, 21000 + floor)`, with calldata at 4/16 gas per
///           zero/nonzero byte, the EIP-7623 (Prague) floor at 10/40, and the refund capped at 1/5.
///         Cross-checked with `forge test --isolate` (each call a real transaction, whose gasUsed then
///         lands in TradeRouter.json): equal to TradeRouterTx.json to the gas, all nine figures.
abstract contract GasMeter is Fixture {
    event log_named_uint(string key, uint256 val);

    uint256 internal constant TX_BASE = 21_000;

    function _coolAll() internal {
        address[9] memory touched = [
            address(router),
            address(registry),
            address(tokenRegistry),
            address(oracle),
            address(venue),
            address(vault),
            address(usdc),
            address(nvda),
            address(aapl)
        ];
        for (uint256 i; i < touched.length; ++i) {
            VmCool(address(vm)).cool(touched[i]);
        }
    }

    /// @return standard calldata gas (4 / 16 per zero / nonzero byte)
    /// @return floor EIP-7623 floor data gas (10 / 40 per zero / nonzero byte)
    function _calldataCost(bytes memory data) internal pure returns (uint256 standard, uint256 floor) {
        uint256 zeros;
        for (uint256 i; i < data.length; ++i) {
            if (data[i] == 0) ++zeros;
        }
        uint256 tokens = zeros + 4 * (data.length - zeros);
        return (4 * tokens, 10 * tokens);
    }

    /// @dev Calls `router` with `data` from `caller`, records execution and transaction gas under `name`.
    function _measure(string memory name, address caller, bytes memory data) internal returns (bytes memory ret) {
        return _measureIn("TradeRouter", name, caller, data);
    }

    /// @dev As `_measure`, into snapshot group `group` (execution) and `group`Tx (transaction); a batch
    ///      (more than 4 bytes of selector and one word) also gets `name`_perItem: the transaction / items.
    function _measureIn(string memory group, string memory name, address caller, bytes memory data)
        internal
        returns (bytes memory ret)
    {
        _coolAll();
        vm.prank(caller);
        bool ok;
        (ok, ret) = address(router).call(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 0x20), mload(ret))
            }
        }
        uint256 execution = vm.snapshotGasLastCall(group, name);
        uint256 total = _txTotal(name, data, execution);
        string memory txGroup = string.concat(group, "Tx");
        vm.snapshotValue(txGroup, name, total);
        uint256 items = _batchItems(data);
        if (items != 0) {
            vm.snapshotValue(txGroup, string.concat(name, "_perItem"), total / items);
            emit log_named_uint(string.concat(name, " per item (tx total / items)"), total / items);
        }
    }

    /// @return total what the transaction costs: `max(21000 + calldata + execution − refund, 21000 + floor)`
    function _txTotal(string memory name, bytes memory data, uint256 execution) internal returns (uint256 total) {
        Vm.Gas memory g = vm.lastCallGas();
        uint256 refund = g.gasRefunded > 0 ? uint256(int256(g.gasRefunded)) : 0;

        (uint256 calldataGas, uint256 floorGas) = _calldataCost(data);
        uint256 beforeRefund = TX_BASE + calldataGas + execution;
        uint256 refunded = refund < beforeRefund / 5 ? refund : beforeRefund / 5;
        total = beforeRefund - refunded;
        if (total < TX_BASE + floorGas) total = TX_BASE + floorGas;

        emit log_named_uint(string.concat(name, " execution"), execution);
        emit log_named_uint(string.concat(name, " calldata bytes"), data.length);
        emit log_named_uint(string.concat(name, " calldata gas"), calldataGas);
        emit log_named_uint(string.concat(name, " calldata floor (EIP-7623)"), floorGas);
        emit log_named_uint(string.concat(name, " refund"), refunded);
        emit log_named_uint(string.concat(name, " total with base"), total);
    }

    /// @return items the length of a batch call's array argument, 0 for any other call
    function _batchItems(bytes memory data) internal pure returns (uint256 items) {
        bytes4 selector = bytes4(data);
        if (selector != ITradeRouter.executeIntents.selector && selector != ITradeRouter.executeExits.selector) return 0;
        assembly ("memory-safe") {
            items := mload(add(data, 68)) // selector, offset word, then the array's length
        }
    }

    function _openCall(address token, uint256 usdcAmount, ITradeRouter.ExitRule[] memory exits)
        internal
        view
        returns (bytes memory)
    {
        ITradeRouter.OpenPosition memory p = _openIntent(token, usdcAmount, exits);
        return abi.encodeCall(ITradeRouter.openPosition, (p, exits, _sign(p, AGENT_KEY)));
    }
}

/// @notice A warm, typical state: the agent has traded before (its state slot is nonzero), the vault
///         already holds each token through another agent, and the tokens have supply.
abstract contract WarmState is GasMeter {
    uint256 internal constant OTHER_AGENT_ALLOCATION = 100_000e6;

    uint256 internal positionId; // the fixture agent's NVDA position, default ladder
    uint256 internal otherAgentId;
    uint256 internal otherAaplPosition; // [TP +5% 50%, TP +10% 50%, SL −10% 100%]

    function setUp() public virtual override {
        super.setUp();
        vm.prank(admin);
        otherAgentId = registry.registerAgent(vm.addr(OTHER_KEY), vaultId, testTrackId, OTHER_AGENT_ALLOCATION);

        // Another agent holds NVDA and AAPL: the vault's balances and the tokens' supplies are nonzero.
        _openAs(otherAgentId, OTHER_KEY, address(nvda), 5_000e6, _defaultLadder());
        otherAaplPosition = _openAs(otherAgentId, OTHER_KEY, address(aapl), 5_000e6, _twoTakeProfits());

        // The fixture agent has history: an AAPL round trip (its AAPL slot is used and cleared again)...
        uint256 roundTrip = _open(address(aapl), 1_000e6, _defaultLadder());
        _reduce(roundTrip, router.position(roundTrip).size);
        // ...and an open NVDA position that the add / reduce / ladder / exit measurements act on.
        positionId = _open(address(nvda), 10_000e6, _defaultLadder());
        vm.warp(block.timestamp + 12); // a later block, same UTC day
    }

    function _twoTakeProfits() internal pure returns (ITradeRouter.ExitRule[] memory) {
        return _ladder(_takeProfit(500, 5_000), _takeProfit(1_000, 5_000), _stopLoss(-1_000, 10_000));
    }

    function _openAs(uint256 id, uint256 key, address token, uint256 usdcAmount, ITradeRouter.ExitRule[] memory exits)
        internal
        returns (uint256)
    {
        ITradeRouter.OpenPosition memory p = _openIntent(token, usdcAmount, exits);
        p.agentId = id;
        p.nonce = router.nextNonce(id);
        return router.openPosition(p, exits, _sign(p, key));
    }
}

/// @notice Gas of the four intents on the warm state. Figures and targets: bench/gas.md.
contract TradeRouterGasTest is WarmState {
    function test_openPosition_gas() public {
        bytes memory ret = _measure("openPosition", address(this), _openCall(address(aapl), 1_000e6, _defaultLadder()));
        vm.assertEq(router.position(abi.decode(ret, (uint256))).costBasis, 1_000e6, "opened");
    }

    function test_addToPosition_gas() public {
        ITradeRouter.AddToPosition memory p = _addIntent(positionId, 1_000e6);
        _measure("addToPosition", address(this), abi.encodeCall(ITradeRouter.addToPosition, (p, _sign(p, AGENT_KEY))));
        vm.assertEq(router.position(positionId).costBasis, 11_000e6, "added");
    }

    function test_reducePosition_partial_gas() public {
        uint256 size = router.position(positionId).size;
        ITradeRouter.ReducePosition memory p = _reduceIntent(positionId, size / 2);
        _measure(
            "reducePosition_partial",
            address(this),
            abi.encodeCall(ITradeRouter.reducePosition, (p, _sign(p, AGENT_KEY)))
        );
        vm.assertEq(router.position(positionId).size, size - size / 2, "half left");
    }

    function test_reducePosition_close_gas() public {
        ITradeRouter.ReducePosition memory p = _reduceIntent(positionId, router.position(positionId).size);
        _measure(
            "reducePosition_close", address(this), abi.encodeCall(ITradeRouter.reducePosition, (p, _sign(p, AGENT_KEY)))
        );
        vm.assertFalse(router.position(positionId).open, "closed");
    }

    function test_updateExitLadder_gas() public {
        ITradeRouter.ExitRule[] memory exits = _ladder(_takeProfit(1_500, 5_000), _stopLoss(-800, 10_000));
        ITradeRouter.UpdateExitLadder memory p = _ladderIntent(positionId, exits);
        _measure(
            "updateExitLadder",
            address(this),
            abi.encodeCall(ITradeRouter.updateExitLadder, (p, exits, _sign(p, AGENT_KEY)))
        );
        vm.assertEq(router.position(positionId).exitsHash, IntentSigner.exitsHash(exits), "replaced");
    }
}

/// @notice Exits are measured each on its own contract so that the price move happens in `setUp`
///         (another transaction), as it does on chain: an oracle update is never in the exit's transaction.
contract TradeRouterExitStopLossGasTest is WarmState {
    function setUp() public override {
        super.setUp();
        _setPrice(address(nvda), _priceAtPnl(positionId, -1_200));
    }

    /// @dev The fixture agent's NVDA position at −12%: the stop (rule 1, 100%) closes it.
    function test_executeExit_stopLossClose_gas() public {
        bytes memory ret = _measure(
            "executeExit_stopLossClose",
            keeper,
            abi.encodeCall(ITradeRouter.executeExit, (positionId, _defaultLadder()))
        );
        vm.assertEq(abi.decode(ret, (uint256)), 1, "one rule");
        vm.assertFalse(router.position(positionId).open, "closed");
    }
}

contract TradeRouterExitTakeProfitGasTest is WarmState {
    function setUp() public override {
        super.setUp();
        _setPrice(address(nvda), _priceAtPnl(positionId, 1_200));
    }

    /// @dev The same position at +12%: the take-profit (rule 0, 50%) sells half, the stop stays armed.
    function test_executeExit_takeProfitPartial_gas() public {
        uint256 size = router.position(positionId).size;
        bytes memory ret = _measure(
            "executeExit_takeProfitPartial",
            keeper,
            abi.encodeCall(ITradeRouter.executeExit, (positionId, _defaultLadder()))
        );
        vm.assertEq(abi.decode(ret, (uint256)), 1, "one rule");
        vm.assertEq(router.position(positionId).size, size - size / 2, "half sold");
    }
}

contract TradeRouterExitTwoRulesGasTest is WarmState {
    function setUp() public override {
        super.setUp();
        _setPrice(address(aapl), _priceAtPnl(otherAaplPosition, 1_500));
    }

    /// @dev The other agent's AAPL position at +15%: TP +5% (50%) then TP +10% (50% of the rest) in one call.
    function test_executeExit_twoRules_gas() public {
        uint256 size = router.position(otherAaplPosition).size;
        bytes memory ret = _measure(
            "executeExit_twoRules",
            keeper,
            abi.encodeCall(ITradeRouter.executeExit, (otherAaplPosition, _twoTakeProfits()))
        );
        vm.assertEq(abi.decode(ret, (uint256)), 2, "two rules in one call");
        vm.assertApproxEqAbs(
            router.position(otherAaplPosition).size, size - size / 2 - (size - size / 2) / 2, 0, "a quarter left"
        );
    }
}

/// @notice The very first open of a fresh deployment: agent state, the vault's token balance and the
///         token's supply all go from zero to nonzero (the worst case, paid once).
contract TradeRouterFirstOpenGasTest is GasMeter {
    function test_openPosition_firstEver_gas() public {
        _measure("openPosition_firstEver", address(this), _openCall(address(nvda), 1_000e6, _defaultLadder()));
        vm.assertEq(router.positionCount(), 1, "opened");
    }
}

/// @notice The same open and stop-loss exit with the market gate engaged (SPEC §5.6): both tokens
///         publish a status (Regular, the price quoted in it), so the open checks the track's sessions
///         and the exit reads the track's policy from the registry (`exitPolicyOf`, hold track). The
///         figures above are for feeds without a status (Unknown: ungated).
contract TradeRouterRegularSessionGasTest is WarmState {
    function setUp() public override {
        super.setUp();
        uint256 crossed = _priceAtPnl(positionId, -1_200);
        vm.startPrank(admin);
        oracle.setQuote(address(aapl), AAPL_PRICE, 0, IPriceOracle.MarketStatus.Regular);
        oracle.setQuote(address(nvda), crossed, 0, IPriceOracle.MarketStatus.Regular);
        vm.stopPrank();
    }

    function test_openPosition_regularSession_gas() public {
        bytes memory ret =
            _measure("openPosition_regularSession", address(this), _openCall(address(aapl), 1_000e6, _defaultLadder()));
        vm.assertEq(router.position(abi.decode(ret, (uint256))).costBasis, 1_000e6, "opened");
    }

    function test_executeExit_stopLossClose_regularSession_gas() public {
        bytes memory ret = _measure(
            "executeExit_stopLossClose_regularSession",
            keeper,
            abi.encodeCall(ITradeRouter.executeExit, (positionId, _defaultLadder()))
        );
        vm.assertEq(abi.decode(ret, (uint256)), 1, "one rule");
        vm.assertFalse(router.position(positionId).open, "closed");
    }
}
