// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {ITradeRouter} from "../../src/interfaces/ITradeRouter.sol";
import {Fixture} from "../utils/Fixture.sol";
import {IntentSigner} from "../utils/IntentSigner.sol";
import {Deployment, TradeRouterHandler} from "./handlers/TradeRouterHandler.sol";

/// @dev forge's console, reached directly (forge-std is not available).
library console {
    address private constant CONSOLE = 0x000000000000000000636F6e736F6c652e6c6f67;

    function log(string memory label, uint256 value) internal view {
        (bool ok,) = CONSOLE.staticcall(abi.encodeWithSignature("log(string,uint256)", label, value));
        ok;
    }
}

/// @title TradeRouter invariants
/// @notice Stateful fuzzing of the router through {TradeRouterHandler}: three agents (two tracks) open,
///         add, reduce, re-ladder and get exited on two tokens while prices walk and days pass. After
///         every call the accounting below must hold, checked against the router's views and against
///         ghost state the handler built from balances, events and a model of the exit ladder.
/// @dev    Without forge-std's StdInvariant, this contract answers forge's target queries itself
///         (`targetContracts`, `targetSelectors`): only the handler's action functions are fuzzed.
contract TradeRouterInvariantTest is Fixture {
    /// @dev The shape forge decodes from `targetSelectors()`.
    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    TradeRouterHandler internal handler;
    uint256 internal usdcTotal;
    /// @dev The handler's agents and tokens, cached: the invariants run after every call.
    uint256[3] internal agentIds;
    address[2] internal tokens;

    function setUp() public override {
        super.setUp();
        handler = new TradeRouterHandler(
            Deployment({
                router: router,
                oracle: oracle,
                registry: registry,
                vault: address(vault),
                usdc: IERC20(address(usdc)),
                nvda: address(nvda),
                aapl: address(aapl),
                admin: admin,
                vaultId: vaultId,
                testTrackId: testTrackId,
                agentId: agentId,
                agentKey: AGENT_KEY
            })
        );
        for (uint256 a; a < agentIds.length; ++a) {
            agentIds[a] = handler.agentId(a);
        }
        tokens = [address(nvda), address(aapl)];
        usdcTotal = usdc.balanceOf(address(vault)) + usdc.balanceOf(address(venue));
        vm.label(address(handler), "Handler");
    }

    // ------------------------------------------------------------------ forge's target queries

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    function targetSelectors() public view returns (FuzzSelector[] memory targets) {
        targets = new FuzzSelector[](1);
        targets[0] = FuzzSelector({addr: address(handler), selectors: handler.actions()});
    }

    // ------------------------------------------------------------------ invariants

    /// @notice Solvency: the vault holds at least the tokens of every open position, per token.
    function invariant_vaultHoldsEveryOpenPosition() public view {
        ITradeRouter.PositionView[] memory ps = _allPositions();
        for (uint256 t; t < tokens.length; ++t) {
            uint256 sizes;
            for (uint256 i; i < ps.length; ++i) {
                if (ps[i].open && ps[i].token == tokens[t]) sizes += ps[i].size;
            }
            uint256 held = IERC20(tokens[t]).balanceOf(address(vault));
            uint256 ghostSizes = handler.ghost_openSize(t);
            _assertGe(held, sizes, "solvency: vault balance >= sum of open sizes (router views)");
            _assertGe(held, ghostSizes, "solvency: vault balance >= sum of open sizes (ghost)");
            _assertEq(sizes, ghostSizes, "solvency: router views and ghost agree on open sizes");
        }
    }

    /// @notice No position sells more than it bought; a closed id stays closed and empty; ids are only
    ///         issued by opens, one at a time, so positionCount only grows.
    function invariant_positionsNeverOversoldNorReopened() public view {
        uint256 count = router.positionCount();
        _assertEq(count, handler.ghost_positionsIssued(), "positionCount == highest id issued by an open");
        try router.position(count + 1) {
            vm.assertTrue(false, "no position exists beyond positionCount");
        } catch {}
        for (uint256 id = 1; id <= count; ++id) {
            TradeRouterHandler.GhostPosition memory g = handler.ghostPosition(id);
            ITradeRouter.PositionView memory p = router.position(id);
            _assertTrue(g.exists, "every id was issued by an open the handler made");
            _assertEq(p.agentId, agentIds[g.agentIdx], "a position keeps its agent");
            _assertEq(uint160(p.token), uint160(tokens[g.tokenIdx]), "a position keeps its token");
            _assertLe(g.sold, g.bought, "sold <= bought per position (vault balances)");
            _assertLe(g.soldByEvents, g.boughtByEvents, "sold <= bought per position (events)");
            _assertEq(g.boughtByEvents, g.bought, "events report the tokens the vault received");
            _assertEq(g.soldByEvents, g.sold, "events report the tokens the vault paid out");
            if (g.closed) {
                _assertTrue(!p.open, "a closed position is never reopened under its id");
                _assertEq(p.size, 0, "closed: size 0");
                _assertEq(p.costBasis, 0, "closed: cost basis 0");
                _assertEq(p.ruleCount, 0, "closed: no rules");
                _assertEq(p.firedMask, 0, "closed: no fired rules");
                _assertEq(uint256(p.exitsHash), 0, "closed: no ladder");
                _assertEq(g.sold, g.bought, "closed: everything bought was sold, nothing more");
            } else {
                _assertTrue(p.open, "open per the handler => open per the router");
                _assertEq(p.size, g.bought - g.sold, "open: size == bought - sold");
                _assertGt(p.size, 0, "open: size > 0");
                _assertGt(p.costBasis, 0, "open: cost basis > 0 while size > 0");
                _assertLe(p.costBasis, g.usdcIn, "open: cost basis <= USDC paid in");
            }
        }
    }

    /// @notice Nonces: each agent's nonce is the number of its intents that went through.
    function invariant_nonceAdvancesOncePerSuccessfulIntent() public view {
        for (uint256 a; a < agentIds.length; ++a) {
            uint256 intents = handler.ghost_intents(a);
            _assertEq(router.nextNonce(agentIds[a]), intents, "nextNonce == successful intents of the agent");
            _assertEq(router.agentState(agentIds[a]).nextNonce, intents, "agentState.nextNonce == nextNonce");
        }
    }

    /// @notice At most one open position per (agent, token), and `openPositionOf` points at it.
    function invariant_atMostOneOpenPositionPerAgentAndToken() public view {
        uint256 slotsInUse;
        for (uint256 a; a < agentIds.length; ++a) {
            for (uint256 t; t < tokens.length; ++t) {
                uint256 id = router.openPositionOf(agentIds[a], tokens[t]);
                _assertEq(id, handler.ghost_openIdOf(a, t), "openPositionOf == the handler's open id");
                if (id == 0) continue;
                ++slotsInUse;
                ITradeRouter.PositionView memory p = router.position(id);
                _assertTrue(p.open, "openPositionOf points at an open position");
                _assertEq(p.agentId, agentIds[a], "openPositionOf: agent matches");
                _assertEq(uint160(p.token), uint160(tokens[t]), "openPositionOf: token matches");
            }
        }
        ITradeRouter.PositionView[] memory ps = _allPositions();
        uint256 openIds;
        for (uint256 i; i < ps.length; ++i) {
            if (!ps[i].open) continue;
            ++openIds;
            _assertEq(
                router.openPositionOf(ps[i].agentId, ps[i].token),
                ps[i].positionId,
                "every open id is its (agent, token)'s one"
            );
        }
        _assertEq(openIds, slotsInUse, "no two open ids share an (agent, token)");
    }

    /// @notice An agent's deployed capital is the cost basis of its open positions.
    function invariant_deployedEqualsOpenCostBasis() public view {
        ITradeRouter.PositionView[] memory ps = _allPositions();
        for (uint256 a; a < agentIds.length; ++a) {
            uint256 costBasis;
            for (uint256 i; i < ps.length; ++i) {
                if (ps[i].open && ps[i].agentId == agentIds[a]) costBasis += ps[i].costBasis;
            }
            _assertEq(router.agentState(agentIds[a]).deployed, costBasis, "deployed == sum of open cost bases");
        }
    }

    /// @notice The router's daily counters are the agent's turnover (opens, adds, reduces) and realized
    ///         PnL (reduces and exits) since the start of the UTC day, as rebuilt from USDC movements.
    function invariant_dailyCountersMatchTodaysTrades() public view {
        for (uint256 a; a < agentIds.length; ++a) {
            ITradeRouter.AgentStateView memory st = router.agentState(agentIds[a]);
            (uint256 turnover, int256 realizedPnl) = handler.ghostToday(a);
            _assertEq(st.day, block.timestamp / 1 days, "agentState reports today's UTC day");
            _assertEq(st.turnoverToday, turnover, "turnoverToday == today's opens + adds + reduce proceeds");
            if (st.realizedPnlToday != realizedPnl) {
                vm.assertEq(st.realizedPnlToday, realizedPnl, "realizedPnlToday == today's proceeds - cost basis sold");
            }
        }
    }

    /// @notice USDC only moves between the vault and the venue: buys pay the venue, sales are paid from it.
    function invariant_usdcConserved() public view {
        _assertEq(
            usdc.balanceOf(address(vault)) + usdc.balanceOf(address(venue)),
            usdcTotal,
            "vault USDC + venue USDC == initial total"
        );
        _assertEq(usdc.totalSupply(), usdcTotal, "no USDC minted or burned after setUp");
        _assertEq(usdc.balanceOf(address(router)), 0, "the router holds no USDC");
    }

    /// @notice Only existing rules can have fired, and the stored ladder is the one last set.
    function invariant_firedMaskOnlyCoversExistingRules() public view {
        ITradeRouter.PositionView[] memory ps = _allPositions();
        for (uint256 i; i < ps.length; ++i) {
            ITradeRouter.PositionView memory p = ps[i];
            if (!p.open) continue;
            _assertGe(p.ruleCount, 1, "an open position has at least one rule");
            _assertLe(p.ruleCount, 8, "at most 8 rules");
            _assertEq(uint256(p.firedMask) >> p.ruleCount, 0, "firedMask only has bits below ruleCount");
            ITradeRouter.ExitRule[] memory ladder = handler.ladderOf(p.positionId);
            _assertEq(p.ruleCount, ladder.length, "ruleCount == length of the ladder last set");
            _assertEq(
                uint256(p.exitsHash),
                uint256(IntentSigner.exitsHash(ladder)),
                "exitsHash == hash of the ladder last set"
            );
            _assertEq(p.firedMask, handler.ghostPosition(p.positionId).firedMask, "firedMask == the ladder model's");
        }
    }

    /// @notice Every per-call property the handler checks held: rejections only where the spec
    ///         rejects (with the right error), risk-reducing actions never blocked, exits exactly as the
    ///         ladder model says, balances and events in agreement. The label is the first broken one.
    function invariant_handlerSawOnlyExpectedOutcomes() public view {
        if (handler.violationCount() != 0) vm.assertEq(handler.violationCount(), 0, handler.firstViolation());
    }

    /// @notice Runs once at the end of every run. Guards against a suite that passes because nothing
    ///         ran: the handler was called, and a full-length run got intents through (shrunk or
    ///         replayed sequences can be a handful of calls, hence the length condition). Prints what
    ///         the handler did (`forge test -vv`).
    function afterInvariant() public view {
        uint256 calls = handler.totalCalls();
        _logCallSummary();
        vm.assertGt(calls, 0, "the fuzzer called the handler");
        if (calls >= 32) vm.assertGt(handler.totalIntents(), 0, "a full run got intents through");
    }

    function _logCallSummary() internal view {
        string[9] memory names = [
            "open", "add", "reduce", "updateLadder", "executeExit", "movePrice", "warpDay", "setMarket", "scheduleMultiplier"
        ];
        for (uint256 i; i < names.length; ++i) {
            console.log(string.concat(names[i], " calls"), handler.calls(i));
            console.log(string.concat(names[i], " ok"), handler.successes(i));
            console.log(string.concat(names[i], " rejected"), handler.rejections(i));
            console.log(string.concat(names[i], " skipped"), handler.skips(i));
            console.log(string.concat(names[i], " via a batch"), handler.batched(i));
        }
        console.log("rejected: PositionExists", handler.rejectionsBy(ITradeRouter.PositionExists.selector));
        console.log("rejected: PositionNotOpen", handler.rejectionsBy(ITradeRouter.PositionNotOpen.selector));
        console.log("rejected: HeadroomExceeded", handler.rejectionsBy(ITradeRouter.HeadroomExceeded.selector));
        console.log("rejected: TradeSizeExceeded", handler.rejectionsBy(ITradeRouter.TradeSizeExceeded.selector));
        console.log(
            "rejected: DailyTurnoverExceeded", handler.rejectionsBy(ITradeRouter.DailyTurnoverExceeded.selector)
        );
        console.log(
            "rejected: DailyLossLimitReached", handler.rejectionsBy(ITradeRouter.DailyLossLimitReached.selector)
        );
        console.log("rejected: SlippageExceeded", handler.rejectionsBy(ITradeRouter.SlippageExceeded.selector));
        console.log("rejected: ExitNotTriggered", handler.rejectionsBy(ITradeRouter.ExitNotTriggered.selector));
        console.log("rejected: LadderMismatch", handler.rejectionsBy(ITradeRouter.LadderMismatch.selector));
        console.log("rejected: MarketClosed", handler.rejectionsBy(ITradeRouter.MarketClosed.selector));
        console.log("rejected: MarketHalted", handler.rejectionsBy(ITradeRouter.MarketHalted.selector));
        console.log("positions issued", handler.ghost_positionsIssued());
        console.log("positions closed", handler.ghost_closedPositions());
        console.log("exit rules fired", handler.ghost_exitsFired());
    }

    // ------------------------------------------------------------------ helpers

    function _allPositions() internal view returns (ITradeRouter.PositionView[] memory ps) {
        ps = new ITradeRouter.PositionView[](router.positionCount());
        for (uint256 i; i < ps.length; ++i) {
            ps[i] = router.position(i + 1);
        }
    }

    // The invariants run after every call: compare first, and reach the (labelled, reverting)
    // assertion cheatcode only to report a failure.

    function _assertTrue(bool ok, string memory label) internal pure {
        if (!ok) vm.assertTrue(ok, label);
    }

    function _assertEq(uint256 a, uint256 b, string memory label) internal pure {
        if (a != b) vm.assertEq(a, b, label);
    }

    function _assertLe(uint256 a, uint256 b, string memory label) internal pure {
        if (a > b) vm.assertLe(a, b, label);
    }

    function _assertGe(uint256 a, uint256 b, string memory label) internal pure {
        if (a < b) vm.assertGe(a, b, label);
    }

    function _assertGt(uint256 a, uint256 b, string memory label) internal pure {
        if (a <= b) vm.assertGt(a, b, label);
    }
}
