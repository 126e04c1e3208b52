// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IAgentRegistry} from "./interfaces/IAgentRegistry.sol";
import {IExecutionVenue} from "./interfaces/IExecutionVenue.sol";
import {IPriceOracle} from "./interfaces/IPriceOracle.sol";
import {ITokenRegistry} from "./interfaces/ITokenRegistry.sol";
import {ITradeRouter} from "./interfaces/ITradeRouter.sol";
import {IVault} from "./interfaces/IVault.sol";
import {ExitLadder} from "./libraries/ExitLadder.sol";
import {IntentHash} from "./libraries/IntentHash.sol";

/// @title TradeRouter
/// @notice Verifies agents' EIP-712 intents and trades a vault's capital through the execution venue;
///         executes exit-ladder rules for anyone. See {ITradeRouter} for the rules and errors.
/// @dev    What it does not do: it holds no funds (the vault does), prices nothing itself (the oracle
///         and the venue do), and trusts the registries, oracle and venue its admin configured. The
///         venue is trusted for its prices, not its accounting: fills are booked as the vault's balance
///         change, and no call can re-enter the router (nonReentrant on every state-changing entry).
///         Storage is packed and keyed so that an open writes one fresh slot, the position id's owner
///         record: the holding and the ladder hash are kept per (agent, token) and left nonzero when
///         a position closes, so the agent's next position in that token rewrites them (5k, not 22k).
contract TradeRouter is ITradeRouter, EIP712, AccessControl, Pausable, ReentrancyGuardTransient {
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
    uint256 private constant BPS = 10_000;
    uint256 private constant NONE = type(uint256).max;
    /// @dev `IPriceOracle.MarketStatus` values the router tests for (SPEC §5.6).
    uint256 private constant UNKNOWN = uint256(IPriceOracle.MarketStatus.Unknown);
    uint256 private constant HALTED = uint256(IPriceOracle.MarketStatus.Halted);
    uint256 private constant HOLD = uint256(IAgentRegistry.ExitsWhenClosed.Hold);

    IAgentRegistry public immutable agentRegistry;
    ITokenRegistry public immutable tokenRegistry;
    IPriceOracle public immutable oracle;
    IExecutionVenue public immutable venue;
    address public immutable usdc;

    // Declared right after Pausable's flag so the three share one slot, read once per call.
    uint48 private _positionCount;
    uint32 private _maxPriceAge;

    /// @dev Per agent, one slot: written once per intent.
    struct AgentState {
        uint40 nonce;
        uint24 day;
        uint64 turnoverToday;
        int64 realizedPnlToday;
        uint64 deployed;
    }

    /// @dev The agent's position in a token, keyed by (agent, token) so the one-per-token rule is a single
    ///      read. Open ⇔ `ruleCount != 0` (an open position has 1 to 8 rules); a closed one keeps its
    ///      `positionId` and zeros, so the slot stays nonzero for the next open.
    struct Holding {
        uint48 positionId;
        uint128 size;
        uint64 costBasis;
        uint8 ruleCount;
        uint8 firedMask;
    }

    /// @dev Who owns a position id, and the agent's vault id (an agent's vault is fixed at registration):
    ///      an exit asks the registry for the vault's address, one slot shared by every agent of the
    ///      vault, instead of the agent's own record. Kept after the position closes.
    struct PositionRef {
        address token;
        uint64 agentId;
        uint32 vaultId;
    }

    /// @dev What one `executeExit` call fires against (memory only).
    struct ExitContext {
        address token;
        uint256 agentId;
        address vault;
        uint256 price;
        uint256 roundId;
        uint256 scale;
    }

    mapping(uint256 agentId => AgentState) private _agents;
    mapping(uint256 agentId => mapping(address token => Holding)) private _holdings;
    /// @dev The current ladder's hash of the agent's position in a token; not cleared on close (see Holding).
    mapping(uint256 agentId => mapping(address token => bytes32)) private _ladders;
    mapping(uint256 positionId => PositionRef) private _refs;

    constructor(
        address admin,
        IAgentRegistry agentRegistry_,
        ITokenRegistry tokenRegistry_,
        IPriceOracle oracle_,
        IExecutionVenue venue_,
        address usdc_,
        uint256 maxPriceAge_
    ) EIP712("AlphaGrid TradeRouter", "1") {
        agentRegistry = agentRegistry_;
        tokenRegistry = tokenRegistry_;
        oracle = oracle_;
        venue = venue_;
        usdc = usdc_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(OPERATOR_ROLE, admin);
        _setMaxPriceAge(maxPriceAge_);
    }

    // ------------------------------------------------------------------ intents

    /// @inheritdoc ITradeRouter
    function openPosition(OpenPosition calldata intent, ExitRule[] calldata exits, bytes calldata signature)
        external
        nonReentrant
        whenNotPaused
        returns (uint256 positionId)
    {
        return _openPosition(intent, exits, signature);
    }

    function _openPosition(OpenPosition calldata intent, ExitRule[] calldata exits, bytes calldata signature)
        private
        returns (uint256 positionId)
    {
        bytes32 exitsHash = IntentHash.hash(exits);
        if (exitsHash != intent.exitsHash) revert ExitsHashMismatch(exitsHash, intent.exitsHash);
        (IAgentRegistry.AgentConfig memory agent, AgentState memory st) = _authorize(
            intent.agentId, intent.deadline, intent.nonce, IntentType.Open, IntentHash.hash(intent), signature
        );
        positionId = _open(intent, exits, agent, st);
    }

    function _open(
        OpenPosition calldata intent,
        ExitRule[] calldata exits,
        IAgentRegistry.AgentConfig memory agent,
        AgentState memory st
    ) private returns (uint256 positionId) {
        if (intent.vault != agent.vault) revert VaultMismatch(agent.vault, intent.vault);
        address token = intent.token;
        if (!tokenRegistry.isAllowed(agent.vaultId, token)) revert TokenNotAllowed(agent.vaultId, token);
        Holding memory existing = _holdings[intent.agentId][token];
        if (existing.ruleCount != 0) revert PositionExists(intent.agentId, token, existing.positionId);
        ExitLadder.validate(exits, agent.track);
        _checkBuyLimits(agent, st, intent.usdcAmount);

        (uint256 price, uint256 tokensOut) = _buy(
            agent.vault, token, intent.usdcAmount, intent.minTokenOut, intent.maxSlippageBps, agent.track.sessions
        );

        positionId = ++_positionCount;
        _storeHolding(
            intent.agentId,
            token,
            Holding({
                positionId: uint48(positionId),
                size: _toUint128(tokensOut),
                costBasis: uint64(intent.usdcAmount), // ≤ allocation, checked by _checkBuyLimits
                ruleCount: uint8(exits.length),
                firedMask: 0
            })
        );
        _ladders[intent.agentId][token] = intent.exitsHash;
        PositionRef storage ref = _refs[positionId];
        // The registry keeps vault ids in 32 bits.
        uint256 packedRef = uint256(uint160(token)) | (uint256(uint64(intent.agentId)) << 160)
            | (uint256(uint32(agent.vaultId)) << 224);
        assembly ("memory-safe") {
            sstore(ref.slot, packedRef)
        }
        _storeAgent(intent.agentId, st);

        emit PositionOpened(positionId, intent.agentId, token, intent.usdcAmount, tokensOut, price);
        emit ExitLadderSet(positionId, intent.agentId, intent.exitsHash, exits);
    }

    /// @inheritdoc ITradeRouter
    function addToPosition(AddToPosition calldata intent, bytes calldata signature)
        external
        nonReentrant
        whenNotPaused
    {
        _addToPosition(intent, signature);
    }

    function _addToPosition(AddToPosition calldata intent, bytes calldata signature) private {
        (IAgentRegistry.AgentConfig memory agent, AgentState memory st) = _authorize(
            intent.agentId, intent.deadline, intent.nonce, IntentType.Add, IntentHash.hash(intent), signature
        );
        (address token, Holding memory h) = _openHolding(intent.agentId, intent.positionId);
        if (!tokenRegistry.isAllowed(agent.vaultId, token)) revert TokenNotAllowed(agent.vaultId, token);
        _checkBuyLimits(agent, st, intent.usdcAmount);

        (uint256 price, uint256 tokensOut) = _buy(
            agent.vault, token, intent.usdcAmount, intent.minTokenOut, intent.maxSlippageBps, agent.track.sessions
        );

        h.size = _toUint128(h.size + tokensOut);
        h.costBasis = _toUint64(h.costBasis + intent.usdcAmount);
        _storeHolding(intent.agentId, token, h);
        _storeAgent(intent.agentId, st);

        emit PositionIncreased(
            intent.positionId, intent.agentId, intent.usdcAmount, tokensOut, price, h.size, h.costBasis
        );
    }

    /// @inheritdoc ITradeRouter
    function reducePosition(ReducePosition calldata intent, bytes calldata signature)
        external
        nonReentrant
        whenNotPaused
    {
        _reducePosition(intent, signature);
    }

    function _reducePosition(ReducePosition calldata intent, bytes calldata signature) private {
        (IAgentRegistry.AgentConfig memory agent, AgentState memory st) = _authorize(
            intent.agentId, intent.deadline, intent.nonce, IntentType.Reduce, IntentHash.hash(intent), signature
        );
        (address token, Holding memory h) = _openHolding(intent.agentId, intent.positionId);
        if (intent.tokenAmount == 0) revert ZeroAmount();
        if (intent.maxSlippageBps > BPS) revert InvalidSlippageBps(intent.maxSlippageBps);
        // The size may have shrunk through a ladder exit since the agent signed: sell what is left.
        uint256 tokensIn = Math.min(intent.tokenAmount, h.size);

        uint256 price = _freshPrice(token);
        uint256 usdcOut = _sell(agent.vault, token, tokensIn);
        if (usdcOut < intent.minUsdcOut) revert MinOutputNotMet(usdcOut, intent.minUsdcOut);
        if (usdcOut * _scale(token) * BPS < tokensIn * price * (BPS - intent.maxSlippageBps)) {
            revert SlippageExceeded(tokensIn, usdcOut, price, intent.maxSlippageBps);
        }

        int256 pnl = _applySale(h, st, tokensIn, usdcOut);
        st.turnoverToday = _saturatingAdd(st.turnoverToday, usdcOut);
        _storeAgent(intent.agentId, st);
        emit PositionReduced(intent.positionId, intent.agentId, tokensIn, usdcOut, price, pnl, h.size, h.costBasis);
        _storeAfterSale(intent.agentId, token, h);
    }

    /// @inheritdoc ITradeRouter
    function updateExitLadder(UpdateExitLadder calldata intent, ExitRule[] calldata exits, bytes calldata signature)
        external
        nonReentrant
        whenNotPaused
    {
        _updateExitLadder(intent, exits, signature);
    }

    function _updateExitLadder(UpdateExitLadder calldata intent, ExitRule[] calldata exits, bytes calldata signature)
        private
    {
        bytes32 exitsHash = IntentHash.hash(exits);
        if (exitsHash != intent.exitsHash) revert ExitsHashMismatch(exitsHash, intent.exitsHash);
        (IAgentRegistry.AgentConfig memory agent, AgentState memory st) = _authorize(
            intent.agentId, intent.deadline, intent.nonce, IntentType.UpdateLadder, IntentHash.hash(intent), signature
        );
        (address token, Holding memory h) = _openHolding(intent.agentId, intent.positionId);
        ExitLadder.validate(exits, agent.track);

        h.ruleCount = uint8(exits.length);
        h.firedMask = 0;
        _storeHolding(intent.agentId, token, h);
        _ladders[intent.agentId][token] = exitsHash;
        _storeAgent(intent.agentId, st);

        emit ExitLadderSet(intent.positionId, intent.agentId, exitsHash, exits);
    }

    // ------------------------------------------------------------------ exits

    /// @inheritdoc ITradeRouter
    function executeExit(uint256 positionId, ExitRule[] calldata exits)
        external
        nonReentrant
        whenNotPaused
        returns (uint256 fired)
    {
        return _executeExit(positionId, exits);
    }

    function _executeExit(uint256 positionId, ExitRule[] calldata exits) private returns (uint256 fired) {
        (ExitContext memory ctx, Holding memory h) = _loadExit(positionId, exits);
        AgentState memory st = _agents[ctx.agentId];
        _rollDay(st);
        while (h.size != 0) {
            uint256 value = Math.mulDiv(h.size, ctx.price, ctx.scale);
            uint256 i = ExitLadder.firstTriggered(exits, h.firedMask, value, h.costBasis);
            if (i == NONE) break;
            _fireRule(ctx, h, st, exits[i].exitBps, i);
            ++fired;
        }
        if (fired == 0) revert ExitNotTriggered(positionId, ctx.price);

        _storeAgent(ctx.agentId, st);
        _storeAfterSale(ctx.agentId, ctx.token, h);
    }

    // ------------------------------------------------------------------ batches (SPEC §5.1)

    /// @inheritdoc ITradeRouter
    function executeIntents(IntentCall[] calldata items)
        external
        nonReentrant
        whenNotPaused
        returns (bytes[] memory results)
    {
        results = new bytes[](items.length);
        for (uint256 i; i < items.length; ++i) {
            uint256 gasBefore = gasleft();
            try this.executeIntentItem(items[i], i) {}
            catch (bytes memory reason) {
                _requireItemHadGas(gasBefore, reason);
                results[i] = reason;
                (uint256 agentId, uint256 nonce, bytes32 digest) = _intentKey(items[i]);
                emit IntentFailed(agentId, nonce, digest, reason);
            }
        }
    }

    /// @inheritdoc ITradeRouter
    function executeExits(ExitCall[] calldata items)
        external
        nonReentrant
        whenNotPaused
        returns (bytes[] memory results)
    {
        results = new bytes[](items.length);
        for (uint256 i; i < items.length; ++i) {
            uint256 gasBefore = gasleft();
            uint256 positionId = items[i].positionId;
            if (!_callExitItem(positionId, items[i].exits)) {
                bytes memory reason = _returnData();
                _requireItemHadGas(gasBefore, reason);
                results[i] = reason;
                emit ExitSkipped(positionId, reason);
            }
        }
    }

    /// @dev `this.executeExitItem(positionId, exits)`, encoded by hand in memory past the free pointer
    ///      (reused by every item, so memory does not grow with the batch): the rules are copied as they
    ///      are, and checked where the item reads them (its ladder hash reverts on a field outside its type).
    function _callExitItem(uint256 positionId, ExitRule[] calldata exits) private returns (bool ok) {
        bytes4 selector = this.executeExitItem.selector;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, selector)
            mstore(add(m, 0x04), positionId)
            mstore(add(m, 0x24), 0x40)
            mstore(add(m, 0x44), exits.length)
            let size := mul(exits.length, 0x60)
            calldatacopy(add(m, 0x64), exits.offset, size)
            ok := call(gas(), address(), 0, m, add(0x64, size), 0, 0)
        }
    }

    function _returnData() private pure returns (bytes memory data) {
        assembly ("memory-safe") {
            data := mload(0x40)
            mstore(data, returndatasize())
            returndatacopy(add(data, 0x20), 0, returndatasize())
            mstore(0x40, add(add(data, 0x20), and(add(returndatasize(), 0x1f), not(0x1f))))
        }
    }

    /// @notice One item of `executeIntents`, in its own call frame so that its failure reverts only
    ///         its own effects. Only the router itself may call it (from a batch, which holds the
    ///         reentrancy lock and has checked the pause).
    function executeIntentItem(IntentCall calldata item, uint256 index) external {
        if (msg.sender != address(this)) revert OnlySelf();
        bytes calldata data = item.intent;
        IntentType kind = item.intentType;
        bool laddered = kind == IntentType.Open || kind == IntentType.UpdateLadder;
        if (!_wellFormed(kind, data) || (!laddered && item.exits.length != 0)) revert MalformedIntent(index);
        // `data` is the struct's ABI encoding, all static fields: a calldata struct pointer is its offset.
        if (kind == IntentType.Open) {
            OpenPosition calldata p;
            assembly ("memory-safe") {
                p := data.offset
            }
            _openPosition(p, item.exits, item.signature);
        } else if (kind == IntentType.Add) {
            AddToPosition calldata p;
            assembly ("memory-safe") {
                p := data.offset
            }
            _addToPosition(p, item.signature);
        } else if (kind == IntentType.Reduce) {
            ReducePosition calldata p;
            assembly ("memory-safe") {
                p := data.offset
            }
            _reducePosition(p, item.signature);
        } else {
            UpdateExitLadder calldata p;
            assembly ("memory-safe") {
                p := data.offset
            }
            _updateExitLadder(p, item.exits, item.signature);
        }
    }

    /// @notice One item of `executeExits`; only the router itself may call it (see `executeIntentItem`).
    function executeExitItem(uint256 positionId, ExitRule[] calldata exits) external {
        if (msg.sender != address(this)) revert OnlySelf();
        _executeExit(positionId, exits);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc ITradeRouter
    function nextNonce(uint256 agentId) external view returns (uint256) {
        return _agents[agentId].nonce;
    }

    /// @inheritdoc ITradeRouter
    function agentState(uint256 agentId) external view returns (AgentStateView memory) {
        AgentState memory st = _agents[agentId];
        _rollDay(st);
        return AgentStateView({
            nextNonce: st.nonce,
            deployed: st.deployed,
            day: st.day,
            turnoverToday: st.turnoverToday,
            realizedPnlToday: st.realizedPnlToday
        });
    }

    /// @inheritdoc ITradeRouter
    function position(uint256 positionId) external view returns (PositionView memory view_) {
        PositionRef memory ref = _refs[positionId];
        if (ref.token == address(0)) revert PositionNotFound(positionId);
        view_.positionId = positionId;
        view_.agentId = ref.agentId;
        view_.token = ref.token;
        Holding memory h = _holdings[ref.agentId][ref.token];
        if (h.positionId == positionId && h.ruleCount != 0) {
            view_.open = true;
            view_.size = h.size;
            view_.costBasis = h.costBasis;
            view_.exitsHash = _ladders[ref.agentId][ref.token];
            view_.ruleCount = h.ruleCount;
            view_.firedMask = h.firedMask;
        }
    }

    /// @inheritdoc ITradeRouter
    function openPositionOf(uint256 agentId, address token) external view returns (uint256) {
        Holding memory h = _holdings[agentId][token];
        return h.ruleCount != 0 ? h.positionId : 0;
    }

    /// @inheritdoc ITradeRouter
    function maxPriceAge() external view returns (uint256) {
        return _maxPriceAge;
    }

    /// @inheritdoc ITradeRouter
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @inheritdoc ITradeRouter
    function positionCount() external view returns (uint256) {
        return _positionCount;
    }

    // ------------------------------------------------------------------ admin

    function setMaxPriceAge(uint256 maxPriceAge_) external onlyRole(OPERATOR_ROLE) {
        _setMaxPriceAge(maxPriceAge_);
    }

    function pause() external onlyRole(OPERATOR_ROLE) {
        _pause();
    }

    function unpause() external onlyRole(OPERATOR_ROLE) {
        _unpause();
    }

    // ------------------------------------------------------------------ internals

    /// @dev The checklist every intent passes: agent, deadline, nonce, signature. Consumes the nonce
    ///      in the returned state, which the caller stores once at the end.
    function _authorize(
        uint256 agentId,
        uint256 deadline,
        uint256 nonce,
        IntentType kind,
        bytes32 structHash,
        bytes calldata signature
    ) private returns (IAgentRegistry.AgentConfig memory agent, AgentState memory st) {
        agent = agentRegistry.agentConfig(agentId);
        if (agent.signer == address(0)) revert AgentNotFound(agentId);
        if (!agent.active) revert AgentInactive(agentId);
        if (block.timestamp > deadline) revert DeadlineExpired(deadline, block.timestamp);
        st = _agents[agentId];
        if (nonce != st.nonce) revert NonceMismatch(agentId, st.nonce, nonce);
        bytes32 digest = _hashTypedDataV4(structHash);
        _verifySignature(agent.signer, digest, signature);
        st.nonce += 1;
        _rollDay(st);
        emit NonceUsed(agentId, nonce, kind, digest);
    }

    function _verifySignature(address signer, bytes32 digest, bytes calldata signature) private view {
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signature);
        if (err == ECDSA.RecoverError.NoError && recovered == signer) return;
        // ERC-1271 contract signers, asked only when the ECDSA path did not succeed: an EOA signer
        // costs no extra account access.
        if (signer.code.length != 0) {
            uint256 gasBefore = gasleft();
            if (SignatureChecker.isValidERC1271SignatureNow(signer, digest, signature)) return;
            _requireSignerHadGas(gasBefore);
        }
        if (err != ECDSA.RecoverError.NoError) revert SignatureMalformed(uint8(err));
        revert InvalidSigner(recovered, signer);
    }

    /// @dev SignatureChecker reads a failed `isValidSignature` call as "no", and by the 63/64 rule a
    ///      call sent with too little gas can starve the wallet yet leave this frame the 1/64 needed to
    ///      revert `InvalidSigner`: a verdict the relayer takes as final, for an intent that only lacked
    ///      gas. A starved call leaves at most 1/64 of `gasBefore`; then fail as out of gas instead, by
    ///      spending that 1/64 (as OpenZeppelin's ERC2771Forwarder does).
    function _requireSignerHadGas(uint256 gasBefore) private view {
        if (gasleft() <= gasBefore / 64) {
            assembly ("memory-safe") {
                invalid()
            }
        }
    }

    /// @dev A failed item may only have lacked gas: by the 63/64 rule a caller can starve an item and
    ///      keep enough to go on. Then fail the whole batch as out of gas (as `_requireSignerHadGas`
    ///      does) rather than report a rejection the relayer would take as final. An item starved
    ///      itself is left at most 1/64 of the gas it was given; one starved in a call it makes (vault,
    ///      venue, token) reverts with that call's empty data, while the router's own checks and the
    ///      parts' errors always carry data: empty revert data is treated as out of gas too.
    function _requireItemHadGas(uint256 gasBefore, bytes memory reason) private view {
        if (reason.length == 0 || gasleft() <= gasBefore / 64) {
            assembly ("memory-safe") {
                invalid()
            }
        }
    }

    /// @dev What `IntentFailed` says about a failed item: every intent type starts with `agentId` and
    ///      ends with `nonce`; the digest is the one its single call verifies. Zeros when unreadable.
    function _intentKey(IntentCall calldata item) private view returns (uint256 agentId, uint256 nonce, bytes32 digest) {
        bytes calldata data = item.intent;
        IntentType kind = item.intentType;
        if (!_wellFormed(kind, data)) return (0, 0, 0);
        bytes32 typeHash = kind == IntentType.Open
            ? IntentHash.OPEN_POSITION_TYPEHASH
            : kind == IntentType.Add
                ? IntentHash.ADD_TO_POSITION_TYPEHASH
                : kind == IntentType.Reduce ? IntentHash.REDUCE_POSITION_TYPEHASH : IntentHash.UPDATE_EXIT_LADDER_TYPEHASH;
        // Every field is static, so EIP-712's encodeData is the struct's ABI encoding: `data` itself.
        agentId = _word(data, 0);
        nonce = _word(data, data.length / 32 - 1);
        digest = _hashTypedDataV4(keccak256(bytes.concat(typeHash, data)));
    }

    /// @dev Whether `data` is the ABI encoding of `kind`'s struct: its length, and every field in its
    ///      type's range (addresses and uint16s without high bits; the rest are full words).
    function _wellFormed(IntentType kind, bytes calldata data) private pure returns (bool) {
        if (kind == IntentType.Open) {
            return data.length == 9 * 32 && !_dirtyAddress(data, 1) && !_dirtyAddress(data, 2) && !_dirtyUint16(data, 5);
        }
        if (kind == IntentType.UpdateLadder) return data.length == 5 * 32;
        return data.length == 7 * 32 && !_dirtyUint16(data, 4); // Add, Reduce
    }

    function _word(bytes calldata data, uint256 i) private pure returns (uint256 w) {
        assembly ("memory-safe") {
            w := calldataload(add(data.offset, mul(i, 32)))
        }
    }

    function _dirtyAddress(bytes calldata data, uint256 i) private pure returns (bool) {
        return _word(data, i) >> 160 != 0;
    }

    function _dirtyUint16(bytes calldata data, uint256 i) private pure returns (bool) {
        return _word(data, i) >> 16 != 0;
    }

    /// @dev Opens and adds only; updates `st` with the trade's turnover and deployed capital.
    function _checkBuyLimits(IAgentRegistry.AgentConfig memory agent, AgentState memory st, uint256 usdcAmount)
        private
        pure
    {
        if (usdcAmount == 0) revert ZeroAmount();
        uint256 allocation = agent.allocation;
        IAgentRegistry.Track memory track = agent.track;
        // Limits round down: the stricter side, in the vault's favour.
        uint256 maxDailyLoss = allocation * track.maxDailyLossBps / BPS;
        if (st.realizedPnlToday <= -int256(maxDailyLoss)) {
            revert DailyLossLimitReached(st.realizedPnlToday, maxDailyLoss);
        }
        uint256 maxTradeSize = allocation * track.maxTradeSizeBps / BPS;
        if (usdcAmount > maxTradeSize) revert TradeSizeExceeded(usdcAmount, maxTradeSize);
        uint256 headroom = allocation > st.deployed ? allocation - st.deployed : 0;
        if (usdcAmount > headroom) revert HeadroomExceeded(usdcAmount, headroom);
        uint256 maxTurnover = allocation * track.maxDailyTurnoverBps / BPS;
        uint256 turnoverAfter = st.turnoverToday + usdcAmount;
        if (turnoverAfter > maxTurnover) revert DailyTurnoverExceeded(turnoverAfter, maxTurnover);
        st.turnoverToday = _toUint64(turnoverAfter);
        st.deployed = _toUint64(st.deployed + usdcAmount);
    }

    function _freshPrice(address token) private view returns (uint256 price) {
        uint256 updatedAt;
        (price, updatedAt,) = oracle.latestPrice(token);
        _requireFresh(token, updatedAt);
    }

    /// @dev Opens and adds (SPEC §5.6): a fresh price while the status is one of the track's sessions.
    ///      The status and the price share the oracle's slot. A feed with no status (Unknown) is not
    ///      gated; Halted is never in a track's sessions (the registry refuses it).
    function _openPrice(address token, uint8 sessions) private view returns (uint256 price) {
        uint256 updatedAt;
        uint256 status;
        (price, updatedAt,, status,) = _latestPriceStatus(token);
        if (status != UNKNOWN && !_inSessions(sessions, status)) revert MarketClosed(token, uint8(status));
        _requireFresh(token, updatedAt);
    }

    /// @dev `oracle.latestPriceStatus(token)`, called and read by hand: it runs on every open, add and
    ///      exit, and the generated decoder's checks cost ~150 gas the trusted oracle does not need. The
    ///      oracle's own revert (`PriceUnavailable`) is passed on.
    function _latestPriceStatus(address token)
        private
        view
        returns (uint256 price, uint256 updatedAt, uint256 roundId, uint256 status, uint256 quoted)
    {
        address oracle_ = address(oracle);
        bytes4 selector = IPriceOracle.latestPriceStatus.selector;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, selector)
            mstore(add(m, 4), token)
            if iszero(staticcall(gas(), oracle_, m, 0x24, m, 0xa0)) {
                returndatacopy(m, 0, returndatasize())
                revert(m, returndatasize())
            }
            if lt(returndatasize(), 0xa0) { invalid() }
            price := mload(m)
            updatedAt := mload(add(m, 0x20))
            roundId := mload(add(m, 0x40))
            status := mload(add(m, 0x60))
            quoted := mload(add(m, 0x80))
        }
    }

    /// @dev Exits (SPEC §5.6): none while halted; on a `Hold` track, only while the status now and the
    ///      one the price was quoted in are both in its sessions (a rule crossed by the last price of a
    ///      closed market waits for the next price quoted in a session). Unknown is not gated. Returns
    ///      the vault, from the registry: by the position's vault id, or with the policy when the status
    ///      needs it.
    function _exitGate(address token, uint256 agentId, uint256 vaultId, uint256 status, uint256 quoted)
        private
        view
        returns (address vault)
    {
        if (status == UNKNOWN) return agentRegistry.vaultAddress(vaultId);
        if (status == HALTED) revert MarketHalted(token);
        uint8 sessions;
        uint256 policy;
        (vault, sessions, policy) = _exitPolicyOf(agentId);
        if (policy == HOLD) {
            if (!_inSessions(sessions, status)) revert MarketClosed(token, uint8(status));
            if (!_inSessions(sessions, quoted)) revert MarketClosed(token, uint8(quoted));
        }
    }

    /// @dev `agentRegistry.exitPolicyOf(agentId)`, called and read by hand as `_latestPriceStatus`: one
    ///      per gated exit. As the generated decoder: the registry's revert is passed on, and a short
    ///      reply or a value outside its type (address, uint8, the policy enum) reverts without data.
    function _exitPolicyOf(uint256 agentId) private view returns (address vault, uint8 sessions, uint256 policy) {
        address registry = address(agentRegistry);
        bytes4 selector = IAgentRegistry.exitPolicyOf.selector;
        uint256 maxPolicy = uint256(type(IAgentRegistry.ExitsWhenClosed).max);
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, selector)
            mstore(add(m, 4), agentId)
            if iszero(staticcall(gas(), registry, m, 0x24, m, 0x60)) {
                returndatacopy(m, 0, returndatasize())
                revert(m, returndatasize())
            }
            vault := mload(m)
            sessions := mload(add(m, 0x20))
            policy := mload(add(m, 0x40))
            if or(lt(returndatasize(), 0x60), or(or(shr(160, vault), gt(sessions, 0xff)), gt(policy, maxPolicy))) {
                revert(0, 0)
            }
        }
    }

    function _inSessions(uint8 sessions, uint256 status) private pure returns (bool) {
        return (uint256(sessions) >> status) & 1 != 0;
    }

    function _requireFresh(address token, uint256 updatedAt) private view {
        uint256 maxAge = _maxPriceAge;
        if (block.timestamp > updatedAt + maxAge) revert OraclePriceStale(token, updatedAt, maxAge);
    }

    /// @dev Pays the vault's USDC to the venue and checks the fill against a fresh oracle price and the floor.
    function _buy(
        address vault,
        address token,
        uint256 usdcIn,
        uint256 minOut,
        uint256 maxSlippageBps,
        uint8 sessions
    ) private returns (uint256 price, uint256 tokensOut) {
        if (maxSlippageBps > BPS) revert InvalidSlippageBps(maxSlippageBps);
        price = _openPrice(token, sessions);
        IVault(vault).pay(usdc, address(venue), usdcIn);
        // Booked: what reached the vault, not what the venue says it sent (see _sell).
        uint256 held = _balanceOf(token, vault);
        venue.buy(token, usdcIn, vault);
        tokensOut = _balanceOf(token, vault) - held;
        if (tokensOut < minOut) revert MinOutputNotMet(tokensOut, minOut);
        // fill price (usdcIn / tokensOut) ≤ oracle · (1 + bps), cross-multiplied so nothing rounds
        if (usdcIn * _scale(token) * BPS > tokensOut * price * (BPS + maxSlippageBps)) {
            revert SlippageExceeded(usdcIn, tokensOut, price, maxSlippageBps);
        }
    }

    /// @dev Books what reached the vault, not what the venue says it sent: one vault holds every agent's
    ///      tokens, so a size or proceeds booked above what arrived would later be paid out of another
    ///      agent's position. The venue takes the tokens from the vault itself (it redeems them as their
    ///      issuer: no transfer to the venue and back to zero), so the vault's token balance is checked
    ///      too: a sale that took more than `tokensIn` would have taken another agent's tokens. The
    ///      vault's USDC can only rise during the venue's call: the vault pays only this router, which
    ///      the venue cannot re-enter.
    function _sell(address vault, address token, uint256 tokensIn) private returns (uint256 usdcOut) {
        uint256 tokensHeld = _balanceOf(token, vault);
        uint256 held = _balanceOf(usdc, vault);
        venue.sell(token, tokensIn, vault, vault);
        uint256 tokensLeft = _balanceOf(token, vault);
        if (tokensLeft + tokensIn < tokensHeld) revert VenueOverdrew(token, tokensHeld - tokensLeft, tokensIn);
        return _balanceOf(usdc, vault) - held;
    }

    /// @dev `IERC20(token).balanceOf(account)`, called and read by hand in scratch space (two per buy,
    ///      four per sale). As the generated code: the token's revert is passed on, and a reply shorter
    ///      than a word (no code at `token`) reverts without data.
    function _balanceOf(address token, address account) private view returns (uint256 amount) {
        assembly ("memory-safe") {
            mstore(0x00, 0x70a08231) // balanceOf(address), right-aligned: the call data starts at 0x1c
            mstore(0x20, account)
            if iszero(staticcall(gas(), token, 0x1c, 0x24, 0x00, 0x20)) {
                let m := mload(0x40)
                returndatacopy(m, 0, returndatasize())
                revert(m, returndatasize())
            }
            if lt(returndatasize(), 0x20) { revert(0, 0) }
            amount := mload(0x00)
        }
    }

    function _loadExit(uint256 positionId, ExitRule[] calldata exits)
        private
        view
        returns (ExitContext memory ctx, Holding memory h)
    {
        PositionRef memory ref = _refs[positionId];
        if (ref.token == address(0)) revert PositionNotFound(positionId);
        h = _holdings[ref.agentId][ref.token];
        if (h.positionId != positionId || h.ruleCount == 0) revert PositionNotOpen(positionId);
        bytes32 current = _ladders[ref.agentId][ref.token];
        bytes32 provided = IntentHash.hash(exits);
        if (provided != current) revert LadderMismatch(positionId, current, provided);

        uint256 updatedAt;
        uint256 status;
        uint256 quoted;
        ctx.token = ref.token;
        ctx.agentId = ref.agentId;
        (ctx.price, updatedAt, ctx.roundId, status, quoted) = _latestPriceStatus(ref.token);
        ctx.vault = _exitGate(ref.token, ref.agentId, ref.vaultId, status, quoted);
        _requireFresh(ref.token, updatedAt);
        ctx.scale = _scale(ref.token);
    }

    function _fireRule(ExitContext memory ctx, Holding memory h, AgentState memory st, uint256 exitBps, uint256 ruleIndex)
        private
    {
        h.firedMask |= uint8(1 << ruleIndex);
        // Rounds down, so partial exits never sum past the position; exitBps = 10000 sells it all.
        ExitFill memory fill;
        fill.ruleIndex = ruleIndex;
        fill.tokensIn = exitBps == BPS ? h.size : h.size * exitBps / BPS;
        fill.usdcOut = fill.tokensIn == 0 ? 0 : _sell(ctx.vault, ctx.token, fill.tokensIn);
        fill.realizedPnl = _applySale(h, st, fill.tokensIn, fill.usdcOut);
        fill.oraclePrice = ctx.price;
        fill.oracleRoundId = ctx.roundId;
        fill.size = h.size;
        fill.costBasis = h.costBasis;
        emit ExitExecuted(h.positionId, ctx.agentId, fill);
    }

    /// @dev Removes cost basis in proportion to the share sold, rounded down so the remaining basis
    ///      (which counts against headroom and sets the stop's trigger) rounds up. A full sale removes it all.
    function _applySale(Holding memory h, AgentState memory st, uint256 tokensIn, uint256 usdcOut)
        private
        pure
        returns (int256 pnl)
    {
        uint256 removed = tokensIn == h.size ? h.costBasis : uint256(h.costBasis) * tokensIn / h.size;
        h.size -= uint128(tokensIn);
        h.costBasis -= uint64(removed);
        st.deployed -= uint64(removed);
        pnl = int256(usdcOut) - int256(removed);
        // Saturates instead of reverting: a risk-reducing sale must never fail on bookkeeping.
        int256 today = int256(st.realizedPnlToday) + pnl;
        if (today > type(int64).max) today = type(int64).max;
        if (today < type(int64).min) today = type(int64).min;
        st.realizedPnlToday = int64(today);
    }

    function _storeAfterSale(uint256 agentId, address token, Holding memory h) private {
        if (h.size == 0) {
            // Closed: only the id is kept, so the slot (and the ladder hash's) stays nonzero for the next open.
            _storeHolding(agentId, token, Holding({positionId: h.positionId, size: 0, costBasis: 0, ruleCount: 0, firedMask: 0}));
            emit PositionClosed(h.positionId, agentId, token);
        } else {
            _storeHolding(agentId, token, h);
        }
    }

    /// @dev One SSTORE for the packed slot (a struct assigned member by member is stored per member).
    function _storeHolding(uint256 agentId, address token, Holding memory h) private {
        Holding storage slot_ = _holdings[agentId][token];
        uint256 packed = uint256(h.positionId) | (uint256(h.size) << 48) | (uint256(h.costBasis) << 176)
            | (uint256(h.ruleCount) << 240) | (uint256(h.firedMask) << 248);
        assembly ("memory-safe") {
            sstore(slot_.slot, packed)
        }
    }

    /// @dev One SSTORE for the packed slot, as `_storeHolding`.
    function _storeAgent(uint256 agentId, AgentState memory st) private {
        AgentState storage slot_ = _agents[agentId];
        uint256 packed = uint256(st.nonce) | (uint256(st.day) << 40) | (uint256(st.turnoverToday) << 64)
            | (uint256(uint64(st.realizedPnlToday)) << 128) | (uint256(st.deployed) << 192);
        assembly ("memory-safe") {
            sstore(slot_.slot, packed)
        }
    }

    function _openHolding(uint256 agentId, uint256 positionId) private view returns (address token, Holding memory h) {
        PositionRef memory ref = _refs[positionId];
        if (ref.token == address(0) || ref.agentId != agentId) revert PositionNotFound(positionId);
        h = _holdings[agentId][ref.token];
        if (h.positionId != positionId || h.ruleCount == 0) revert PositionNotOpen(positionId);
        return (ref.token, h);
    }

    function _rollDay(AgentState memory st) private view {
        uint24 today = uint24(block.timestamp / 1 days);
        if (st.day != today) {
            st.day = today;
            st.turnoverToday = 0;
            st.realizedPnlToday = 0;
        }
    }

    /// @dev Base units of the token times 10^8 (oracle) over 10^6 (USDC): value = size · price / scale.
    ///      `decimals()` is called and read by hand, as `_balanceOf`; a reply that is not a uint8
    ///      reverts without data, as the generated decoder does.
    function _scale(address token) private view returns (uint256) {
        uint256 decimals;
        assembly ("memory-safe") {
            mstore(0x00, 0x313ce567) // decimals()
            if iszero(staticcall(gas(), token, 0x1c, 0x04, 0x00, 0x20)) {
                let m := mload(0x40)
                returndatacopy(m, 0, returndatasize())
                revert(m, returndatasize())
            }
            if or(lt(returndatasize(), 0x20), gt(mload(0x00), 0xff)) { revert(0, 0) }
            decimals := mload(0x00)
        }
        return 10 ** (decimals + 2);
    }

    function _setMaxPriceAge(uint256 maxPriceAge_) private {
        if (maxPriceAge_ == 0 || maxPriceAge_ > type(uint32).max) revert AmountTooLarge(maxPriceAge_);
        _maxPriceAge = uint32(maxPriceAge_);
        emit MaxPriceAgeSet(maxPriceAge_);
    }

    function _saturatingAdd(uint64 a, uint256 b) private pure returns (uint64) {
        uint256 sum = uint256(a) + b;
        return sum > type(uint64).max ? type(uint64).max : uint64(sum);
    }

    function _toUint128(uint256 x) private pure returns (uint128) {
        if (x > type(uint128).max) revert AmountTooLarge(x);
        return uint128(x);
    }

    function _toUint64(uint256 x) private pure returns (uint64) {
        if (x > type(uint64).max) revert AmountTooLarge(x);
        return uint64(x);
    }
}
