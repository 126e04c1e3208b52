// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

import {IPriceOracle} from "./interfaces/IPriceOracle.sol";

/// @title PriceOracle
/// @notice Operator-pushed USD prices (8 decimals) per share, with a market status and a share
///         multiplier per token; read per token, one Chainlink-style round per update. On a local chain
///         the operator is the price feed; elsewhere a keeper mirrors a real feed.
/// @dev    The split rule and the schedule are documented in `IPriceOracle`. What it does not do: it
///         does not check that a status follows a calendar, nor that prices are plausible; it trusts
///         its operators. The per-token price of a round is computed when it is pushed, so the
///         router's `latestPrice` still reads one slot.
contract PriceOracle is IPriceOracle, AccessControl {
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
    uint256 public constant ONE = 1e18;
    /// @notice 1e-9 .. 1e9 shares per token: room for a lifetime of splits and reverse splits.
    uint256 public constant MIN_MULTIPLIER = 1e9;
    uint256 public constant MAX_MULTIPLIER = 1e27;

    /// @dev One slot per token: what `latestPrice` and `latestPriceStatus` read. `price` is per token;
    ///      `status` mirrors `Market.status` (written with it), `quotedStatus` the status at the push.
    struct Feed {
        uint128 price;
        uint64 updatedAt;
        uint48 roundId; // 2^48 rounds: beyond any feed's lifetime
        MarketStatus status;
        MarketStatus quotedStatus;
    }

    /// @dev The latest round as quoted: share price and the multiplier (and its epoch) it was quoted under.
    struct ShareRound {
        uint128 sharePrice;
        uint96 multiplier;
        uint16 epoch;
        MarketStatus status;
    }

    /// @dev The latest multiplier change and the market status. Unset multipliers (0) mean 1e18.
    struct Market {
        uint96 oldMultiplier;
        uint96 newMultiplier;
        uint40 effectiveAt;
        uint16 epoch;
        MarketStatus status;
    }

    mapping(address token => Feed) private _feeds;
    mapping(address token => ShareRound) private _shareRounds;
    mapping(address token => Market) private _markets;

    constructor(address admin) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(OPERATOR_ROLE, admin);
    }

    // ------------------------------------------------------------------ setters

    /// @inheritdoc IPriceOracle
    function setPrice(address token, uint256 price) external onlyRole(OPERATOR_ROLE) {
        _setPrice(token, price);
    }

    /// @inheritdoc IPriceOracle
    function setPrices(address[] calldata tokens, uint256[] calldata prices) external onlyRole(OPERATOR_ROLE) {
        if (tokens.length != prices.length) revert LengthMismatch();
        for (uint256 i; i < tokens.length; ++i) {
            _setPrice(tokens[i], prices[i]);
        }
    }

    /// @inheritdoc IPriceOracle
    function setQuote(address token, uint256 sharePrice, uint256 epoch, MarketStatus status)
        external
        onlyRole(OPERATOR_ROLE)
    {
        _setStatus(token, status);
        _setQuote(token, sharePrice, epoch);
    }

    /// @inheritdoc IPriceOracle
    function setQuotes(ShareQuote[] calldata quotes) external onlyRole(OPERATOR_ROLE) {
        for (uint256 i; i < quotes.length; ++i) {
            ShareQuote calldata q = quotes[i];
            _setStatus(q.token, q.status);
            _setQuote(q.token, q.sharePrice, q.epoch);
        }
    }

    /// @inheritdoc IPriceOracle
    function setMarketStatus(address token, MarketStatus status) external onlyRole(OPERATOR_ROLE) {
        _setStatus(token, status);
    }

    /// @inheritdoc IPriceOracle
    function setMarketStatuses(address[] calldata tokens, MarketStatus[] calldata statuses)
        external
        onlyRole(OPERATOR_ROLE)
    {
        if (tokens.length != statuses.length) revert LengthMismatch();
        for (uint256 i; i < tokens.length; ++i) {
            _setStatus(tokens[i], statuses[i]);
        }
    }

    /// @inheritdoc IPriceOracle
    function scheduleMultiplier(address token, uint256 newMultiplier, uint256 effectiveAt)
        external
        onlyRole(OPERATOR_ROLE)
    {
        if (newMultiplier < MIN_MULTIPLIER || newMultiplier > MAX_MULTIPLIER) revert InvalidMultiplier(newMultiplier);
        if (effectiveAt < block.timestamp || effectiveAt > type(uint40).max) {
            revert InvalidEffectiveAt(effectiveAt, block.timestamp);
        }
        Market memory m = _markets[token];
        if (m.epoch != 0 && block.timestamp < m.effectiveAt) {
            // Pending: replaced in place, unless the feed already quotes under it.
            if (_feeds[token].roundId != 0 && _shareRounds[token].epoch == m.epoch) {
                revert MultiplierAlreadyQuoted(token, m.epoch);
            }
        } else {
            // Nothing pending: the multiplier in force becomes the old one, the epoch moves on.
            m.oldMultiplier = uint96(_orOne(m.newMultiplier));
            m.epoch += 1;
        }
        m.newMultiplier = uint96(newMultiplier);
        m.effectiveAt = uint40(effectiveAt);
        _markets[token] = m;
        emit MultiplierScheduled(token, m.epoch, m.oldMultiplier, newMultiplier, effectiveAt);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IPriceOracle
    function latestPrice(address token) external view returns (uint256 price, uint256 updatedAt, uint256 roundId) {
        (price, updatedAt, roundId,,) = _latest(token);
    }

    /// @inheritdoc IPriceOracle
    function latestPriceStatus(address token)
        external
        view
        returns (uint256 price, uint256 updatedAt, uint256 roundId, MarketStatus status, MarketStatus quotedStatus)
    {
        return _latest(token);
    }

    /// @inheritdoc IPriceOracle
    function latestRoundData(address token)
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        Feed memory f = _feeds[token];
        if (f.roundId == 0) revert PriceUnavailable(token);
        return (f.roundId, int256(uint256(f.price)), f.updatedAt, f.updatedAt, f.roundId);
    }

    /// @inheritdoc IPriceOracle
    function latestShareRoundData(address token)
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        Feed memory f = _feeds[token];
        if (f.roundId == 0) revert PriceUnavailable(token);
        uint256 share = _shareRounds[token].sharePrice;
        return (f.roundId, int256(share), f.updatedAt, f.updatedAt, f.roundId);
    }

    /// @inheritdoc IPriceOracle
    function latestQuote(address token) external view returns (Quote memory q) {
        Feed memory f = _feeds[token];
        if (f.roundId == 0) revert PriceUnavailable(token);
        ShareRound memory s = _shareRounds[token];
        q = Quote({
            price: f.price,
            sharePrice: s.sharePrice,
            multiplier: s.multiplier,
            epoch: s.epoch,
            updatedAt: f.updatedAt,
            roundId: f.roundId,
            status: _markets[token].status,
            quotedStatus: s.status
        });
    }

    /// @inheritdoc IPriceOracle
    function decimals() external pure returns (uint8) {
        return 8;
    }

    /// @inheritdoc IPriceOracle
    function marketStatus(address token) external view returns (MarketStatus) {
        return _markets[token].status;
    }

    /// @inheritdoc IPriceOracle
    function multiplierOf(address token) external view returns (uint256 current, uint256 next, uint256 effectiveAt) {
        Market memory m = _markets[token];
        (, current) = _inForce(m);
        return (current, _orOne(m.newMultiplier), m.effectiveAt);
    }

    /// @inheritdoc IPriceOracle
    function multiplierSchedule(address token)
        external
        view
        returns (uint256 epoch, uint256 oldMultiplier, uint256 newMultiplier, uint256 effectiveAt)
    {
        Market memory m = _markets[token];
        return (m.epoch, _orOne(m.oldMultiplier), _orOne(m.newMultiplier), m.effectiveAt);
    }

    /// @inheritdoc IPriceOracle
    function multiplierEpochOf(address token) external view returns (uint256 epoch) {
        (epoch,) = _inForce(_markets[token]);
    }

    // ------------------------------------------------------------------ internals

    /// @dev The feed's slot, read once and unpacked by hand (the router and the venue read it on every
    ///      trade; a storage struct copied to memory costs a read per field). `Feed`'s layout, low bits first.
    function _latest(address token)
        private
        view
        returns (uint256 price, uint256 updatedAt, uint256 roundId, MarketStatus status, MarketStatus quotedStatus)
    {
        Feed storage f = _feeds[token];
        uint256 w;
        assembly ("memory-safe") {
            w := sload(f.slot)
        }
        roundId = uint48(w >> 192);
        if (roundId == 0) revert PriceUnavailable(token);
        price = uint128(w);
        updatedAt = uint64(w >> 128);
        // Written only from the enum, so always in range.
        assembly ("memory-safe") {
            status := and(shr(240, w), 0xff)
            quotedStatus := shr(248, w)
        }
    }

    function _orOne(uint256 multiplier) private pure returns (uint256) {
        return multiplier == 0 ? ONE : multiplier;
    }

    /// @dev The epoch and multiplier in force at this block: the new one from `effectiveAt` on.
    function _inForce(Market memory m) private view returns (uint256 epoch, uint256 multiplier) {
        if (m.epoch == 0) return (0, ONE);
        if (block.timestamp >= m.effectiveAt) return (m.epoch, m.newMultiplier);
        return (m.epoch - 1, m.oldMultiplier);
    }

    /// @dev The multiplier of `epoch`, which must be one of the schedule's two.
    function _multiplierOfEpoch(address token, Market memory m, uint256 epoch) private pure returns (uint256) {
        if (epoch == m.epoch) return _orOne(m.newMultiplier);
        if (m.epoch != 0 && epoch == m.epoch - 1) return m.oldMultiplier;
        revert UnknownMultiplierEpoch(token, epoch, m.epoch);
    }

    function _setPrice(address token, uint256 sharePrice) private {
        (uint256 epoch, uint256 multiplier) = _inForce(_markets[token]);
        _push(token, sharePrice, epoch, multiplier);
    }

    function _setQuote(address token, uint256 sharePrice, uint256 epoch) private {
        _push(token, sharePrice, epoch, _multiplierOfEpoch(token, _markets[token], epoch));
    }

    function _push(address token, uint256 sharePrice, uint256 epoch, uint256 multiplier) private {
        if (sharePrice == 0 || sharePrice > type(uint128).max) revert InvalidPrice(sharePrice);
        // Rounds down: the per-token price never exceeds what the share price says.
        uint256 price = sharePrice * multiplier / ONE;
        if (price == 0 || price > type(uint128).max) revert TokenPriceOutOfRange(sharePrice, multiplier);
        uint48 roundId = _feeds[token].roundId + 1;
        MarketStatus status = _markets[token].status;
        _feeds[token] = Feed({
            price: uint128(price), updatedAt: uint64(block.timestamp), roundId: roundId, status: status, quotedStatus: status
        });
        _shareRounds[token] = ShareRound({
            sharePrice: uint128(sharePrice), multiplier: uint96(multiplier), epoch: uint16(epoch), status: status
        });
        emit PriceUpdated(token, roundId, price, block.timestamp);
        emit SharePriceUpdated(token, roundId, sharePrice, multiplier, epoch, status);
    }

    function _setStatus(address token, MarketStatus status) private {
        if (_markets[token].status == status) return;
        _markets[token].status = status;
        _feeds[token].status = status;
        emit MarketStatusSet(token, status, block.timestamp);
    }
}
