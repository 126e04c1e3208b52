// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

import {ITradeRouter} from "../src/interfaces/ITradeRouter.sol";
import {Fixture} from "./utils/Fixture.sol";
import {IntentSigner} from "./utils/IntentSigner.sol";

/// @notice A minimal ERC-1271 wallet: accepts a 65-byte ECDSA signature by its owner key, or any
///         signature over a digest the owner pre-approved on-chain (Safe-style approved hashes).
contract ContractSigner {
    bytes4 internal constant MAGIC = 0x1626ba7e; // IERC1271.isValidSignature.selector
    address public immutable owner;
    mapping(bytes32 digest => bool) public approved;

    constructor(address owner_) {
        owner = owner_;
    }

    function approve(bytes32 digest) external {
        require(msg.sender == owner, "not owner");
        approved[digest] = true;
    }

    function isValidSignature(bytes32 digest, bytes calldata signature) external view returns (bytes4) {
        if (approved[digest]) return MAGIC;
        if (signature.length != 65) return 0xffffffff;
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        address recovered = ecrecover(digest, v, r, s);
        return recovered != address(0) && recovered == owner ? MAGIC : bytes4(0xffffffff);
    }
}

/// @notice The checklist every intent passes (SPEC §1.2–1.4): deadline, nonce, signer, agent,
///         pause, domain separation, ERC-1271 signers. Each case runs for every intent type it
///         applies to, through one request builder so the four types are exercised the same way.
contract TradeRouterAuthTest is Fixture {
    enum Kind {
        Open,
        Add,
        Reduce,
        Ladder
    }

    /// @dev Everything that varies between the cases; the rest of each struct is fixed.
    struct Req {
        Kind kind;
        uint256 agent;
        uint256 deadline;
        uint256 nonce;
        uint256 reduceAmount;
    }

    uint256 internal constant SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    /// @dev The NVDA position opened in setUp (nonce 0); add/reduce/ladder intents act on it,
    ///      open intents open AAPL.
    uint256 internal positionId;

    function setUp() public override {
        super.setUp();
        positionId = _open(1_000e6);
    }

    // ------------------------------------------------------------------ request builder
    // Builds the intent structs from state variables only (no external calls), so a submit can
    // follow `vm.expectRevert` directly.

    function _req(Kind kind) internal view returns (Req memory q) {
        q.kind = kind;
        q.agent = agentId;
        q.deadline = block.timestamp + 5 minutes;
        q.nonce = router.nextNonce(agentId);
        q.reduceAmount = router.position(positionId).size / 4;
    }

    function _newLadder() internal pure returns (ITradeRouter.ExitRule[] memory) {
        return _ladder(_takeProfit(2000, 2500), _stopLoss(-500, 10_000));
    }

    function _exitsOf(Req memory q) internal pure returns (ITradeRouter.ExitRule[] memory) {
        return q.kind == Kind.Open ? _defaultLadder() : _newLadder();
    }

    function _openOf(Req memory q) internal view returns (ITradeRouter.OpenPosition memory) {
        return ITradeRouter.OpenPosition({
            agentId: q.agent,
            vault: address(vault),
            token: address(aapl),
            usdcAmount: 500e6,
            minTokenOut: 0,
            maxSlippageBps: DEFAULT_SLIPPAGE_BPS,
            exitsHash: IntentSigner.exitsHash(_defaultLadder()),
            deadline: q.deadline,
            nonce: q.nonce
        });
    }

    function _addOf(Req memory q) internal view returns (ITradeRouter.AddToPosition memory) {
        return ITradeRouter.AddToPosition({
            agentId: q.agent,
            positionId: positionId,
            usdcAmount: 100e6,
            minTokenOut: 0,
            maxSlippageBps: DEFAULT_SLIPPAGE_BPS,
            deadline: q.deadline,
            nonce: q.nonce
        });
    }

    function _reduceOf(Req memory q) internal view returns (ITradeRouter.ReducePosition memory) {
        return ITradeRouter.ReducePosition({
            agentId: q.agent,
            positionId: positionId,
            tokenAmount: q.reduceAmount,
            minUsdcOut: 0,
            maxSlippageBps: DEFAULT_SLIPPAGE_BPS,
            deadline: q.deadline,
            nonce: q.nonce
        });
    }

    function _ladderOf(Req memory q) internal view returns (ITradeRouter.UpdateExitLadder memory) {
        return ITradeRouter.UpdateExitLadder({
            agentId: q.agent,
            positionId: positionId,
            exitsHash: IntentSigner.exitsHash(_newLadder()),
            deadline: q.deadline,
            nonce: q.nonce
        });
    }

    function _structHash(Req memory q) internal view returns (bytes32) {
        if (q.kind == Kind.Open) return IntentSigner.structHash(_openOf(q));
        if (q.kind == Kind.Add) return IntentSigner.structHash(_addOf(q));
        if (q.kind == Kind.Reduce) return IntentSigner.structHash(_reduceOf(q));
        return IntentSigner.structHash(_ladderOf(q));
    }

    function _digest(Req memory q) internal view returns (bytes32) {
        return IntentSigner.digest(_separator(), _structHash(q));
    }

    function _signReq(Req memory q, uint256 key) internal view returns (bytes memory) {
        return IntentSigner.sign(key, _digest(q));
    }

    function _submit(Req memory q, bytes memory signature) internal {
        if (q.kind == Kind.Open) {
            router.openPosition(_openOf(q), _defaultLadder(), signature);
        } else if (q.kind == Kind.Add) {
            router.addToPosition(_addOf(q), signature);
        } else if (q.kind == Kind.Reduce) {
            router.reducePosition(_reduceOf(q), signature);
        } else {
            router.updateExitLadder(_ladderOf(q), _newLadder(), signature);
        }
    }

    function _intentType(Kind kind) internal pure returns (ITradeRouter.IntentType) {
        return ITradeRouter.IntentType(uint8(kind));
    }

    function _split(bytes memory sig) internal pure returns (bytes32 r, bytes32 s, uint8 v) {
        assembly {
            r := mload(add(sig, 0x20))
            s := mload(add(sig, 0x40))
            v := byte(0, mload(add(sig, 0x60)))
        }
    }

    /// @dev Who a 65-byte signature recovers to for the digest the router computes for `q`.
    function _recoveredBy(Req memory q, bytes memory sig) internal view returns (address) {
        (bytes32 r, bytes32 s, uint8 v) = _split(sig);
        return ecrecover(_digest(q), v, r, s);
    }

    // ------------------------------------------------------------------ shared case bodies

    function _checkDeadlinePassed(Kind kind) internal {
        Req memory q = _req(kind);
        bytes memory sig = _signReq(q, AGENT_KEY);
        vm.warp(q.deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.DeadlineExpired.selector, q.deadline, q.deadline + 1));
        _submit(q, sig);
    }

    function _checkAcceptsAtDeadline(Kind kind) internal {
        Req memory q = _req(kind);
        bytes memory sig = _signReq(q, AGENT_KEY);
        vm.warp(q.deadline); // prices are 5 minutes old: still fresh
        _submit(q, sig);
        vm.assertEq(router.nextNonce(agentId), q.nonce + 1, "nonce consumed");
    }

    function _checkNonce(Kind kind, uint256 provided) internal {
        Req memory q = _req(kind);
        uint256 expected = q.nonce;
        q.nonce = provided;
        bytes memory sig = _signReq(q, AGENT_KEY);
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.NonceMismatch.selector, agentId, expected, provided));
        _submit(q, sig);
    }

    function _checkReplay(Kind kind) internal {
        Req memory q = _req(kind);
        bytes memory sig = _signReq(q, AGENT_KEY);
        _submit(q, sig);
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.NonceMismatch.selector, agentId, q.nonce + 1, q.nonce));
        _submit(q, sig);
    }

    function _checkOtherKey(Kind kind) internal {
        Req memory q = _req(kind);
        bytes memory sig = _signReq(q, OTHER_KEY);
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.InvalidSigner.selector, vm.addr(OTHER_KEY), agentSigner));
        _submit(q, sig);
    }

    function _checkHighS(Kind kind) internal {
        Req memory q = _req(kind);
        (bytes32 r, bytes32 s, uint8 v) = _split(_signReq(q, AGENT_KEY));
        // The malleable twin: (r, n − s, v ^ 1) recovers to the same key but is not canonical.
        bytes memory twin = abi.encodePacked(r, bytes32(SECP256K1_N - uint256(s)), v == 27 ? uint8(28) : uint8(27));
        vm.assertEq(_recoveredBy(q, twin), agentSigner, "twin recovers to the signer");
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.SignatureMalformed.selector, uint8(3)));
        _submit(q, twin);
    }

    function _checkMalformed(Req memory q, bytes memory sig, uint8 reason) internal {
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.SignatureMalformed.selector, reason));
        _submit(q, sig);
    }

    function _withV(bytes memory sig, uint8 v) internal pure returns (bytes memory) {
        (bytes32 r, bytes32 s,) = _split(sig);
        return abi.encodePacked(r, s, v);
    }

    function _checkUnknownAgent(Kind kind) internal {
        Req memory q = _req(kind);
        q.agent = 999;
        bytes memory sig = _signReq(q, AGENT_KEY);
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.AgentNotFound.selector, uint256(999)));
        _submit(q, sig);
    }

    function _checkInactive(Kind kind) internal {
        Req memory q = _req(kind);
        bytes memory sig = _signReq(q, AGENT_KEY);
        vm.prank(admin);
        registry.setActive(agentId, false);
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.AgentInactive.selector, agentId));
        _submit(q, sig);
        vm.prank(admin);
        registry.setActive(agentId, true);
        _submit(q, sig);
        vm.assertEq(router.nextNonce(agentId), q.nonce + 1, "reactivated agent trades again");
    }

    function _checkPaused(Kind kind) internal {
        Req memory q = _req(kind);
        bytes memory sig = _signReq(q, AGENT_KEY);
        vm.prank(admin);
        router.pause();
        vm.expectRevert(abi.encodeWithSelector(Pausable.EnforcedPause.selector));
        _submit(q, sig);
        vm.prank(admin);
        router.unpause();
        _submit(q, sig);
        vm.assertEq(router.nextNonce(agentId), q.nonce + 1, "unpause restores the intent");
    }

    function _checkNonceUsedEvent(Kind kind) internal {
        Req memory q = _req(kind);
        bytes memory sig = _signReq(q, AGENT_KEY);
        bytes32 digest = _digest(q);
        vm.expectEmit(true, true, true, true, address(router));
        emit ITradeRouter.NonceUsed(agentId, q.nonce, _intentType(kind), digest);
        _submit(q, sig);
    }

    // ------------------------------------------------------------------ deadline

    function test_open_revertsWhenDeadlinePassed() public {
        _checkDeadlinePassed(Kind.Open);
    }

    function test_add_revertsWhenDeadlinePassed() public {
        _checkDeadlinePassed(Kind.Add);
    }

    function test_reduce_revertsWhenDeadlinePassed() public {
        _checkDeadlinePassed(Kind.Reduce);
    }

    function test_updateLadder_revertsWhenDeadlinePassed() public {
        _checkDeadlinePassed(Kind.Ladder);
    }

    function test_open_acceptsAtDeadline() public {
        _checkAcceptsAtDeadline(Kind.Open);
    }

    function test_add_acceptsAtDeadline() public {
        _checkAcceptsAtDeadline(Kind.Add);
    }

    function test_reduce_acceptsAtDeadline() public {
        _checkAcceptsAtDeadline(Kind.Reduce);
    }

    function test_updateLadder_acceptsAtDeadline() public {
        _checkAcceptsAtDeadline(Kind.Ladder);
    }

    function testFuzz_open_deadlineBoundary(uint256 lateBy) public {
        lateBy = bound(lateBy, 1, 365 days);
        Req memory q = _req(Kind.Open);
        bytes memory sig = _signReq(q, AGENT_KEY);
        vm.warp(q.deadline + lateBy);
        vm.expectRevert(
            abi.encodeWithSelector(ITradeRouter.DeadlineExpired.selector, q.deadline, q.deadline + lateBy)
        );
        _submit(q, sig);
    }

    // ------------------------------------------------------------------ nonce

    function test_open_revertsWhenNonceTooLow() public {
        _checkNonce(Kind.Open, 0);
    }

    function test_add_revertsWhenNonceTooLow() public {
        _checkNonce(Kind.Add, 0);
    }

    function test_reduce_revertsWhenNonceTooLow() public {
        _checkNonce(Kind.Reduce, 0);
    }

    function test_updateLadder_revertsWhenNonceTooLow() public {
        _checkNonce(Kind.Ladder, 0);
    }

    function test_open_revertsWhenNonceTooHigh() public {
        _checkNonce(Kind.Open, 2);
    }

    function test_add_revertsWhenNonceTooHigh() public {
        _checkNonce(Kind.Add, 2);
    }

    function test_reduce_revertsWhenNonceTooHigh() public {
        _checkNonce(Kind.Reduce, 2);
    }

    function test_updateLadder_revertsWhenNonceTooHigh() public {
        _checkNonce(Kind.Ladder, 2);
    }

    function testFuzz_open_revertsOnAnyNonceButTheNext(uint256 provided) public {
        vm.assume(provided != 1);
        _checkNonce(Kind.Open, provided);
    }

    function test_open_revertsOnReplay() public {
        _checkReplay(Kind.Open);
    }

    function test_add_revertsOnReplay() public {
        _checkReplay(Kind.Add);
    }

    function test_reduce_revertsOnReplay() public {
        _checkReplay(Kind.Reduce);
    }

    function test_updateLadder_revertsOnReplay() public {
        _checkReplay(Kind.Ladder);
    }

    function test_nonce_sharedAcrossIntentTypes_incrementsByOne() public {
        // setUp's open used nonce 0.
        vm.assertEq(router.nextNonce(agentId), 1, "after open");
        Kind[4] memory order = [Kind.Add, Kind.Ladder, Kind.Reduce, Kind.Open];
        for (uint256 i; i < order.length; ++i) {
            Req memory q = _req(order[i]);
            vm.assertEq(q.nonce, i + 1, "next nonce");
            _submit(q, _signReq(q, AGENT_KEY));
            vm.assertEq(router.nextNonce(agentId), i + 2, "incremented by exactly one");
            vm.assertEq(router.agentState(agentId).nextNonce, i + 2, "agentState agrees");
        }
        // A nonce consumed by one type cannot be used by another.
        Req memory stale = _req(Kind.Add);
        stale.nonce = 1;
        bytes memory sig = _signReq(stale, AGENT_KEY);
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.NonceMismatch.selector, agentId, uint256(5), uint256(1)));
        _submit(stale, sig);
    }

    function test_nonce_perAgent() public {
        vm.prank(admin);
        uint256 other = registry.registerAgent(vm.addr(OTHER_KEY), vaultId, testTrackId, ALLOCATION);
        vm.assertEq(router.nextNonce(other), 0, "a new agent starts at 0");
        Req memory q = _req(Kind.Open);
        q.agent = other;
        q.nonce = 0;
        _submit(q, _signReq(q, OTHER_KEY));
        vm.assertEq(router.nextNonce(other), 1, "other agent's nonce moved");
        vm.assertEq(router.nextNonce(agentId), 1, "first agent's nonce untouched");
    }

    function test_revertedIntent_doesNotConsumeNonce() public {
        Req memory q = _req(Kind.Add);
        bytes memory good = _signReq(q, AGENT_KEY);

        // A bad signature, a pause, and a failure after authorization (slippage at the venue)...
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.InvalidSigner.selector, vm.addr(OTHER_KEY), agentSigner));
        _submit(q, _signReq(q, OTHER_KEY));

        vm.prank(admin);
        venue.setSpread(500);
        uint256 tokensOut = uint256(100e6) * 1e24 / (NVDA_PRICE * 10_500);
        // SlippageExceeded comes after the nonce check passed and the venue filled.
        vm.expectRevert(
            abi.encodeWithSelector(
                ITradeRouter.SlippageExceeded.selector, uint256(100e6), tokensOut, NVDA_PRICE, uint256(DEFAULT_SLIPPAGE_BPS)
            )
        );
        _submit(q, good);
        vm.assertEq(router.nextNonce(agentId), q.nonce, "nonce not consumed by a revert");
        vm.assertEq(router.agentState(agentId).nextNonce, q.nonce, "agentState agrees");

        // ...and the very same signed intent goes through once the market allows it.
        vm.prank(admin);
        venue.setSpread(SPREAD_BPS);
        _submit(q, good);
        vm.assertEq(router.nextNonce(agentId), q.nonce + 1, "consumed once it succeeded");
    }

    // ------------------------------------------------------------------ signer

    function test_open_revertsWhenSignedByAnotherKey() public {
        _checkOtherKey(Kind.Open);
    }

    function test_add_revertsWhenSignedByAnotherKey() public {
        _checkOtherKey(Kind.Add);
    }

    function test_reduce_revertsWhenSignedByAnotherKey() public {
        _checkOtherKey(Kind.Reduce);
    }

    function test_updateLadder_revertsWhenSignedByAnotherKey() public {
        _checkOtherKey(Kind.Ladder);
    }

    function testFuzz_open_revertsWhenSignedByAnyOtherKey(uint256 key) public {
        key = bound(key, 1, SECP256K1_N - 1);
        vm.assume(key != AGENT_KEY);
        Req memory q = _req(Kind.Open);
        bytes memory sig = _signReq(q, key);
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.InvalidSigner.selector, vm.addr(key), agentSigner));
        _submit(q, sig);
    }

    function test_open_revertsWhenSignedForAnotherChainId() public {
        Req memory q = _req(Kind.Open);
        bytes32 foreign = IntentSigner.digest(IntentSigner.domainSeparator(block.chainid + 1, address(router)), _structHash(q));
        bytes memory sig = IntentSigner.sign(AGENT_KEY, foreign);
        address recovered = _recoveredBy(q, sig);
        vm.assertTrue(recovered != agentSigner, "foreign-domain signature recovers elsewhere");
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.InvalidSigner.selector, recovered, agentSigner));
        _submit(q, sig);
    }

    function test_open_revertsWhenSignedForAnotherVerifyingContract() public {
        Req memory q = _req(Kind.Open);
        bytes32 foreign = IntentSigner.digest(IntentSigner.domainSeparator(block.chainid, address(0xBEEF)), _structHash(q));
        bytes memory sig = IntentSigner.sign(AGENT_KEY, foreign);
        address recovered = _recoveredBy(q, sig);
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.InvalidSigner.selector, recovered, agentSigner));
        _submit(q, sig);
    }

    function test_open_signedOnOldChainId_revertsAfterChainIdChange() public {
        Req memory q = _req(Kind.Open);
        bytes memory sig = _signReq(q, AGENT_KEY); // current chain id
        vm.chainId(block.chainid + 7);
        address recovered = _recoveredBy(q, sig); // router now hashes with the new chain id
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.InvalidSigner.selector, recovered, agentSigner));
        _submit(q, sig);
        _submit(q, _signReq(q, AGENT_KEY)); // signed for the new chain id: accepted
        vm.assertEq(router.nextNonce(agentId), q.nonce + 1, "accepted on the new chain");
    }

    // ------------------------------------------------------------------ malformed signatures

    function test_open_revertsOnHighS() public {
        _checkHighS(Kind.Open);
    }

    function test_add_revertsOnHighS() public {
        _checkHighS(Kind.Add);
    }

    function test_reduce_revertsOnHighS() public {
        _checkHighS(Kind.Reduce);
    }

    function test_updateLadder_revertsOnHighS() public {
        _checkHighS(Kind.Ladder);
    }

    function test_open_revertsOn64ByteSignature() public {
        Req memory q = _req(Kind.Open);
        (bytes32 r, bytes32 s,) = _split(_signReq(q, AGENT_KEY));
        _checkMalformed(q, abi.encodePacked(r, s), 2);
    }

    function test_open_revertsOn66ByteSignature() public {
        Req memory q = _req(Kind.Open);
        _checkMalformed(q, abi.encodePacked(_signReq(q, AGENT_KEY), uint8(0)), 2);
    }

    function test_open_revertsOnEmptySignature() public {
        _checkMalformed(_req(Kind.Open), "", 2);
    }

    function test_add_revertsOn64ByteSignature() public {
        Req memory q = _req(Kind.Add);
        (bytes32 r, bytes32 s,) = _split(_signReq(q, AGENT_KEY));
        _checkMalformed(q, abi.encodePacked(r, s), 2);
    }

    function test_reduce_revertsOn66ByteSignature() public {
        Req memory q = _req(Kind.Reduce);
        _checkMalformed(q, abi.encodePacked(_signReq(q, AGENT_KEY), uint8(0)), 2);
    }

    function test_open_revertsOnVZero() public {
        Req memory q = _req(Kind.Open);
        _checkMalformed(q, _withV(_signReq(q, AGENT_KEY), 0), 1);
    }

    function test_open_revertsOnVOne() public {
        Req memory q = _req(Kind.Open);
        _checkMalformed(q, _withV(_signReq(q, AGENT_KEY), 1), 1);
    }

    function test_open_revertsOnV29() public {
        Req memory q = _req(Kind.Open);
        _checkMalformed(q, _withV(_signReq(q, AGENT_KEY), 29), 1);
    }

    function test_updateLadder_revertsOnVZero() public {
        Req memory q = _req(Kind.Ladder);
        _checkMalformed(q, _withV(_signReq(q, AGENT_KEY), 0), 1);
    }

    function test_open_revertsOnZeroR() public {
        Req memory q = _req(Kind.Open);
        (, bytes32 s, uint8 v) = _split(_signReq(q, AGENT_KEY));
        _checkMalformed(q, abi.encodePacked(bytes32(0), s, v), 1);
    }

    function test_add_revertsOnZeroR() public {
        Req memory q = _req(Kind.Add);
        (, bytes32 s, uint8 v) = _split(_signReq(q, AGENT_KEY));
        _checkMalformed(q, abi.encodePacked(bytes32(0), s, v), 1);
    }

    // ------------------------------------------------------------------ agent

    function test_open_revertsWhenAgentUnknown() public {
        _checkUnknownAgent(Kind.Open);
    }

    function test_add_revertsWhenAgentUnknown() public {
        _checkUnknownAgent(Kind.Add);
    }

    function test_reduce_revertsWhenAgentUnknown() public {
        _checkUnknownAgent(Kind.Reduce);
    }

    function test_updateLadder_revertsWhenAgentUnknown() public {
        _checkUnknownAgent(Kind.Ladder);
    }

    function test_open_revertsWhenAgentInactive() public {
        _checkInactive(Kind.Open);
    }

    function test_add_revertsWhenAgentInactive() public {
        _checkInactive(Kind.Add);
    }

    function test_reduce_revertsWhenAgentInactive() public {
        _checkInactive(Kind.Reduce);
    }

    function test_updateLadder_revertsWhenAgentInactive() public {
        _checkInactive(Kind.Ladder);
    }

    function test_open_usesCurrentSignerAfterRotation() public {
        vm.prank(admin);
        registry.setAgentSigner(agentId, vm.addr(OTHER_KEY));
        Req memory q = _req(Kind.Open);
        bytes memory oldKeySig = _signReq(q, AGENT_KEY);
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.InvalidSigner.selector, agentSigner, vm.addr(OTHER_KEY)));
        _submit(q, oldKeySig);
        _submit(q, _signReq(q, OTHER_KEY));
        vm.assertEq(router.openPositionOf(agentId, address(aapl)), 2, "opened with the new key");
    }

    // ------------------------------------------------------------------ pause

    function test_open_revertsWhenPaused_andUnpauseRestores() public {
        _checkPaused(Kind.Open);
    }

    function test_add_revertsWhenPaused_andUnpauseRestores() public {
        _checkPaused(Kind.Add);
    }

    function test_reduce_revertsWhenPaused_andUnpauseRestores() public {
        _checkPaused(Kind.Reduce);
    }

    function test_updateLadder_revertsWhenPaused_andUnpauseRestores() public {
        _checkPaused(Kind.Ladder);
    }

    // ------------------------------------------------------------------ type separation

    /// @dev AddToPosition and ReducePosition have the same field layout; only the typehash differs.
    function test_addSignature_replayedAsReduce_reverts() public {
        Req memory q = _req(Kind.Add);
        bytes memory sig = _signReq(q, AGENT_KEY);
        ITradeRouter.AddToPosition memory a = _addOf(q);
        ITradeRouter.ReducePosition memory r = ITradeRouter.ReducePosition({
            agentId: a.agentId,
            positionId: a.positionId,
            tokenAmount: a.usdcAmount,
            minUsdcOut: a.minTokenOut,
            maxSlippageBps: a.maxSlippageBps,
            deadline: a.deadline,
            nonce: a.nonce
        });
        (bytes32 rr, bytes32 ss, uint8 v) = _split(sig);
        address recovered = ecrecover(IntentSigner.digest(_separator(), IntentSigner.structHash(r)), v, rr, ss);
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.InvalidSigner.selector, recovered, agentSigner));
        router.reducePosition(r, sig);
    }

    function test_reduceSignature_replayedAsAdd_reverts() public {
        Req memory q = _req(Kind.Reduce);
        bytes memory sig = _signReq(q, AGENT_KEY);
        ITradeRouter.ReducePosition memory r = _reduceOf(q);
        ITradeRouter.AddToPosition memory a = ITradeRouter.AddToPosition({
            agentId: r.agentId,
            positionId: r.positionId,
            usdcAmount: r.tokenAmount,
            minTokenOut: r.minUsdcOut,
            maxSlippageBps: r.maxSlippageBps,
            deadline: r.deadline,
            nonce: r.nonce
        });
        (bytes32 rr, bytes32 ss, uint8 v) = _split(sig);
        address recovered = ecrecover(IntentSigner.digest(_separator(), IntentSigner.structHash(a)), v, rr, ss);
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.InvalidSigner.selector, recovered, agentSigner));
        router.addToPosition(a, sig);
    }

    /// @dev An UpdateExitLadder signature with its fields reinterpreted as a ReducePosition
    ///      (exitsHash as the token amount, deadline as the floor, ...).
    function test_ladderSignature_reinterpretedAsReduce_reverts() public {
        Req memory q = _req(Kind.Ladder);
        bytes memory sig = _signReq(q, AGENT_KEY);
        ITradeRouter.UpdateExitLadder memory l = _ladderOf(q);
        ITradeRouter.ReducePosition memory r = ITradeRouter.ReducePosition({
            agentId: l.agentId,
            positionId: l.positionId,
            tokenAmount: uint256(l.exitsHash),
            minUsdcOut: 0,
            maxSlippageBps: DEFAULT_SLIPPAGE_BPS,
            deadline: l.deadline,
            nonce: l.nonce
        });
        (bytes32 rr, bytes32 ss, uint8 v) = _split(sig);
        address recovered = ecrecover(IntentSigner.digest(_separator(), IntentSigner.structHash(r)), v, rr, ss);
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.InvalidSigner.selector, recovered, agentSigner));
        router.reducePosition(r, sig);
        vm.assertEq(router.nextNonce(agentId), q.nonce, "nonce untouched");
    }

    function test_openSignature_replayedAsLadderUpdate_reverts() public {
        Req memory q = _req(Kind.Open);
        bytes memory sig = _signReq(q, AGENT_KEY);
        ITradeRouter.UpdateExitLadder memory l = ITradeRouter.UpdateExitLadder({
            agentId: q.agent,
            positionId: positionId,
            exitsHash: IntentSigner.exitsHash(_defaultLadder()),
            deadline: q.deadline,
            nonce: q.nonce
        });
        (bytes32 rr, bytes32 ss, uint8 v) = _split(sig);
        address recovered = ecrecover(IntentSigner.digest(_separator(), IntentSigner.structHash(l)), v, rr, ss);
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.InvalidSigner.selector, recovered, agentSigner));
        router.updateExitLadder(l, _defaultLadder(), sig);
    }

    // ------------------------------------------------------------------ domain

    function test_domainSeparator_matchesIndependentComputation() public view {
        bytes32 expected = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256(bytes("AlphaGrid TradeRouter")),
                keccak256(bytes("1")),
                block.chainid,
                address(router)
            )
        );
        vm.assertEq(router.domainSeparator(), expected, "domain separator");
        vm.assertEq(router.domainSeparator(), _separator(), "matches the fixture signer's");
    }

    function test_eip712Domain_returnsNameVersionChainAndRouter() public view {
        (
            bytes1 fields,
            string memory name,
            string memory version,
            uint256 chainId,
            address verifyingContract,
            bytes32 salt,
            uint256[] memory extensions
        ) = router.eip712Domain();
        vm.assertEq(uint256(uint8(fields)), 0x0f, "fields: name, version, chainId, verifyingContract");
        vm.assertEq(name, "AlphaGrid TradeRouter", "name");
        vm.assertEq(version, "1", "version");
        vm.assertEq(chainId, block.chainid, "chainId");
        vm.assertEq(verifyingContract, address(router), "verifyingContract");
        vm.assertEq(salt, bytes32(0), "salt");
        vm.assertEq(extensions.length, 0, "extensions");
    }

    function test_domainSeparator_followsChainIdChange() public {
        bytes32 before = router.domainSeparator();
        uint256 newChainId = block.chainid + 1_000;
        vm.chainId(newChainId);
        vm.assertEq(router.domainSeparator(), IntentSigner.domainSeparator(newChainId, address(router)), "new chain id");
        vm.assertTrue(router.domainSeparator() != before, "changed");
        (,,, uint256 chainId,,,) = router.eip712Domain();
        vm.assertEq(chainId, newChainId, "eip712Domain follows too");
    }

    // ------------------------------------------------------------------ NonceUsed

    function test_open_emitsNonceUsedWithIndependentDigest() public {
        _checkNonceUsedEvent(Kind.Open);
    }

    function test_add_emitsNonceUsedWithIndependentDigest() public {
        _checkNonceUsedEvent(Kind.Add);
    }

    function test_reduce_emitsNonceUsedWithIndependentDigest() public {
        _checkNonceUsedEvent(Kind.Reduce);
    }

    function test_updateLadder_emitsNonceUsedWithIndependentDigest() public {
        _checkNonceUsedEvent(Kind.Ladder);
    }

    // ------------------------------------------------------------------ ERC-1271

    function _useContractSigner() internal returns (ContractSigner wallet) {
        wallet = new ContractSigner(vm.addr(OTHER_KEY));
        vm.prank(admin);
        registry.setAgentSigner(agentId, address(wallet));
    }

    function test_open_acceptsErc1271ContractSigner() public {
        _useContractSigner();
        Req memory q = _req(Kind.Open);
        bytes32 digest = _digest(q);
        vm.expectEmit(true, true, true, true, address(router));
        emit ITradeRouter.NonceUsed(agentId, q.nonce, ITradeRouter.IntentType.Open, digest);
        _submit(q, _signReq(q, OTHER_KEY)); // the wallet owner's key
        uint256 id = router.openPositionOf(agentId, address(aapl));
        vm.assertEq(id, 2, "position opened");
        vm.assertTrue(router.position(id).open, "open");
    }

    function test_open_revertsWhenErc1271SignerRejects() public {
        ContractSigner wallet = _useContractSigner();
        Req memory q = _req(Kind.Open);
        bytes memory sig = _signReq(q, AGENT_KEY); // not the wallet owner
        vm.expectRevert(abi.encodeWithSelector(ITradeRouter.InvalidSigner.selector, agentSigner, address(wallet)));
        _submit(q, sig);
    }

    /// @dev A contract signer may accept signatures that are not ECDSA at all (here: an approved digest
    ///      and an empty signature); the router must ask it before calling the signature malformed.
    function test_add_acceptsErc1271ApprovedDigestWithEmptySignature() public {
        ContractSigner wallet = _useContractSigner();
        Req memory q = _req(Kind.Add);
        vm.prank(vm.addr(OTHER_KEY));
        wallet.approve(_digest(q));
        _submit(q, "");
        vm.assertEq(router.nextNonce(agentId), q.nonce + 1, "add accepted");
    }

    function test_add_revertsMalformedWhenErc1271DoesNotApproveEmptySignature() public {
        _useContractSigner();
        Req memory q = _req(Kind.Add);
        _checkMalformed(q, "", 2);
    }

    // ------------------------------------------------------------------ who gates a sale

    /// @dev A sale's tokens are redeemed from the vault by the venue, not paid out by the vault: the
    ///      vault's ROUTER_ROLE gates buys only. Revoking it stops an open; setUp's position's stop still fires.
    function test_vaultRouterRole_gatesBuysNotSales() public {
        bytes32 role = vault.ROUTER_ROLE();
        vm.prank(admin);
        vault.revokeRole(role, address(router));

        ITradeRouter.ExitRule[] memory exits = _defaultLadder();
        ITradeRouter.OpenPosition memory p = _openIntent(address(aapl), 1_000e6, exits);
        bytes memory sig = _sign(p, AGENT_KEY);
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, address(router), role)
        );
        router.openPosition(p, exits, sig);

        _setPrice(address(nvda), _priceAtPnl(positionId, -1_200));
        vm.prank(keeper);
        router.executeExit(positionId, exits);
        vm.assertFalse(router.position(positionId).open, "the stop fired");
    }

    /// @dev What stops sales: the router's TRADER_ROLE on the venue (or pausing the router).
    function test_venueTraderRole_gatesSales() public {
        bytes32 role = venue.TRADER_ROLE();
        vm.prank(admin);
        venue.revokeRole(role, address(router));
        _setPrice(address(nvda), _priceAtPnl(positionId, -1_200));
        uint256 held = nvda.balanceOf(address(vault));

        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, address(router), role)
        );
        vm.prank(keeper);
        router.executeExit(positionId, _defaultLadder());
        vm.assertTrue(router.position(positionId).open, "still open");
        vm.assertEq(nvda.balanceOf(address(vault)), held, "nothing redeemed");
    }
}
