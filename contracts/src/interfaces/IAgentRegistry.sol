// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title IAgentRegistry
/// @notice Agents (`agentId → signer, vault, track, allocation, active`), vaults (`vaultId → address`)
///         and tracks: the named risk policies an operator puts agents on (SPEC §1.5).
interface IAgentRegistry {
    /// @notice What a crossed exit rule does while the market is outside the track's sessions (SPEC §5.6):
    ///         `Hold` waits for a price quoted in a session the track trades; `Fire` fires on the last price.
    ///         A halted market holds every exit either way.
    enum ExitsWhenClosed {
        Hold,
        Fire
    }

    /// @notice A track's limits; the first three are bps of the agent's allocation. `sessions` has bit `s`
    ///         set for each `IPriceOracle.MarketStatus` `s` in which opens and adds are allowed (never
    ///         Halted; `1 << 2`, Regular, by default).
    struct Track {
        uint16 maxTradeSizeBps;
        uint32 maxDailyTurnoverBps;
        uint16 maxDailyLossBps;
        uint16 maxStopLossBps;
        uint32 minTakeProfitBps;
        uint32 maxTakeProfitBps;
        bool requireStopLoss;
        bool requireTakeProfit;
        uint8 sessions;
        ExitsWhenClosed exitsWhenClosed;
    }

    /// @notice Everything the router needs about an agent, in one call. `signer == 0` means unknown.
    struct AgentConfig {
        address signer;
        address vault;
        uint256 vaultId;
        uint256 trackId;
        uint256 allocation;
        bool active;
        Track track;
    }

    error UnknownTrack(uint256 trackId);
    error UnknownVault(uint256 vaultId);
    error UnknownAgent(uint256 agentId);
    error InvalidTrack(string reason);
    error InvalidName();
    error ZeroAddress();
    error VaultAlreadyRegistered(address vault);

    event TrackSet(uint256 indexed trackId, string name, Track track);
    event VaultRegistered(uint256 indexed vaultId, address indexed vault);
    event AgentRegistered(
        uint256 indexed agentId, address indexed signer, uint256 vaultId, uint256 trackId, uint256 allocation
    );
    event AgentSignerSet(uint256 indexed agentId, address indexed signer);
    event AgentTrackSet(uint256 indexed agentId, uint256 trackId);
    event AgentAllocationSet(uint256 indexed agentId, uint256 allocation);
    event AgentActiveSet(uint256 indexed agentId, bool active);

    /// @notice Creates the track `name` or replaces its limits; returns its id.
    function setTrack(string calldata name, Track calldata track) external returns (uint256 trackId);
    function registerVault(address vault) external returns (uint256 vaultId);
    function registerAgent(address signer, uint256 vaultId, uint256 trackId, uint256 allocation)
        external
        returns (uint256 agentId);
    function setAgentSigner(uint256 agentId, address signer) external;
    function setAgentTrack(uint256 agentId, uint256 trackId) external;
    function setAllocation(uint256 agentId, uint256 allocation) external;
    function setActive(uint256 agentId, bool active) external;

    function agentConfig(uint256 agentId) external view returns (AgentConfig memory);
    function vaultOf(uint256 agentId) external view returns (address);
    /// @notice What an exit needs besides the vault: the agent's track's sessions and exit policy.
    function exitPolicyOf(uint256 agentId)
        external
        view
        returns (address vault, uint8 sessions, ExitsWhenClosed exitsWhenClosed);
    function vaultAddress(uint256 vaultId) external view returns (address);
    function track(uint256 trackId) external view returns (string memory name, Track memory limits);
    /// @return trackId of `name`, 0 if there is none
    function trackIdOf(string calldata name) external view returns (uint256);
    function agentCount() external view returns (uint256);
    function trackCount() external view returns (uint256);
    function vaultCount() external view returns (uint256);
}
