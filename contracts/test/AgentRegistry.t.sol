// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

import {AgentRegistry} from "../src/AgentRegistry.sol";
import {IAgentRegistry} from "../src/interfaces/IAgentRegistry.sol";
import {TestBase} from "./utils/Vm.sol";

/// @notice AgentRegistry on its own: tracks (validation, create-or-update by name), vaults, agents,
///         the one-call `agentConfig` the router reads, and operator-only access.
contract AgentRegistryTest is TestBase {
    address internal admin = address(0xAD);
    address internal stranger = address(0x5757);
    address internal signerA = address(0xA1);
    address internal signerB = address(0xB2);
    address internal vaultA = address(0x7A017A);
    address internal vaultB = address(0x7A017B);

    AgentRegistry internal registry;
    bytes32 internal operatorRole;

    function setUp() public {
        registry = new AgentRegistry(admin);
        operatorRole = registry.OPERATOR_ROLE();
    }

    // ------------------------------------------------------------------ helpers

    function _track() internal pure returns (IAgentRegistry.Track memory) {
        return IAgentRegistry.Track({
            maxTradeSizeBps: 1_000,
            maxDailyTurnoverBps: 20_000,
            maxDailyLossBps: 500,
            maxStopLossBps: 2_000,
            minTakeProfitBps: 100,
            maxTakeProfitBps: 5_000,
            requireStopLoss: true,
            requireTakeProfit: false,
            sessions: 4, // Regular
            exitsWhenClosed: IAgentRegistry.ExitsWhenClosed.Hold
        });
    }

    function _setTrack(string memory name, IAgentRegistry.Track memory t) internal returns (uint256) {
        vm.prank(admin);
        return registry.setTrack(name, t);
    }

    function _registerVault(address vault) internal returns (uint256) {
        vm.prank(admin);
        return registry.registerVault(vault);
    }

    function _registerAgent(address signer, uint256 vaultId, uint256 trackId, uint256 allocation)
        internal
        returns (uint256)
    {
        vm.prank(admin);
        return registry.registerAgent(signer, vaultId, trackId, allocation);
    }

    /// @dev A track, a vault and one agent on them; returns the agent id.
    function _seedAgent() internal returns (uint256 agentId) {
        uint256 trackId = _setTrack("evaluation", _track());
        uint256 vaultId = _registerVault(vaultA);
        agentId = _registerAgent(signerA, vaultId, trackId, 10_000e6);
    }

    function _assertTrackEq(IAgentRegistry.Track memory a, IAgentRegistry.Track memory b, string memory what)
        internal
        pure
    {
        vm.assertEq(keccak256(abi.encode(a)), keccak256(abi.encode(b)), what);
    }

    function _expectInvalidTrack(IAgentRegistry.Track memory t, string memory reason) internal {
        vm.expectRevert(abi.encodeWithSelector(IAgentRegistry.InvalidTrack.selector, reason));
        vm.prank(admin);
        registry.setTrack("bad", t);
    }

    function _expectUnauthorized(address who) internal {
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, who, operatorRole)
        );
    }

    // ------------------------------------------------------------------ construction

    function test_constructor_grantsAdminAndOperatorRoles() public view {
        vm.assertTrue(registry.hasRole(registry.DEFAULT_ADMIN_ROLE(), admin), "admin role");
        vm.assertTrue(registry.hasRole(operatorRole, admin), "operator role");
        vm.assertFalse(registry.hasRole(operatorRole, address(this)), "deployer has no role");
        vm.assertEq(operatorRole, keccak256("OPERATOR_ROLE"), "role id");
    }

    function test_counts_startAtZero() public view {
        vm.assertEq(registry.trackCount(), 0, "tracks");
        vm.assertEq(registry.vaultCount(), 0, "vaults");
        vm.assertEq(registry.agentCount(), 0, "agents");
    }

    // ------------------------------------------------------------------ tracks

    function test_setTrack_createsWithIdOne() public {
        uint256 id = _setTrack("evaluation", _track());
        vm.assertEq(id, 1, "first track id");
        vm.assertEq(registry.trackCount(), 1, "count");
        vm.assertEq(registry.trackIdOf("evaluation"), 1, "by name");
        (string memory name, IAgentRegistry.Track memory limits) = registry.track(1);
        vm.assertEq(name, "evaluation", "name");
        _assertTrackEq(limits, _track(), "limits");
    }

    function test_setTrack_emitsTrackSet() public {
        vm.expectEmit(true, true, true, true, address(registry));
        emit IAgentRegistry.TrackSet(1, "evaluation", _track());
        _setTrack("evaluation", _track());
    }

    function test_setTrack_sameNameUpdatesInPlace() public {
        _setTrack("evaluation", _track());
        _setTrack("funded", _track());
        IAgentRegistry.Track memory updated = _track();
        updated.maxTradeSizeBps = 2_500;
        updated.requireTakeProfit = true;

        vm.expectEmit(true, true, true, true, address(registry));
        emit IAgentRegistry.TrackSet(1, "evaluation", updated);
        uint256 id = _setTrack("evaluation", updated);

        vm.assertEq(id, 1, "same id");
        vm.assertEq(registry.trackCount(), 2, "no new track");
        (string memory name, IAgentRegistry.Track memory limits) = registry.track(1);
        vm.assertEq(name, "evaluation", "name kept");
        _assertTrackEq(limits, updated, "limits replaced");
        (, IAgentRegistry.Track memory other) = registry.track(2);
        _assertTrackEq(other, _track(), "other track untouched");
    }

    function test_setTrack_namesAreCaseSensitive() public {
        uint256 a = _setTrack("funded", _track());
        uint256 b = _setTrack("Funded", _track());
        vm.assertEq(a, 1, "first");
        vm.assertEq(b, 2, "distinct name, distinct track");
    }

    function test_setTrack_updateReachesAgentsOnIt() public {
        uint256 agentId = _seedAgent();
        IAgentRegistry.Track memory updated = _track();
        updated.maxDailyLossBps = 42;
        _setTrack("evaluation", updated);
        _assertTrackEq(registry.agentConfig(agentId).track, updated, "agent sees new limits");
    }

    function test_setTrack_acceptsBoundaryValues() public {
        IAgentRegistry.Track memory t = IAgentRegistry.Track({
            maxTradeSizeBps: 10_000,
            maxDailyTurnoverBps: type(uint32).max,
            maxDailyLossBps: 10_000,
            maxStopLossBps: 10_000,
            minTakeProfitBps: uint32(type(int32).max),
            maxTakeProfitBps: uint32(type(int32).max),
            requireStopLoss: false,
            requireTakeProfit: false,
            sessions: 4, // Regular
            exitsWhenClosed: IAgentRegistry.ExitsWhenClosed.Hold
        });
        _setTrack("edges", t);
        t.maxTradeSizeBps = 1;
        t.maxDailyTurnoverBps = 1;
        t.maxDailyLossBps = 1;
        t.maxStopLossBps = 1;
        t.minTakeProfitBps = 1;
        t.maxTakeProfitBps = 1;
        uint256 id = _setTrack("edges", t);
        (, IAgentRegistry.Track memory stored) = registry.track(id);
        _assertTrackEq(stored, t, "lower edges stored");
    }

    function test_setTrack_revertsWhenNameEmpty() public {
        vm.expectRevert(IAgentRegistry.InvalidName.selector);
        vm.prank(admin);
        registry.setTrack("", _track());
    }

    function test_setTrack_revertsWhenNameLongerThan32Bytes() public {
        vm.expectRevert(IAgentRegistry.InvalidName.selector);
        vm.prank(admin);
        registry.setTrack("abcdefghijklmnopqrstuvwxyz0123456", _track()); // 33 bytes
    }

    function test_setTrack_acceptsNameOf32Bytes() public {
        uint256 id = _setTrack("abcdefghijklmnopqrstuvwxyz012345", _track());
        vm.assertEq(registry.trackIdOf("abcdefghijklmnopqrstuvwxyz012345"), id, "32-byte name");
    }

    function test_setTrack_revertsWhenMaxTradeSizeBpsZero() public {
        IAgentRegistry.Track memory t = _track();
        t.maxTradeSizeBps = 0;
        _expectInvalidTrack(t, "maxTradeSizeBps not in 1..10000");
    }

    function test_setTrack_revertsWhenMaxTradeSizeBpsAbove10000() public {
        IAgentRegistry.Track memory t = _track();
        t.maxTradeSizeBps = 10_001;
        _expectInvalidTrack(t, "maxTradeSizeBps not in 1..10000");
    }

    function test_setTrack_revertsWhenMaxDailyTurnoverBpsZero() public {
        IAgentRegistry.Track memory t = _track();
        t.maxDailyTurnoverBps = 0;
        _expectInvalidTrack(t, "maxDailyTurnoverBps is 0");
    }

    function test_setTrack_revertsWhenMaxDailyLossBpsZero() public {
        IAgentRegistry.Track memory t = _track();
        t.maxDailyLossBps = 0;
        _expectInvalidTrack(t, "maxDailyLossBps not in 1..10000");
    }

    function test_setTrack_revertsWhenMaxDailyLossBpsAbove10000() public {
        IAgentRegistry.Track memory t = _track();
        t.maxDailyLossBps = 10_001;
        _expectInvalidTrack(t, "maxDailyLossBps not in 1..10000");
    }

    function test_setTrack_revertsWhenMaxStopLossBpsZero() public {
        IAgentRegistry.Track memory t = _track();
        t.maxStopLossBps = 0;
        _expectInvalidTrack(t, "maxStopLossBps not in 1..10000");
    }

    function test_setTrack_revertsWhenMaxStopLossBpsAbove10000() public {
        IAgentRegistry.Track memory t = _track();
        t.maxStopLossBps = 10_001;
        _expectInvalidTrack(t, "maxStopLossBps not in 1..10000");
    }

    function test_setTrack_revertsWhenMinTakeProfitBpsZero() public {
        IAgentRegistry.Track memory t = _track();
        t.minTakeProfitBps = 0;
        _expectInvalidTrack(t, "minTakeProfitBps is 0");
    }

    function test_setTrack_revertsWhenMinTakeProfitAboveMax() public {
        IAgentRegistry.Track memory t = _track();
        t.minTakeProfitBps = 5_001;
        t.maxTakeProfitBps = 5_000;
        _expectInvalidTrack(t, "minTakeProfitBps above maxTakeProfitBps");
    }

    function test_setTrack_revertsWhenMaxTakeProfitAboveInt32() public {
        IAgentRegistry.Track memory t = _track();
        t.maxTakeProfitBps = uint32(type(int32).max) + 1;
        _expectInvalidTrack(t, "maxTakeProfitBps above int32");
    }

    function test_setTrack_invalidLimitsLeaveExistingTrackUnchanged() public {
        _setTrack("evaluation", _track());
        IAgentRegistry.Track memory bad = _track();
        bad.maxTradeSizeBps = 0;
        vm.expectRevert(abi.encodeWithSelector(IAgentRegistry.InvalidTrack.selector, "maxTradeSizeBps not in 1..10000"));
        vm.prank(admin);
        registry.setTrack("evaluation", bad);
        (, IAgentRegistry.Track memory stored) = registry.track(1);
        _assertTrackEq(stored, _track(), "unchanged");
    }

    function testFuzz_setTrack_storesAnyValidLimits(
        uint16 tradeBps,
        uint32 turnoverBps,
        uint16 lossBps,
        uint16 stopBps,
        uint32 minTp,
        uint32 maxTp,
        bool reqSl,
        bool reqTp,
        uint8 sessions,
        bool fire
    ) public {
        IAgentRegistry.Track memory t = IAgentRegistry.Track({
            maxTradeSizeBps: uint16(bound(tradeBps, 1, 10_000)),
            maxDailyTurnoverBps: uint32(bound(turnoverBps, 1, type(uint32).max)),
            maxDailyLossBps: uint16(bound(lossBps, 1, 10_000)),
            maxStopLossBps: uint16(bound(stopBps, 1, 10_000)),
            minTakeProfitBps: 0,
            maxTakeProfitBps: uint32(bound(maxTp, 1, uint32(type(int32).max))),
            requireStopLoss: reqSl,
            requireTakeProfit: reqTp,
            sessions: uint8(bound(sessions, 1, 63)),
            exitsWhenClosed: fire ? IAgentRegistry.ExitsWhenClosed.Fire : IAgentRegistry.ExitsWhenClosed.Hold
        });
        t.minTakeProfitBps = uint32(bound(minTp, 1, t.maxTakeProfitBps));
        uint256 id = _setTrack("fuzz", t);
        (, IAgentRegistry.Track memory stored) = registry.track(id);
        _assertTrackEq(stored, t, "round trip");
        // agentConfig unpacks the track's slot by hand: the same track, field for field.
        uint256 agentId = _registerAgent(signerA, _registerVault(vaultA), id, 1e6);
        _assertTrackEq(registry.agentConfig(agentId).track, t, "agentConfig round trip");
        (address vault, uint8 s, IAgentRegistry.ExitsWhenClosed policy) = registry.exitPolicyOf(agentId);
        vm.assertEq(vault, vaultA, "exit vault");
        vm.assertEq(s, t.sessions, "exit sessions");
        vm.assertEq(uint8(policy), uint8(t.exitsWhenClosed), "exit policy");
    }

    function test_setTrack_revertsWhenSessionsEmpty() public {
        IAgentRegistry.Track memory t = _track();
        t.sessions = 0;
        _expectInvalidTrack(t, "sessions is empty");
    }

    function test_setTrack_revertsWhenSessionsIncludeHalted() public {
        IAgentRegistry.Track memory t = _track();
        t.sessions = uint8(1 << 6) | 4;
        _expectInvalidTrack(t, "sessions include Halted or no status");
        t.sessions = uint8(1 << 6);
        _expectInvalidTrack(t, "sessions include Halted or no status");
    }

    function test_setTrack_revertsWhenSessionsHaveBitSeven() public {
        IAgentRegistry.Track memory t = _track();
        t.sessions = uint8(1 << 7) | 4;
        _expectInvalidTrack(t, "sessions include Halted or no status");
    }

    function test_setTrack_acceptsEverySessionButHalted() public {
        IAgentRegistry.Track memory t = _track();
        t.sessions = 63; // Unknown..Closed
        t.exitsWhenClosed = IAgentRegistry.ExitsWhenClosed.Fire;
        uint256 id = _setTrack("wide", t);
        (, IAgentRegistry.Track memory stored) = registry.track(id);
        _assertTrackEq(stored, t, "stored");
    }

    function test_setTrack_revertsOnOutOfRangePolicy() public {
        // ABI decoding refuses an enum value beyond Fire (no InvalidTrack: the call never starts).
        bytes memory data = abi.encodeCall(IAgentRegistry.setTrack, ("bad", _track()));
        // Head: the name's offset, then the static struct's ten words; exitsWhenClosed is the tenth.
        uint256 at = 4 + 32 + 9 * 32;
        data[at + 31] = bytes1(uint8(2));
        vm.prank(admin);
        (bool ok,) = address(registry).call(data);
        vm.assertFalse(ok, "policy 2 refused");
        data[at + 31] = bytes1(uint8(1));
        vm.prank(admin);
        (ok,) = address(registry).call(data);
        vm.assertTrue(ok, "policy 1 (Fire) accepted at the same offset");
    }

    function test_exitPolicyOf_followsTheAgentsTrack() public {
        uint256 agentId = _seedAgent();
        (address vault, uint8 sessions, IAgentRegistry.ExitsWhenClosed policy) = registry.exitPolicyOf(agentId);
        vm.assertEq(vault, vaultA, "vault");
        vm.assertEq(sessions, 4, "Regular");
        vm.assertEq(uint8(policy), uint8(IAgentRegistry.ExitsWhenClosed.Hold), "hold");
        IAgentRegistry.Track memory t = _track();
        t.sessions = 6;
        t.exitsWhenClosed = IAgentRegistry.ExitsWhenClosed.Fire;
        _setTrack("evaluation", t);
        (, sessions, policy) = registry.exitPolicyOf(agentId);
        vm.assertEq(sessions, 6, "PreMarket+Regular");
        vm.assertEq(uint8(policy), uint8(IAgentRegistry.ExitsWhenClosed.Fire), "fire");
    }

    function test_track_revertsForUnknownId() public {
        vm.expectRevert(abi.encodeWithSelector(IAgentRegistry.UnknownTrack.selector, 0));
        registry.track(0);
        _setTrack("evaluation", _track());
        vm.expectRevert(abi.encodeWithSelector(IAgentRegistry.UnknownTrack.selector, 2));
        registry.track(2);
    }

    function test_trackIdOf_isZeroForUnknownName() public {
        _setTrack("evaluation", _track());
        vm.assertEq(registry.trackIdOf("funded"), 0, "unknown name");
    }

    // ------------------------------------------------------------------ vaults

    function test_registerVault_assignsIdsFromOne() public {
        vm.expectEmit(true, true, true, true, address(registry));
        emit IAgentRegistry.VaultRegistered(1, vaultA);
        uint256 a = _registerVault(vaultA);
        uint256 b = _registerVault(vaultB);
        vm.assertEq(a, 1, "first vault id");
        vm.assertEq(b, 2, "second vault id");
        vm.assertEq(registry.vaultCount(), 2, "count");
        vm.assertEq(registry.vaultAddress(1), vaultA, "vault 1");
        vm.assertEq(registry.vaultAddress(2), vaultB, "vault 2");
        vm.assertEq(registry.vaultAddress(3), address(0), "unknown vault id");
    }

    function test_registerVault_revertsWhenAlreadyRegistered() public {
        _registerVault(vaultA);
        vm.expectRevert(abi.encodeWithSelector(IAgentRegistry.VaultAlreadyRegistered.selector, vaultA));
        vm.prank(admin);
        registry.registerVault(vaultA);
    }

    function test_registerVault_revertsForZeroAddress() public {
        vm.expectRevert(IAgentRegistry.ZeroAddress.selector);
        vm.prank(admin);
        registry.registerVault(address(0));
    }

    // ------------------------------------------------------------------ agents

    function test_registerAgent_storesConfigAndEmits() public {
        uint256 trackId = _setTrack("evaluation", _track());
        uint256 vaultId = _registerVault(vaultA);

        vm.expectEmit(true, true, true, true, address(registry));
        emit IAgentRegistry.AgentRegistered(1, signerA, vaultId, trackId, 10_000e6);
        uint256 agentId = _registerAgent(signerA, vaultId, trackId, 10_000e6);

        vm.assertEq(agentId, 1, "agent ids start at 1");
        vm.assertEq(registry.agentCount(), 1, "count");
        IAgentRegistry.AgentConfig memory c = registry.agentConfig(agentId);
        vm.assertEq(c.signer, signerA, "signer");
        vm.assertEq(c.vault, vaultA, "vault");
        vm.assertEq(c.vaultId, vaultId, "vault id");
        vm.assertEq(c.trackId, trackId, "track id");
        vm.assertEq(c.allocation, 10_000e6, "allocation");
        vm.assertTrue(c.active, "active on registration");
        _assertTrackEq(c.track, _track(), "track limits inlined");
        vm.assertEq(registry.vaultOf(agentId), vaultA, "vaultOf");
    }

    function test_registerAgent_assignsSequentialIds() public {
        uint256 first = _seedAgent();
        uint256 second = _registerAgent(signerB, 1, 1, 1);
        vm.assertEq(first, 1, "first");
        vm.assertEq(second, 2, "second");
        vm.assertEq(registry.agentCount(), 2, "count");
    }

    function test_registerAgent_sameSignerMayRunSeveralAgents() public {
        _seedAgent();
        uint256 second = _registerAgent(signerA, 1, 1, 5e6);
        vm.assertEq(registry.agentConfig(second).signer, signerA, "shared signer");
        vm.assertEq(registry.agentConfig(second).allocation, 5e6, "own allocation");
    }

    function test_registerAgent_revertsForZeroSigner() public {
        _setTrack("evaluation", _track());
        _registerVault(vaultA);
        vm.expectRevert(IAgentRegistry.ZeroAddress.selector);
        vm.prank(admin);
        registry.registerAgent(address(0), 1, 1, 1);
    }

    function test_registerAgent_revertsForUnknownVault() public {
        _setTrack("evaluation", _track());
        _registerVault(vaultA);
        vm.expectRevert(abi.encodeWithSelector(IAgentRegistry.UnknownVault.selector, 2));
        vm.prank(admin);
        registry.registerAgent(signerA, 2, 1, 1);
        vm.expectRevert(abi.encodeWithSelector(IAgentRegistry.UnknownVault.selector, 0));
        vm.prank(admin);
        registry.registerAgent(signerA, 0, 1, 1);
    }

    function test_registerAgent_revertsForUnknownTrack() public {
        _setTrack("evaluation", _track());
        _registerVault(vaultA);
        vm.expectRevert(abi.encodeWithSelector(IAgentRegistry.UnknownTrack.selector, 0));
        vm.prank(admin);
        registry.registerAgent(signerA, 1, 0, 1);
        vm.expectRevert(abi.encodeWithSelector(IAgentRegistry.UnknownTrack.selector, 2));
        vm.prank(admin);
        registry.registerAgent(signerA, 1, 2, 1);
    }

    function test_registerAgent_revertsWhenAllocationAboveUint64() public {
        _setTrack("evaluation", _track());
        _registerVault(vaultA);
        vm.expectRevert(abi.encodeWithSelector(IAgentRegistry.InvalidTrack.selector, "allocation above 2^64-1"));
        vm.prank(admin);
        registry.registerAgent(signerA, 1, 1, uint256(type(uint64).max) + 1);
        uint256 id = _registerAgent(signerA, 1, 1, type(uint64).max);
        vm.assertEq(registry.agentConfig(id).allocation, type(uint64).max, "max allocation fits");
    }

    function test_setAgentSigner_replacesSignerAndEmits() public {
        uint256 agentId = _seedAgent();
        vm.expectEmit(true, true, true, true, address(registry));
        emit IAgentRegistry.AgentSignerSet(agentId, signerB);
        vm.prank(admin);
        registry.setAgentSigner(agentId, signerB);
        vm.assertEq(registry.agentConfig(agentId).signer, signerB, "new signer");
    }

    function test_setAgentSigner_revertsForZeroSigner() public {
        uint256 agentId = _seedAgent();
        vm.expectRevert(IAgentRegistry.ZeroAddress.selector);
        vm.prank(admin);
        registry.setAgentSigner(agentId, address(0));
    }

    function test_setAgentSigner_revertsForUnknownAgent() public {
        _seedAgent();
        vm.expectRevert(abi.encodeWithSelector(IAgentRegistry.UnknownAgent.selector, 2));
        vm.prank(admin);
        registry.setAgentSigner(2, signerB);
    }

    function test_setAgentTrack_movesAgentAndEmits() public {
        uint256 agentId = _seedAgent();
        IAgentRegistry.Track memory funded = _track();
        funded.requireTakeProfit = true;
        uint256 fundedId = _setTrack("funded", funded);

        vm.expectEmit(true, true, true, true, address(registry));
        emit IAgentRegistry.AgentTrackSet(agentId, fundedId);
        vm.prank(admin);
        registry.setAgentTrack(agentId, fundedId);

        IAgentRegistry.AgentConfig memory c = registry.agentConfig(agentId);
        vm.assertEq(c.trackId, fundedId, "track id");
        _assertTrackEq(c.track, funded, "limits of the new track");
    }

    function test_setAgentTrack_revertsForUnknownTrack() public {
        uint256 agentId = _seedAgent();
        vm.expectRevert(abi.encodeWithSelector(IAgentRegistry.UnknownTrack.selector, 2));
        vm.prank(admin);
        registry.setAgentTrack(agentId, 2);
    }

    function test_setAgentTrack_revertsForUnknownAgent() public {
        _seedAgent();
        vm.expectRevert(abi.encodeWithSelector(IAgentRegistry.UnknownAgent.selector, 0));
        vm.prank(admin);
        registry.setAgentTrack(0, 1);
    }

    function test_setAllocation_updatesAndEmits() public {
        uint256 agentId = _seedAgent();
        vm.expectEmit(true, true, true, true, address(registry));
        emit IAgentRegistry.AgentAllocationSet(agentId, 25_000e6);
        vm.prank(admin);
        registry.setAllocation(agentId, 25_000e6);
        vm.assertEq(registry.agentConfig(agentId).allocation, 25_000e6, "allocation");
    }

    function test_setAllocation_acceptsZero() public {
        uint256 agentId = _seedAgent();
        vm.prank(admin);
        registry.setAllocation(agentId, 0);
        vm.assertEq(registry.agentConfig(agentId).allocation, 0, "zero allocation freezes new exposure");
    }

    function test_setAllocation_revertsAboveUint64() public {
        uint256 agentId = _seedAgent();
        vm.expectRevert(abi.encodeWithSelector(IAgentRegistry.InvalidTrack.selector, "allocation above 2^64-1"));
        vm.prank(admin);
        registry.setAllocation(agentId, uint256(type(uint64).max) + 1);
    }

    function test_setAllocation_revertsForUnknownAgent() public {
        vm.expectRevert(abi.encodeWithSelector(IAgentRegistry.UnknownAgent.selector, 1));
        vm.prank(admin);
        registry.setAllocation(1, 1);
    }

    function test_setActive_togglesAndEmits() public {
        uint256 agentId = _seedAgent();
        vm.expectEmit(true, true, true, true, address(registry));
        emit IAgentRegistry.AgentActiveSet(agentId, false);
        vm.prank(admin);
        registry.setActive(agentId, false);
        IAgentRegistry.AgentConfig memory c = registry.agentConfig(agentId);
        vm.assertFalse(c.active, "inactive");
        vm.assertEq(c.signer, signerA, "deactivated agent still known");

        vm.expectEmit(true, true, true, true, address(registry));
        emit IAgentRegistry.AgentActiveSet(agentId, true);
        vm.prank(admin);
        registry.setActive(agentId, true);
        vm.assertTrue(registry.agentConfig(agentId).active, "active again");
    }

    function test_setActive_revertsForUnknownAgent() public {
        vm.expectRevert(abi.encodeWithSelector(IAgentRegistry.UnknownAgent.selector, 7));
        vm.prank(admin);
        registry.setActive(7, false);
    }

    function test_setters_leaveOtherFieldsUntouched() public {
        uint256 agentId = _seedAgent();
        uint256 fundedId = _setTrack("funded", _track());
        vm.startPrank(admin);
        registry.setAgentSigner(agentId, signerB);
        registry.setAgentTrack(agentId, fundedId);
        registry.setAllocation(agentId, 7e6);
        registry.setActive(agentId, false);
        vm.stopPrank();
        IAgentRegistry.AgentConfig memory c = registry.agentConfig(agentId);
        vm.assertEq(c.signer, signerB, "signer");
        vm.assertEq(c.vault, vaultA, "vault fixed at registration");
        vm.assertEq(c.vaultId, 1, "vault id fixed");
        vm.assertEq(c.trackId, fundedId, "track");
        vm.assertEq(c.allocation, 7e6, "allocation");
        vm.assertFalse(c.active, "active flag");
    }

    function test_agentConfig_isZeroForUnknownAgent() public {
        _seedAgent();
        IAgentRegistry.AgentConfig memory c = registry.agentConfig(2);
        vm.assertEq(c.signer, address(0), "zero signer means unknown");
        vm.assertEq(c.vault, address(0), "vault");
        vm.assertEq(c.vaultId, 0, "vault id");
        vm.assertEq(c.trackId, 0, "track id");
        vm.assertEq(c.allocation, 0, "allocation");
        vm.assertFalse(c.active, "active");
        vm.assertEq(registry.agentConfig(0).signer, address(0), "id 0 is never an agent");
        vm.assertEq(registry.vaultOf(2), address(0), "vaultOf unknown");
    }

    // ------------------------------------------------------------------ access control

    function test_setTrack_revertsForNonOperator() public {
        _expectUnauthorized(stranger);
        vm.prank(stranger);
        registry.setTrack("evaluation", _track());
    }

    function test_registerVault_revertsForNonOperator() public {
        _expectUnauthorized(stranger);
        vm.prank(stranger);
        registry.registerVault(vaultA);
    }

    function test_registerAgent_revertsForNonOperator() public {
        _setTrack("evaluation", _track());
        _registerVault(vaultA);
        _expectUnauthorized(stranger);
        vm.prank(stranger);
        registry.registerAgent(signerA, 1, 1, 1);
    }

    function test_agentSetters_revertForNonOperator() public {
        uint256 agentId = _seedAgent();
        vm.startPrank(signerA); // not even the agent's own signer may change its record
        _expectUnauthorized(signerA);
        registry.setAgentSigner(agentId, signerB);
        _expectUnauthorized(signerA);
        registry.setAgentTrack(agentId, 1);
        _expectUnauthorized(signerA);
        registry.setAllocation(agentId, 1);
        _expectUnauthorized(signerA);
        registry.setActive(agentId, false);
        vm.stopPrank();
    }

    function test_grantedOperator_mayManage() public {
        vm.startPrank(admin);
        registry.grantRole(operatorRole, stranger);
        vm.stopPrank();
        vm.prank(stranger);
        uint256 id = registry.setTrack("evaluation", _track());
        vm.assertEq(id, 1, "operator created a track");
    }

    function test_adminWithoutOperatorRole_cannotManage() public {
        vm.prank(admin);
        registry.renounceRole(operatorRole, admin);
        _expectUnauthorized(admin);
        vm.prank(admin);
        registry.setTrack("evaluation", _track());
    }
}
