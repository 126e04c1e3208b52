// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IPriceOracle} from "../src/interfaces/IPriceOracle.sol";
import {ITradeRouter} from "../src/interfaces/ITradeRouter.sol";
import {PriceOracle} from "../src/PriceOracle.sol";
import {Fixture} from "./utils/Fixture.sol";
import {TestBase} from "./utils/Vm.sol";

/// @dev The market around a split: the pre-split quote `pre` (per share, under the old multiplier) and
///      the post-split quote `post = pre·den/num` (under the new one, `old·num/den`), pushed in any order
///      relative to `effectiveAt` and to each other. `num:den` is the split ratio (2:1, 1:10, ...).
abstract contract SplitScenario is TestBase {
    uint256 internal constant ONE = 1e18;

    struct Split {
        address token;
        uint256 pre;
        uint256 post;
        uint256 oldEpoch;
        uint256 effectiveAt;
    }

    function _oracle() internal view virtual returns (PriceOracle);
    function _operator() internal view virtual returns (address);

    /// @dev Schedules the split `num:den` at `effectiveAt`, from the multiplier in force.
    function _scheduleSplit(address token, uint256 pre, uint256 num, uint256 den, uint256 effectiveAt)
        internal
        returns (Split memory s)
    {
        PriceOracle oracle = _oracle();
        (uint256 current,,) = oracle.multiplierOf(token);
        s = Split({
            token: token,
            pre: pre,
            post: pre * den / num,
            oldEpoch: oracle.multiplierEpochOf(token),
            effectiveAt: effectiveAt
        });
        vm.prank(_operator());
        oracle.scheduleMultiplier(token, current * num / den, effectiveAt);
    }

    /// @dev One step chosen by `action`: 0 the pre-split quote (old epoch), 1 the post-split quote (new
    ///      epoch), 2 time passes by `dt` (possibly across `effectiveAt`, with no transaction).
    function _step(Split memory s, uint256 action, uint256 dt) internal {
        PriceOracle oracle = _oracle();
        if (action == 2) {
            vm.warp(block.timestamp + dt);
            return;
        }
        vm.prank(_operator());
        if (action == 0) oracle.setQuote(s.token, s.pre, s.oldEpoch, IPriceOracle.MarketStatus.Regular);
        else oracle.setQuote(s.token, s.post, s.oldEpoch + 1, IPriceOracle.MarketStatus.Regular);
    }
}

