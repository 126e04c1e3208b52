// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {ITradeRouter} from "../../src/interfaces/ITradeRouter.sol";
import {BatchItems} from "../utils/BatchItems.sol";
import {HostileFixture} from "./HostileFixture.sol";
import {Reentrant} from "./Reentrant.sol";

/// @notice Reentrancy during a batch (SPEC §5.1), through a hostile venue or token. A batch holds the
///         router's reentrancy lock for its whole run and calls each item on the router itself; the
///         per-item entries take calls from the router only. So a hostile part reached by an item can
///         neither replay that item, nor start another batch, nor call a single function, nor call an
///         item entry directly; and the batch's books are those of each item once.
contract BatchReentrancyTest is HostileFixture {
    bytes internal reentry = abi.encodeWithSelector(ReentrancyGuardTransient.ReentrancyGuardReentrantCall.selector);
    bytes internal onlySelf = abi.encodeWithSelector(ITradeRouter.OnlySelf.selector);

    function _assertRefused(Reentrant part, bytes memory expected) internal view {
        vm.assertTrue(part.attempted(), "the hostile part made its call");
        vm.assertFalse(part.succeeded(), "the reentered call was refused");
        vm.assertEq(part.returned(), expected, "refused for the expected reason");
    }

    function _openItem() internal view returns (ITradeRouter.IntentCall memory item) {
        ITradeRouter.ExitRule[] memory exits = _defaultLadder();
        ITradeRouter.OpenPosition memory p = _openIntent(address(nvda), 1_000e6, exits);
        return BatchItems.open(p, exits, _sign(p, AGENT_KEY));
    }

    function _assertOneOpen(bytes[] memory results) internal view {
        vm.assertEq(results[0], "", "the item succeeded");
        vm.assertEq(router.nextNonce(agentId), 1, "nonce used once");
        vm.assertEq(router.positionCount(), 1, "one position");
        vm.assertEq(router.agentState(agentId).deployed, 1_000e6, "deployed once");
        vm.assertEq(usdc.balanceOf(address(vault)), VAULT_FUNDS - 1_000e6, "the vault paid once");
        vm.assertEq(nvda.balanceOf(address(vault)), router.position(1).size, "the vault holds the position");
    }

    function test_venueBuy_replayOfTheBatchBeingFilled_isRefused() public {
        ITradeRouter.IntentCall[] memory items = BatchItems.one(_openItem());
        hVenue.arm(address(router), abi.encodeCall(ITradeRouter.executeIntents, (items)));
        bytes[] memory results = router.executeIntents(items);
        _assertRefused(hVenue, reentry);
        _assertOneOpen(results);
    }

    function test_venueBuy_itemEntryCalledDirectly_isRefused() public {
        ITradeRouter.IntentCall[] memory items = BatchItems.one(_openItem());
        hVenue.arm(address(router), abi.encodeCall(router.executeIntentItem, (items[0], 0)));
        bytes[] memory results = router.executeIntents(items);
        _assertRefused(hVenue, onlySelf);
        _assertOneOpen(results);
    }

    function test_venueBuy_singleCallOfTheItemBeingFilled_isRefused() public {
        ITradeRouter.IntentCall[] memory items = BatchItems.one(_openItem());
        ITradeRouter.OpenPosition memory p = abi.decode(items[0].intent, (ITradeRouter.OpenPosition));
        hVenue.arm(address(router), abi.encodeCall(ITradeRouter.openPosition, (p, items[0].exits, items[0].signature)));
        bytes[] memory results = router.executeIntents(items);
        _assertRefused(hVenue, reentry);
        _assertOneOpen(results);
    }

    /// @dev A single open whose venue tries to slip in a batch: refused, as any reentry.
    function test_venueBuy_batchDuringASingleOpen_isRefused() public {
        ITradeRouter.IntentCall[] memory items = BatchItems.one(_openItem());
        hVenue.arm(address(router), abi.encodeCall(ITradeRouter.executeIntents, (items)));
        ITradeRouter.OpenPosition memory p = abi.decode(items[0].intent, (ITradeRouter.OpenPosition));
        router.openPosition(p, items[0].exits, items[0].signature);
        _assertRefused(hVenue, reentry);
        vm.assertEq(router.nextNonce(agentId), 1, "nonce used once");
        vm.assertEq(router.positionCount(), 1, "one position");
    }

    function _exits(uint256 positionId) internal pure returns (ITradeRouter.ExitCall[] memory items) {
        items = new ITradeRouter.ExitCall[](1);
        items[0] = BatchItems.exit(positionId, _defaultLadder());
    }

    function _assertOneStop(uint256 positionId, bytes[] memory results) internal view {
        vm.assertEq(results[0], "", "the exit fired");
        vm.assertFalse(router.position(positionId).open, "closed once");
        vm.assertEq(nvda.balanceOf(address(vault)), 0, "the vault sold exactly the position");
        vm.assertEq(router.agentState(agentId).deployed, 0, "nothing deployed");
    }

    function test_venueSell_exitBatchFiredAgainMidSale_isRefused() public {
        uint256 positionId = _openAt(-1_200);
        ITradeRouter.ExitCall[] memory items = _exits(positionId);
        hVenue.arm(address(router), abi.encodeCall(ITradeRouter.executeExits, (items)));
        bytes[] memory results = router.executeExits(items);
        _assertRefused(hVenue, reentry);
        _assertOneStop(positionId, results);
    }

    function test_equityTransferHook_exitItemEntryCalledDirectly_isRefused() public {
        uint256 positionId = _openAt(-1_200);
        ITradeRouter.ExitCall[] memory items = _exits(positionId);
        hNvda.arm(address(router), abi.encodeCall(router.executeExitItem, (positionId, _defaultLadder())));
        bytes[] memory results = router.executeExits(items);
        _assertRefused(hNvda, onlySelf);
        _assertOneStop(positionId, results);
    }

    function test_usdcTransferHook_singleExitDuringAnExitBatch_isRefused() public {
        uint256 positionId = _openAt(-1_200);
        ITradeRouter.ExitCall[] memory items = _exits(positionId);
        hUsdc.arm(address(router), abi.encodeCall(ITradeRouter.executeExit, (positionId, _defaultLadder())));
        bytes[] memory results = router.executeExits(items);
        _assertRefused(hUsdc, reentry);
        _assertOneStop(positionId, results);
    }
}
