// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title ITradeRouter
/// @notice Relays agents' EIP-712 intents (open, add, reduce, update exit ladder) against a vault's
///         capital and executes exit-ladder rules for anyone who calls. Every rule of SPEC §1.4–1.6
///         is enforced here; an off-chain relayer only checks first so it never pays for a revert.
/// @dev    Errors are documented once, here. Amounts are base units: USDC 6 decimals, equity tokens
///         their own decimals (18 for the local tokens); oracle prices have 8 decimals.
interface ITradeRouter {
    // ------------------------------------------------------------------ types (SPEC §1.3)

    /// @notice One exit-ladder rule. `triggerType` 0 = StopLoss, 1 = TakeProfit.
    struct ExitRule {
        uint8 triggerType;
        int32 triggerBps;
        uint16 exitBps;
    }

    struct OpenPosition {
        uint256 agentId;
        address vault;
        address token;
        uint256 usdcAmount;
        uint256 minTokenOut;
        uint16 maxSlippageBps;
        bytes32 exitsHash;
        uint256 deadline;
        uint256 nonce;
    }

    struct AddToPosition {
        uint256 agentId;
        uint256 positionId;
        uint256 usdcAmount;
        uint256 minTokenOut;
        uint16 maxSlippageBps;
        uint256 deadline;
        uint256 nonce;
    }

    struct ReducePosition {
        uint256 agentId;
        uint256 positionId;
        uint256 tokenAmount;
        uint256 minUsdcOut;
        uint16 maxSlippageBps;
        uint256 deadline;
        uint256 nonce;
    }

    struct UpdateExitLadder {
        uint256 agentId;
        uint256 positionId;
        bytes32 exitsHash;
        uint256 deadline;
        uint256 nonce;
    }

    enum IntentType {
        Open,
        Add,
        Reduce,
        UpdateLadder
    }

    /// @notice One signed intent in a batch (`executeIntents`). `intent` is `abi.encode(<the typed
    ///         struct>)` for its type: OpenPosition / AddToPosition / ReducePosition / UpdateExitLadder
    ///         (288 / 224 / 224 / 160 bytes). `exits` is the ladder for Open and UpdateLadder (empty for
    ///         Add and Reduce). `signature` is the same signature the single call takes.
    struct IntentCall {
        IntentType intentType;
        bytes intent;
        ExitRule[] exits;
        bytes signature;
    }

    /// @notice One position's exit in a batch (`executeExits`): the arguments of `executeExit`.
    struct ExitCall {
        uint256 positionId;
        ExitRule[] exits;
    }

    /// @notice Why a ladder was rejected; paired with the offending rule's index in `ExitLadderInvalid`.
    ///         Whole-ladder reasons use index 0 (`Empty`), 8 (`TooManyRules`) or the rule count
    ///         (`StopLossRequired`, `TakeProfitRequired`).
    enum LadderError {
        Empty,
        TooManyRules,
        InvalidTriggerType,
        StopLossNotNegative,
        TakeProfitNotPositive,
        ExitBpsOutOfRange,
        LastRuleNotFull,
        StopLossBeyondTrack,
        TakeProfitBelowTrack,
        TakeProfitAboveTrack,
        StopLossRequired,
        TakeProfitRequired
    }

    /// @notice A position as stored; `open` is false once it has been closed.
    struct PositionView {
        uint256 positionId;
        uint256 agentId;
        address token;
        bool open;
        uint256 size;
        uint256 costBasis;
        bytes32 exitsHash;
        uint8 ruleCount;
        /// bit i set = rule i has fired since the ladder was last set
        uint8 firedMask;
    }

    /// @notice One fired exit rule, as `ExitExecuted` reports it.
    struct ExitFill {
        uint256 ruleIndex;
        uint256 tokensIn;
        uint256 usdcOut;
        uint256 oraclePrice;
        uint256 oracleRoundId;
        int256 realizedPnl;
        uint256 size;
        uint256 costBasis;
    }

    /// @notice An agent's counters; the daily figures are for the current UTC day.
    struct AgentStateView {
        uint256 nextNonce;
        uint256 deployed;
        uint256 day;
        uint256 turnoverToday;
        int256 realizedPnlToday;
    }

    // ------------------------------------------------------------------ errors

