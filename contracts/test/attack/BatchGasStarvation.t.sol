// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ITradeRouter} from "../../src/interfaces/ITradeRouter.sol";
import {BatchItems} from "../utils/BatchItems.sol";
import {Fixture} from "../utils/Fixture.sol";
import {GasHungrySigner} from "./GasStarvation.t.sol";

/// @notice The 63/64 rule against batches: a caller may send a batch with just too little gas, so that
///         an item (or a call the item makes) runs out while the batch keeps enough to go on. Such an
///         item must not be recorded as failed (the relayer drops failed items for good): the batch
///         fails as a whole, as out of gas. Each case sweeps the batch's gas as GasStarvation.t.sol does
///         (every unit around the least that succeeds, coarse steps elsewhere) and checks, at every
///         amount: the batch either succeeds with exactly the results and books it has with ample gas,
///         or reverts with empty data and changes nothing; and it succeeds exactly from the least up.
contract BatchGasStarvationTest is Fixture {
    uint256 internal constant FINE_WINDOW = 160;
    uint256 internal constant COARSE_FROM = 3_000;
    uint256 internal constant COARSE_STEP = 613;
    uint256 internal constant COARSE_PAST = 40_000;
    uint256 internal constant WALLET_WORK = 3_000;

    uint256 internal positionId;

    function setUp() public override {
        super.setUp();
        positionId = _open(1_000e6); // NVDA, [TP +10% 50%, SL −10% 100%]
    }

    function _books() internal view returns (bytes32) {
        bytes memory b = abi.encode(
            router.agentState(agentId),
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

    function _try(bytes memory data, uint256 gas_) internal returns (bool ok, bytes memory ret, bytes32 books) {
        uint256 snapshot = vm.snapshotState();
        (ok, ret) = address(router).call{gas: gas_}(data);
        books = _books();
        vm.revertToState(snapshot);
    }

    /// @return least the least gas with which the batch succeeds
    function _sweep(bytes memory data) internal returns (uint256 least) {
        bytes32 before = _books();
        (bool ok, bytes memory expected, bytes32 done) = _try(data, 10_000_000);
        vm.assertTrue(ok, "with ample gas the batch succeeds");
        vm.assertTrue(done != before, "with ample gas the batch changes the books");

        uint256 lo = 0;
        uint256 hi = 10_000_000;
        while (hi - lo > 1) {
            uint256 mid = (lo + hi) / 2;
            (ok,,) = _try(data, mid);
            if (ok) hi = mid;
            else lo = mid;
        }
        least = hi;
        // Each check's memory is released after it: a sweep is about a thousand calls.
        uint256 freePtr;
        assembly ("memory-safe") {
            freePtr := mload(0x40)
        }
        for (uint256 g = least - FINE_WINDOW; g <= least + FINE_WINDOW; ++g) {
            _check(data, g, least, before, done, expected);
            assembly ("memory-safe") {
                mstore(0x40, freePtr)
            }
        }
        for (uint256 g = COARSE_FROM; g < least + COARSE_PAST; g += COARSE_STEP) {
            _check(data, g, least, before, done, expected);
            assembly ("memory-safe") {
                mstore(0x40, freePtr)
            }
        }
    }

    function _check(bytes memory data, uint256 g, uint256 least, bytes32 before, bytes32 done, bytes memory expected)
        internal
    {
        (bool ok, bytes memory ret, bytes32 books) = _try(data, g);
        vm.assertEq(ok, g >= least, "succeeds exactly from the least gas up");
        if (ok) {
            vm.assertEq(ret, expected, "a success reports what it reports with ample gas");
            vm.assertEq(books, done, "a success has every effect");
        } else {
            vm.assertEq(books, before, "a starved batch changes nothing");
            vm.assertEq(ret.length, 0, "a starved batch fails as out of gas, not with a verdict");
        }
    }

    function _openItem(address token, uint256 nonce, uint256 key) internal view returns (ITradeRouter.IntentCall memory) {
        ITradeRouter.ExitRule[] memory exits = _defaultLadder();
        ITradeRouter.OpenPosition memory p = _openIntent(token, 1_000e6, exits);
        p.nonce = nonce;
        return BatchItems.open(p, exits, _sign(p, key));
    }

    function _addItem(uint256 nonce) internal view returns (ITradeRouter.IntentCall memory) {
        ITradeRouter.AddToPosition memory p = _addIntent(positionId, 500e6);
        p.nonce = nonce;
        return BatchItems.add(p, _sign(p, AGENT_KEY));
    }

    /// @dev Two good items: at no gas may either be reported as failed.
    function test_executeIntents_twoGoodItems_allOrNothingAtEveryGas() public {
        uint256 n = router.nextNonce(agentId);
        ITradeRouter.IntentCall[] memory items = BatchItems.two(_openItem(address(aapl), n, AGENT_KEY), _addItem(n + 1));
        _sweep(abi.encodeCall(ITradeRouter.executeIntents, (items)));
    }

    /// @dev A bad item then a good one: where the batch succeeds, the bad item's verdict and the good
    ///      item's success are exactly those with ample gas.
    function test_executeIntents_badThenGood_verdictOnlyWithEnoughGas() public {
        uint256 n = router.nextNonce(agentId);
        ITradeRouter.IntentCall[] memory items = BatchItems.two(_openItem(address(aapl), n, OTHER_KEY), _addItem(n));
        bytes[] memory results = abi.decode(
            _sweepReturning(abi.encodeCall(ITradeRouter.executeIntents, (items))), (bytes[])
        );
        vm.assertEq(bytes4(results[0]), ITradeRouter.InvalidSigner.selector, "the bad item: InvalidSigner");
        vm.assertEq(results[1], "", "the good item went through");
    }

    function _sweepReturning(bytes memory data) internal returns (bytes memory ret) {
        _sweep(data);
        (, ret,) = _try(data, 10_000_000);
    }

    /// @dev The item's ERC-1271 wallet needs ~0.2M gas: starved there, the item must not read as
    ///      `InvalidSigner` (the router stops the item as out of gas, and the batch with it).
    function test_executeIntents_erc1271Signer_starvedWalletRevertsTheBatch() public {
        GasHungrySigner wallet = new GasHungrySigner(vm.addr(OTHER_KEY), WALLET_WORK);
        vm.prank(admin);
        registry.setAgentSigner(agentId, address(wallet));
        ITradeRouter.IntentCall[] memory items =
            BatchItems.one(_openItem(address(aapl), router.nextNonce(agentId), OTHER_KEY));
        bytes[] memory results =
            abi.decode(_sweepReturning(abi.encodeCall(ITradeRouter.executeIntents, (items))), (bytes[]));
        vm.assertEq(results[0], "", "the wallet-signed item went through");
    }

    function test_executeExits_twoStops_allOrNothingAtEveryGas() public {
        uint256 other = _open(address(aapl), 1_000e6, _defaultLadder());
        _setPrice(address(nvda), _priceAtPnl(positionId, -1_200));
        _setPrice(address(aapl), _priceAtPnl(other, -1_200));
        ITradeRouter.ExitCall[] memory items = new ITradeRouter.ExitCall[](2);
        items[0] = BatchItems.exit(positionId, _defaultLadder());
        items[1] = BatchItems.exit(other, _defaultLadder());
        _sweep(abi.encodeCall(ITradeRouter.executeExits, (items)));
    }

    /// @dev A not-triggered exit first: its `ExitNotTriggered` only where the batch has the gas for all.
    function test_executeExits_skippedThenFired_verdictOnlyWithEnoughGas() public {
        uint256 other = _open(address(aapl), 1_000e6, _defaultLadder());
        _setPrice(address(aapl), _priceAtPnl(other, -1_200));
        ITradeRouter.ExitCall[] memory items = new ITradeRouter.ExitCall[](2);
        items[0] = BatchItems.exit(positionId, _defaultLadder());
        items[1] = BatchItems.exit(other, _defaultLadder());
        bytes[] memory results = abi.decode(_sweepReturning(abi.encodeCall(ITradeRouter.executeExits, (items))), (bytes[]));
        vm.assertEq(bytes4(results[0]), ITradeRouter.ExitNotTriggered.selector, "not triggered");
        vm.assertEq(results[1], "", "fired");
    }
}
