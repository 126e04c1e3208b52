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

    function setUp() public override {
        super.setUp();
        handler = new TradeRouterHandler(
            Deployment({
                router: router,
                oracle: oracle,
                registry: registry,
                vault: address(vault),
                venue: address(venue),
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

    /// @notice The vault holds at least the tokens of every open position, per token.
    function invariant_vaultHoldsEveryOpenPosition() public view {
        uint256 count = router.positionCount();
        for (uint256 t; t < handler.TOKENS(); ++t) {
            address token = handler.token(t);
            uint256 sizes;
            for (uint256 id = 1; id <= count; ++id) {
                ITradeRouter.PositionView memory p = router.position(id);
                if (p.open && p.token == token) sizes += p.size;
            }
            uint256 held = IERC20(token).balanceOf(address(vault));
            vm.assertGe(held, sizes, "solvency: vault balance >= sum of open sizes (router views)");
            vm.assertGe(held, handler.ghost_openSize(t), "solvency: vault balance >= sum of open sizes (ghost)");
            vm.assertEq(sizes, handler.ghost_openSize(t), "solvency: router views and ghost agree on open sizes");
        }
    }

    /// @notice No position sells more than it bought; a closed id stays closed and empty; ids are only
    ///         issued by opens, one at a time.
    function invariant_positionsNeverOversoldNorReopened() public view {
        uint256 count = router.positionCount();
        vm.assertEq(count, handler.ghost_positionsIssued(), "positionCount == highest id issued by an open");
        try router.position(count + 1) {
            vm.assertTrue(false, "no position exists beyond positionCount");
        } catch {}
        for (uint256 id = 1; id <= count; ++id) {
            TradeRouterHandler.GhostPosition memory g = handler.ghostPosition(id);
            ITradeRouter.PositionView memory p = router.position(id);
            vm.assertTrue(g.exists, "every id was issued by an open the handler made");
            vm.assertEq(p.agentId, handler.agentId(g.agentIdx), "a position keeps its agent");
            vm.assertEq(p.token, handler.token(g.tokenIdx), "a position keeps its token");
            vm.assertLe(g.sold, g.bought, "sold <= bought per position (vault balances)");
            vm.assertLe(g.soldByEvents, g.boughtByEvents, "sold <= bought per position (events)");
            vm.assertEq(g.boughtByEvents, g.bought, "events report the tokens the vault received");
            vm.assertEq(g.soldByEvents, g.sold, "events report the tokens the vault paid out");
            if (g.closed) {
                vm.assertFalse(p.open, "a closed position is never reopened under its id");
                vm.assertEq(p.size, 0, "closed: size 0");
                vm.assertEq(p.costBasis, 0, "closed: cost basis 0");
                vm.assertEq(p.ruleCount, 0, "closed: no rules");
                vm.assertEq(p.firedMask, 0, "closed: no fired rules");
                vm.assertEq(p.exitsHash, bytes32(0), "closed: no ladder");
                vm.assertEq(g.sold, g.bought, "closed: everything bought was sold, nothing more");
            } else {
                vm.assertTrue(p.open, "open per the handler => open per the router");
                vm.assertEq(p.size, g.bought - g.sold, "open: size == bought - sold");
                vm.assertGt(p.size, 0, "open: size > 0");
                vm.assertGt(p.costBasis, 0, "open: cost basis > 0 while size > 0");
                vm.assertLe(p.costBasis, g.usdcIn, "open: cost basis <= USDC paid in");
            }
        }
    }

    /// @notice Each agent's nonce is the number of its intents that went through.
    function invariant_nonceAdvancesOncePerSuccessfulIntent() public view {
        for (uint256 a; a < handler.AGENTS(); ++a) {
            uint256 id = handler.agentId(a);
            vm.assertEq(router.nextNonce(id), handler.ghost_intents(a), "nextNonce == successful intents of the agent");
            vm.assertEq(router.agentState(id).nextNonce, handler.ghost_intents(a), "agentState.nextNonce == nextNonce");
        }
    }

    /// @notice At most one open position per (agent, token), and `openPositionOf` points at it.
    function invariant_atMostOneOpenPositionPerAgentAndToken() public view {
        uint256 slotsInUse;
        for (uint256 a; a < handler.AGENTS(); ++a) {
            for (uint256 t; t < handler.TOKENS(); ++t) {
                uint256 id = router.openPositionOf(handler.agentId(a), handler.token(t));
                vm.assertEq(id, handler.ghost_openIdOf(a, t), "openPositionOf == the handler's open id");
                if (id == 0) continue;
                ++slotsInUse;
                ITradeRouter.PositionView memory p = router.position(id);
                vm.assertTrue(p.open, "openPositionOf points at an open position");
                vm.assertEq(p.agentId, handler.agentId(a), "openPositionOf: agent matches");
                vm.assertEq(p.token, handler.token(t), "openPositionOf: token matches");
            }
        }
        uint256 count = router.positionCount();
        uint256 openIds;
        for (uint256 id = 1; id <= count; ++id) {
            ITradeRouter.PositionView memory p = router.position(id);
            if (!p.open) continue;
            ++openIds;
            vm.assertEq(router.openPositionOf(p.agentId, p.token), id, "every open id is its (agent, token)'s one");
        }
        vm.assertEq(openIds, slotsInUse, "no two open ids share an (agent, token)");
    }

    /// @notice An agent's deployed capital is the cost basis of its open positions.
    function invariant_deployedEqualsOpenCostBasis() public view {
        uint256 count = router.positionCount();
        for (uint256 a; a < handler.AGENTS(); ++a) {
            uint256 id_ = handler.agentId(a);
            uint256 costBasis;
            for (uint256 id = 1; id <= count; ++id) {
                ITradeRouter.PositionView memory p = router.position(id);
                if (p.open && p.agentId == id_) costBasis += p.costBasis;
            }
            vm.assertEq(router.agentState(id_).deployed, costBasis, "deployed == sum of open cost bases");
        }
    }

    /// @notice The router's daily counters are the agent's turnover (opens, adds, reduces) and realized
    ///         PnL (reduces and exits) since the start of the UTC day, as rebuilt from USDC movements.
    function invariant_dailyCountersMatchTodaysTrades() public view {
        for (uint256 a; a < handler.AGENTS(); ++a) {
            ITradeRouter.AgentStateView memory st = router.agentState(handler.agentId(a));
            (uint256 turnover, int256 realizedPnl) = handler.ghostToday(a);
            vm.assertEq(st.day, block.timestamp / 1 days, "agentState reports today's UTC day");
            vm.assertEq(st.turnoverToday, turnover, "turnoverToday == today's opens + adds + reduce proceeds");
            vm.assertEq(st.realizedPnlToday, realizedPnl, "realizedPnlToday == today's proceeds - cost basis sold");
        }
    }

    /// @notice USDC only moves between the vault and the venue: buys pay the venue, sales are paid from it.
    function invariant_usdcConserved() public view {
        vm.assertEq(
            usdc.balanceOf(address(vault)) + usdc.balanceOf(address(venue)),
            usdcTotal,
            "vault USDC + venue USDC == initial total"
        );
        vm.assertEq(usdc.totalSupply(), usdcTotal, "no USDC minted or burned after setUp");
        vm.assertEq(usdc.balanceOf(address(router)), 0, "the router holds no USDC");
    }

    /// @notice Only existing rules can have fired, and the stored ladder is the one last set.
    function invariant_firedMaskOnlyCoversExistingRules() public view {
        uint256 count = router.positionCount();
        for (uint256 id = 1; id <= count; ++id) {
            ITradeRouter.PositionView memory p = router.position(id);
            if (!p.open) continue;
            vm.assertGe(p.ruleCount, 1, "an open position has at least one rule");
            vm.assertLe(p.ruleCount, 8, "at most 8 rules");
            vm.assertEq(uint256(p.firedMask) >> p.ruleCount, 0, "firedMask only has bits below ruleCount");
            vm.assertEq(uint256(p.firedMask), (1 << p.ruleCount) - 1 & p.firedMask, "firedMask fits ruleCount");
            ITradeRouter.ExitRule[] memory ladder = handler.ladderOf(id);
            vm.assertEq(p.ruleCount, ladder.length, "ruleCount == length of the ladder last set");
            vm.assertEq(p.exitsHash, IntentSigner.exitsHash(ladder), "exitsHash == hash of the ladder last set");
            vm.assertEq(p.firedMask, handler.ghostPosition(id).firedMask, "firedMask == the ladder model's");
        }
    }

    /// @notice Every per-call property the handler checks held: rejections only where the spec
    ///         rejects, risk-reducing actions never blocked, exits exactly as the ladder model says.
    function invariant_handlerSawOnlyExpectedOutcomes() public view {
        vm.assertEq(handler.violationCount(), 0, handler.firstViolation());
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
        string[7] memory names = ["open", "add", "reduce", "updateLadder", "executeExit", "movePrice", "warpDay"];
        for (uint256 i; i < names.length; ++i) {
            console.log(string.concat(names[i], " calls"), handler.calls(i));
            console.log(string.concat(names[i], " ok"), handler.successes(i));
            console.log(string.concat(names[i], " rejected"), handler.rejections(i));
            console.log(string.concat(names[i], " skipped"), handler.skips(i));
        }
        console.log("positions issued", handler.ghost_positionsIssued());
        console.log("positions closed", handler.ghost_closedPositions());
        console.log("exit rules fired", handler.ghost_exitsFired());
    }
}
