// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ITradeRouter} from "../../src/interfaces/ITradeRouter.sol";
import {BatchItems} from "../utils/BatchItems.sol";
import {HostileFixture} from "./HostileFixture.sol";

/// @notice A venue that lies about its fills: it reports one amount and delivers another. One vault
///         holds every agent's tokens, so a position whose recorded size were more than the vault
///         received would, when sold, be paid out of another agent's position. The router books what
///         reached the vault (its balance before and after the venue's call), so a venue can take only
///         what a trade gives it, the slippage bounds judge the real fill, and the vault always holds
///         every open position. A sale's venue takes the tokens from the vault itself (it redeems them
///         as their issuer), so the router also checks that it took no more than it sold.
contract LyingVenueTest is HostileFixture {
    uint256 internal otherAgentId;
    uint256 internal otherPosition; // the other agent's NVDA, in the same vault

    function setUp() public override {
        super.setUp();
        vm.prank(admin);
        otherAgentId = registry.registerAgent(vm.addr(OTHER_KEY), vaultId, testTrackId, ALLOCATION);
        ITradeRouter.ExitRule[] memory exits = _defaultLadder();
        ITradeRouter.OpenPosition memory p = _openIntent(address(nvda), 5_000e6, exits);
        p.agentId = otherAgentId;
        p.nonce = 0;
        otherPosition = router.openPosition(p, exits, _sign(p, OTHER_KEY));
    }

    function _assertVaultHoldsEveryPosition() internal view {
        uint256 sizes;
        for (uint256 id = 1; id <= router.positionCount(); ++id) {
            ITradeRouter.PositionView memory v = router.position(id);
            if (v.open && v.token == address(nvda)) sizes += v.size;
        }
        vm.assertEq(nvda.balanceOf(address(vault)), sizes, "the vault holds exactly the open positions");
    }

    /// @dev Reported at double: recorded at double, the stop's sale would take the other agent's tokens.
    function test_buy_overReported_booksWhatReachedTheVault() public {
        uint256 filled = venue.quoteBuy(address(nvda), 1_000e6);
        hVenue.setLies(10_000, 20_000);

        uint256 positionId = _openAt(-1_200);

        vm.assertEq(router.position(positionId).size, filled, "size = the tokens that reached the vault");
        _assertVaultHoldsEveryPosition();
        vm.prank(keeper);
        router.executeExit(positionId, _defaultLadder());
        vm.assertFalse(router.position(positionId).open, "stopped out");
        vm.assertEq(
            nvda.balanceOf(address(vault)),
            router.position(otherPosition).size,
            "the other agent's tokens are all there"
        );
    }

    function test_buy_underDeliveredBeyondSlippage_reverts() public {
        uint256 delivered = venue.quoteBuy(address(nvda), 1_000e6) / 2;
        hVenue.setLies(5_000, 10_000);
        ITradeRouter.ExitRule[] memory exits = _defaultLadder();
        ITradeRouter.OpenPosition memory p = _openIntent(address(nvda), 1_000e6, exits);
        bytes memory sig = _sign(p, AGENT_KEY);

        vm.expectRevert(
            abi.encodeWithSelector(
                ITradeRouter.SlippageExceeded.selector, 1_000e6, delivered, NVDA_PRICE, DEFAULT_SLIPPAGE_BPS
            )
        );
        router.openPosition(p, exits, sig);
    }

    function test_reduce_underPaidBeyondSlippage_reverts() public {
        uint256 positionId = _open(1_000e6);
        uint256 half = router.position(positionId).size / 2;
        uint256 paid = venue.quoteSell(address(nvda), half) / 2;
        hVenue.setLies(5_000, 10_000);
        ITradeRouter.ReducePosition memory r = _reduceIntent(positionId, half);
        bytes memory sig = _sign(r, AGENT_KEY);

        vm.expectRevert(
            abi.encodeWithSelector(ITradeRouter.SlippageExceeded.selector, half, paid, NVDA_PRICE, DEFAULT_SLIPPAGE_BPS)
        );
        router.reducePosition(r, sig);
    }

    /// @dev Reported at double: the day's turnover and PnL count the real proceeds.
    function test_reduce_overReported_booksWhatReachedTheVault() public {
        uint256 positionId = _open(1_000e6);
        uint256 size = router.position(positionId).size;
        uint256 half = size / 2;
        uint256 proceeds = venue.quoteSell(address(nvda), half);
        uint256 costSold = 1_000e6 * half / size;
        hVenue.setLies(10_000, 20_000);

        _reduce(positionId, half);

        ITradeRouter.AgentStateView memory st = router.agentState(agentId);
        vm.assertEq(st.turnoverToday, 1_000e6 + proceeds, "turnover: the open and the real proceeds");
        vm.assertEq(st.realizedPnlToday, int256(proceeds) - int256(costSold), "PnL: real proceeds less the cost sold");
        vm.assertEq(usdc.balanceOf(address(vault)), VAULT_FUNDS - 6_000e6 + proceeds, "the vault got the proceeds");
        _assertVaultHoldsEveryPosition();
    }

    /// @dev Exits have no slippage bound (SPEC §1.6: the venue prices them); a venue that pays nothing
    ///      takes the position's tokens and no more, and the books show the full loss.
    function test_exit_unpaid_booksTheLossAndTakesOnlyThePosition() public {
        uint256 positionId = _openAt(-1_200);
        hVenue.setLies(0, 10_000);

        vm.prank(keeper);
        router.executeExit(positionId, _defaultLadder());

        vm.assertEq(router.agentState(agentId).realizedPnlToday, -1_000e6, "the whole cost basis lost");
        vm.assertEq(usdc.balanceOf(address(vault)), VAULT_FUNDS - 6_000e6, "no proceeds arrived");
        vm.assertEq(
            nvda.balanceOf(address(vault)),
            router.position(otherPosition).size,
            "the other agent's tokens are all there"
        );
    }

    /// @dev A venue that takes twice the tokens sold would take the other agent's: the sale reverts.
    function test_exit_overdrawing_reverts() public {
        uint256 positionId = _openAt(-1_200);
        uint256 size = router.position(positionId).size;
        hVenue.setTake(20_000);

        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.VenueOverdrew.selector, address(nvda), 2 * size, size));
        vm.prank(keeper);
        router.executeExit(positionId, _defaultLadder());
        vm.assertTrue(router.position(positionId).open, "still open");
        _assertVaultHoldsEveryPosition();
    }

    /// @dev 0.01% too many is too many.
    function test_reduce_overdrawing_reverts() public {
        uint256 positionId = _open(1_000e6);
        uint256 half = router.position(positionId).size / 2;
        hVenue.setTake(10_001);
        uint256 taken = half * 10_001 / 10_000;
        vm.assertGt(taken, half, "the venue takes more");
        ITradeRouter.ReducePosition memory r = _reduceIntent(positionId, half);
        bytes memory sig = _sign(r, AGENT_KEY);

        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.VenueOverdrew.selector, address(nvda), taken, half));
        router.reducePosition(r, sig);
        _assertVaultHoldsEveryPosition();
    }

    /// @dev In a batch the overdrawing sale fails alone, reported as the item's reason.
    function test_exits_overdrawing_skipsTheItem() public {
        uint256 positionId = _openAt(-1_200);
        uint256 size = router.position(positionId).size;
        hVenue.setTake(15_000);
        ITradeRouter.ExitCall[] memory items = new ITradeRouter.ExitCall[](1);
        items[0] = BatchItems.exit(positionId, _defaultLadder());

        vm.prank(keeper);
        bytes[] memory results = router.executeExits(items);

        vm.assertEq(
            results[0],
            abi.encodeWithSelector(ITradeRouter.VenueOverdrew.selector, address(nvda), size * 15_000 / 10_000, size),
            "skipped: the venue overdrew"
        );
        vm.assertTrue(router.position(positionId).open, "still open");
        _assertVaultHoldsEveryPosition();
    }

    /// @dev A venue that takes fewer tokens than sold pays for what it took: the proceeds booked are
    ///      what arrived, the position is closed, and the tokens left behind stay with the vault.
    function test_exit_underTaking_leavesTheRestWithTheVault() public {
        uint256 positionId = _openAt(-1_200);
        uint256 size = router.position(positionId).size;
        hVenue.setTake(5_000);
        uint256 proceeds = venue.quoteSell(address(nvda), size / 2);

        vm.prank(keeper);
        router.executeExit(positionId, _defaultLadder());

        vm.assertFalse(router.position(positionId).open, "closed");
        vm.assertEq(router.agentState(agentId).realizedPnlToday, int256(proceeds) - 1_000e6, "booked what arrived");
        vm.assertEq(
            nvda.balanceOf(address(vault)),
            router.position(otherPosition).size + size - size / 2,
            "the untaken half stays in the vault"
        );
    }
}
