// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

import {IAgentRegistry} from "./interfaces/IAgentRegistry.sol";

/// @title AgentRegistry
/// @notice Agents, vaults and tracks, managed by operators. The router reads an agent with one call.
/// @dev    Ids start at 1 so that 0 always means "none". An agent's vault is fixed at registration.
contract AgentRegistry is IAgentRegistry, AccessControl {
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
    uint256 private constant BPS = 10_000;
    uint256 private constant MAX_NAME_LENGTH = 32;

    /// @dev Two slots, both read by `agentConfig`.
    struct AgentRecord {
        address signer;
        uint32 vaultId;
        uint32 trackId;
        bool active;
        address vault;
        uint64 allocation;
    }

    mapping(uint256 agentId => AgentRecord) private _agents;
    mapping(uint256 trackId => Track) private _tracks;
    mapping(uint256 trackId => string) private _trackNames;
    mapping(bytes32 nameHash => uint256) private _trackIds;
    mapping(uint256 vaultId => address) private _vaults;
    mapping(address vault => uint256) private _vaultIds;
    uint64 private _agentCount;
    uint32 private _trackCount;
    uint32 private _vaultCount;

    constructor(address admin) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(OPERATOR_ROLE, admin);
    }

    // ------------------------------------------------------------------ operators

    /// @inheritdoc IAgentRegistry
    function setTrack(string calldata name, Track calldata limits)
        external
        onlyRole(OPERATOR_ROLE)
        returns (uint256 trackId)
    {
        if (bytes(name).length == 0 || bytes(name).length > MAX_NAME_LENGTH) revert InvalidName();
        _validateTrack(limits);
        bytes32 key = keccak256(bytes(name));
        trackId = _trackIds[key];
        if (trackId == 0) {
            trackId = ++_trackCount;
            _trackIds[key] = trackId;
            _trackNames[trackId] = name;
        }
        _tracks[trackId] = limits;
        emit TrackSet(trackId, name, limits);
    }

    /// @inheritdoc IAgentRegistry
    function registerVault(address vault) external onlyRole(OPERATOR_ROLE) returns (uint256 vaultId) {
        if (vault == address(0)) revert ZeroAddress();
        if (_vaultIds[vault] != 0) revert VaultAlreadyRegistered(vault);
        vaultId = ++_vaultCount;
        _vaults[vaultId] = vault;
        _vaultIds[vault] = vaultId;
        emit VaultRegistered(vaultId, vault);
    }

    /// @inheritdoc IAgentRegistry
    function registerAgent(address signer, uint256 vaultId, uint256 trackId, uint256 allocation)
        external
        onlyRole(OPERATOR_ROLE)
        returns (uint256 agentId)
    {
        if (signer == address(0)) revert ZeroAddress();
        address vault = _vaults[vaultId];
        if (vault == address(0)) revert UnknownVault(vaultId);
        _requireTrack(trackId);
        agentId = ++_agentCount;
        _agents[agentId] = AgentRecord({
            signer: signer,
            vaultId: uint32(vaultId),
            trackId: uint32(trackId),
            active: true,
            vault: vault,
            allocation: _toAllocation(allocation)
        });
        emit AgentRegistered(agentId, signer, vaultId, trackId, allocation);
    }

    /// @inheritdoc IAgentRegistry
    function setAgentSigner(uint256 agentId, address signer) external onlyRole(OPERATOR_ROLE) {
        if (signer == address(0)) revert ZeroAddress();
        _agent(agentId).signer = signer;
        emit AgentSignerSet(agentId, signer);
    }

    /// @inheritdoc IAgentRegistry
    function setAgentTrack(uint256 agentId, uint256 trackId) external onlyRole(OPERATOR_ROLE) {
        _requireTrack(trackId);
        _agent(agentId).trackId = uint32(trackId);
        emit AgentTrackSet(agentId, trackId);
    }

    /// @inheritdoc IAgentRegistry
    function setAllocation(uint256 agentId, uint256 allocation) external onlyRole(OPERATOR_ROLE) {
        _agent(agentId).allocation = _toAllocation(allocation);
        emit AgentAllocationSet(agentId, allocation);
    }

    /// @inheritdoc IAgentRegistry
    function setActive(uint256 agentId, bool active) external onlyRole(OPERATOR_ROLE) {
        _agent(agentId).active = active;
        emit AgentActiveSet(agentId, active);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IAgentRegistry
    function agentConfig(uint256 agentId) external view returns (AgentConfig memory config) {
        AgentRecord memory a = _agents[agentId];
        if (a.signer == address(0)) return config;
        // Filled in place: the router pays for this call on every intent, and a second struct (or the
        // track copied into a fresh one) would be allocated and zeroed for nothing.
        config.signer = a.signer;
        config.vault = a.vault;
        config.vaultId = a.vaultId;
        config.trackId = a.trackId;
        config.allocation = a.allocation;
        config.active = a.active;
        Track storage s = _tracks[a.trackId];
        Track memory t = config.track;
        uint256 w;
        assembly ("memory-safe") {
            w := sload(s.slot)
        }
        // `Track`'s packed layout, low bits first.
        t.maxTradeSizeBps = uint16(w);
        t.maxDailyTurnoverBps = uint32(w >> 16);
        t.maxDailyLossBps = uint16(w >> 48);
        t.maxStopLossBps = uint16(w >> 64);
        t.minTakeProfitBps = uint32(w >> 80);
        t.maxTakeProfitBps = uint32(w >> 112);
        t.requireStopLoss = uint8(w >> 144) != 0;
        t.requireTakeProfit = uint8(w >> 152) != 0;
        t.sessions = uint8(w >> 160);
        // Written only from the enum (setTrack's calldata is checked), so always in range.
        assembly ("memory-safe") {
            mstore(add(t, 0x120), and(shr(168, w), 0xff))
        }
    }

    /// @inheritdoc IAgentRegistry
    function vaultOf(uint256 agentId) external view returns (address) {
        return _agents[agentId].vault;
    }

    /// @inheritdoc IAgentRegistry
    function exitPolicyOf(uint256 agentId)
        external
        view
        returns (address vault, uint8 sessions, ExitsWhenClosed exitsWhenClosed)
    {
        // The vault by its id, not the record's copy: the record's first slot has the track id, and
        // `_vaults` is one slot per vault (warm for the second agent of a batch), not a second per agent.
        AgentRecord storage a = _agents[agentId];
        Track storage t = _tracks[a.trackId];
        return (_vaults[a.vaultId], t.sessions, t.exitsWhenClosed);
    }

    /// @inheritdoc IAgentRegistry
    function vaultAddress(uint256 vaultId) external view returns (address) {
        return _vaults[vaultId];
    }

    /// @inheritdoc IAgentRegistry
    function track(uint256 trackId) external view returns (string memory name, Track memory limits) {
        _requireTrack(trackId);
        return (_trackNames[trackId], _tracks[trackId]);
    }

    /// @inheritdoc IAgentRegistry
    function trackIdOf(string calldata name) external view returns (uint256) {
        return _trackIds[keccak256(bytes(name))];
    }

    /// @inheritdoc IAgentRegistry
    function agentCount() external view returns (uint256) {
        return _agentCount;
    }

    /// @inheritdoc IAgentRegistry
    function trackCount() external view returns (uint256) {
        return _trackCount;
    }

    /// @inheritdoc IAgentRegistry
    function vaultCount() external view returns (uint256) {
        return _vaultCount;
    }

    // ------------------------------------------------------------------ internals

    function _agent(uint256 agentId) private view returns (AgentRecord storage a) {
        a = _agents[agentId];
        if (a.signer == address(0)) revert UnknownAgent(agentId);
    }

    function _requireTrack(uint256 trackId) private view {
        if (trackId == 0 || trackId > _trackCount) revert UnknownTrack(trackId);
    }

    function _toAllocation(uint256 allocation) private pure returns (uint64) {
        if (allocation > type(uint64).max) revert InvalidTrack("allocation above 2^64-1");
        return uint64(allocation);
    }

    /// @dev Rejects limits the router could not apply sensibly (a zero loss limit would block every
    ///      trade; a stop beyond −100% could never fire; a take-profit must fit an int32 trigger; a track
    ///      with no session could never open).
    function _validateTrack(Track calldata t) private pure {
        if (t.maxTradeSizeBps == 0 || t.maxTradeSizeBps > BPS) revert InvalidTrack("maxTradeSizeBps not in 1..10000");
        if (t.maxDailyTurnoverBps == 0) revert InvalidTrack("maxDailyTurnoverBps is 0");
        if (t.maxDailyLossBps == 0 || t.maxDailyLossBps > BPS) revert InvalidTrack("maxDailyLossBps not in 1..10000");
        if (t.maxStopLossBps == 0 || t.maxStopLossBps > BPS) revert InvalidTrack("maxStopLossBps not in 1..10000");
        if (t.minTakeProfitBps == 0) revert InvalidTrack("minTakeProfitBps is 0");
        if (t.minTakeProfitBps > t.maxTakeProfitBps) revert InvalidTrack("minTakeProfitBps above maxTakeProfitBps");
        if (t.maxTakeProfitBps > uint32(type(int32).max)) revert InvalidTrack("maxTakeProfitBps above int32");
        if (t.sessions == 0) revert InvalidTrack("sessions is empty");
        // Bit 6 is Halted (nothing opens in a halt), bit 7 no status at all.
        if (t.sessions >> 6 != 0) revert InvalidTrack("sessions include Halted or no status");
    }
}
