// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title IPriceOracle
/// @notice USD price per token with 8 decimals and the time it was set, in Chainlink's round shape;
///         per token also a market status and a share multiplier (tokenized equities, SPEC §5.6).
///
/// @dev    **Prices, shares and tokens.** The market quotes a price per *share*; one token stands for
///         `multiplier / 1e18` shares (ERC-8056 style: a split or a reinvested dividend changes the
///         multiplier, never the token balances). The price per *token*, which positions, triggers, the
///         router and the venue use, is `sharePrice * multiplier / 1e18`, rounded down, and is what
///         `latestPrice` and `latestRoundData` return (their shape and meaning are unchanged: with the
///         default multiplier 1e18 the two prices are equal).
///
///         **Multiplier schedule.** Per token the oracle keeps the latest scheduled change: epoch `e`
///         (the number of changes so far; epoch 0 is the initial 1e18), `oldMultiplier` (epoch e-1),
///         `newMultiplier` (epoch e) and `effectiveAt`. The multiplier *in force* (`multiplierOf`) is
///         `newMultiplier` from `effectiveAt` on, `oldMultiplier` before: it switches without a
///         transaction, as in ERC-8056. Scheduling the next change rolls the schedule (the epoch in
///         force becomes the old one) once the previous change is in force; a change still pending may
///         be replaced (a corrected date or ratio) until a price has been quoted under it.
///
///         **The split rule: every price round is tagged with the multiplier it was quoted under.**
///         A share price is pushed with the epoch of the multiplier its quote belongs to
///         (`setQuote`/`setQuotes`), and the round stores that multiplier; the round's per-token price
///         is its share price times *its own* multiplier, fixed when it is pushed. Either of the two
///         epochs of the schedule is accepted, before and after `effectiveAt`:
///         - a feed that publishes the post-split quote early (before `effectiveAt`) tags it with the
///           new epoch: `sharePrice/ratio * multiplier*ratio` = the same per-token price;
///         - a feed that still publishes the pre-split quote late (after `effectiveAt`) tags it with
///           the old epoch: the old quote at the old multiplier = the same per-token price;
///         - `effectiveAt` passing with no push changes nothing: the latest round keeps its multiplier.
///         So the per-token price only moves when the market moves, never by the split ratio on its
///         own, whichever of the share price and the multiplier changes first: a split cannot fire a
///         stop or a take-profit by itself. The per-token price stays within rounding (one base unit
///         per 1e18 of multiplier) of the economically equal price.
///         The legacy `setPrice`/`setPrices` tag the round with the multiplier in force at the block's
///         time: a feed that cannot say which multiplier it quotes under must not push around a split
///         with them.
///
///         **Market status** (`marketStatus`), in the manner of Chainlink's RWA streams, is set by the
///         operator (or the feed, with its price in one call: `setQuote`); the oracle only stores it.
///         What a status allows (opens, exits) is the router's business.
interface IPriceOracle {
    /// @notice 0 Unknown (never set), 1 PreMarket, 2 Regular, 3 PostMarket, 4 Overnight, 5 Closed, 6 Halted.
    enum MarketStatus {
        Unknown,
        PreMarket,
        Regular,
        PostMarket,
        Overnight,
        Closed,
        Halted
    }

    /// @notice One feed update: a share price quoted under multiplier `epoch`, and the market status.
    struct ShareQuote {
        address token;
        uint256 sharePrice;
        uint256 epoch;
        MarketStatus status;
    }

    /// @notice Everything about a token's latest round in one read.
    /// @param price the per-token price (= sharePrice * multiplier / 1e18, rounded down)
    /// @param multiplier the multiplier the round was quoted under (not necessarily the one in force)
    /// @param status the token's market status now
    /// @param quotedStatus the status when the round was pushed (with `setQuote`, the one it set):
    ///        whether the price itself was quoted in a session, e.g. for "fire at the first price in
    ///        a session the track trades"
    struct Quote {
        uint256 price;
        uint256 sharePrice;
        uint256 multiplier;
        uint256 epoch;
        uint256 updatedAt;
        uint256 roundId;
        MarketStatus status;
        MarketStatus quotedStatus;
    }