/// @notice The split rule (IPriceOracle): a round is priced at the multiplier it was quoted under, so the
///         per-token price never moves by the split ratio, whichever of the share price and the
///         multiplier changes first.
contract PriceOracleSplitTest is SplitScenario {
    address internal admin = address(0xAD);
    address internal nvda = address(0x4E5DA);
    uint256 internal constant T0 = 1_750_000_000;

    PriceOracle internal oracle;

    function setUp() public {
        vm.warp(T0);
        oracle = new PriceOracle(admin);
    }

    function _oracle() internal view override returns (PriceOracle) {
        return oracle;
    }

    function _operator() internal view override returns (address) {
        return admin;
    }

    function _price() internal view returns (uint256 price) {
        (price,,) = oracle.latestPrice(nvda);
    }

    // ------------------------------------------------------------------ named cases

    function test_split_2for1_feedEarly_tokenPriceUnchanged() public {
        vm.prank(admin);
        oracle.setQuote(nvda, 180e8, 0, IPriceOracle.MarketStatus.Regular);
        Split memory s = _scheduleSplit(nvda, 180e8, 2, 1, T0 + 1 days);
        _step(s, 1, 0); // the feed quotes 90 a day early, tagged with epoch 1
        vm.assertEq(_price(), 180e8, "90/share x 2 shares/token");
        _step(s, 2, 1 days); // effectiveAt passes
        vm.assertEq(_price(), 180e8, "unchanged at effectiveAt");
        _step(s, 1, 0);
        vm.assertEq(_price(), 180e8, "and after");
    }

    function test_split_1for10_feedLate_tokenPriceUnchanged() public {
        vm.prank(admin);
        oracle.setQuote(nvda, 3e8, 0, IPriceOracle.MarketStatus.Regular);
        Split memory s = _scheduleSplit(nvda, 3e8, 1, 10, T0 + 1 hours);
        _step(s, 2, 2 hours); // the multiplier is 0.1 now, the feed still quotes 3.00 (pre-split)
        vm.assertEq(_price(), 3e8, "no push: the round keeps its multiplier");
        _step(s, 0, 0); // a late pre-split quote, tagged with epoch 0
        vm.assertEq(_price(), 3e8, "old quote at the old multiplier");
        _step(s, 1, 0); // the post-split quote 30.00 at 0.1
        vm.assertEq(_price(), 3e8, "new quote at the new multiplier");
    }

    /// @notice What the tag prevents: the same late quote pushed with the legacy setter (tagged with the
    ///         multiplier in force) doubles the per-token price. Feeds around a split use `setQuote`.
    function test_split_legacySetPriceLate_jumpsByTheRatio() public {
        vm.prank(admin);
        oracle.setPrice(nvda, 180e8);
        _scheduleSplit(nvda, 180e8, 2, 1, T0 + 1);
        vm.warp(T0 + 1);
        vm.prank(admin);
        oracle.setPrice(nvda, 180e8);
        vm.assertEq(_price(), 360e8, "untagged late quote x new multiplier");
    }

    // ------------------------------------------------------------------ fuzzed orderings

    /// @notice Any interleaving of pre-split quotes, post-split quotes and time passing across
    ///         `effectiveAt`, for any ratio in 1:100..100:1 from any prior multiplier: the per-token price
    ///         stays within 0.1 bps (+1 unit) below the pre-split one and never above it.
    function testFuzz_split_anyOrdering_tokenPriceNeverJumps(
        uint256 priorMultiplier,
        uint256 sharePrice,
        uint256 num,
        uint256 den,
        uint256 lead,
        uint256 seed
    ) public {
        num = bound(num, 1, 100);
        den = bound(den, 1, 100);
        priorMultiplier = bound(priorMultiplier, 1e15, 1e21);
        sharePrice = bound(sharePrice, 1e6 * num, 1e14); // $0.01·num .. $1M per share
        lead = bound(lead, 0, 7 days);

        vm.prank(admin);
        oracle.scheduleMultiplier(nvda, priorMultiplier, T0); // an earlier corporate action, in force
        vm.prank(admin);
        oracle.setQuote(nvda, sharePrice, 1, IPriceOracle.MarketStatus.Regular);
        uint256 value = _price();
        vm.assertEq(value, sharePrice * priorMultiplier / ONE, "pre-split per-token price");

        Split memory s = _scheduleSplit(nvda, sharePrice, num, den, T0 + lead);
        for (uint256 i; i < 12; ++i) {
            uint256 action = (seed >> (i * 8)) % 3;
            uint256 dt = (seed >> (i * 8 + 96)) % (lead / 4 + 2);
            _step(s, action, dt);
            uint256 price = _price();
            vm.assertLe(price, value, "never above the pre-split price");
            vm.assertGe(price + value / 100_000 + 1, value, "within 0.1 bps below");
        }
        vm.warp(T0 + lead); // whatever happened, after effectiveAt the post-split quote prices the same
        _step(s, 1, 0);
        vm.assertGe(_price() + value / 100_000 + 1, value, "post-split quote after effectiveAt");
    }

    /// @notice Both orderings spelled out: the feed switches to the post-split quote `offset` seconds
    ///         before (early) or after (late) `effectiveAt`; the per-token price is read every step.
    function testFuzz_split_feedEarlyOrLate_noJump(uint256 num, uint256 den, uint256 offset, bool early) public {
        num = bound(num, 1, 100);
        den = bound(den, 1, 100);
        offset = bound(offset, 1, 3 days);
        uint256 at = T0 + 4 days;
        vm.prank(admin);
        oracle.setQuote(nvda, 250e8, 0, IPriceOracle.MarketStatus.Regular);
        Split memory s = _scheduleSplit(nvda, 250e8, num, den, at);
        uint256 switchAt = early ? at - offset : at + offset;

        uint256[4] memory times = [at - 3 days - 1, switchAt - 1, switchAt, at + 3 days + 1];
        for (uint256 i; i < times.length; ++i) {
            vm.warp(times[i]);
            _step(s, block.timestamp >= switchAt ? 1 : 0, 0); // the feed quotes what it believes
            uint256 price = _price();
            vm.assertLe(price, 250e8, "not above");
            vm.assertGe(price + 250e8 / 100_000 + 1, 250e8, "not below");
        }
    }
}

/// @notice The same on the real router: a position with a tight stop (-1 %) and take-profit (+1 %)
///         lives through a fuzzed split, in any ordering, without either rule firing, and its size,
///         cost basis and value are unchanged.
contract PriceOracleSplitRouterTest is Fixture, SplitScenario {
    function _oracle() internal view override returns (PriceOracle) {
        return oracle;
    }

    function _operator() internal view override returns (address) {
        return admin;
    }

    function _tightLadder() internal pure returns (ITradeRouter.ExitRule[] memory) {
        return _ladder(_stopLoss(-100, 10_000), _takeProfit(100, 10_000));
    }

    function testFuzz_split_neverFiresAStop(uint256 num, uint256 den, uint256 lead, uint256 seed) public {
        num = bound(num, 1, 50);
        den = bound(den, 1, 50);
        lead = bound(lead, 0, 20 minutes);
        uint256 id = _open(address(nvda), 10_000e6, _tightLadder());
        ITradeRouter.PositionView memory before = router.position(id);
        uint256 value = before.size * NVDA_PRICE / 1e20;

        Split memory s = _scheduleSplit(address(nvda), NVDA_PRICE, num, den, block.timestamp + lead);
        for (uint256 i; i < 8; ++i) {
            _step(s, (seed >> (i * 8)) % 3, (seed >> (i * 8 + 96)) % 300); // ≤ 40 min: prices stay fresh
            (uint256 price,,) = oracle.latestPrice(address(nvda));
            vm.expectRevert(abi.encodeWithSelector(ITradeRouter.ExitNotTriggered.selector, id, price));
            router.executeExit(id, _tightLadder());
        }
        ITradeRouter.PositionView memory afterSplit = router.position(id);
        (uint256 last,,) = oracle.latestPrice(address(nvda));
        vm.assertEq(afterSplit.size, before.size, "size unchanged");
        vm.assertEq(afterSplit.costBasis, before.costBasis, "cost basis unchanged");
        vm.assertGe(afterSplit.size * last / 1e20 + value / 100_000 + 1, value, "value unchanged");
    }
}
