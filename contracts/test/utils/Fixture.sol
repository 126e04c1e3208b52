// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {AgentRegistry} from "../../src/AgentRegistry.sol";
import {IAgentRegistry} from "../../src/interfaces/IAgentRegistry.sol";
import {IExecutionVenue} from "../../src/interfaces/IExecutionVenue.sol";
import {ITradeRouter} from "../../src/interfaces/ITradeRouter.sol";
import {PriceOracle} from "../../src/PriceOracle.sol";
import {TokenRegistry} from "../../src/TokenRegistry.sol";
import {EquityToken} from "../../src/tokens/EquityToken.sol";
import {MockUSDC} from "../../src/tokens/MockUSDC.sol";
import {TradeRouter} from "../../src/TradeRouter.sol";
import {Vault} from "../../src/Vault.sol";
import {OraclePriceVenue} from "../../src/venues/OraclePriceVenue.sol";
import {IntentSigner} from "./IntentSigner.sol";
import {TestBase} from "./Vm.sol";

/// @notice Deploys and seeds the whole system the way the local stack does: one funded vault, NVDA
///         and AAPL with prices, a permissive `test` track (limits tested on their own tracks) and
///         one agent on it. Builders make signed intents with sensible defaults.
abstract contract Fixture is TestBase {
    uint256 internal constant AGENT_KEY = 0xA11CE;
    uint256 internal constant OTHER_KEY = 0xB0B;
    uint256 internal constant START_TIME = 1_750_000_000; // 2025-06-15T15:06:40Z
    uint256 internal constant NVDA_PRICE = 180e8;
    uint256 internal constant AAPL_PRICE = 230e8;
    uint16 internal constant SPREAD_BPS = 10;
    uint256 internal constant MAX_PRICE_AGE = 1 hours;
    uint256 internal constant ALLOCATION = 100_000e6;
    uint256 internal constant VAULT_FUNDS = 1_000_000e6;
    uint256 internal constant VENUE_LIQUIDITY = 10_000_000e6;
    uint16 internal constant DEFAULT_SLIPPAGE_BPS = 100;

    address internal admin = address(0xAD);
    address internal keeper = address(0xEE);
    address internal agentSigner;

    MockUSDC internal usdc;
    PriceOracle internal oracle;
    OraclePriceVenue internal venue;
    AgentRegistry internal registry;
    TokenRegistry internal tokenRegistry;
    TradeRouter internal router;
    Vault internal vault;
    EquityToken internal nvda;
    EquityToken internal aapl;

    uint256 internal vaultId;
    uint256 internal testTrackId;
    uint256 internal agentId;

    function setUp() public virtual {
        vm.warp(START_TIME);
        agentSigner = vm.addr(AGENT_KEY);
        vm.startPrank(admin);
        usdc = _newUsdc();
        oracle = new PriceOracle(admin);
        venue = new OraclePriceVenue(admin, oracle, usdc, SPREAD_BPS);
        registry = new AgentRegistry(admin);
        tokenRegistry = new TokenRegistry(admin);
        router = new TradeRouter(admin, registry, tokenRegistry, oracle, _routerVenue(), address(usdc), MAX_PRICE_AGE);
        vault = new Vault(admin, address(usdc));
        nvda = _newEquity("NVIDIA (tokenized)", "NVDA");
        aapl = _newEquity("Apple (tokenized)", "AAPL");

        vault.grantRole(vault.ROUTER_ROLE(), address(router));
        venue.grantRole(venue.TRADER_ROLE(), address(router));
        usdc.mint(address(vault), VAULT_FUNDS);
        usdc.mint(address(venue), VENUE_LIQUIDITY);

        tokenRegistry.registerToken("NVDA", address(nvda));
        tokenRegistry.registerToken("AAPL", address(aapl));
        vaultId = registry.registerVault(address(vault));
        tokenRegistry.setAllowed(vaultId, address(nvda), true);
        tokenRegistry.setAllowed(vaultId, address(aapl), true);
        oracle.setPrice(address(nvda), NVDA_PRICE);
        oracle.setPrice(address(aapl), AAPL_PRICE);

        testTrackId = registry.setTrack("test", _permissiveTrack());
        agentId = registry.registerAgent(agentSigner, vaultId, testTrackId, ALLOCATION);
        vm.stopPrank();

        vm.label(address(router), "TradeRouter");
        vm.label(address(vault), "Vault");
        vm.label(address(venue), "Venue");
        vm.label(address(nvda), "NVDA");
        vm.label(address(aapl), "AAPL");
        vm.label(address(usdc), "USDC");
    }

    // ------------------------------------------------------------------ parts
    // What setUp deploys, run under the admin's prank; suites that swap in other parts (attack/)
    // override these.

    function _newUsdc() internal virtual returns (MockUSDC) {
        return new MockUSDC(admin);
    }

    /// @dev Called after `venue` exists: the venue is the tokens' minter.
    function _newEquity(string memory name, string memory symbol) internal virtual returns (EquityToken) {
        return new EquityToken(name, symbol, address(venue));
    }

    /// @dev The venue the router trades through; called after `venue` exists.
    function _routerVenue() internal virtual returns (IExecutionVenue) {
        return venue;
    }

    // ------------------------------------------------------------------ tracks

    function _permissiveTrack() internal pure returns (IAgentRegistry.Track memory) {
        return IAgentRegistry.Track({
            maxTradeSizeBps: 10_000,
            maxDailyTurnoverBps: 1_000_000,
            maxDailyLossBps: 10_000,
            maxStopLossBps: 9_000,
            minTakeProfitBps: 1,
            maxTakeProfitBps: 100_000,
            requireStopLoss: true,
            requireTakeProfit: false,
            sessions: 4, // Regular
            exitsWhenClosed: IAgentRegistry.ExitsWhenClosed.Hold
        });
    }

    /// @dev Puts the fixture agent on a fresh track with these limits.
    function _useTrack(IAgentRegistry.Track memory limits) internal returns (uint256 trackId) {
        vm.startPrank(admin);
        trackId = registry.setTrack("custom", limits);
        registry.setAgentTrack(agentId, trackId);
        vm.stopPrank();
    }

    // ------------------------------------------------------------------ ladders

    function _rule(uint8 triggerType, int32 triggerBps, uint16 exitBps)
        internal
        pure
        returns (ITradeRouter.ExitRule memory)
    {
        return ITradeRouter.ExitRule({triggerType: triggerType, triggerBps: triggerBps, exitBps: exitBps});
    }

    function _stopLoss(int32 triggerBps, uint16 exitBps) internal pure returns (ITradeRouter.ExitRule memory) {
        return _rule(0, triggerBps, exitBps);
    }

    function _takeProfit(int32 triggerBps, uint16 exitBps) internal pure returns (ITradeRouter.ExitRule memory) {
        return _rule(1, triggerBps, exitBps);
    }

    function _ladder(ITradeRouter.ExitRule memory a) internal pure returns (ITradeRouter.ExitRule[] memory l) {
        l = new ITradeRouter.ExitRule[](1);
        l[0] = a;
    }

    function _ladder(ITradeRouter.ExitRule memory a, ITradeRouter.ExitRule memory b)
        internal
        pure
        returns (ITradeRouter.ExitRule[] memory l)
    {
        l = new ITradeRouter.ExitRule[](2);
        l[0] = a;
        l[1] = b;
    }

    function _ladder(ITradeRouter.ExitRule memory a, ITradeRouter.ExitRule memory b, ITradeRouter.ExitRule memory c)
        internal
        pure
        returns (ITradeRouter.ExitRule[] memory l)
    {
        l = new ITradeRouter.ExitRule[](3);
        l[0] = a;
        l[1] = b;
        l[2] = c;
    }

    /// @dev SPEC's example: +10% sells half, −10% sells the rest.
    function _defaultLadder() internal pure returns (ITradeRouter.ExitRule[] memory) {
        return _ladder(_takeProfit(1000, 5000), _stopLoss(-1000, 10_000));
    }

    // ------------------------------------------------------------------ intents

    function _openIntent(address token, uint256 usdcAmount, ITradeRouter.ExitRule[] memory exits)
        internal
        view
        returns (ITradeRouter.OpenPosition memory)
    {
        return ITradeRouter.OpenPosition({
            agentId: agentId,
            vault: address(vault),
            token: token,
            usdcAmount: usdcAmount,
            minTokenOut: 0,
            maxSlippageBps: DEFAULT_SLIPPAGE_BPS,
            exitsHash: IntentSigner.exitsHash(exits),
            deadline: block.timestamp + 5 minutes,
            nonce: router.nextNonce(agentId)
        });
    }

    function _addIntent(uint256 positionId, uint256 usdcAmount)
        internal
        view
        returns (ITradeRouter.AddToPosition memory)
    {
        return ITradeRouter.AddToPosition({
            agentId: agentId,
            positionId: positionId,
            usdcAmount: usdcAmount,
            minTokenOut: 0,
            maxSlippageBps: DEFAULT_SLIPPAGE_BPS,
            deadline: block.timestamp + 5 minutes,
            nonce: router.nextNonce(agentId)
        });
    }

    function _reduceIntent(uint256 positionId, uint256 tokenAmount)
        internal
        view
        returns (ITradeRouter.ReducePosition memory)
    {
        return ITradeRouter.ReducePosition({
            agentId: agentId,
            positionId: positionId,
            tokenAmount: tokenAmount,
            minUsdcOut: 0,
            maxSlippageBps: DEFAULT_SLIPPAGE_BPS,
            deadline: block.timestamp + 5 minutes,
            nonce: router.nextNonce(agentId)
        });
    }

    function _ladderIntent(uint256 positionId, ITradeRouter.ExitRule[] memory exits)
        internal
        view
        returns (ITradeRouter.UpdateExitLadder memory)
    {
        return ITradeRouter.UpdateExitLadder({
            agentId: agentId,
            positionId: positionId,
            exitsHash: IntentSigner.exitsHash(exits),
            deadline: block.timestamp + 5 minutes,
            nonce: router.nextNonce(agentId)
        });
    }

    // ------------------------------------------------------------------ signing

    function _separator() internal view returns (bytes32) {
        return IntentSigner.domainSeparator(block.chainid, address(router));
    }

    function _sign(ITradeRouter.OpenPosition memory p, uint256 key) internal view returns (bytes memory) {
        return IntentSigner.sign(key, IntentSigner.digest(_separator(), IntentSigner.structHash(p)));
    }

    function _sign(ITradeRouter.AddToPosition memory p, uint256 key) internal view returns (bytes memory) {
        return IntentSigner.sign(key, IntentSigner.digest(_separator(), IntentSigner.structHash(p)));
    }

    function _sign(ITradeRouter.ReducePosition memory p, uint256 key) internal view returns (bytes memory) {
        return IntentSigner.sign(key, IntentSigner.digest(_separator(), IntentSigner.structHash(p)));
    }

    function _sign(ITradeRouter.UpdateExitLadder memory p, uint256 key) internal view returns (bytes memory) {
        return IntentSigner.sign(key, IntentSigner.digest(_separator(), IntentSigner.structHash(p)));
    }

    // ------------------------------------------------------------------ actions (signed by the agent)

    function _open(address token, uint256 usdcAmount, ITradeRouter.ExitRule[] memory exits)
        internal
        returns (uint256 positionId)
    {
        ITradeRouter.OpenPosition memory p = _openIntent(token, usdcAmount, exits);
        return router.openPosition(p, exits, _sign(p, AGENT_KEY));
    }

    function _open(uint256 usdcAmount) internal returns (uint256) {
        return _open(address(nvda), usdcAmount, _defaultLadder());
    }

    function _add(uint256 positionId, uint256 usdcAmount) internal {
        ITradeRouter.AddToPosition memory p = _addIntent(positionId, usdcAmount);
        router.addToPosition(p, _sign(p, AGENT_KEY));
    }

    function _reduce(uint256 positionId, uint256 tokenAmount) internal {
        ITradeRouter.ReducePosition memory p = _reduceIntent(positionId, tokenAmount);
        router.reducePosition(p, _sign(p, AGENT_KEY));
    }

    function _updateLadder(uint256 positionId, ITradeRouter.ExitRule[] memory exits) internal {
        ITradeRouter.UpdateExitLadder memory p = _ladderIntent(positionId, exits);
        router.updateExitLadder(p, exits, _sign(p, AGENT_KEY));
    }

    // ------------------------------------------------------------------ market

    function _setPrice(address token, uint256 price) internal {
        vm.prank(admin);
        oracle.setPrice(token, price);
    }

    /// @dev Price that puts `positionId`'s PnL at `pnlBps` exactly (up to rounding of the price).
    function _priceAtPnl(uint256 positionId, int256 pnlBps) internal view returns (uint256) {
        ITradeRouter.PositionView memory p = router.position(positionId);
        // value = size · price / 1e20 ; want value = costBasis · (1e4 + pnlBps) / 1e4
        return p.costBasis * uint256(10_000 + pnlBps) * 1e16 / p.size;
    }
}
