// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IAgentRegistry} from "../src/interfaces/IAgentRegistry.sol";
import {ITradeRouter} from "../src/interfaces/ITradeRouter.sol";
import {Fixture} from "./utils/Fixture.sol";

/// @notice `addToPosition`: size and cost basis grow (average entry), and every revert an add can hit
///         after authorization, including the track limits that apply to adds as to opens.
contract TradeRouterAddTest is Fixture {
    uint256 internal positionId;
    uint256 internal openSize;

    function setUp() public override {
        super.setUp();
        positionId = _open(1_000e6);
        openSize = router.position(positionId).size;
    }

    function _buyQuote(uint256 usdcIn, uint256 price, uint256 spreadBps) internal pure returns (uint256) {
        return usdcIn * 1e24 / (price * (10_000 + spreadBps));
    }

    function _expectAddReverts(ITradeRouter.AddToPosition memory p, bytes memory err) internal {
        bytes memory sig = _sign(p, AGENT_KEY);
        vm.expectRevert(err);
        router.addToPosition(p, sig);
    }

    function _registerOtherAgent() internal returns (uint256 other) {
        vm.prank(admin);
        other = registry.registerAgent(vm.addr(OTHER_KEY), vaultId, testTrackId, ALLOCATION);
    }

    function _openAs(uint256 agent, uint256 key, address token, uint256 usdcAmount) internal returns (uint256) {
        ITradeRouter.OpenPosition memory p = _openIntent(token, usdcAmount, _defaultLadder());
        p.agentId = agent;
        p.nonce = router.nextNonce(agent);
        return router.openPosition(p, _defaultLadder(), _sign(p, key));
    }

    // ------------------------------------------------------------------ happy path

    function test_add_raisesSizeAndCostBasis() public {
        uint256 addPrice = 200e8;
        _setPrice(address(nvda), addPrice);
        uint256 tokensOut = _buyQuote(500e6, addPrice, SPREAD_BPS);
        uint256 vaultUsdcBefore = usdc.balanceOf(address(vault));
        uint256 vaultNvdaBefore = nvda.balanceOf(address(vault));

        _add(positionId, 500e6);

        ITradeRouter.PositionView memory v = router.position(positionId);
        vm.assertTrue(v.open, "still open");
        vm.assertEq(v.size, openSize + tokensOut, "size = both fills");
        vm.assertEq(v.costBasis, 1_500e6, "cost basis = both amounts");
        vm.assertEq(usdc.balanceOf(address(vault)), vaultUsdcBefore - 500e6, "vault paid the add");
        vm.assertEq(nvda.balanceOf(address(vault)), vaultNvdaBefore + tokensOut, "vault received the tokens");

        // Average entry (8-decimal USD per token) = costBasis / size, between the two fill prices.
        uint256 entry = v.costBasis * 1e20 / v.size;
        uint256 firstFill = uint256(1_000e6) * 1e20 / openSize;
        uint256 secondFill = uint256(500e6) * 1e20 / tokensOut;
        vm.assertGt(entry, firstFill, "entry above the first fill");
        vm.assertLt(entry, secondFill, "entry below the second fill");
        vm.assertEq(entry, (1_000e6 + 500e6) * 1e20 / (openSize + tokensOut), "weighted average");

        ITradeRouter.AgentStateView memory st = router.agentState(agentId);
        vm.assertEq(st.deployed, 1_500e6, "deployed counts the add");
        vm.assertEq(st.turnoverToday, 1_500e6, "turnover counts the add");
        vm.assertEq(st.nextNonce, 2, "nonce");
        vm.assertEq(router.positionCount(), 1, "no new position id");
        vm.assertEq(router.openPositionOf(agentId, address(nvda)), positionId, "same position");
    }

    function test_add_emitsPositionIncreased() public {
        uint256 addPrice = 175e8;
        _setPrice(address(nvda), addPrice);
        uint256 tokensOut = _buyQuote(750e6, addPrice, SPREAD_BPS);
        ITradeRouter.AddToPosition memory p = _addIntent(positionId, 750e6);
        bytes memory sig = _sign(p, AGENT_KEY);
        vm.expectEmit(true, true, true, true, address(router));
        emit ITradeRouter.PositionIncreased(
            positionId, agentId, 750e6, tokensOut, addPrice, openSize + tokensOut, 1_750e6
        );
        router.addToPosition(p, sig);
    }

    function test_add_keepsLadder() public {
        bytes32 hashBefore = router.position(positionId).exitsHash;
        _add(positionId, 100e6);
        ITradeRouter.PositionView memory v = router.position(positionId);
        vm.assertEq(v.exitsHash, hashBefore, "ladder hash unchanged");
        vm.assertEq(uint256(v.ruleCount), 2, "rule count unchanged");
    }

    function testFuzz_add_costBasisAndSizeAccumulate(uint256 amount, uint256 price) public {
        amount = bound(amount, 1, ALLOCATION - 1_000e6);
        price = bound(price, 1e6, 100_000e8);
        _setPrice(address(nvda), price);
        uint256 tokensOut = _buyQuote(amount, price, SPREAD_BPS);
        vm.assume(tokensOut > 0);
        _add(positionId, amount);
        ITradeRouter.PositionView memory v = router.position(positionId);
        vm.assertEq(v.size, openSize + tokensOut, "size");
        vm.assertEq(v.costBasis, 1_000e6 + amount, "cost basis");
        vm.assertEq(router.agentState(agentId).deployed, 1_000e6 + amount, "deployed");
    }

    // ------------------------------------------------------------------ position

    function test_add_revertsWhenPositionUnknown() public {
        _expectAddReverts(
            _addIntent(999, 100e6), abi.encodeWithSelector(ITradeRouter.PositionNotFound.selector, uint256(999))
        );
    }

    function test_add_revertsWhenPositionIdZero() public {
        _expectAddReverts(_addIntent(0, 100e6), abi.encodeWithSelector(ITradeRouter.PositionNotFound.selector, uint256(0)));
    }

    function test_add_revertsOnAnotherAgentsPosition() public {
        uint256 other = _registerOtherAgent();
        uint256 theirs = _openAs(other, OTHER_KEY, address(aapl), 1_000e6);
        _expectAddReverts(_addIntent(theirs, 100e6), abi.encodeWithSelector(ITradeRouter.PositionNotFound.selector, theirs));
        vm.assertEq(router.position(theirs).costBasis, 1_000e6, "their position untouched");
    }

    function test_add_revertsWhenPositionClosed() public {
        _reduce(positionId, openSize);
        _expectAddReverts(
            _addIntent(positionId, 100e6), abi.encodeWithSelector(ITradeRouter.PositionNotOpen.selector, positionId)
        );
    }

    function test_add_revertsOnClosedIdAfterReopen() public {
        _reduce(positionId, openSize);
        uint256 reopened = _open(1_000e6);
        _expectAddReverts(
            _addIntent(positionId, 100e6), abi.encodeWithSelector(ITradeRouter.PositionNotOpen.selector, positionId)
        );
        _add(reopened, 100e6);
        vm.assertEq(router.position(reopened).costBasis, 1_100e6, "the new id takes adds");
    }

    function test_add_revertsWhenTokenDisallowed() public {
        vm.prank(admin);
        tokenRegistry.setAllowed(vaultId, address(nvda), false);
        _expectAddReverts(
            _addIntent(positionId, 100e6),
            abi.encodeWithSelector(ITradeRouter.TokenNotAllowed.selector, vaultId, address(nvda))
        );
    }

    // ------------------------------------------------------------------ amounts and slippage

    function test_add_revertsOnZeroAmount() public {
        _expectAddReverts(_addIntent(positionId, 0), abi.encodeWithSelector(ITradeRouter.ZeroAmount.selector));
    }

    function test_add_revertsOnSlippageBpsAboveFull() public {
        ITradeRouter.AddToPosition memory p = _addIntent(positionId, 100e6);
        p.maxSlippageBps = 10_001;
        _expectAddReverts(p, abi.encodeWithSelector(ITradeRouter.InvalidSlippageBps.selector, uint256(10_001)));
    }

    function test_add_revertsWhenMinOutputNotMet() public {
        uint256 fill = _buyQuote(100e6, NVDA_PRICE, SPREAD_BPS);
        ITradeRouter.AddToPosition memory p = _addIntent(positionId, 100e6);
        p.minTokenOut = fill + 1;
        _expectAddReverts(p, abi.encodeWithSelector(ITradeRouter.MinOutputNotMet.selector, fill, fill + 1));
    }

    function test_add_revertsWhenSlippageExceeded() public {
        vm.prank(admin);
        venue.setSpread(150);
        uint256 fill = _buyQuote(100e6, NVDA_PRICE, 150);
        _expectAddReverts(
            _addIntent(positionId, 100e6),
            abi.encodeWithSelector(
                ITradeRouter.SlippageExceeded.selector, uint256(100e6), fill, NVDA_PRICE, uint256(DEFAULT_SLIPPAGE_BPS)
            )
        );
    }

    function test_add_revertsWhenOraclePriceStale() public {
        vm.warp(START_TIME + MAX_PRICE_AGE + 1);
        _expectAddReverts(
            _addIntent(positionId, 100e6),
            abi.encodeWithSelector(ITradeRouter.OraclePriceStale.selector, address(nvda), START_TIME, MAX_PRICE_AGE)
        );
    }

    function test_add_acceptsPriceExactlyMaxAge() public {
        vm.warp(START_TIME + MAX_PRICE_AGE);
        _add(positionId, 100e6);
        vm.assertEq(router.position(positionId).costBasis, 1_100e6, "added");
    }

    // ------------------------------------------------------------------ limits apply to adds

    function test_add_revertsWhenTradeSizeExceeded() public {
        IAgentRegistry.Track memory t = _permissiveTrack();
        t.maxTradeSizeBps = 1_000; // 10,000 USDC
        _useTrack(t);
        _expectAddReverts(
            _addIntent(positionId, 10_000e6 + 1),
            abi.encodeWithSelector(ITradeRouter.TradeSizeExceeded.selector, uint256(10_000e6 + 1), uint256(10_000e6))
        );
        _add(positionId, 10_000e6);
    }

    function test_add_revertsWhenHeadroomExceeded() public {
        // 1,000 deployed by the open: 99,000 headroom.
        _expectAddReverts(
            _addIntent(positionId, 99_000e6 + 1),
            abi.encodeWithSelector(ITradeRouter.HeadroomExceeded.selector, uint256(99_000e6 + 1), uint256(99_000e6))
        );
        _add(positionId, 99_000e6);
        vm.assertEq(router.agentState(agentId).deployed, ALLOCATION, "fully deployed");
    }

    function test_add_revertsWhenDailyTurnoverExceeded() public {
        IAgentRegistry.Track memory t = _permissiveTrack();
        t.maxDailyTurnoverBps = 500; // 5,000 USDC; the open already used 1,000
        _useTrack(t);
        _expectAddReverts(
            _addIntent(positionId, 4_000e6 + 1),
            abi.encodeWithSelector(ITradeRouter.DailyTurnoverExceeded.selector, uint256(5_000e6 + 1), uint256(5_000e6))
        );
        _add(positionId, 4_000e6);
    }

    function test_add_revertsWhenDailyLossLimitReached() public {
        IAgentRegistry.Track memory t = _permissiveTrack();
        t.maxDailyLossBps = 1; // 10 USDC
        _useTrack(t);
        uint256 second = _open(address(aapl), 1_000e6, _defaultLadder());
        _setPrice(address(aapl), AAPL_PRICE * 9 / 10);
        _reduce(second, router.position(second).size); // a loss of about 100 USDC
        int256 pnl = router.agentState(agentId).realizedPnlToday;
        vm.assertLe(pnl, -10e6, "loss beyond the limit");
        _expectAddReverts(
            _addIntent(positionId, 100e6),
            abi.encodeWithSelector(ITradeRouter.DailyLossLimitReached.selector, pnl, uint256(10e6))
        );
    }

    function test_add_revertsWhenSizeDoesNotFitStorage() public {
        // A price of 1e-8 USD and an absurd allocation: the summed size exceeds 2^128 − 1.
        vm.startPrank(admin);
        usdc.mint(address(vault), 5e18);
        registry.setAllocation(agentId, 5e18);
        oracle.setPrice(address(aapl), 1);
        vm.stopPrank();
        uint256 id = _open(address(aapl), 3e18, _defaultLadder());
        uint256 size = router.position(id).size;
        uint256 tokensOut = _buyQuote(1e18, 1, SPREAD_BPS);
        vm.assertGt(size + tokensOut, type(uint128).max, "sum exceeds uint128");
        _expectAddReverts(
            _addIntent(id, 1e18), abi.encodeWithSelector(ITradeRouter.AmountTooLarge.selector, size + tokensOut)
        );
    }
}
