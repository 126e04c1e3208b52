// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ITradeRouter} from "../src/interfaces/ITradeRouter.sol";
import {Fixture} from "./utils/Fixture.sol";

contract TradeRouterSmokeTest is Fixture {
    function test_openAddReduceExit_roundTrip() public {
        uint256 id = _open(1_000e6);
        ITradeRouter.PositionView memory p = router.position(id);
        vm.assertTrue(p.open, "open");
        vm.assertEq(p.costBasis, 1_000e6, "cost basis");
        _add(id, 500e6);
        _reduce(id, router.position(id).size / 3);
        _setPrice(address(nvda), NVDA_PRICE * 8 / 10);
        vm.prank(keeper);
        uint256 fired = router.executeExit(id, _defaultLadder());
        vm.assertEq(fired, 1, "stop fired");
        vm.assertFalse(router.position(id).open, "closed");
        vm.assertEq(router.nextNonce(agentId), 3, "nonces");
    }
}
