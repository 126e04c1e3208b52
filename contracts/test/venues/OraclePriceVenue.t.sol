// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";

import {IPriceOracle} from "../../src/interfaces/IPriceOracle.sol";
import {EquityToken} from "../../src/tokens/EquityToken.sol";
import {OraclePriceVenue} from "../../src/venues/OraclePriceVenue.sol";
import {Fixture} from "../utils/Fixture.sol";

/// @notice The local venue on its own: who may trade, the spread bounds, the fill formulas and
///         their rounding, liquidity, and that only the venue mints its equity tokens.
contract OraclePriceVenueTest is Fixture {
    uint256 internal constant BPS = 10_000;
    uint256 internal constant SCALE = 1e20; // 10^(18 + 8 − 6)

    address internal trader = address(0x7AD3);
    address internal recipient = address(0xCAFE);
    address internal seller = address(0x5E11); // holds the tokens a sale redeems (the vault, in the system)

    function setUp() public override {
        super.setUp();
        bytes32 traderRole = venue.TRADER_ROLE();
        vm.prank(admin);
        venue.grantRole(traderRole, trader);
    }

    // ------------------------------------------------------------------ helpers

    function _expectedBuy(uint256 usdcIn, uint256 price, uint256 spread) internal pure returns (uint256) {
        return usdcIn * SCALE * BPS / (price * (BPS + spread));
    }

    function _expectedSell(uint256 tokensIn, uint256 price, uint256 spread) internal pure returns (uint256) {
        return tokensIn * price * (BPS - spread) / (SCALE * BPS);
    }

    /// @dev A sale redeems the tokens from `from` itself: the seller only has to hold them.
    function _giveSeller(uint256 tokens) internal {
        vm.prank(trader);
        venue.buy(address(nvda), 1_000_000e6, trader);
        vm.prank(trader);
        IERC20(address(nvda)).transfer(seller, tokens);
    }

    // ------------------------------------------------------------------ access

    function test_buy_revertsForNonTrader() public {
        address stranger = address(0xBAD);
        bytes32 role = venue.TRADER_ROLE();
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, stranger, role)
        );
        vm.prank(stranger);
        venue.buy(address(nvda), 100e6, stranger);
    }

    function test_buy_revertsForAdminWithoutTraderRole() public {
        bytes32 role = venue.TRADER_ROLE();
        vm.expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, admin, role));
        vm.prank(admin);
        venue.buy(address(nvda), 100e6, admin);
    }

    /// @dev `from` is any holder: only a trader (the router) may make the venue redeem from it.
    function test_sell_revertsForNonTrader() public {
        _giveSeller(1e18);
        address stranger = address(0xBAD);
        bytes32 role = venue.TRADER_ROLE();
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, stranger, role)
        );
        vm.prank(stranger);
        venue.sell(address(nvda), 1e18, seller, stranger);
        vm.assertEq(nvda.balanceOf(seller), 1e18, "the holder keeps its tokens");
    }

    /// @dev Not even the holder itself, nor the admin: selling from a holder is the traders' alone.
    function test_sell_revertsForHolderAndAdmin() public {
        _giveSeller(1e18);
        bytes32 role = venue.TRADER_ROLE();
        vm.expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, seller, role));
        vm.prank(seller);
        venue.sell(address(nvda), 1e18, seller, seller);
        vm.expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, admin, role));
        vm.prank(admin);
        venue.sell(address(nvda), 1e18, seller, admin);
        vm.assertEq(nvda.balanceOf(seller), 1e18, "the holder keeps its tokens");
    }

    function testFuzz_sell_onlyTraders(address caller) public {
        vm.assume(caller != trader && caller != address(router));
        _giveSeller(1e18);
        bytes32 role = venue.TRADER_ROLE();
        vm.expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, caller, role));
        vm.prank(caller);
        venue.sell(address(nvda), 1e18, seller, caller);
        vm.assertEq(nvda.balanceOf(seller), 1e18, "the holder keeps its tokens");
    }

    function test_routerHoldsTraderRole() public view {
        vm.assertTrue(venue.hasRole(venue.TRADER_ROLE(), address(router)), "router trades");
    }

    function test_buy_traderMintsToRecipient() public {
        uint256 expected = _expectedBuy(1_000e6, NVDA_PRICE, SPREAD_BPS);
        vm.prank(trader);
        uint256 out = venue.buy(address(nvda), 1_000e6, recipient);
        vm.assertEq(out, expected, "tokensOut");
        vm.assertEq(nvda.balanceOf(recipient), expected, "minted to recipient");
        vm.assertEq(nvda.balanceOf(trader), 0, "nothing to the trader");
    }

    function test_sell_traderRedeemsFromSellerAndPaysRecipient() public {
        _giveSeller(3e18);
        uint256 supply = nvda.totalSupply();
        uint256 liquidity = usdc.balanceOf(address(venue));
        uint256 expected = _expectedSell(2e18, NVDA_PRICE, SPREAD_BPS);
        vm.prank(trader);
        uint256 out = venue.sell(address(nvda), 2e18, seller, recipient);
        vm.assertEq(out, expected, "usdcOut");
        vm.assertEq(usdc.balanceOf(recipient), expected, "paid to recipient");
        vm.assertEq(usdc.balanceOf(address(venue)), liquidity - expected, "paid from liquidity");
        vm.assertEq(nvda.balanceOf(seller), 1e18, "redeemed from the seller, no allowance");
        vm.assertEq(nvda.allowance(seller, address(venue)), 0, "none given");
        vm.assertEq(nvda.totalSupply(), supply - 2e18, "burned");
        vm.assertEq(nvda.balanceOf(address(venue)), 0, "venue keeps no tokens");
    }

    function test_sell_revertsWhenSellerDoesNotHoldTheTokens() public {
        _giveSeller(1e18 - 1);
        // The redemption fails, nothing is paid.
        vm.prank(trader);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientBalance.selector, seller, 1e18 - 1, 1e18)
        );
        venue.sell(address(nvda), 1e18, seller, recipient);
        vm.assertEq(usdc.balanceOf(recipient), 0, "nothing paid");
    }

    // ------------------------------------------------------------------ spread

    function test_setSpread_acceptsMax() public {
        vm.expectEmit(true, true, true, true, address(venue));
        emit OraclePriceVenue.SpreadSet(1_000);
        vm.prank(admin);
        venue.setSpread(1_000);
        vm.assertEq(venue.spreadBps(), 1_000, "spread");
    }

    function test_setSpread_acceptsZero() public {
        vm.prank(admin);
        venue.setSpread(0);
        vm.assertEq(venue.quoteBuy(address(nvda), 180e6), 1e18, "no spread: $180 buys one share");
        vm.assertEq(venue.quoteSell(address(nvda), 1e18), 180e6, "no spread: one share sells for $180");
    }

    function test_setSpread_revertsAboveMax() public {
        vm.expectRevert(abi.encodeWithSelector(OraclePriceVenue.SpreadTooLarge.selector, 1_001));
        vm.prank(admin);
        venue.setSpread(1_001);
        vm.assertEq(venue.spreadBps(), SPREAD_BPS, "unchanged");
    }

    function test_setSpread_revertsForNonOperator() public {
        bytes32 role = venue.OPERATOR_ROLE();
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, trader, role)
        );
        vm.prank(trader);
        venue.setSpread(5);
    }

    function test_constructor_revertsWhenSpreadAboveMax() public {
        vm.expectRevert(abi.encodeWithSelector(OraclePriceVenue.SpreadTooLarge.selector, 1_001));
        new OraclePriceVenue(admin, oracle, usdc, 1_001);
    }

    // ------------------------------------------------------------------ quotes

    function test_quoteBuy_appliesSpreadAndRoundsDown() public view {
        // 180 USDC at $180 + 10 bps: 1e18·1e4/10010 = 999000999000999000.999… → rounds down.
        vm.assertEq(venue.quoteBuy(address(nvda), 180e6), 999_000_999_000_999_000, "tokensOut");
        vm.assertEq(venue.quoteBuy(address(nvda), 1), 5_550_005_550, "one base unit");
    }

    function test_quoteSell_appliesSpreadAndRoundsDown() public view {
        // One share at $180 − 10 bps = 179.82 USDC exactly.
        vm.assertEq(venue.quoteSell(address(nvda), 1e18), 179_820_000, "one share");
        // 1e12 units (1e-6 share) are worth 0.00017982 USDC: 179.82 base units → 179.
        vm.assertEq(venue.quoteSell(address(nvda), 1e12), 179, "rounds down");
        vm.assertEq(venue.quoteSell(address(nvda), 5e9), 0, "below one base unit rounds to zero");
    }

    function test_quotes_useLatestOraclePrice() public {
        _setPrice(address(nvda), 200e8);
        vm.assertEq(venue.quoteSell(address(nvda), 1e18), 199_800_000, "$200 - 10 bps");
        vm.assertEq(venue.quoteBuy(address(nvda), 200e6), _expectedBuy(200e6, 200e8, SPREAD_BPS), "buy");
    }

    function test_quotes_revertWithoutPrice() public {
        EquityToken unpriced = new EquityToken("Unpriced", "UNP", address(venue));
        vm.expectRevert(abi.encodeWithSelector(IPriceOracle.PriceUnavailable.selector, address(unpriced)));
        venue.quoteBuy(address(unpriced), 1e6);
    }

    function testFuzz_quoteBuy_matchesFormula(uint256 usdcIn, uint256 price, uint16 spread) public {
        usdcIn = bound(usdcIn, 0, 1e15);
        price = bound(price, 1, 1e15);
        spread = uint16(bound(spread, 0, 1_000));
        vm.prank(admin);
        venue.setSpread(spread);
        _setPrice(address(nvda), price);
        uint256 out = venue.quoteBuy(address(nvda), usdcIn);
        vm.assertEq(out, _expectedBuy(usdcIn, price, spread), "formula");
        // Rounded down: the tokens are never worth more than was paid at the spread price.
        vm.assertLe(out * price * (BPS + spread), usdcIn * SCALE * BPS, "not above exact");
        vm.assertGt((out + 1) * price * (BPS + spread), usdcIn * SCALE * BPS, "within one unit");
    }

    function testFuzz_quoteSell_matchesFormula(uint256 tokensIn, uint256 price, uint16 spread) public {
        tokensIn = bound(tokensIn, 0, 1e30);
        price = bound(price, 1, 1e15);
        spread = uint16(bound(spread, 0, 1_000));
        vm.prank(admin);
        venue.setSpread(spread);
        _setPrice(address(nvda), price);
        uint256 out = venue.quoteSell(address(nvda), tokensIn);
        vm.assertEq(out, _expectedSell(tokensIn, price, spread), "formula");
        vm.assertLe(out * SCALE * BPS, tokensIn * price * (BPS - spread), "not above exact");
        vm.assertGt((out + 1) * SCALE * BPS, tokensIn * price * (BPS - spread), "within one unit");
    }

    function testFuzz_buyThenSell_neverPaysOutMoreThanPaidIn(uint256 usdcIn, uint256 price, uint16 spread) public {
        usdcIn = bound(usdcIn, 1, 1_000_000e6);
        price = bound(price, 1e6, 1e13);
        spread = uint16(bound(spread, 0, 1_000));
        vm.prank(admin);
        venue.setSpread(spread);
        _setPrice(address(nvda), price);
        vm.prank(trader);
        uint256 tokens = venue.buy(address(nvda), usdcIn, address(venue));
        vm.prank(trader);
        uint256 back = venue.sell(address(nvda), tokens, address(venue), recipient);
        vm.assertLe(back, usdcIn, "round trip never profits the trader");
    }

    // ------------------------------------------------------------------ liquidity

    function test_sell_revertsWithInsufficientLiquidity() public {
        OraclePriceVenue dry = new OraclePriceVenue(admin, oracle, usdc, SPREAD_BPS);
        EquityToken token = new EquityToken("Dry", "DRY", address(dry));
        _setPrice(address(token), NVDA_PRICE);
        bytes32 role = dry.TRADER_ROLE();
        vm.prank(admin);
        dry.grantRole(role, trader);

        vm.prank(trader);
        uint256 tokens = dry.buy(address(token), 1_000e6, address(dry)); // no USDC sent: the venue stays dry
        uint256 needed = _expectedSell(tokens, NVDA_PRICE, SPREAD_BPS);
        vm.expectRevert(abi.encodeWithSelector(OraclePriceVenue.InsufficientLiquidity.selector, 0, needed));
        vm.prank(trader);
        dry.sell(address(token), tokens, address(dry), recipient);
    }

    /// @dev The venue pays before it looks at its liquidity: a payment that fails with the liquidity
    ///      there is USDC's own failure, passed on as USDC reports it.
    function test_sell_failedPaymentWithLiquidity_revertsAsUsdc() public {
        _giveSeller(1e18);
        vm.expectRevert(abi.encodeWithSelector(IERC20Errors.ERC20InvalidReceiver.selector, address(0)));
        vm.prank(trader);
        venue.sell(address(nvda), 1e18, seller, address(0));
        vm.assertEq(nvda.balanceOf(seller), 1e18, "nothing redeemed");
    }

    function test_sell_paysExactlyAllLiquidity() public {
        OraclePriceVenue dry = new OraclePriceVenue(admin, oracle, usdc, 0);
        EquityToken token = new EquityToken("Dry", "DRY", address(dry));
        _setPrice(address(token), 100e8);
        bytes32 role = dry.TRADER_ROLE();
        vm.startPrank(admin);
        dry.grantRole(role, trader);
        usdc.mint(address(dry), 100e6);
        vm.stopPrank();

        vm.prank(trader);
        uint256 tokens = dry.buy(address(token), 100e6, address(dry));
        vm.assertEq(tokens, 1e18, "one share");
        vm.prank(trader);
        vm.assertEq(dry.sell(address(token), tokens, address(dry), recipient), 100e6, "all of it");
        vm.assertEq(usdc.balanceOf(address(dry)), 0, "dry now");
    }

    // ------------------------------------------------------------------ minting

    function test_mint_revertsForNonMinter() public {
        vm.expectRevert(abi.encodeWithSelector(EquityToken.NotMinter.selector, trader));
        vm.prank(trader);
        nvda.mint(trader, 1e18);
    }

    function test_mint_revertsForRouter() public {
        vm.expectRevert(abi.encodeWithSelector(EquityToken.NotMinter.selector, address(router)));
        vm.prank(address(router));
        nvda.mint(address(router), 1e18);
    }

    function test_mint_venueIsTheMinter() public {
        vm.assertEq(nvda.minter(), address(venue), "minter");
        vm.prank(address(venue));
        nvda.mint(recipient, 1e18);
        vm.assertEq(nvda.balanceOf(recipient), 1e18, "minted");
    }

    function test_buy_revertsForTokenTheVenueDoesNotIssue() public {
        EquityToken foreign = new EquityToken("Foreign", "FRN", address(0xF00));
        _setPrice(address(foreign), NVDA_PRICE);
        vm.expectRevert(abi.encodeWithSelector(EquityToken.NotMinter.selector, address(venue)));
        vm.prank(trader);
        venue.buy(address(foreign), 100e6, recipient);
    }
}
