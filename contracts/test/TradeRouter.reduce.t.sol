// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IAgentRegistry} from "../src/interfaces/IAgentRegistry.sol";
import {ITradeRouter} from "../src/interfaces/ITradeRouter.sol";
import {Fixture} from "./utils/Fixture.sol";

/// @notice `reducePosition`: proportional cost basis (remaining basis rounds up), realized PnL, closing
///         at or above the size, the sell-side checks, and that no track limit ever blocks a reduce.
contract TradeRouterReduceTest is Fixture {
    uint256 internal constant OPEN_USDC = 1_000e6;
    uint256 internal positionId;
    uint256 internal openSize;

    function setUp() public override {
        super.setUp();
        positionId = _open(OPEN_USDC);
        openSize = router.position(positionId).size;
    }

    /// @dev The venue's sell at oracle price − spread, written out independently.
    function _sellQuote(uint256 tokensIn, uint256 price, uint256 spreadBps) internal pure returns (uint256) {
        return tokensIn * price * (10_000 - spreadBps) / 1e24;
    }

    function _expectReduceReverts(ITradeRouter.ReducePosition memory p, bytes memory err) internal {
        bytes memory sig = _sign(p, AGENT_KEY);
        vm.expectRevert(err);
        router.reducePosition(p, sig);
    }

    // ------------------------------------------------------------------ partial reduce

    function test_reduce_partialLowersCostBasisInProportion() public {
        uint256 price = 190e8;
        _setPrice(address(nvda), price);
        uint256 sold = openSize / 3;
        uint256 usdcOut = _sellQuote(sold, price, SPREAD_BPS);
        uint256 removed = OPEN_USDC * sold / openSize; // floor
        uint256 vaultUsdcBefore = usdc.balanceOf(address(vault));

        _reduce(positionId, sold);

        ITradeRouter.PositionView memory v = router.position(positionId);
        vm.assertTrue(v.open, "still open");
        vm.assertEq(v.size, openSize - sold, "size");
        vm.assertEq(v.costBasis, OPEN_USDC - removed, "cost basis lowered by floor(costBasis*sold/size)");
        // Remaining basis rounds up: ceil(costBasis * remainingSize / size).
        uint256 remainingCeil = (OPEN_USDC * (openSize - sold) + openSize - 1) / openSize;
        vm.assertEq(v.costBasis, remainingCeil, "remaining basis rounds up");
        vm.assertEq(usdc.balanceOf(address(vault)), vaultUsdcBefore + usdcOut, "proceeds to the vault");
        vm.assertEq(nvda.balanceOf(address(vault)), openSize - sold, "tokens left the vault");

        ITradeRouter.AgentStateView memory st = router.agentState(agentId);
        vm.assertEq(st.realizedPnlToday, int256(usdcOut) - int256(removed), "realized PnL = proceeds - removed basis");
        vm.assertEq(st.deployed, OPEN_USDC - removed, "deployed lowered by removed basis");
    }

    function test_reduce_emitsPositionReduced() public {
        uint256 price = 170e8;
        _setPrice(address(nvda), price);
        uint256 sold = openSize * 2 / 5;
        uint256 usdcOut = _sellQuote(sold, price, SPREAD_BPS);
        uint256 removed = OPEN_USDC * sold / openSize;
        ITradeRouter.ReducePosition memory p = _reduceIntent(positionId, sold);
        bytes memory sig = _sign(p, AGENT_KEY);
        vm.expectEmit(true, true, true, true, address(router));
        emit ITradeRouter.PositionReduced(
            positionId,
            agentId,
            sold,
            usdcOut,
            price,
            int256(usdcOut) - int256(removed),
            openSize - sold,
            OPEN_USDC - removed
        );
        router.reducePosition(p, sig);
    }

    function test_reduce_realizesGain() public {
        uint256 price = 220e8;
        _setPrice(address(nvda), price);
        uint256 sold = openSize / 2;
        uint256 usdcOut = _sellQuote(sold, price, SPREAD_BPS);
        uint256 removed = OPEN_USDC * sold / openSize;
        _reduce(positionId, sold);
        int256 pnl = router.agentState(agentId).realizedPnlToday;
        vm.assertEq(pnl, int256(usdcOut) - int256(removed), "pnl");
        vm.assertGt(uint256(pnl), 0, "a gain");
    }

    function test_reduce_keepsEntryPrice() public {
        _setPrice(address(nvda), 150e8);
        uint256 entryBefore = OPEN_USDC * 1e20 / openSize;
        _reduce(positionId, openSize / 7);
        ITradeRouter.PositionView memory v = router.position(positionId);
        uint256 entryAfter = v.costBasis * 1e20 / v.size;
        // Rounding the removed basis down can only nudge the entry up, by less than one USDC unit's worth.
        vm.assertGe(entryAfter, entryBefore, "entry does not fall");
        vm.assertApproxEqAbs(entryAfter, entryBefore, 1e20 / v.size + 1, "entry price stays");
    }

    function testFuzz_reduce_costBasisProportional(uint256 sold, uint256 price) public {
        // From 1% of the position (≈10 USDC) up: below a few USDC base units the proceeds' rounding
        // alone exceeds the signed slippage (see test_reduce_dustWhoseProceedsRoundToZeroRevertsSlippage).
        sold = bound(sold, openSize / 100, openSize - 1);
        price = bound(price, 100e8, 300e8);
        _setPrice(address(nvda), price);
        uint256 usdcOut = _sellQuote(sold, price, SPREAD_BPS);
        uint256 removed = OPEN_USDC * sold / openSize;
        _reduce(positionId, sold);
        ITradeRouter.PositionView memory v = router.position(positionId);
        vm.assertEq(v.size, openSize - sold, "size");
        vm.assertEq(v.costBasis, OPEN_USDC - removed, "basis");
        vm.assertGe(v.costBasis * openSize, OPEN_USDC * (openSize - sold), "remaining basis rounds up");
        vm.assertEq(router.agentState(agentId).realizedPnlToday, int256(usdcOut) - int256(removed), "pnl");
        vm.assertEq(router.agentState(agentId).deployed, v.costBasis, "deployed = open basis");
    }

    function test_reduce_countsProceedsInTurnover() public {
        uint256 sold = openSize / 4;
        uint256 usdcOut = _sellQuote(sold, NVDA_PRICE, SPREAD_BPS);
        _reduce(positionId, sold);
        vm.assertEq(router.agentState(agentId).turnoverToday, OPEN_USDC + usdcOut, "turnover += proceeds");
    }

    // ------------------------------------------------------------------ closing

    function test_reduce_fullSizeClosesPosition() public {
        uint256 usdcOut = _sellQuote(openSize, NVDA_PRICE, SPREAD_BPS);
        ITradeRouter.ReducePosition memory p = _reduceIntent(positionId, openSize);
        bytes memory sig = _sign(p, AGENT_KEY);
        vm.expectEmit(true, true, true, true, address(router));
        emit ITradeRouter.PositionReduced(
            positionId, agentId, openSize, usdcOut, NVDA_PRICE, int256(usdcOut) - int256(OPEN_USDC), 0, 0
        );
        vm.expectEmit(true, true, true, true, address(router));
        emit ITradeRouter.PositionClosed(positionId, agentId, address(nvda));
        router.reducePosition(p, sig);

        ITradeRouter.PositionView memory v = router.position(positionId);
        vm.assertEq(v.positionId, positionId, "view id kept");
        vm.assertEq(v.agentId, agentId, "view agent kept");
        vm.assertEq(v.token, address(nvda), "view token kept");
        vm.assertFalse(v.open, "closed");
        vm.assertEq(v.size, 0, "size");
        vm.assertEq(v.costBasis, 0, "cost basis");
        vm.assertEq(v.exitsHash, bytes32(0), "ladder deleted");
        vm.assertEq(uint256(v.ruleCount), 0, "rule count");
        vm.assertEq(router.openPositionOf(agentId, address(nvda)), 0, "openPositionOf cleared");
        vm.assertEq(nvda.balanceOf(address(vault)), 0, "all tokens sold");

        ITradeRouter.AgentStateView memory st = router.agentState(agentId);
        vm.assertEq(st.deployed, 0, "deployed freed");
        vm.assertEq(st.realizedPnlToday, int256(usdcOut) - int256(OPEN_USDC), "pnl of the whole basis");
    }

    function test_reduce_emitsPositionClosed() public {
        ITradeRouter.ReducePosition memory p = _reduceIntent(positionId, openSize);
        bytes memory sig = _sign(p, AGENT_KEY);
        vm.expectEmit(true, true, true, true, address(router));
        emit ITradeRouter.PositionClosed(positionId, agentId, address(nvda));
        router.reducePosition(p, sig);
    }

    function test_reduce_aboveSizeClampsToSize() public {
        uint256 usdcOut = _sellQuote(openSize, NVDA_PRICE, SPREAD_BPS);
        ITradeRouter.ReducePosition memory p = _reduceIntent(positionId, type(uint256).max);
        bytes memory sig = _sign(p, AGENT_KEY);
        vm.expectEmit(true, true, true, true, address(router));
        emit ITradeRouter.PositionReduced(
            positionId, agentId, openSize, usdcOut, NVDA_PRICE, int256(usdcOut) - int256(OPEN_USDC), 0, 0
        );
        router.reducePosition(p, sig);
        vm.assertFalse(router.position(positionId).open, "closed");
        vm.assertEq(nvda.balanceOf(address(vault)), 0, "sold exactly the size");
    }

    function testFuzz_reduce_atOrAboveSizeCloses(uint256 tokenAmount) public {
        tokenAmount = bound(tokenAmount, openSize, type(uint256).max);
        _reduce(positionId, tokenAmount);
        vm.assertFalse(router.position(positionId).open, "closed");
        vm.assertEq(router.agentState(agentId).deployed, 0, "deployed");
        vm.assertEq(nvda.balanceOf(address(vault)), 0, "vault holds no NVDA");
    }

    /// @dev The agent quoted the full size, then a ladder exit sold half: the reduce sells what is left.
    function test_reduce_sellsRemainderAfterLadderExitShrankSize() public {
        ITradeRouter.ReducePosition memory p = _reduceIntent(positionId, openSize);
        bytes memory sig = _sign(p, AGENT_KEY);
        _setPrice(address(nvda), _priceAtPnl(positionId, 1_100)); // take-profit sells half
        router.executeExit(positionId, _defaultLadder());
        uint256 left = router.position(positionId).size;
        vm.assertLt(left, openSize, "shrunk");
        router.reducePosition(p, sig);
        vm.assertFalse(router.position(positionId).open, "closed");
        vm.assertEq(nvda.balanceOf(address(vault)), 0, "remainder sold");
    }

    // ------------------------------------------------------------------ position

    function test_reduce_revertsWhenPositionUnknown() public {
        _expectReduceReverts(
            _reduceIntent(999, 1e18), abi.encodeWithSelector(ITradeRouter.PositionNotFound.selector, uint256(999))
        );
    }

    function test_reduce_revertsOnAnotherAgentsPosition() public {
        vm.prank(admin);
        uint256 other = registry.registerAgent(vm.addr(OTHER_KEY), vaultId, testTrackId, ALLOCATION);
        ITradeRouter.OpenPosition memory o = _openIntent(address(aapl), 1_000e6, _defaultLadder());
        o.agentId = other;
        o.nonce = 0;
        uint256 theirs = router.openPosition(o, _defaultLadder(), _sign(o, OTHER_KEY));
        _expectReduceReverts(
            _reduceIntent(theirs, 1e18), abi.encodeWithSelector(ITradeRouter.PositionNotFound.selector, theirs)
        );
    }

    function test_reduce_revertsWhenPositionClosed() public {
        _reduce(positionId, openSize);
        _expectReduceReverts(
            _reduceIntent(positionId, 1e18), abi.encodeWithSelector(ITradeRouter.PositionNotOpen.selector, positionId)
        );
    }

    // ------------------------------------------------------------------ amounts and slippage

    function test_reduce_revertsOnZeroAmount() public {
        _expectReduceReverts(_reduceIntent(positionId, 0), abi.encodeWithSelector(ITradeRouter.ZeroAmount.selector));
    }

    function test_reduce_revertsOnSlippageBpsAboveFull() public {
        ITradeRouter.ReducePosition memory p = _reduceIntent(positionId, openSize / 2);
        p.maxSlippageBps = 10_001;
        _expectReduceReverts(p, abi.encodeWithSelector(ITradeRouter.InvalidSlippageBps.selector, uint256(10_001)));
    }

    function test_reduce_revertsWhenMinOutputNotMet() public {
        uint256 sold = openSize / 2;
        uint256 usdcOut = _sellQuote(sold, NVDA_PRICE, SPREAD_BPS);
        ITradeRouter.ReducePosition memory p = _reduceIntent(positionId, sold);
        p.minUsdcOut = usdcOut + 1;
        _expectReduceReverts(p, abi.encodeWithSelector(ITradeRouter.MinOutputNotMet.selector, usdcOut, usdcOut + 1));
    }

    function test_reduce_acceptsMinOutputEqualToProceeds() public {
        uint256 sold = openSize / 2;
        uint256 usdcOut = _sellQuote(sold, NVDA_PRICE, SPREAD_BPS);
        ITradeRouter.ReducePosition memory p = _reduceIntent(positionId, sold);
        p.minUsdcOut = usdcOut;
        router.reducePosition(p, _sign(p, AGENT_KEY));
        vm.assertEq(router.position(positionId).size, openSize - sold, "reduced");
    }

    function test_reduce_revertsWhenSlippageExceeded() public {
        vm.prank(admin);
        venue.setSpread(200);
        uint256 sold = openSize / 2;
        uint256 usdcOut = _sellQuote(sold, NVDA_PRICE, 200);
        _expectReduceReverts(
            _reduceIntent(positionId, sold),
            abi.encodeWithSelector(
                ITradeRouter.SlippageExceeded.selector, sold, usdcOut, NVDA_PRICE, uint256(DEFAULT_SLIPPAGE_BPS)
            )
        );
    }

    function test_reduce_slippageUsesClampedAmount() public {
        vm.prank(admin);
        venue.setSpread(200);
        uint256 usdcOut = _sellQuote(openSize, NVDA_PRICE, 200);
        _expectReduceReverts(
            _reduceIntent(positionId, openSize * 10),
            abi.encodeWithSelector(
                ITradeRouter.SlippageExceeded.selector, openSize, usdcOut, NVDA_PRICE, uint256(DEFAULT_SLIPPAGE_BPS)
            )
        );
    }

    /// @dev Proceeds round down at the venue; a dust sale worth less than one USDC base unit fills at
    ///      0, which is worse than oracle·(1 − bps) for any bps below 10000.
    function test_reduce_dustWhoseProceedsRoundToZeroRevertsSlippage() public {
        uint256 dust = 1e6; // 1e-12 NVDA
        vm.assertEq(_sellQuote(dust, NVDA_PRICE, SPREAD_BPS), 0, "rounds to zero");
        _expectReduceReverts(
            _reduceIntent(positionId, dust),
            abi.encodeWithSelector(
                ITradeRouter.SlippageExceeded.selector, dust, uint256(0), NVDA_PRICE, uint256(DEFAULT_SLIPPAGE_BPS)
            )
        );
    }

    function test_reduce_revertsWhenOraclePriceStale() public {
        vm.warp(START_TIME + MAX_PRICE_AGE + 1);
        _expectReduceReverts(
            _reduceIntent(positionId, openSize / 2),
            abi.encodeWithSelector(ITradeRouter.OraclePriceStale.selector, address(nvda), START_TIME, MAX_PRICE_AGE)
        );
    }

    function test_reduce_acceptsPriceExactlyMaxAge() public {
        vm.warp(START_TIME + MAX_PRICE_AGE);
        _reduce(positionId, openSize / 2);
        vm.assertEq(router.position(positionId).size, openSize - openSize / 2, "reduced");
    }

    // ------------------------------------------------------------------ never blocked by limits

    function test_reduce_notBlockedByDailyLossLimit() public {
        IAgentRegistry.Track memory t = _permissiveTrack();
        t.maxDailyLossBps = 1; // 10 USDC
        _useTrack(t);
        _setPrice(address(nvda), NVDA_PRICE * 9 / 10);
        _reduce(positionId, openSize / 2); // about −50 USDC
        int256 pnl = router.agentState(agentId).realizedPnlToday;
        vm.assertLe(pnl, -10e6, "limit reached");
        // Opens are now blocked...
        ITradeRouter.OpenPosition memory o = _openIntent(address(aapl), 100e6, _defaultLadder());
        bytes memory osig = _sign(o, AGENT_KEY);
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.DailyLossLimitReached.selector, pnl, uint256(10e6)));
        router.openPosition(o, _defaultLadder(), osig);
        // ...but reducing further, at a further loss, is not.
        _reduce(positionId, openSize);
        vm.assertFalse(router.position(positionId).open, "closed despite the loss limit");
    }

    function test_reduce_notBlockedWhenTurnoverExhausted() public {
        IAgentRegistry.Track memory t = _permissiveTrack();
        t.maxDailyTurnoverBps = 100; // 1,000 USDC: the open used it all
        _useTrack(t);
        uint256 sold = openSize / 2;
        uint256 usdcOut = _sellQuote(sold, NVDA_PRICE, SPREAD_BPS);
        _reduce(positionId, sold);
        vm.assertEq(router.agentState(agentId).turnoverToday, OPEN_USDC + usdcOut, "turnover above the maximum");
        _reduce(positionId, openSize);
        vm.assertFalse(router.position(positionId).open, "closed");
    }

    function test_reduce_notBlockedWhenAllocationCutToZero() public {
        vm.prank(admin);
        registry.setAllocation(agentId, 0);
        _reduce(positionId, openSize / 2);
        vm.assertEq(router.position(positionId).size, openSize - openSize / 2, "reduced");
        _reduce(positionId, openSize);
        vm.assertEq(router.agentState(agentId).deployed, 0, "deployed freed");
    }

    function test_reduce_notBlockedByTradeSize() public {
        IAgentRegistry.Track memory t = _permissiveTrack();
        t.maxTradeSizeBps = 1; // 10 USDC, far below the position
        _useTrack(t);
        _reduce(positionId, openSize);
        vm.assertFalse(router.position(positionId).open, "closed");
    }
}