    /// @notice `block.timestamp > deadline`.
    error DeadlineExpired(uint256 deadline, uint256 timestamp);
    /// @notice The intent's nonce is not the agent's next nonce.
    error NonceMismatch(uint256 agentId, uint256 expected, uint256 provided);
    /// @notice The signature is not a canonical 65-byte r‖s‖v ECDSA signature.
    /// @param reason 1 = does not recover, 2 = length is not 65, 3 = high s (malleable)
    error SignatureMalformed(uint8 reason);
    /// @notice The signature recovers to someone other than the agent's registered signer.
    error InvalidSigner(address recovered, address expected);
    error AgentNotFound(uint256 agentId);
    error AgentInactive(uint256 agentId);
    /// @notice `OpenPosition.vault` is not the agent's registered vault.
    error VaultMismatch(address expected, address provided);
    error TokenNotAllowed(uint256 vaultId, address token);
    /// @notice The agent already holds an open position in this token (one per token per agent).
    error PositionExists(uint256 agentId, address token, uint256 positionId);
    /// @notice No position with this id belongs to this agent.
    error PositionNotFound(uint256 positionId);
    error PositionNotOpen(uint256 positionId);
    /// @notice The exit rules sent do not hash to the signed `exitsHash`.
    error ExitsHashMismatch(bytes32 computed, bytes32 signed);
    error ExitLadderInvalid(uint256 ruleIndex, LadderError reason);
    error ZeroAmount();
    /// @notice `maxSlippageBps` above 10000.
    error InvalidSlippageBps(uint256 maxSlippageBps);
    error TradeSizeExceeded(uint256 usdcAmount, uint256 maxTradeSize);
    error HeadroomExceeded(uint256 usdcAmount, uint256 headroom);
    error DailyTurnoverExceeded(uint256 turnoverAfter, uint256 maxDailyTurnover);
    error DailyLossLimitReached(int256 realizedPnlToday, uint256 maxDailyLoss);
    /// @notice The fill price is worse than the oracle price by more than `maxSlippageBps`.
    error SlippageExceeded(uint256 amountIn, uint256 amountOut, uint256 oraclePrice, uint256 maxSlippageBps);
    /// @notice The fill is below the signed absolute floor (`minTokenOut` / `minUsdcOut`).
    error MinOutputNotMet(uint256 amountOut, uint256 minAmountOut);
    /// @notice A sale took `taken` of the vault's tokens, more than the `tokensIn` sold (a faulty or
    ///         hostile venue: it takes the tokens from the vault itself).
    error VenueOverdrew(address token, uint256 taken, uint256 tokensIn);
    error OraclePriceStale(address token, uint256 updatedAt, uint256 maxPriceAge);
    /// @notice SPEC §5.6. An open or add while the token's market status is not in the track's sessions;
    ///         an exit on a track that holds exits (`ExitsWhenClosed.Hold`) while the status now, or the
    ///         one the price was quoted in (then `status` is that one), is not in its sessions. A token
    ///         whose feed publishes no status (Unknown) is never gated.
    error MarketClosed(address token, uint8 status);
    /// @notice An exit while the token's market is halted (whatever the track's policy).
    error MarketHalted(address token);
    /// @notice The ladder sent to `executeExit` is not the position's current ladder.
    error LadderMismatch(uint256 positionId, bytes32 current, bytes32 provided);
    /// @notice No armed rule of the ladder is triggered at the current oracle price.
    error ExitNotTriggered(uint256 positionId, uint256 oraclePrice);
    /// @notice An amount does not fit the router's packed storage (absurdly large).
    error AmountTooLarge(uint256 amount);
    /// @notice Batch item `index`'s `intent` bytes do not decode as its type: wrong length, a field out
    ///         of its type's range (an address or uint16 with high bits set), or `exits` given for an
    ///         Add or Reduce.
    error MalformedIntent(uint256 index);
    /// @notice The per-item entry points of the batches are for the router's own calls only.
    error OnlySelf();

    // ------------------------------------------------------------------ events (enough to rebuild every position)

