// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {AgentRegistry} from "../../../src/AgentRegistry.sol";
import {IAgentRegistry} from "../../../src/interfaces/IAgentRegistry.sol";
import {IPriceOracle} from "../../../src/interfaces/IPriceOracle.sol";
import {ITradeRouter} from "../../../src/interfaces/ITradeRouter.sol";
import {PriceOracle} from "../../../src/PriceOracle.sol";
import {TradeRouter} from "../../../src/TradeRouter.sol";
import {BatchItems} from "../../utils/BatchItems.sol";
import {IntentSigner} from "../../utils/IntentSigner.sol";
import {TestBase, Vm} from "../../utils/Vm.sol";

/// @notice What the handler acts on: the fixture's deployment plus the fixture agent and its key.
struct Deployment {
    TradeRouter router;
    PriceOracle oracle;
    AgentRegistry registry;
    address vault;
    IERC20 usdc;
    address nvda;
    address aapl;
    address admin;
    uint256 vaultId;
    uint256 testTrackId;
    uint256 agentId;
    uint256 agentKey;
}

/// @title TradeRouterHandler
/// @notice The only contract the invariant fuzzer calls. Each action turns fuzzed seeds into a
///         *plausible* call (a valid ladder, an amount around the agent's headroom, a real agent
///         signature), sends it, and keeps ghost state that is built without reading the router's
///         bookkeeping: token and USDC movements of the vault, the router's events, and a model of the
///         exit ladder. Calls that should revert are sent anyway where that is a property worth
///         checking (duplicate opens, adds to closed positions, a stale ladder), caught, and counted.
///         Half the intents and exits (by a hash of the action's seeds) go through the batch entry
///         points as a one-item batch instead of the single function: the same checks apply to both,
///         and a batch must never revert as a whole, must report a failed item with its single call's
///         error in `results` and `IntentFailed` / `ExitSkipped`, and must report success as empty.
/// @dev    Reverts inside the handler would be swallowed by the fuzzer (`fail_on_revert = false`) and
///         would roll the router's state back with them, so per-call properties are never asserted
///         here: a broken one is recorded in `violations`, and the test's invariant reports it.
contract TradeRouterHandler is TestBase {
    uint256 internal constant BPS = 10_000;
    uint256 public constant AGENTS = 3;
    uint256 public constant TOKENS = 2;
    /// @dev 18-decimal tokens, 8-decimal prices, 6-decimal USDC: value = size · price / 1e20.
    uint256 internal constant SCALE = 1e20;
    uint16 internal constant SLIPPAGE_BPS = 100;
    uint256 internal constant MIN_PRICE = 1e8; // $1
    uint256 internal constant MAX_PRICE = 1_000e8; // keeps the venue's 10M USDC able to pay every sale
    /// @dev A sale worth at least this much (USDC base units) cannot fail the 1% slippage check on
    ///      rounding alone, so a reduce this large must go through.
    uint256 internal constant MIN_CERTAIN_SALE = 1_000;

    enum Action {
        Open,
        Add,
        Reduce,
        UpdateLadder,
        ExecuteExit,
        MovePrice,
        WarpDay,
        SetMarket,
        ScheduleMultiplier
    }

    uint256 internal constant ACTIONS = 9;
    uint8 internal constant STATUS_HALTED = 6;

    /// @notice Ghost record of one issued position id.
    struct GhostPosition {
        bool exists;
        bool closed;
        uint8 agentIdx;
        uint8 tokenIdx;
        uint8 firedMask; // which rules of the current ladder the model says have fired
        uint256 bought; // tokens the vault received for it (balance deltas)
        uint256 sold; // tokens the vault paid out for it (balance deltas)
        uint256 boughtByEvents; // tokensOut of PositionOpened / PositionIncreased
        uint256 soldByEvents; // tokensIn of PositionReduced / ExitExecuted
        uint256 usdcIn; // USDC the vault paid for it
    }

    /// @dev An agent's SPEC §1.5 counters for one UTC day, rebuilt from USDC movements.
    struct DailyCounters {
        uint256 day;
        uint256 turnover;
        int256 realizedPnl;
    }

    /// @dev What the exit-ladder model predicts one `executeExit` does.
    struct ExitModel {
        uint256 fired;
        uint8 firedMask;
        uint256 size;
        uint256 costBasis;
    }

    struct Balances {
        uint256 token;
        uint256 usdc;
    }

    /// @dev One `open` call's context (kept in memory: the stack cannot hold it).
    struct OpenCall {
        uint256 a;
        uint256 t;
        uint256 amount;
        uint256 existing;
        bool allowed;
        uint256 expectedId;
        Balances before;
    }

    TradeRouter internal immutable router;
    PriceOracle internal immutable oracle;
    address internal immutable vault;
    IERC20 internal immutable usdc;
    address internal immutable admin;

    address[TOKENS] internal _tokens;
    uint256[AGENTS] internal _agentIds;
    uint256[AGENTS] internal _agentKeys;
    uint256[AGENTS] internal _allocations;
    IAgentRegistry.Track[AGENTS] internal _tracks;

    // ------------------------------------------------------------------ ghost state

    mapping(uint256 positionId => GhostPosition) internal _ghost;
    mapping(uint256 positionId => ITradeRouter.ExitRule[]) internal _ladders;
    /// @notice Open position id per (agent index, token index) as the handler has seen it; 0 if none.
    mapping(uint256 agentIdx => mapping(uint256 tokenIdx => uint256)) public ghost_openIdOf;
    mapping(uint256 agentIdx => mapping(uint256 tokenIdx => uint256)) internal _lastClosedIdOf;

    /// @notice Ids issued by successful opens (the highest one).
    uint256 public ghost_positionsIssued;
    /// @notice Successful intents per agent index: each must have used exactly one nonce.
    uint256[AGENTS] public ghost_intents;
    /// @notice Σ (bought − sold) over open positions, per token index.
    uint256[TOKENS] public ghost_openSize;
    DailyCounters[AGENTS] internal _daily;
    uint256 public ghost_exitsFired;
    uint256 public ghost_closedPositions;
    uint256 public ghost_lastTimestamp;
    /// @notice The position whose rule edge the price was last moved to.
    uint256 public ghost_edgeId;

    uint256[ACTIONS] public calls;
    uint256[ACTIONS] public successes;
    uint256[ACTIONS] public rejections;
    uint256[ACTIONS] public skips;
    /// @notice Calls sent through `executeIntents` / `executeExits` (one item) instead of the single function.
    uint256[ACTIONS] public batched;
    /// @notice Rejections per error selector (what the fuzzer ran into).
    mapping(bytes4 selector => uint256) public rejectionsBy;

    string[] internal _violations;

    constructor(Deployment memory d) {
        router = d.router;
        oracle = d.oracle;
        vault = d.vault;
        usdc = d.usdc;
        admin = d.admin;
        _tokens = [d.nvda, d.aapl];

        // Agent 0 is the fixture's; 1 is a smaller one on the same permissive track; 2 sits on a tight
        // track (trade size, turnover, daily loss, take-profit required) so limits really bite.
        _agentIds[0] = d.agentId;
        _agentKeys[0] = d.agentKey;
        _agentKeys[1] = 0xA9E2;
        _agentKeys[2] = 0xA9E3;
        vm.startPrank(d.admin);
        _agentIds[1] = d.registry.registerAgent(vm.addr(_agentKeys[1]), d.vaultId, d.testTrackId, 50_000e6);
        uint256 tight = d.registry
            .setTrack(
                "tight",
                IAgentRegistry.Track({
                    maxTradeSizeBps: 1_000,
                    maxDailyTurnoverBps: 1_200,
                    maxDailyLossBps: 25,
                    maxStopLossBps: 2_000,
                    minTakeProfitBps: 100,
                    maxTakeProfitBps: 5_000,
                    requireStopLoss: true,
                    requireTakeProfit: true,
                    sessions: 14, // PreMarket, Regular, PostMarket
                    exitsWhenClosed: IAgentRegistry.ExitsWhenClosed.Fire
                })
            );
        _agentIds[2] = d.registry.registerAgent(vm.addr(_agentKeys[2]), d.vaultId, tight, 200_000e6);
        vm.stopPrank();
        // Registrations do not change during a run: read them once.
        for (uint256 a; a < AGENTS; ++a) {
            IAgentRegistry.AgentConfig memory cfg = d.registry.agentConfig(_agentIds[a]);
            _allocations[a] = cfg.allocation;
            _tracks[a] = cfg.track;
        }
        ghost_lastTimestamp = block.timestamp;
    }

    modifier tracked(Action action) {
        calls[uint256(action)]++;
        uint256 countBefore = router.positionCount();
        _;
        if (router.positionCount() < countBefore) _violate("positionCount decreased");
        if (block.timestamp < ghost_lastTimestamp) _violate("time went backwards");
        ghost_lastTimestamp = block.timestamp;
    }

    // ================================================================== actions (fuzzer entry points)

    /// @notice Opens a position for a random agent and token with a random valid ladder of 1..4 rules
    ///         and an amount around the agent's headroom. Mostly the first (agent, token) from there
    ///         without an open position; one time in four the drawn one as is, so opening a token the
    ///         agent already holds is sent too: it must be rejected.
    function open(uint256 agentSeed, uint256 tokenSeed, uint256 amountSeed, uint256 ladderSeed)
        external
        tracked(Action.Open)
    {
        OpenCall memory c;
        (c.a, c.t) = _openSlot(agentSeed, tokenSeed);
        c.amount = _buyAmount(c.a, amountSeed);
        ITradeRouter.ExitRule[] memory exits = _randomLadder(c.a, ladderSeed);
        ITradeRouter.OpenPosition memory p = ITradeRouter.OpenPosition({
            agentId: _agentIds[c.a],
            vault: vault,
            token: _tokens[c.t],
            usdcAmount: c.amount,
            minTokenOut: 0,
            maxSlippageBps: SLIPPAGE_BPS,
            exitsHash: IntentSigner.exitsHash(exits),
            deadline: block.timestamp + 5 minutes,
            nonce: router.nextNonce(_agentIds[c.a])
        });
        c.existing = ghost_openIdOf[c.a][c.t];
        c.allowed = c.existing == 0 && _buyAllowed(c.a, c.amount) && _marketAllowsBuy(c.a, c.t);
        c.expectedId = router.positionCount() + 1;
        c.before = _balances(c.t);

        vm.recordLogs();
        (bool ok, bytes memory reason) =
            _sendOpen(c.a, p, exits, abi.encode(agentSeed, tokenSeed, amountSeed, ladderSeed));
        if (ok) {
            _recordOpen(c, reason.length == 0 ? router.positionCount() : abi.decode(reason, (uint256)), exits);
        } else {
            rejectionsBy[bytes4(reason)]++;
            vm.getRecordedLogs();
            rejections[uint256(Action.Open)]++;
            if (c.allowed) {
                _violate("open: rejected although within every limit");
            } else if (c.existing != 0) {
                bytes memory exists = abi.encodeWithSelector(
                    ITradeRouter.PositionExists.selector, _agentIds[c.a], _tokens[c.t], c.existing
                );
                if (keccak256(reason) != keccak256(exists)) {
                    _violate("open: duplicate (agent, token) not rejected with PositionExists");
                }
            } else if (!_isLimitRejection(c.a, c.amount, reason) && !_isMarketRejection(c.a, c.t, reason)) {
                _violate("open: rejected with other than the error of a limit or session it breaks");
            }
        }
    }

    function _recordOpen(OpenCall memory c, uint256 id, ITradeRouter.ExitRule[] memory exits) internal {
        _intentSucceeded(c.a, Action.Open);
        if (c.existing != 0) _violate("open: a second open position for one (agent, token)");
        else if (!c.allowed) _violate("open: accepted beyond the track limits or headroom");
        if (id != c.expectedId || _ghost[id].exists) _violate("open: position id is not the next fresh id");
        (uint256 tokensIn, uint256 usdcPaid) = _bought(c.t, c.before);
        if (usdcPaid != c.amount) _violate("open: the vault paid other than usdcAmount");
        if (tokensIn == 0) _violate("open: no tokens received");

        GhostPosition storage g = _ghost[id];
        g.exists = true;
        g.agentIdx = uint8(c.a);
        g.tokenIdx = uint8(c.t);
        g.bought = tokensIn;
        g.usdcIn = c.amount;
        g.boughtByEvents = _tokensFromLogs(id);
        _setLadder(id, exits);
        ghost_positionsIssued = id;
        ghost_openIdOf[c.a][c.t] = id;
        ghost_openSize[c.t] += tokensIn;
        _recordBuy(c.a, c.amount);
    }

    /// @notice Adds to an open position (limits checked by the model); one call in eight, or when none
    ///         is open, adds to a closed one, which must be rejected with `PositionNotOpen`.
    function add(uint256 positionSeed, uint256 amountSeed) external tracked(Action.Add) {
        (uint256 id, bool isOpen) = _pickPosition(positionSeed);
        if (id == 0) {
            skips[uint256(Action.Add)]++;
            return;
        }
        uint256 a = _ghost[id].agentIdx;
        uint256 amount = _buyAmount(a, amountSeed);
        ITradeRouter.AddToPosition memory p = ITradeRouter.AddToPosition({
            agentId: _agentIds[a],
            positionId: id,
            usdcAmount: amount,
            minTokenOut: 0,
            maxSlippageBps: SLIPPAGE_BPS,
            deadline: block.timestamp + 5 minutes,
            nonce: router.nextNonce(_agentIds[a])
        });
        bool allowed = isOpen && _buyAllowed(a, amount) && _marketAllowsBuy(a, _ghost[id].tokenIdx);
        Balances memory before = _balances(_ghost[id].tokenIdx);

        vm.recordLogs();
        (bool ok, bytes memory reason) = _sendAdd(a, p, abi.encode(positionSeed, amountSeed));
        if (ok) {
            _intentSucceeded(a, Action.Add);
            if (!isOpen) _violate("add: a closed position was increased");
            else if (!allowed) _violate("add: accepted beyond the track limits or headroom");
            _recordAdd(id, a, _ghost[id].tokenIdx, amount, before);
        } else {
            rejectionsBy[bytes4(reason)]++;
            vm.getRecordedLogs();
            rejections[uint256(Action.Add)]++;
            if (allowed) {
                _violate("add: rejected although within every limit");
            } else if (!isOpen) {
                if (keccak256(reason) != keccak256(abi.encodeWithSelector(ITradeRouter.PositionNotOpen.selector, id))) {
                    _violate("add: closed position not rejected with PositionNotOpen(id)");
                }
            } else if (!_isLimitRejection(a, amount, reason) && !_isMarketRejection(a, _ghost[id].tokenIdx, reason)) {
                _violate("add: rejected with other than the error of a limit or session it breaks");
            }
        }
    }

    /// @notice Reduces an open position by a random amount, up to 120% of its size (at or above the
    ///         size closes it). Risk-reducing: must go through whatever the limits say.
    function reduce(uint256 positionSeed, uint256 amountSeed) external tracked(Action.Reduce) {
        uint256 id = _anyOpenId(positionSeed);
        if (id == 0) {
            skips[uint256(Action.Reduce)]++;
            return;
        }
        uint256 a = _ghost[id].agentIdx;
        ITradeRouter.PositionView memory pos = router.position(id);
        uint256 size = pos.size;
        // Mostly a share of the size (0.01%..120%); one time in eight any amount up to 120%, dust included.
        uint256 amount = amountSeed % 8 == 7
            ? bound(amountSeed >> 3, 1, size + size / 5 + 1)
            : size * bound(amountSeed >> 3, 1, 12_000) / BPS + 1;
        bool mustSucceed;
        {
            (uint256 price,,) = oracle.latestPrice(_tokens[_ghost[id].tokenIdx]);
            mustSucceed = (amount < size ? amount : size) * price / SCALE >= MIN_CERTAIN_SALE;
        }
        ITradeRouter.ReducePosition memory p = ITradeRouter.ReducePosition({
            agentId: _agentIds[a],
            positionId: id,
            tokenAmount: amount,
            minUsdcOut: 0,
            maxSlippageBps: SLIPPAGE_BPS,
            deadline: block.timestamp + 5 minutes,
            nonce: router.nextNonce(_agentIds[a])
        });
        Balances memory before = _balances(_ghost[id].tokenIdx);

        vm.recordLogs();
        (bool ok, bytes memory reason) = _sendReduce(a, p, abi.encode(amountSeed, id));
        if (ok) {
            _recordReduce(id, amount, pos, before);
        } else {
            rejectionsBy[bytes4(reason)]++;
            vm.getRecordedLogs();
            rejections[uint256(Action.Reduce)]++;
            if (mustSucceed) {
                _violate("reduce: a risk-reducing sale was blocked");
            }
            // Dust: proceeds round down to (nearly) nothing, which the 1% slippage bound rejects.
            else if (bytes4(reason) != ITradeRouter.SlippageExceeded.selector) {
                _violate("reduce: a dust sale rejected with other than SlippageExceeded");
            }
        }
    }

    function _recordAdd(uint256 id, uint256 a, uint256 t, uint256 amount, Balances memory before) internal {
        (uint256 tokensIn, uint256 usdcPaid) = _bought(t, before);
        if (usdcPaid != amount) _violate("add: the vault paid other than usdcAmount");
        if (tokensIn == 0) _violate("add: no tokens received");
        GhostPosition storage g = _ghost[id];
        g.bought += tokensIn;
        g.usdcIn += amount;
        _recordBuy(a, amount);
        g.boughtByEvents += _tokensFromLogs(id);
        ghost_openSize[t] += tokensIn;
    }

    function _sendOpen(
        uint256 a,
        ITradeRouter.OpenPosition memory p,
        ITradeRouter.ExitRule[] memory exits,
        bytes memory seeds
    ) internal returns (bool, bytes memory) {
        bytes memory sig = _sign(a, IntentSigner.structHash(p));
        return _sendIntent(
            _viaBatch(Action.Open, seeds),
            BatchItems.open(p, exits, sig),
            abi.encodeCall(ITradeRouter.openPosition, (p, exits, sig))
        );
    }

    function _sendLadder(
        uint256 a,
        ITradeRouter.UpdateExitLadder memory p,
        ITradeRouter.ExitRule[] memory exits,
        bytes memory seeds
    ) internal returns (bool, bytes memory) {
        bytes memory sig = _sign(a, IntentSigner.structHash(p));
        return _sendIntent(
            _viaBatch(Action.UpdateLadder, seeds),
            BatchItems.ladder(p, exits, sig),
            abi.encodeCall(ITradeRouter.updateExitLadder, (p, exits, sig))
        );
    }

    function _sendAdd(uint256 a, ITradeRouter.AddToPosition memory p, bytes memory seeds)
        internal
        returns (bool, bytes memory)
    {
        bytes memory sig = _sign(a, IntentSigner.structHash(p));
        return _sendIntent(
            _viaBatch(Action.Add, seeds), BatchItems.add(p, sig), abi.encodeCall(ITradeRouter.addToPosition, (p, sig))
        );
    }

    function _sendReduce(uint256 a, ITradeRouter.ReducePosition memory p, bytes memory seeds)
        internal
        returns (bool, bytes memory)
    {
        bytes memory sig = _sign(a, IntentSigner.structHash(p));
        return _sendIntent(
            _viaBatch(Action.Reduce, seeds), BatchItems.reduce(p, sig), abi.encodeCall(ITradeRouter.reducePosition, (p, sig))
        );
    }

    /// @dev Checks a successful reduce of `amount` from `pos` (SPEC §1.4: at or above the size closes)
    ///      and books it.
    function _recordReduce(uint256 id, uint256 amount, ITradeRouter.PositionView memory pos, Balances memory before)
        internal
    {
        GhostPosition storage g = _ghost[id];
        _intentSucceeded(g.agentIdx, Action.Reduce);
        (uint256 sold, uint256 proceeds) = _sold(g.tokenIdx, before);
        if (sold != (amount < pos.size ? amount : pos.size)) {
            _violate("reduce: sold other than min(tokenAmount, size)");
        }
        _recordSale(id, sold, _tokensFromLogs(id), proceeds, pos.costBasis, true);
        bool closed = !router.position(id).open;
        if (closed != (amount >= pos.size)) _violate("reduce: closed iff tokenAmount >= size does not hold");
        if (closed) _close(id);
    }

    /// @notice Replaces an open position's ladder with a random valid one (re-arming all rules); one
    ///         call in eight, or when none is open, targets a closed one, which must be rejected.
    function updateLadder(uint256 positionSeed, uint256 ladderSeed) external tracked(Action.UpdateLadder) {
        (uint256 id, bool isOpen) = _pickPosition(positionSeed);
        if (id == 0) {
            skips[uint256(Action.UpdateLadder)]++;
            return;
        }
        uint256 a = _ghost[id].agentIdx;
        ITradeRouter.ExitRule[] memory exits = _randomLadder(a, ladderSeed);
        ITradeRouter.UpdateExitLadder memory p = ITradeRouter.UpdateExitLadder({
            agentId: _agentIds[a],
            positionId: id,
            exitsHash: IntentSigner.exitsHash(exits),
            deadline: block.timestamp + 5 minutes,
            nonce: router.nextNonce(_agentIds[a])
        });

        vm.recordLogs();
        (bool ok, bytes memory reason) = _sendLadder(a, p, exits, abi.encode(positionSeed, ladderSeed));
        vm.getRecordedLogs();
        if (ok) {
            _intentSucceeded(a, Action.UpdateLadder);
            if (!isOpen) _violate("updateLadder: a closed position's ladder was replaced");
            _setLadder(id, exits);
            _ghost[id].firedMask = 0;
        } else {
            rejectionsBy[bytes4(reason)]++;
            rejections[uint256(Action.UpdateLadder)]++;
            if (isOpen) {
                _violate("updateLadder: a valid ladder update was blocked");
            } else if (
                keccak256(reason) != keccak256(abi.encodeWithSelector(ITradeRouter.PositionNotOpen.selector, id))
            ) {
                _violate("updateLadder: closed position not rejected with PositionNotOpen(id)");
            }
        }
    }

    /// @notice A random keeper fires an open position's ladder (the current one, as tracked here) and
    ///         the outcome is checked against the ladder model: what fires, in which order, what is
    ///         sold and what is left. One call in eight sends a ladder other than the current one, and
    ///         one in eight targets a closed position; both must be rejected.
    function executeExit(uint256 positionSeed, uint256 callerSeed, uint256 modeSeed)
        external
        tracked(Action.ExecuteExit)
    {
        address caller = address(uint160(uint256(keccak256(abi.encode("keeper", callerSeed % 16)))));
        // Half the time the position a price was just moved to the edge of, while it is open.
        uint256 id = ghost_edgeId;
        if (positionSeed % 2 == 1 || id == 0 || _ghost[id].closed) id = _anyOpenId(positionSeed >> 1);
        if (id == 0 || modeSeed % 8 == 7) {
            _exitClosed(positionSeed, caller);
            return;
        }
        ITradeRouter.ExitRule[] memory exits = _ladders[id];

        if (modeSeed % 8 == 6) {
            _exitWithWrongLadder(id, exits, caller);
            return;
        }

        _exitOpen(id, exits, caller, abi.encode(positionSeed, callerSeed, modeSeed));
    }

    /// @dev `executeExit` of open position `id` with its current ladder, checked against the ladder model.
    function _exitOpen(uint256 id, ITradeRouter.ExitRule[] memory exits, address caller, bytes memory seeds) internal {
        ITradeRouter.PositionView memory pos = router.position(id);
        (uint256 price,,) = oracle.latestPrice(_tokens[_ghost[id].tokenIdx]);
        ExitModel memory m = _modelExit(exits, _ghost[id].firedMask, pos.size, pos.costBasis, price);
        Balances memory before = _balances(_ghost[id].tokenIdx);
        bytes memory gate = _exitGate(_ghost[id].agentIdx, _ghost[id].tokenIdx);

        vm.recordLogs();
        (bool ok, bytes memory reason) = _sendExit(_viaBatch(Action.ExecuteExit, seeds), caller, id, exits);
        if (gate.length != 0) {
            // Held by the market (SPEC §5.6): nothing fires, whatever the price says.
            if (ok) {
                _violate("executeExit: fired while the market rule holds it");
                _recordExit(id, reason.length == 0 ? m.fired : abi.decode(reason, (uint256)), m, pos, before);
            } else {
                rejectionsBy[bytes4(reason)]++;
                vm.getRecordedLogs();
                rejections[uint256(Action.ExecuteExit)]++;
                if (keccak256(reason) != keccak256(gate)) _violate("executeExit: held with other than the gate's error");
            }
        } else if (ok) {
            // A batch returns nothing for an item: the fills in the logs are checked against the model instead.
            _recordExit(id, reason.length == 0 ? m.fired : abi.decode(reason, (uint256)), m, pos, before);
        } else {
            rejectionsBy[bytes4(reason)]++;
            vm.getRecordedLogs();
            rejections[uint256(Action.ExecuteExit)]++;
            if (m.fired != 0) {
                _violate("executeExit: a triggered rule was not executed");
            } else if (
                keccak256(reason)
                    != keccak256(abi.encodeWithSelector(ITradeRouter.ExitNotTriggered.selector, id, price))
            ) {
                _violate("executeExit: untriggered ladder not rejected with ExitNotTriggered(id, price)");
            }
        }
    }

    /// @dev Checks a successful `executeExit` against the ladder model `m` and books it.
    function _recordExit(
        uint256 id,
        uint256 fired,
        ExitModel memory m,
        ITradeRouter.PositionView memory pos,
        Balances memory before
    ) internal {
        successes[uint256(Action.ExecuteExit)]++;
        ghost_exitsFired += fired;
        GhostPosition storage g = _ghost[id];
        (uint256 sold, uint256 proceeds) = _sold(g.tokenIdx, before);
        (uint256 soldByEvents, uint256 fills) = _exitFillsFromLogs(id);
        if (m.fired == 0) _violate("executeExit: fired although no armed rule is triggered");
        if (fired != m.fired || fills != fired) _violate("executeExit: fired count differs from the ladder model");
        if (sold != pos.size - m.size) _violate("executeExit: sold other than the ladder model");
        // Exits are not the agent's trades: they count toward realized PnL, not turnover.
        _recordSale(id, sold, soldByEvents, proceeds, pos.costBasis, false);
        ITradeRouter.PositionView memory afterExit = router.position(id);
        if (m.size == 0) {
            if (afterExit.open) _violate("executeExit: a full exit left the position open");
            _close(id);
        } else {
            if (afterExit.size != m.size || afterExit.costBasis != m.costBasis || afterExit.firedMask != m.firedMask) {
                _violate("executeExit: position state differs from the ladder model");
            }
            g.firedMask = m.firedMask;
        }
    }

    /// @notice A few minutes pass, then a price moves: mostly a random walk of one token's price by up
    ///         to 30% (up ×(1+m), down ÷(1+m), so the walk has no drift in log terms; kept in [$1, $1000]);
    ///         one time in four, exactly to the edge of a rule of an open position (the last price that
    ///         triggers it, or one tick short of it), where rounding decides. Both prices are pushed so
    ///         neither goes stale.
    function movePrice(uint256 tokenSeed, uint256 moveSeed, uint256 warpSeed) external tracked(Action.MovePrice) {
        vm.warp(block.timestamp + bound(warpSeed, 0, 20 minutes));
        _refreshPrices();
        uint256 t = tokenSeed % TOKENS;
        uint256 id = moveSeed % 4 == 3 ? _anyOpenId(tokenSeed) : 0;
        uint256 next;
        if (id != 0) {
            t = _ghost[id].tokenIdx;
            next = _triggerEdge(id, moveSeed >> 2);
            ghost_edgeId = id;
        } else {
            (uint256 price,,) = oracle.latestPrice(_tokens[t]);
            uint256 moveBps = bound(moveSeed >> 2, 0, 3_000);
            next = moveSeed % 2 == 0 ? price * (BPS + moveBps) / BPS : price * BPS / (BPS + moveBps);
        }
        if (next < MIN_PRICE) next = MIN_PRICE;
        if (next > MAX_PRICE) next = MAX_PRICE;
        _pushTokenPrice(t, next);
        successes[uint256(Action.MovePrice)]++;
    }

    /// @notice The market of a token changes (SPEC §5.6): half the time to Regular, else any status
    ///         (Unknown included: a feed that stops publishing one); half the time a price is pushed
    ///         with it, quoted in the new status (the feed's `setQuote`), else the last price keeps the
    ///         status it was quoted in. At most one token is out of its session at a time (the other
    ///         goes back to Regular, its price keeping the status it was quoted in): with both closed
    ///         a run could go by without an intent, and `afterInvariant` requires runs that trade.
    function setMarket(uint256 tokenSeed, uint256 statusSeed, uint256 pushSeed) external tracked(Action.SetMarket) {
        uint256 t = tokenSeed % TOKENS;
        uint8 status = statusSeed % 2 == 0 ? 2 : uint8((statusSeed >> 1) % 7);
        if (pushSeed % 2 == 0) {
            (uint256 price,,) = oracle.latestPrice(_tokens[t]);
            uint256 share = _sharePrice(t, price);
            uint256 epoch = oracle.multiplierEpochOf(_tokens[t]);
            vm.prank(admin);
            oracle.setQuote(_tokens[t], share, epoch, IPriceOracle.MarketStatus(status));
        } else {
            vm.prank(admin);
            oracle.setMarketStatus(_tokens[t], IPriceOracle.MarketStatus(status));
        }
        if (status != 2 && status != 0) {
            address other = _tokens[(t + 1) % TOKENS];
            IPriceOracle.MarketStatus now_ = oracle.marketStatus(other);
            if (now_ != IPriceOracle.MarketStatus.Regular && now_ != IPriceOracle.MarketStatus.Unknown) {
                vm.prank(admin);
                oracle.setMarketStatus(other, IPriceOracle.MarketStatus.Regular);
            }
        }
        successes[uint256(Action.SetMarket)]++;
    }

    /// @notice A split or reverse split of a token is scheduled: a multiplier in [0.5, 2] effective
    ///         now or within two hours. Prices keep being pushed per token (the handler's feed rebases),
    ///         so positions only see the per-token price. Replacing a pending change the feed already
    ///         quotes under is refused by the oracle: skipped.
    function scheduleMultiplier(uint256 tokenSeed, uint256 ratioSeed, uint256 delaySeed)
        external
        tracked(Action.ScheduleMultiplier)
    {
        uint256 t = tokenSeed % TOKENS;
        uint256 multiplier = bound(ratioSeed, 5e17, 2e18);
        uint256 effectiveAt = block.timestamp + bound(delaySeed, 0, 2 hours);
        vm.prank(admin);
        try oracle.scheduleMultiplier(_tokens[t], multiplier, effectiveAt) {
            successes[uint256(Action.ScheduleMultiplier)]++;
        } catch {
            skips[uint256(Action.ScheduleMultiplier)]++;
        }
    }

    /// @dev For a random rule of the position's ladder: the last price (8 decimals) at which it is
    ///      triggered, or the first at which it is not. value = ⌊size·price/1e20⌋ is triggered for a stop
    ///      when value ≤ ⌊cost·(10⁴+bps)/10⁴⌋ and for a take-profit when value ≥ ⌈cost·(10⁴+bps)/10⁴⌉.
    function _triggerEdge(uint256 id, uint256 seed) internal view returns (uint256 price) {
        ITradeRouter.ExitRule memory rule = _ladders[id][seed % _ladders[id].length];
        ITradeRouter.PositionView memory pos = router.position(id);
        uint256 threshold = pos.costBasis * uint256(int256(BPS) + rule.triggerBps);
        bool beyond = (seed >> 8) % 2 == 1;
        if (rule.triggerType == 0) {
            price = _ceilDiv((threshold / BPS + 1) * SCALE, pos.size) - 1;
            if (beyond) price += 1;
        } else {
            price = _ceilDiv(_ceilDiv(threshold, BPS) * SCALE, pos.size);
            if (beyond && price > 1) price -= 1;
        }
    }

    function _ceilDiv(uint256 a, uint256 b) internal pure returns (uint256) {
        return a == 0 ? 0 : (a - 1) / b + 1;
    }

    /// @notice Lets time pass: mostly 1 to 6 hours (the UTC day may roll over or not), one time in four
    ///         straight into the next or the one after (a random time of day), which resets the daily
    ///         turnover and loss counters. Prices are pushed again so they stay fresh.
    function warpDay(uint256 seed, uint256 timeSeed) external tracked(Action.WarpDay) {
        if (seed % 4 == 3) {
            uint256 day = block.timestamp / 1 days + bound(seed >> 2, 1, 2);
            vm.warp(day * 1 days + bound(timeSeed, 0, 1 days - 1));
        } else {
            vm.warp(block.timestamp + bound(timeSeed, 1 hours, 6 hours));
        }
        _refreshPrices();
        successes[uint256(Action.WarpDay)]++;
    }

    // ================================================================== views for the invariants

    function agentId(uint256 agentIdx) external view returns (uint256) {
        return _agentIds[agentIdx];
    }

    function ghostPosition(uint256 positionId) external view returns (GhostPosition memory) {
        return _ghost[positionId];
    }

    function ladderOf(uint256 positionId) external view returns (ITradeRouter.ExitRule[] memory) {
        return _ladders[positionId];
    }

    /// @notice The agent's turnover and realized PnL for the current UTC day, per the handler.
    function ghostToday(uint256 agentIdx) public view returns (uint256 turnover, int256 realizedPnl) {
        DailyCounters memory d = _daily[agentIdx];
        if (d.day != block.timestamp / 1 days) return (0, 0);
        return (d.turnover, d.realizedPnl);
    }

    function violationCount() external view returns (uint256) {
        return _violations.length;
    }

    function firstViolation() external view returns (string memory) {
        return _violations.length == 0 ? "" : _violations[0];
    }

    function totalCalls() external view returns (uint256 n) {
        for (uint256 i; i < ACTIONS; ++i) {
            n += calls[i];
        }
    }

    function totalIntents() external view returns (uint256 n) {
        for (uint256 i; i < AGENTS; ++i) {
            n += ghost_intents[i];
        }
    }

    /// @notice The fuzzer's entry points, for the test's `targetSelectors`.
    function actions() external pure returns (bytes4[] memory s) {
        s = new bytes4[](ACTIONS);
        s[0] = this.open.selector;
        s[1] = this.add.selector;
        s[2] = this.reduce.selector;
        s[3] = this.updateLadder.selector;
        s[4] = this.executeExit.selector;
        s[5] = this.movePrice.selector;
        s[6] = this.warpDay.selector;
        s[7] = this.setMarket.selector;
        s[8] = this.scheduleMultiplier.selector;
    }

    // ================================================================== internals

    // ------------------------------------------------------------------ single call or one-item batch

    function _viaBatch(Action action, bytes memory seeds) internal returns (bool viaBatch) {
        viaBatch = uint256(keccak256(abi.encode(seeds, "batch"))) % 2 == 1;
        if (viaBatch) batched[uint256(action)]++;
    }

    /// @return ok whether the intent went through
    /// @return ret the single call's return data, or the revert data (the item's result in a batch)
    function _sendIntent(bool viaBatch, ITradeRouter.IntentCall memory item, bytes memory singleCall)
        internal
        returns (bool ok, bytes memory ret)
    {
        if (!viaBatch) return address(router).call(singleCall);
        try router.executeIntents(BatchItems.one(item)) returns (bytes[] memory results) {
            if (results.length != 1) _violate("batch: not one result per item");
            ok = results[0].length == 0;
            ret = results[0];
        } catch (bytes memory reason) {
            _violate("batch: executeIntents reverted as a whole");
            return (false, reason);
        }
        if (!ok) _requireFailureLog(ITradeRouter.IntentFailed.selector, ret);
    }

    /// @return ok whether rules fired
    /// @return ret the return data (the fired count), or the revert data (the item's result in a batch)
    function _sendExit(bool viaBatch, address caller, uint256 id, ITradeRouter.ExitRule[] memory exits)
        internal
        returns (bool ok, bytes memory ret)
    {
        vm.prank(caller);
        if (!viaBatch) return address(router).call(abi.encodeCall(ITradeRouter.executeExit, (id, exits)));
        ITradeRouter.ExitCall[] memory items = new ITradeRouter.ExitCall[](1);
        items[0] = BatchItems.exit(id, exits);
        try router.executeExits(items) returns (bytes[] memory results) {
            if (results.length != 1) _violate("batch: not one result per item");
            ok = results[0].length == 0;
            ret = results[0];
        } catch (bytes memory reason) {
            _violate("batch: executeExits reverted as a whole");
            return (false, reason);
        }
        if (!ok) _requireFailureLog(ITradeRouter.ExitSkipped.selector, ret);
    }

    /// @dev A failed batch item must leave its `IntentFailed` / `ExitSkipped` with the same reason as
    ///      `results`. Reads (and so drains) the logs recorded since the last `vm.recordLogs()`.
    function _requireFailureLog(bytes32 topic, bytes memory reason) internal {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i = logs.length; i > 0; --i) {
            Vm.Log memory l = logs[i - 1];
            if (l.emitter != address(router) || l.topics.length == 0 || l.topics[0] != topic) continue;
            if (keccak256(_loggedReason(topic, l.data)) != keccak256(reason)) {
                _violate("batch: failure event's reason differs from results");
            }
            return;
        }
        _violate("batch: a failed item without its IntentFailed / ExitSkipped");
    }

    function _loggedReason(bytes32 topic, bytes memory data) internal pure returns (bytes memory) {
        if (topic == ITradeRouter.ExitSkipped.selector) return abi.decode(data, (bytes));
        (,, bytes memory reason) = abi.decode(data, (uint256, bytes32, bytes));
        return reason;
    }

    function _violate(string memory what) internal {
        _violations.push(what);
    }

    function _intentSucceeded(uint256 a, Action action) internal {
        ghost_intents[a]++;
        successes[uint256(action)]++;
    }

    function _sign(uint256 a, bytes32 structHash) internal view returns (bytes memory) {
        bytes32 separator = IntentSigner.domainSeparator(block.chainid, address(router));
        return IntentSigner.sign(_agentKeys[a], IntentSigner.digest(separator, structHash));
    }

    function _refreshPrices() internal {
        for (uint256 t; t < TOKENS; ++t) {
            (uint256 price,,) = oracle.latestPrice(_tokens[t]);
            _pushTokenPrice(t, price);
        }
    }

    /// @dev Pushes the share price that gives per-token price `price` under the multiplier in force
    ///      (the nearest above, so the per-token price lands on `price` or just past it by rounding).
    function _pushTokenPrice(uint256 t, uint256 price) internal {
        uint256 share = _sharePrice(t, price); // before the prank: a call would use it up
        vm.prank(admin);
        oracle.setPrice(_tokens[t], share);
    }

    function _sharePrice(uint256 t, uint256 price) internal view returns (uint256 share) {
        (uint256 multiplier,,) = oracle.multiplierOf(_tokens[t]);
        share = _ceilDiv(price * 1e18, multiplier);
        if (share == 0) share = 1;
    }

    // ------------------------------------------------------------------ market sessions (SPEC §5.6)

    function _inSessions(uint8 sessions, uint8 status) internal pure returns (bool) {
        return (sessions >> status) & 1 == 1;
    }

    /// @dev An open or add goes past the market gate: no status (Unknown), or one of the track's sessions.
    function _marketAllowsBuy(uint256 a, uint256 t) internal view returns (bool) {
        uint8 status = uint8(oracle.marketStatus(_tokens[t]));
        return status == 0 || _inSessions(_tracks[a].sessions, status);
    }

    function _isMarketRejection(uint256 a, uint256 t, bytes memory reason) internal view returns (bool) {
        if (_marketAllowsBuy(a, t)) return false;
        uint8 status = uint8(oracle.marketStatus(_tokens[t]));
        return keccak256(reason)
            == keccak256(abi.encodeWithSelector(ITradeRouter.MarketClosed.selector, _tokens[t], status));
    }

    /// @dev What the router's exit gate says for agent `a`'s position in token `t`: empty if it passes.
    function _exitGate(uint256 a, uint256 t) internal view returns (bytes memory) {
        IPriceOracle.Quote memory q = oracle.latestQuote(_tokens[t]);
        uint8 status = uint8(q.status);
        uint8 quoted = uint8(q.quotedStatus);
        if (status == 0) return "";
        if (status == STATUS_HALTED) return abi.encodeWithSelector(ITradeRouter.MarketHalted.selector, _tokens[t]);
        IAgentRegistry.Track memory track = _tracks[a];
        if (track.exitsWhenClosed == IAgentRegistry.ExitsWhenClosed.Fire) return "";
        if (!_inSessions(track.sessions, status)) {
            return abi.encodeWithSelector(ITradeRouter.MarketClosed.selector, _tokens[t], status);
        }
        if (!_inSessions(track.sessions, quoted)) {
            return abi.encodeWithSelector(ITradeRouter.MarketClosed.selector, _tokens[t], quoted);
        }
        return "";
    }

    // ------------------------------------------------------------------ amounts and limits

    /// @dev Around what the agent may still buy, min(headroom, max trade size): half the time a share of
    ///      half of it (in whole dollars one of those times, so that trigger thresholds are exact and
    ///      the price can sit right on them), a quarter of the time a share of 110% of it, and a quarter
    ///      of the time any amount up to 110% (dust included) from the raw seed. (A zero seed, which the
    ///      fuzzer likes, gets a small share, not dust.)
    function _buyAmount(uint256 a, uint256 seed) internal view returns (uint256) {
        uint256 allocation = _allocations[a];
        uint256 deployed = router.agentState(_agentIds[a]).deployed;
        uint256 room = allocation > deployed ? allocation - deployed : 0;
        uint256 maxTrade = allocation * _tracks[a].maxTradeSizeBps / BPS;
        if (room > maxTrade) room = maxTrade;
        uint256 mode = seed % 4;
        seed >>= 2;
        if (mode == 3) return bound(seed, 1, room * 11 / 10 + 1);
        uint256 cap = mode == 2 ? room * 11 / 10 : room / 2;
        uint256 amount = cap * bound(seed, 1, BPS) / BPS + 1;
        if (mode == 0) amount = amount < 1e6 ? 1e6 : amount / 1e6 * 1e6;
        return amount;
    }

    /// @dev SPEC §1.5 for an open or add of `amount`: the router's deployed capital (checked on its own
    ///      by an invariant) and the handler's own daily counters.
    function _buyAllowed(uint256 a, uint256 amount) internal view returns (bool) {
        IAgentRegistry.Track memory track = _tracks[a];
        uint256 deployed = router.agentState(_agentIds[a]).deployed;
        (uint256 turnover, int256 realizedPnl) = ghostToday(a);
        uint256 allocation = _allocations[a];
        if (realizedPnl <= -int256(allocation * track.maxDailyLossBps / BPS)) return false;
        if (amount > allocation * track.maxTradeSizeBps / BPS) return false;
        if (deployed + amount > allocation) return false;
        if (turnover + amount > allocation * track.maxDailyTurnoverBps / BPS) return false;
        return amount != 0;
    }

    /// @dev Whether `reason` is exactly the error (with its parameters) of a limit that an open or add
    ///      of `amount` breaks. Several may be broken; the spec does not say which is reported first.
    function _isLimitRejection(uint256 a, uint256 amount, bytes memory reason) internal view returns (bool) {
        IAgentRegistry.Track memory track = _tracks[a];
        uint256 allocation = _allocations[a];
        uint256 deployed = router.agentState(_agentIds[a]).deployed;
        (uint256 turnover, int256 realizedPnl) = ghostToday(a);
        bytes32 got = keccak256(reason);

        uint256 maxLoss = allocation * track.maxDailyLossBps / BPS;
        if (realizedPnl <= -int256(maxLoss)) {
            if (
                got
                    == keccak256(
                        abi.encodeWithSelector(ITradeRouter.DailyLossLimitReached.selector, realizedPnl, maxLoss)
                    )
            ) {
                return true;
            }
        }
        uint256 maxTrade = allocation * track.maxTradeSizeBps / BPS;
        if (amount > maxTrade) {
            if (got == keccak256(abi.encodeWithSelector(ITradeRouter.TradeSizeExceeded.selector, amount, maxTrade))) {
                return true;
            }
        }
        uint256 headroom = allocation > deployed ? allocation - deployed : 0;
        if (amount > headroom) {
            if (got == keccak256(abi.encodeWithSelector(ITradeRouter.HeadroomExceeded.selector, amount, headroom))) {
                return true;
            }
        }
        uint256 maxTurnover = allocation * track.maxDailyTurnoverBps / BPS;
        if (turnover + amount > maxTurnover) {
            bytes memory err =
                abi.encodeWithSelector(ITradeRouter.DailyTurnoverExceeded.selector, turnover + amount, maxTurnover);
            if (got == keccak256(err)) return true;
        }
        return false;
    }

    // ------------------------------------------------------------------ ladders

    /// @dev A ladder of 1..4 rules valid for the agent's track (2..4 when it needs both kinds).
    function _randomLadder(uint256 a, uint256 seed) internal view returns (ITradeRouter.ExitRule[] memory rules) {
        IAgentRegistry.Track memory track = _tracks[a];
        uint256 n = 1 + seed % 4;
        if (track.requireStopLoss && track.requireTakeProfit && n < 2) n = 2;
        rules = new ITradeRouter.ExitRule[](n);
        bool hasStop;
        bool hasTake;
        for (uint256 i; i < n; ++i) {
            uint256 r = uint256(keccak256(abi.encode(seed, i)));
            rules[i] = _randomRule(track, uint8(r % 2), r >> 8);
            if (rules[i].triggerType == 0) hasStop = true;
            else hasTake = true;
        }
        // With both kinds required there are at least two rules, so the two fixes never collide.
        if (track.requireTakeProfit && !hasTake) rules[n - 1] = _randomRule(track, 1, seed >> 16);
        if (track.requireStopLoss && !hasStop) rules[0] = _randomRule(track, 0, seed >> 24);
        rules[n - 1].exitBps = uint16(BPS);
    }

    function _randomRule(IAgentRegistry.Track memory track, uint8 kind, uint256 r)
        internal
        pure
        returns (ITradeRouter.ExitRule memory rule)
    {
        rule.triggerType = kind;
        if (kind == 0) {
            uint256 deepest = track.maxStopLossBps < 5_000 ? track.maxStopLossBps : 5_000;
            rule.triggerBps = -int32(uint32(bound(r, 1, deepest)));
        } else {
            uint256 highest = track.maxTakeProfitBps < 5_000 ? track.maxTakeProfitBps : 5_000;
            if (highest < track.minTakeProfitBps) highest = track.minTakeProfitBps;
            rule.triggerBps = int32(uint32(bound(r, track.minTakeProfitBps, highest)));
        }
        // One rule in four sells everything; the rest a random share.
        uint256 e = r >> 64;
        rule.exitBps = e % 4 == 0 ? uint16(BPS) : uint16(bound(e >> 2, 1, BPS));
    }

    function _setLadder(uint256 id, ITradeRouter.ExitRule[] memory exits) internal {
        delete _ladders[id];
        for (uint256 i; i < exits.length; ++i) {
            _ladders[id].push(exits[i]);
        }
    }

    /// @dev SPEC §1.6 written out again: the lowest-index armed triggered rule fires, selling its
    ///      share of what is left; repeat while one is triggered. value = size · price rounded down;
    ///      a stop is triggered when value·10⁴ ≤ cost·(10⁴+bps), a take-profit when ≥.
    function _modelExit(
        ITradeRouter.ExitRule[] memory exits,
        uint8 firedMask,
        uint256 size,
        uint256 costBasis,
        uint256 price
    ) internal pure returns (ExitModel memory m) {
        m.firedMask = firedMask;
        m.size = size;
        m.costBasis = costBasis;
        while (m.size != 0) {
            uint256 value = m.size * price / SCALE;
            uint256 i = type(uint256).max;
            for (uint256 j; j < exits.length; ++j) {
                if (m.firedMask & (1 << j) != 0) continue;
                int256 factor = int256(BPS) + exits[j].triggerBps;
                uint256 threshold = factor > 0 ? m.costBasis * uint256(factor) : 0;
                bool triggered = exits[j].triggerType == 0 ? value * BPS <= threshold : value * BPS >= threshold;
                if (triggered) {
                    i = j;
                    break;
                }
            }
            if (i == type(uint256).max) break;
            m.firedMask |= uint8(1 << i);
            uint256 sold = exits[i].exitBps == BPS ? m.size : m.size * exits[i].exitBps / BPS;
            uint256 removed = sold == m.size ? m.costBasis : m.costBasis * sold / m.size;
            m.size -= sold;
            m.costBasis -= removed;
            ++m.fired;
        }
    }

    // ------------------------------------------------------------------ bookkeeping

    function _openSlot(uint256 agentSeed, uint256 tokenSeed) internal view returns (uint256 a, uint256 t) {
        uint256 slots = AGENTS * TOKENS;
        uint256 start = (agentSeed % AGENTS) * TOKENS + tokenSeed % TOKENS;
        if (agentSeed % 4 == 3) return (start / TOKENS, start % TOKENS);
        for (uint256 k; k < slots; ++k) {
            uint256 s = (start + k) % slots;
            if (ghost_openIdOf[s / TOKENS][s % TOKENS] == 0) return (s / TOKENS, s % TOKENS);
        }
        return (start / TOKENS, start % TOKENS);
    }

    /// @dev An open position mostly; one time in eight (or when none is open) the last closed
    ///         position of a random (agent, token), which may be none (id 0).
    function _pickPosition(uint256 seed) internal view returns (uint256 id, bool isOpen) {
        if (seed % 8 != 7) {
            id = _anyOpenId(seed >> 3);
            if (id != 0) return (id, true);
        }
        uint256 slot = (seed >> 3) % (AGENTS * TOKENS);
        return (_lastClosedIdOf[slot / TOKENS][slot % TOKENS], false);
    }

    /// @dev `executeExit` with a ladder other than the current one (one rule's share changed) must be
    ///      rejected with `LadderMismatch(id, current, provided)`.
    function _exitWithWrongLadder(uint256 id, ITradeRouter.ExitRule[] memory exits, address caller) internal {
        bytes32 current = IntentSigner.exitsHash(exits);
        exits[0].exitBps = exits[0].exitBps == 1 ? 2 : exits[0].exitBps - 1;
        bytes memory expected =
            abi.encodeWithSelector(ITradeRouter.LadderMismatch.selector, id, current, IntentSigner.exitsHash(exits));
        vm.recordLogs();
        (bool ok, bytes memory reason) =
            _sendExit(_viaBatch(Action.ExecuteExit, abi.encode(id, caller)), caller, id, exits);
        vm.getRecordedLogs();
        if (ok) {
            _violate("executeExit: accepted a ladder other than the current one");
        } else {
            rejectionsBy[bytes4(reason)]++;
            rejections[uint256(Action.ExecuteExit)]++;
            if (keccak256(reason) != keccak256(expected)) {
                _violate("executeExit: a wrong ladder not rejected with LadderMismatch(id, current, provided)");
            }
        }
    }

    /// @dev `executeExit` on a closed position must be rejected with `PositionNotOpen`.
    function _exitClosed(uint256 seed, address caller) internal {
        uint256 slot = seed % (AGENTS * TOKENS);
        uint256 id = _lastClosedIdOf[slot / TOKENS][slot % TOKENS];
        if (id == 0) {
            skips[uint256(Action.ExecuteExit)]++;
            return;
        }
        ITradeRouter.ExitRule[] memory exits = _ladders[id];
        vm.recordLogs();
        (bool ok, bytes memory reason) =
            _sendExit(_viaBatch(Action.ExecuteExit, abi.encode(seed, caller)), caller, id, exits);
        vm.getRecordedLogs();
        if (ok) {
            _violate("executeExit: a closed position was exited again");
        } else {
            rejectionsBy[bytes4(reason)]++;
            rejections[uint256(Action.ExecuteExit)]++;
            if (keccak256(reason) != keccak256(abi.encodeWithSelector(ITradeRouter.PositionNotOpen.selector, id))) {
                _violate("executeExit: closed position not rejected with PositionNotOpen(id)");
            }
        }
    }

    function _anyOpenId(uint256 seed) internal view returns (uint256) {
        uint256 slots = AGENTS * TOKENS;
        uint256 start = seed % slots;
        for (uint256 k; k < slots; ++k) {
            uint256 s = (start + k) % slots;
            uint256 id = ghost_openIdOf[s / TOKENS][s % TOKENS];
            if (id != 0) return id;
        }
        return 0;
    }

    function _balances(uint256 t) internal view returns (Balances memory b) {
        b.token = IERC20(_tokens[t]).balanceOf(vault);
        b.usdc = usdc.balanceOf(vault);
    }

    /// @dev Tokens the vault gained and USDC it paid since `before` (0 where it moved the other way).
    function _bought(uint256 t, Balances memory before) internal returns (uint256 tokensIn, uint256 usdcPaid) {
        Balances memory now_ = _balances(t);
        tokensIn = now_.token > before.token ? now_.token - before.token : 0;
        usdcPaid = before.usdc > now_.usdc ? before.usdc - now_.usdc : 0;
        if (now_.token < before.token || now_.usdc > before.usdc) _violate("buy: balances moved the wrong way");
    }

    function _sold(uint256 t, Balances memory before) internal returns (uint256 tokensOut, uint256 usdcIn) {
        Balances memory now_ = _balances(t);
        tokensOut = before.token > now_.token ? before.token - now_.token : 0;
        usdcIn = now_.usdc > before.usdc ? now_.usdc - before.usdc : 0;
        if (now_.token > before.token || now_.usdc < before.usdc) _violate("sale: balances moved the wrong way");
    }

    /// @dev Books a sale: tokens out of the position (saturating on purpose: an oversold position must
    ///      be recorded as sold > bought, not revert the call and erase the evidence), and the agent's
    ///      realized PnL (proceeds − cost basis removed) and, for a reduce, turnover for the UTC day.
    function _recordSale(
        uint256 id,
        uint256 sold,
        uint256 soldByEvents,
        uint256 proceeds,
        uint256 basisBefore,
        bool countsAsTurnover
    ) internal {
        GhostPosition storage g = _ghost[id];
        g.sold += sold;
        g.soldByEvents += soldByEvents;
        uint256 t = g.tokenIdx;
        ghost_openSize[t] = ghost_openSize[t] > sold ? ghost_openSize[t] - sold : 0;

        uint256 basisAfter = router.position(id).costBasis;
        if (basisAfter > basisBefore) _violate("sale: cost basis went up");
        uint256 removed = basisAfter < basisBefore ? basisBefore - basisAfter : 0;
        DailyCounters storage d = _rollGhostDay(g.agentIdx);
        d.realizedPnl += int256(proceeds) - int256(removed);
        if (countsAsTurnover) d.turnover += proceeds;
    }

    function _recordBuy(uint256 a, uint256 usdcAmount) internal {
        _rollGhostDay(a).turnover += usdcAmount;
    }

    function _rollGhostDay(uint256 a) internal returns (DailyCounters storage d) {
        d = _daily[a];
        uint256 today = block.timestamp / 1 days;
        if (d.day != today) {
            d.day = today;
            d.turnover = 0;
            d.realizedPnl = 0;
        }
    }

    function _close(uint256 id) internal {
        GhostPosition storage g = _ghost[id];
        g.closed = true;
        g.firedMask = 0;
        ghost_openIdOf[g.agentIdx][g.tokenIdx] = 0;
        _lastClosedIdOf[g.agentIdx][g.tokenIdx] = id;
        ghost_closedPositions++;
    }

    /// @dev tokensOut of PositionOpened / PositionIncreased, tokensIn of PositionReduced, for `id`.
    function _tokensFromLogs(uint256 id) internal returns (uint256 tokens) {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            Vm.Log memory l = logs[i];
            if (l.emitter != address(router) || l.topics.length < 2 || uint256(l.topics[1]) != id) continue;
            if (l.topics[0] == ITradeRouter.PositionOpened.selector) {
                (, uint256 tokensOut,) = abi.decode(l.data, (uint256, uint256, uint256));
                tokens += tokensOut;
            } else if (l.topics[0] == ITradeRouter.PositionIncreased.selector) {
                (, uint256 tokensOut,,,) = abi.decode(l.data, (uint256, uint256, uint256, uint256, uint256));
                tokens += tokensOut;
            } else if (l.topics[0] == ITradeRouter.PositionReduced.selector) {
                (uint256 tokensIn,,,,,) = abi.decode(l.data, (uint256, uint256, uint256, int256, uint256, uint256));
                tokens += tokensIn;
            }
        }
    }

    function _exitFillsFromLogs(uint256 id) internal returns (uint256 tokens, uint256 fills) {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            Vm.Log memory l = logs[i];
            if (l.emitter != address(router) || l.topics.length < 2 || uint256(l.topics[1]) != id) continue;
            if (l.topics[0] != ITradeRouter.ExitExecuted.selector) continue;
            ITradeRouter.ExitFill memory fill = abi.decode(l.data, (ITradeRouter.ExitFill));
            tokens += fill.tokensIn;
            ++fills;
        }
    }
}