    error PriceUnavailable(address token);
    error InvalidPrice(uint256 price);
    error LengthMismatch();
    /// @notice `sharePrice * multiplier / 1e18` is 0 or does not fit 128 bits.
    error TokenPriceOutOfRange(uint256 sharePrice, uint256 multiplier);
    /// @notice A multiplier outside [MIN_MULTIPLIER, MAX_MULTIPLIER].
    error InvalidMultiplier(uint256 multiplier);
    /// @notice `effectiveAt` in the past, or beyond 2^40 - 1.
    error InvalidEffectiveAt(uint256 effectiveAt, uint256 timestamp);
    /// @notice A quote tagged with an epoch the schedule no longer (or not yet) knows.
    error UnknownMultiplierEpoch(address token, uint256 epoch, uint256 latestEpoch);
    /// @notice A pending change cannot be replaced once a price was quoted under it.
    error MultiplierAlreadyQuoted(address token, uint256 epoch);

    /// @notice `price` is the per-token price (what the router uses).
    event PriceUpdated(address indexed token, uint256 indexed roundId, uint256 price, uint256 updatedAt);
    /// @notice Emitted with every `PriceUpdated`: the share price, the multiplier (and its epoch) it was
    ///         quoted under, and the market status it was quoted in.
    event SharePriceUpdated(
        address indexed token,
        uint256 indexed roundId,
        uint256 sharePrice,
        uint256 multiplier,
        uint256 epoch,
        MarketStatus status
    );
    /// @notice Emitted when a token's stored status changes (setting the same status again emits nothing).
    event MarketStatusSet(address indexed token, MarketStatus status, uint256 updatedAt);
    /// @notice A change of multiplier scheduled (or a pending one replaced: same `epoch`).
    event MultiplierScheduled(
        address indexed token, uint256 indexed epoch, uint256 oldMultiplier, uint256 newMultiplier, uint256 effectiveAt
    );

    /// @notice A share price, tagged with the multiplier in force at this block (see the split rule).
    function setPrice(address token, uint256 price) external;
    function setPrices(address[] calldata tokens, uint256[] calldata prices) external;

    /// @notice The feed's call: the status, then a share price quoted under multiplier `epoch` in it, at once.
    function setQuote(address token, uint256 sharePrice, uint256 epoch, MarketStatus status) external;
    function setQuotes(ShareQuote[] calldata quotes) external;
    /// @notice The status alone: no new price round (a closed market's last price keeps its age).
    function setMarketStatus(address token, MarketStatus status) external;
    function setMarketStatuses(address[] calldata tokens, MarketStatus[] calldata statuses) external;
    /// @notice From `effectiveAt` (≥ now) one token stands for `newMultiplier / 1e18` shares.
    ///         A 2:1 split doubles the multiplier, a 1:10 reverse split divides it by ten.
    function scheduleMultiplier(address token, uint256 newMultiplier, uint256 effectiveAt) external;

    /// @notice Reverts with `PriceUnavailable` for a token that never had a price. Per-token price.
    function latestPrice(address token) external view returns (uint256 price, uint256 updatedAt, uint256 roundId);
    /// @notice `AggregatorV3Interface.latestRoundData`, per token (per-token price).
    function latestRoundData(address token)
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
    /// @notice The same round, answered per share (the price as the market quoted it).
    function latestShareRoundData(address token)
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
    /// @notice `latestPrice` with the status now and the status the round was quoted in, from the same
    ///         slot (what the router's session rules read). Reverts with `PriceUnavailable` as `latestPrice`.
    function latestPriceStatus(address token)
        external
        view
        returns (uint256 price, uint256 updatedAt, uint256 roundId, MarketStatus status, MarketStatus quotedStatus);
    /// @notice Reverts with `PriceUnavailable` for a token that never had a price.
    function latestQuote(address token) external view returns (Quote memory);
    function decimals() external pure returns (uint8);

    /// @notice Unknown until set; readable without a price.
    function marketStatus(address token) external view returns (MarketStatus);
    /// @notice ERC-8056 style: the multiplier in force now, the latest scheduled one and when it
    ///         takes (took) effect. Never scheduled: (1e18, 1e18, 0).
    function multiplierOf(address token) external view returns (uint256 current, uint256 next, uint256 effectiveAt);
    /// @notice The raw schedule: `epoch` is `newMultiplier`'s, `oldMultiplier` is epoch - 1's; a quote may be
    ///         tagged with either. Never scheduled: (0, 1e18, 1e18, 0).
    function multiplierSchedule(address token)
        external
        view
        returns (uint256 epoch, uint256 oldMultiplier, uint256 newMultiplier, uint256 effectiveAt);
    /// @notice The epoch of the multiplier in force now (what `setPrice` tags a round with).
    function multiplierEpochOf(address token) external view returns (uint256);
}