    event NonceUsed(uint256 indexed agentId, uint256 nonce, IntentType intentType, bytes32 digest);
    event PositionOpened(
        uint256 indexed positionId,
        uint256 indexed agentId,
        address indexed token,
        uint256 usdcIn,
        uint256 tokensOut,
        uint256 oraclePrice
    );
    event PositionIncreased(
        uint256 indexed positionId,
        uint256 indexed agentId,
        uint256 usdcIn,
        uint256 tokensOut,
        uint256 oraclePrice,
        uint256 size,
        uint256 costBasis
    );
    event PositionReduced(
        uint256 indexed positionId,
        uint256 indexed agentId,
        uint256 tokensIn,
        uint256 usdcOut,
        uint256 oraclePrice,
        int256 realizedPnl,
        uint256 size,
        uint256 costBasis
    );
    /// @notice `fill` says which rule fired at which oracle price and round, what it sold, and what is left.
    event ExitExecuted(uint256 indexed positionId, uint256 indexed agentId, ExitFill fill);
    /// @notice A ladder was set (at open) or replaced (update); all its rules are armed.
    event ExitLadderSet(uint256 indexed positionId, uint256 indexed agentId, bytes32 exitsHash, ExitRule[] rules);
    event PositionClosed(uint256 indexed positionId, uint256 indexed agentId, address indexed token);
    event MaxPriceAgeSet(uint256 maxPriceAge);
    /// @notice A batch item failed and changed nothing (its nonce stays unused). `agentId`, `nonce` and
    ///         `digest` (the EIP-712 digest the single call verifies) are 0 when the `intent` bytes
    ///         cannot be read (`MalformedIntent`); `reason` is the item's revert data, as in `results`.
    event IntentFailed(uint256 indexed agentId, uint256 nonce, bytes32 digest, bytes reason);
    /// @notice A batch exit did not fire and changed nothing; `reason` is its revert data (e.g.
    ///         `ExitNotTriggered`, `PositionNotOpen`), as in `results`.
    event ExitSkipped(uint256 indexed positionId, bytes reason);

    // ------------------------------------------------------------------ intents

    function openPosition(OpenPosition calldata intent, ExitRule[] calldata exits, bytes calldata signature)
        external
        returns (uint256 positionId);

    function addToPosition(AddToPosition calldata intent, bytes calldata signature) external;

    /// @notice A `tokenAmount` at or above the current size closes the position.
    function reducePosition(ReducePosition calldata intent, bytes calldata signature) external;

    /// @notice Replaces the ladder and re-arms every rule. Never blocked by track limits.
    function updateExitLadder(UpdateExitLadder calldata intent, ExitRule[] calldata exits, bytes calldata signature)
        external;

    /// @notice Fires the position's triggered rules at the current oracle price, lowest index first,
    ///         repeating while another armed rule is triggered. Callable by anyone.
    /// @return fired how many rules fired
    function executeExit(uint256 positionId, ExitRule[] calldata exits) external returns (uint256 fired);

    // ------------------------------------------------------------------ batches (SPEC §5.1)

    /// @notice Executes each intent exactly as its single function would (same checks, same events),
    ///         each on its own: a failing item changes nothing, leaves its nonce unused and emits only
    ///         `IntentFailed`; the others go through. Items run in order, so one agent's consecutive
    ///         nonces work in one batch. Callable by anyone: the signatures are the authority.
    /// @dev    Reverts as a whole only when paused, on reentry, when its calldata is not valid ABI for
    ///         `IntentCall[]` (bad offsets, an `intentType` or rule value out of range), or when an item
    ///         failed for lack of gas (it was left ≤ 1/64 of the gas it was given, or reverted with
    ///         no data, as a call starved deeper down does): a starved item is never reported as
    ///         rejected; the batch fails as out of gas instead.
    /// @return results one per item, in order: empty on success, else the item's revert data (the
    ///         custom error its single call reverts with; `MalformedIntent(index)` for unreadable bytes)
    function executeIntents(IntentCall[] calldata items) external returns (bytes[] memory results);

    /// @notice `executeExit` for each item, each on its own: an item that does not fire (e.g.
    ///         `ExitNotTriggered`, `PositionNotOpen`) changes nothing and emits `ExitSkipped`; the
    ///         rest fire with the single call's events. Callable by anyone. Whole-batch reverts as for
    ///         `executeIntents`.
    /// @return results one per item: empty on success (rules fired), else the revert data (e.g. ExitNotTriggered)
    function executeExits(ExitCall[] calldata items) external returns (bytes[] memory results);

    // ------------------------------------------------------------------ views

    function nextNonce(uint256 agentId) external view returns (uint256);
    function agentState(uint256 agentId) external view returns (AgentStateView memory);
    function position(uint256 positionId) external view returns (PositionView memory);
    /// @return positionId of the agent's open position in `token`, 0 if none
    function openPositionOf(uint256 agentId, address token) external view returns (uint256);
    function maxPriceAge() external view returns (uint256);
    function domainSeparator() external view returns (bytes32);
    /// @return the highest position id issued so far
    function positionCount() external view returns (uint256);
}
