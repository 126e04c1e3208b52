// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IAgentRegistry} from "../src/interfaces/IAgentRegistry.sol";
import {ITradeRouter} from "../src/interfaces/ITradeRouter.sol";
import {EquityToken} from "../src/tokens/EquityToken.sol";
import {Fixture} from "./utils/Fixture.sol";
import {IntentSigner} from "./utils/IntentSigner.sol";

/// @notice `openPosition`: the happy path with its events and balances, and every revert an open can
///         hit after authorization (vault, allowlist, one-per-token, ladder, amounts, slippage, oracle).
contract TradeRouterOpenTest is Fixture {
    /// @dev The venue's buy at oracle price + spread, written out independently: usdc · 10^20 · 10^4 / (price · (10^4 + spread)).
    function _buyQuote(uint256 usdcIn, uint256 price, uint256 spreadBps) internal pure returns (uint256) {
        return usdcIn * 1e24 / (price * (10_000 + spreadBps));
    }

    function _sellQuote(uint256 tokensIn, uint256 price, uint256 spreadBps) internal pure returns (uint256) {
        return tokensIn * price * (10_000 - spreadBps) / 1e24;
    }

    function _ladderError(uint256 index, ITradeRouter.LadderError reason) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(ITradeRouter.ExitLadderInvalid.selector, index, reason);
    }

    /// @dev Signs an open of 1,000 USDC of NVDA with `exits` and expects it to revert with `err`.
    function _expectOpenReverts(ITradeRouter.ExitRule[] memory exits, bytes memory err) internal {
        ITradeRouter.OpenPosition memory p = _openIntent(address(nvda), 1_000e6, exits);
        bytes memory sig = _sign(p, AGENT_KEY);
        vm.expectRevert(err);
        router.openPosition(p, exits, sig);
    }

    function _expectOpenReverts(ITradeRouter.OpenPosition memory p, bytes memory err) internal {
        bytes memory sig = _sign(p, AGENT_KEY);
        ITradeRouter.ExitRule[] memory exits = _defaultLadder();
        vm.expectRevert(err);
        router.openPosition(p, exits, sig);
    }

    // ------------------------------------------------------------------ happy path

    function test_open_happyPath() public {
        uint256 usdcAmount = 1_000e6;
        ITradeRouter.ExitRule[] memory exits = _defaultLadder();
        ITradeRouter.OpenPosition memory p = _openIntent(address(nvda), usdcAmount, exits);
        bytes memory sig = _sign(p, AGENT_KEY);
        uint256 tokensOut = _buyQuote(usdcAmount, NVDA_PRICE, SPREAD_BPS);
        uint256 vaultUsdcBefore = usdc.balanceOf(address(vault));
        uint256 vaultNvdaBefore = nvda.balanceOf(address(vault));

        vm.expectEmit(true, true, true, true, address(router));
        emit ITradeRouter.PositionOpened(1, agentId, address(nvda), usdcAmount, tokensOut, NVDA_PRICE);
        vm.expectEmit(true, true, true, true, address(router));
        emit ITradeRouter.ExitLadderSet(1, agentId, IntentSigner.exitsHash(exits), exits);
        uint256 id = router.openPosition(p, exits, sig);

        vm.assertEq(id, 1, "first position id");
        vm.assertEq(usdc.balanceOf(address(vault)), vaultUsdcBefore - usdcAmount, "vault USDC down by usdcAmount");
        vm.assertEq(nvda.balanceOf(address(vault)), vaultNvdaBefore + tokensOut, "vault NVDA up by tokensOut");
        vm.assertEq(usdc.balanceOf(address(router)), 0, "router holds no USDC");
        vm.assertEq(nvda.balanceOf(address(router)), 0, "router holds no NVDA");

        ITradeRouter.PositionView memory v = router.position(id);
        vm.assertEq(v.positionId, id, "view id");
        vm.assertEq(v.agentId, agentId, "view agent");
        vm.assertEq(v.token, address(nvda), "view token");
        vm.assertTrue(v.open, "view open");
        vm.assertEq(v.size, tokensOut, "view size");
        vm.assertEq(v.costBasis, usdcAmount, "view cost basis");
        vm.assertEq(v.exitsHash, IntentSigner.exitsHash(exits), "view exits hash");
        vm.assertEq(uint256(v.ruleCount), 2, "view rule count");
        vm.assertEq(uint256(v.firedMask), 0, "view fired mask");

        vm.assertEq(router.openPositionOf(agentId, address(nvda)), id, "openPositionOf");
        vm.assertEq(router.openPositionOf(agentId, address(aapl)), 0, "no AAPL position");
        vm.assertEq(router.positionCount(), 1, "positionCount");

        ITradeRouter.AgentStateView memory st = router.agentState(agentId);
        vm.assertEq(st.nextNonce, 1, "nonce");
        vm.assertEq(st.deployed, usdcAmount, "deployed");
        vm.assertEq(st.turnoverToday, usdcAmount, "turnover");
        vm.assertEq(st.realizedPnlToday, int256(0), "pnl");
    }

    function test_open_emitsPositionOpened() public {
        ITradeRouter.ExitRule[] memory exits = _defaultLadder();
        ITradeRouter.OpenPosition memory p = _openIntent(address(aapl), 2_345e6, exits);
        bytes memory sig = _sign(p, AGENT_KEY);
        vm.expectEmit(true, true, true, true, address(router));
        emit ITradeRouter.PositionOpened(
            1, agentId, address(aapl), 2_345e6, _buyQuote(2_345e6, AAPL_PRICE, SPREAD_BPS), AAPL_PRICE
        );
        router.openPosition(p, exits, sig);
    }

    function test_open_emitsExitLadderSetWithFullRules() public {
        ITradeRouter.ExitRule[] memory exits =
            _ladder(_takeProfit(500, 2500), _stopLoss(-300, 5000), _stopLoss(-800, 10_000));
        ITradeRouter.OpenPosition memory p = _openIntent(address(nvda), 1_000e6, exits);
        bytes memory sig = _sign(p, AGENT_KEY);
        vm.expectEmit(true, true, true, true, address(router));
        emit ITradeRouter.ExitLadderSet(1, agentId, IntentSigner.exitsHash(exits), exits);
        router.openPosition(p, exits, sig);
        vm.assertEq(uint256(router.position(1).ruleCount), 3, "rule count");
    }

    function testFuzz_open_fillsAtVenueQuote(uint256 usdcAmount, uint256 price) public {
        usdcAmount = bound(usdcAmount, 1, ALLOCATION);
        price = bound(price, 1e6, 100_000e8); // $0.01 .. $100,000
        _setPrice(address(nvda), price);
        uint256 expected = _buyQuote(usdcAmount, price, SPREAD_BPS);
        vm.assume(expected > 0);
        uint256 id = _open(usdcAmount);
        ITradeRouter.PositionView memory v = router.position(id);
        vm.assertEq(v.size, expected, "size = venue quote");
        vm.assertEq(v.costBasis, usdcAmount, "cost basis = usdcAmount");
        vm.assertEq(nvda.balanceOf(address(vault)), expected, "vault holds the tokens");
        vm.assertEq(usdc.balanceOf(address(vault)), VAULT_FUNDS - usdcAmount, "vault paid usdcAmount");
    }

    // ------------------------------------------------------------------ vault / token

    function test_open_revertsOnVaultMismatch() public {
        ITradeRouter.OpenPosition memory p = _openIntent(address(nvda), 1_000e6, _defaultLadder());
        p.vault = address(0xDEAD);
        _expectOpenReverts(p, abi.encodeWithSelector(ITradeRouter.VaultMismatch.selector, address(vault), address(0xDEAD)));
    }

    function test_open_revertsWhenTokenRegisteredButNotAllowed() public {
        vm.prank(admin);
        tokenRegistry.setAllowed(vaultId, address(aapl), false);
        ITradeRouter.OpenPosition memory p = _openIntent(address(aapl), 1_000e6, _defaultLadder());
        _expectOpenReverts(p, abi.encodeWithSelector(ITradeRouter.TokenNotAllowed.selector, vaultId, address(aapl)));
    }

    function test_open_revertsWhenTokenUnregistered() public {
        EquityToken tsla = new EquityToken("Tesla (tokenized)", "TSLA", address(venue));
        _setPrice(address(tsla), 300e8);
        ITradeRouter.OpenPosition memory p = _openIntent(address(tsla), 1_000e6, _defaultLadder());
        _expectOpenReverts(p, abi.encodeWithSelector(ITradeRouter.TokenNotAllowed.selector, vaultId, address(tsla)));
    }

    function test_open_revertsWhenTokenAllowedForAnotherVaultOnly() public {
        vm.startPrank(admin);
        uint256 otherVaultId = registry.registerVault(address(0x7A017));
        tokenRegistry.setAllowed(vaultId, address(aapl), false);
        tokenRegistry.setAllowed(otherVaultId, address(aapl), true);
        vm.stopPrank();
        ITradeRouter.OpenPosition memory p = _openIntent(address(aapl), 1_000e6, _defaultLadder());
        _expectOpenReverts(p, abi.encodeWithSelector(ITradeRouter.TokenNotAllowed.selector, vaultId, address(aapl)));
    }

    // ------------------------------------------------------------------ one position per token

    function test_open_revertsWhenPositionExists() public {
        uint256 id = _open(1_000e6);
        ITradeRouter.OpenPosition memory p = _openIntent(address(nvda), 500e6, _defaultLadder());
        _expectOpenReverts(p, abi.encodeWithSelector(ITradeRouter.PositionExists.selector, agentId, address(nvda), id));
    }

    function test_open_differentTokenIsFine() public {
        uint256 first = _open(1_000e6);
        uint256 second = _open(address(aapl), 1_000e6, _defaultLadder());
        vm.assertEq(first, 1, "NVDA id");
        vm.assertEq(second, 2, "AAPL id");
        vm.assertEq(router.openPositionOf(agentId, address(nvda)), first, "NVDA open");
        vm.assertEq(router.openPositionOf(agentId, address(aapl)), second, "AAPL open");
        vm.assertEq(router.positionCount(), 2, "positionCount");
    }

    function test_open_sameTokenForAnotherAgentIsFine() public {
        _open(1_000e6);
        vm.prank(admin);
        uint256 other = registry.registerAgent(vm.addr(OTHER_KEY), vaultId, testTrackId, ALLOCATION);
        ITradeRouter.OpenPosition memory p = _openIntent(address(nvda), 1_000e6, _defaultLadder());
        p.agentId = other;
        p.nonce = 0;
        uint256 id = router.openPosition(p, _defaultLadder(), _sign(p, OTHER_KEY));
        vm.assertEq(id, 2, "second agent's NVDA position");
        vm.assertEq(router.openPositionOf(other, address(nvda)), 2, "openPositionOf other");
        vm.assertEq(router.openPositionOf(agentId, address(nvda)), 1, "first agent's untouched");
    }

    function test_open_afterCloseReopensWithNewId() public {
        uint256 first = _open(1_000e6);
        _reduce(first, router.position(first).size);
        vm.assertEq(router.openPositionOf(agentId, address(nvda)), 0, "closed");

        uint256 second = _open(2_000e6);
        vm.assertEq(second, 2, "new id");
        vm.assertFalse(router.position(first).open, "old position stays closed");
        vm.assertEq(router.position(first).size, 0, "old position has no size");
        ITradeRouter.PositionView memory v = router.position(second);
        vm.assertTrue(v.open, "new position open");
        vm.assertEq(v.costBasis, 2_000e6, "new cost basis, nothing carried over");
        vm.assertEq(router.openPositionOf(agentId, address(nvda)), second, "openPositionOf new id");
    }

    // ------------------------------------------------------------------ ladder

    function test_open_revertsOnExitsHashMismatch() public {
        ITradeRouter.ExitRule[] memory signed = _defaultLadder();
        ITradeRouter.ExitRule[] memory sent = _ladder(_takeProfit(1000, 5000), _stopLoss(-2000, 10_000));
        ITradeRouter.OpenPosition memory p = _openIntent(address(nvda), 1_000e6, signed);
        bytes memory sig = _sign(p, AGENT_KEY);
        vm.expectRevert(
            abi.encodeWithSelector(
                ITradeRouter.ExitsHashMismatch.selector, IntentSigner.exitsHash(sent), IntentSigner.exitsHash(signed)
            )
        );
        router.openPosition(p, sent, sig);
    }

    function test_open_revertsOnExitsReordered() public {
        ITradeRouter.ExitRule[] memory signed = _defaultLadder();
        ITradeRouter.ExitRule[] memory sent = _ladder(signed[1], signed[0]);
        ITradeRouter.OpenPosition memory p = _openIntent(address(nvda), 1_000e6, signed);
        bytes memory sig = _sign(p, AGENT_KEY);
        vm.expectRevert(
            abi.encodeWithSelector(
                ITradeRouter.ExitsHashMismatch.selector, IntentSigner.exitsHash(sent), IntentSigner.exitsHash(signed)
            )
        );
        router.openPosition(p, sent, sig);
    }

    function test_open_revertsOnEmptyLadder() public {
        _expectOpenReverts(new ITradeRouter.ExitRule[](0), _ladderError(0, ITradeRouter.LadderError.Empty));
    }

    function test_open_revertsOnNineRules() public {
        ITradeRouter.ExitRule[] memory exits = new ITradeRouter.ExitRule[](9);
        for (uint256 i; i < 8; ++i) {
            exits[i] = _stopLoss(-int32(int256(100 * (i + 1))), 1000);
        }
        exits[8] = _stopLoss(-5000, 10_000);
        _expectOpenReverts(exits, _ladderError(8, ITradeRouter.LadderError.TooManyRules));
    }

    function test_open_acceptsEightRules() public {
        ITradeRouter.ExitRule[] memory exits = new ITradeRouter.ExitRule[](8);
        for (uint256 i; i < 7; ++i) {
            exits[i] = _takeProfit(int32(int256(100 * (i + 1))), 1000);
        }
        exits[7] = _stopLoss(-5000, 10_000);
        uint256 id = _open(address(nvda), 1_000e6, exits);
        vm.assertEq(uint256(router.position(id).ruleCount), 8, "eight rules");
    }

    function test_open_revertsWhenLastRuleNotFull() public {
        _expectOpenReverts(
            _ladder(_stopLoss(-1000, 10_000), _takeProfit(1000, 9_999)),
            _ladderError(1, ITradeRouter.LadderError.LastRuleNotFull)
        );
    }

    function test_open_revertsWhenStopLossRequired() public {
        // The fixture's `test` track requires a stop-loss.
        _expectOpenReverts(
            _ladder(_takeProfit(1000, 10_000)), _ladderError(1, ITradeRouter.LadderError.StopLossRequired)
        );
    }

    function test_open_revertsWhenTakeProfitRequired() public {
        IAgentRegistry.Track memory t = _permissiveTrack();
        t.requireTakeProfit = true;
        _useTrack(t);
        _expectOpenReverts(
            _ladder(_stopLoss(-1000, 10_000)), _ladderError(1, ITradeRouter.LadderError.TakeProfitRequired)
        );
    }

    function test_open_revertsOnInvalidTriggerType() public {
        _expectOpenReverts(
            _ladder(_stopLoss(-1000, 5_000), _rule(2, -1000, 10_000)),
            _ladderError(1, ITradeRouter.LadderError.InvalidTriggerType)
        );
    }

    function test_open_revertsOnStopLossNotNegative() public {
        _expectOpenReverts(_ladder(_stopLoss(0, 10_000)), _ladderError(0, ITradeRouter.LadderError.StopLossNotNegative));
    }

    function test_open_revertsOnTakeProfitNotPositive() public {
        _expectOpenReverts(
            _ladder(_takeProfit(0, 5_000), _stopLoss(-1000, 10_000)),
            _ladderError(0, ITradeRouter.LadderError.TakeProfitNotPositive)
        );
    }

    function test_open_revertsOnExitBpsZero() public {
        _expectOpenReverts(
            _ladder(_takeProfit(1000, 0), _stopLoss(-1000, 10_000)),
            _ladderError(0, ITradeRouter.LadderError.ExitBpsOutOfRange)
        );
    }

    function test_open_revertsOnExitBpsAboveFull() public {
        _expectOpenReverts(
            _ladder(_stopLoss(-1000, 10_001)), _ladderError(0, ITradeRouter.LadderError.ExitBpsOutOfRange)
        );
    }

    function test_open_revertsOnStopLossBeyondTrack() public {
        // test track: maxStopLossBps 9000; −9000 is allowed, −9001 is not.
        _expectOpenReverts(
            _ladder(_stopLoss(-9001, 10_000)), _ladderError(0, ITradeRouter.LadderError.StopLossBeyondTrack)
        );
        _open(address(nvda), 1_000e6, _ladder(_stopLoss(-9000, 10_000)));
    }

    function test_open_revertsOnTakeProfitBelowTrack() public {
        IAgentRegistry.Track memory t = _permissiveTrack();
        t.minTakeProfitBps = 200;
        _useTrack(t);
        _expectOpenReverts(
            _ladder(_takeProfit(199, 5000), _stopLoss(-1000, 10_000)),
            _ladderError(0, ITradeRouter.LadderError.TakeProfitBelowTrack)
        );
        _open(address(nvda), 1_000e6, _ladder(_takeProfit(200, 5000), _stopLoss(-1000, 10_000)));
    }

    function test_open_revertsOnTakeProfitAboveTrack() public {
        IAgentRegistry.Track memory t = _permissiveTrack();
        t.maxTakeProfitBps = 5_000;
        _useTrack(t);
        _expectOpenReverts(
            _ladder(_stopLoss(-1000, 5000), _takeProfit(5_001, 10_000)),
            _ladderError(1, ITradeRouter.LadderError.TakeProfitAboveTrack)
        );
        _open(address(nvda), 1_000e6, _ladder(_stopLoss(-1000, 5000), _takeProfit(5_000, 10_000)));
    }

    // ------------------------------------------------------------------ amounts and slippage

    function test_open_revertsOnZeroAmount() public {
        ITradeRouter.OpenPosition memory p = _openIntent(address(nvda), 0, _defaultLadder());
        _expectOpenReverts(p, abi.encodeWithSelector(ITradeRouter.ZeroAmount.selector));
    }

    function test_open_revertsOnSlippageBpsAboveFull() public {
        ITradeRouter.OpenPosition memory p = _openIntent(address(nvda), 1_000e6, _defaultLadder());
        p.maxSlippageBps = 10_001;
        _expectOpenReverts(p, abi.encodeWithSelector(ITradeRouter.InvalidSlippageBps.selector, uint256(10_001)));
    }

    function test_open_acceptsSlippageBpsFull() public {
        ITradeRouter.OpenPosition memory p = _openIntent(address(nvda), 1_000e6, _defaultLadder());
        p.maxSlippageBps = 10_000;
        router.openPosition(p, _defaultLadder(), _sign(p, AGENT_KEY));
        vm.assertEq(router.positionCount(), 1, "opened");
    }

    function test_open_revertsWhenMinOutputNotMet() public {
        uint256 fill = _buyQuote(1_000e6, NVDA_PRICE, SPREAD_BPS);
        ITradeRouter.OpenPosition memory p = _openIntent(address(nvda), 1_000e6, _defaultLadder());
        p.minTokenOut = fill + 1;
        _expectOpenReverts(p, abi.encodeWithSelector(ITradeRouter.MinOutputNotMet.selector, fill, fill + 1));
    }

    function test_open_acceptsMinOutputEqualToFill() public {
        uint256 fill = _buyQuote(1_000e6, NVDA_PRICE, SPREAD_BPS);
        ITradeRouter.OpenPosition memory p = _openIntent(address(nvda), 1_000e6, _defaultLadder());
        p.minTokenOut = fill;
        uint256 id = router.openPosition(p, _defaultLadder(), _sign(p, AGENT_KEY));
        vm.assertEq(router.position(id).size, fill, "filled exactly the floor");
    }

    function test_open_revertsWhenSlippageExceeded() public {
        vm.prank(admin);
        venue.setSpread(200); // 2% worse than oracle, signed maximum is 1%
        uint256 fill = _buyQuote(1_000e6, NVDA_PRICE, 200);
        ITradeRouter.OpenPosition memory p = _openIntent(address(nvda), 1_000e6, _defaultLadder());
        _expectOpenReverts(
            p,
            abi.encodeWithSelector(
                ITradeRouter.SlippageExceeded.selector, uint256(1_000e6), fill, NVDA_PRICE, uint256(DEFAULT_SLIPPAGE_BPS)
            )
        );
    }

    function test_open_revertsWhenSlippageZeroAndSpreadPositive() public {
        uint256 fill = _buyQuote(1_000e6, NVDA_PRICE, SPREAD_BPS);
        ITradeRouter.OpenPosition memory p = _openIntent(address(nvda), 1_000e6, _defaultLadder());
        p.maxSlippageBps = 0;
        _expectOpenReverts(
            p, abi.encodeWithSelector(ITradeRouter.SlippageExceeded.selector, uint256(1_000e6), fill, NVDA_PRICE, uint256(0))
        );
    }

    function test_open_acceptsSpreadBelowMaxSlippage() public {
        vm.prank(admin);
        venue.setSpread(99);
        uint256 id = _open(1_000e6); // maxSlippageBps 100
        vm.assertEq(router.position(id).size, _buyQuote(1_000e6, NVDA_PRICE, 99), "filled at 99 bps");
    }

    // ------------------------------------------------------------------ oracle

    function test_open_revertsWhenOraclePriceStale() public {
        vm.warp(START_TIME + MAX_PRICE_AGE + 1);
        ITradeRouter.OpenPosition memory p = _openIntent(address(nvda), 1_000e6, _defaultLadder());
        _expectOpenReverts(
            p, abi.encodeWithSelector(ITradeRouter.OraclePriceStale.selector, address(nvda), START_TIME, MAX_PRICE_AGE)
        );
    }

    function test_open_acceptsPriceExactlyMaxAge() public {
        vm.warp(START_TIME + MAX_PRICE_AGE);
        uint256 id = _open(1_000e6);
        vm.assertTrue(router.position(id).open, "opened at the age limit");
    }

    function test_open_freshPriceAfterUpdateAccepts() public {
        vm.warp(START_TIME + 10 * MAX_PRICE_AGE);
        _setPrice(address(nvda), 200e8);
        uint256 id = _open(1_000e6);
        vm.assertEq(router.position(id).size, _buyQuote(1_000e6, 200e8, SPREAD_BPS), "fills at the new price");
    }

    // ------------------------------------------------------------------ packed storage bounds

    /// @dev A fill above 2^128 − 1 tokens does not fit the packed holding: reachable with an absurd
    ///      allocation and a price of 1e-8 USD.
    function test_open_revertsWhenTokensOutTooLarge() public {
        uint256 usdcAmount = 4e18; // 4e12 USDC
        vm.startPrank(admin);
        usdc.mint(address(vault), usdcAmount);
        registry.setAllocation(agentId, usdcAmount);
        oracle.setPrice(address(nvda), 1);
        vm.stopPrank();
        uint256 tokensOut = _buyQuote(usdcAmount, 1, SPREAD_BPS);
        vm.assertGt(tokensOut, type(uint128).max, "fill exceeds uint128");
        ITradeRouter.OpenPosition memory p = _openIntent(address(nvda), usdcAmount, _defaultLadder());
        _expectOpenReverts(p, abi.encodeWithSelector(ITradeRouter.AmountTooLarge.selector, tokensOut));
    }
}
