"""The checks of SPEC §2.4, in its order, as data: submit stops at the first failure, verify shows them
all, a quote shows those that need no signature. Each failure is the RelayerError the API answers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from relayer import eip712
from relayer.amounts import format_amount
from relayer.domain import exits as exit_math
from relayer.domain.calendar import ExchangeCalendar
from relayer.domain.ladder import MAX_RULES, LadderInvalid, exits_to_json, validate_ladder
from relayer.domain.limits import SECONDS_PER_DAY, AgentBook, LimitExceeded, check_buy, usage, utc_day
from relayer.domain.market import IntentKind, MarketClosed, MarketStatus, allows
from relayer.domain.track import Track
from relayer.errors import RelayerError, invalid_request
from relayer.intents.build import USDC_DECIMALS, Built
from relayer.state import ChainState

BPS = 10_000

# A transaction sent now is included at the earliest in the next block (`Context.now`); a deadline
# that leaves less than this margin after it may pass while the transaction travels, and the router
# would revert it with the gas spent (`DeadlineExpired`). Refused before anything is sent.
DEADLINE_MARGIN_S = 2
# A signed intent stays valid until its deadline: beyond this horizon it is refused (400), so a
# deadline of 2²⁵⁶−1 cannot make an intent valid for ever.
MAX_DEADLINE_HORIZON_S = 30 * 86_400
# What the hint in a `deadline_expired` answer leaves after the margin.
SUGGESTED_DEADLINE_S = 60


@dataclass(frozen=True)
class Check:
    name: str
    error: RelayerError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"check": self.name, "ok": self.ok}
        if self.error is not None:
            out.update(code=self.error.code, message=self.error.message)
            suggestion = self.error.details.get("suggestion")
            if suggestion is not None:
                out["suggestion"] = suggestion  # what would make the intent pass (SPEC §5.2)
        return out


@dataclass(frozen=True)
class Context:
    state: ChainState
    domain: eip712.Domain
    now: int  # the timestamp the transaction is expected to execute at (chain time)
    expected_nonce: int
    book: AgentBook  # rolled to `now`, with the agent's in-flight buys counted
    track: Track
    deadline_margin_s: int = DEADLINE_MARGIN_S
    max_deadline_horizon_s: int = MAX_DEADLINE_HORIZON_S
    calendar: ExchangeCalendar | None = None  # for nextOpen; None until loaded (or none configured)


def _signature(b: Built, ctx: Context) -> RelayerError | None:
    return signature_error(b, ctx.domain)


def signature_error(b: Built, domain: eip712.Domain) -> RelayerError | None:
    """None when the intent is signed by its agent's signer (what a submit must show before it may
    spend anything of the agent's, such as its rate limit)."""
    if b.signature is None:
        return None
    digest = b.digest(domain)
    try:
        recovered = eip712.recover_signer(digest, b.signature)
    except eip712.SignatureError as exc:
        return invalid_request(f"bad signature encoding: {exc.reason}", field="signature")
    if recovered.lower() != b.agent.signer.lower():
        return RelayerError(
            "invalid_signature",
            f"the signature recovers to {recovered}, not agent {b.agent.agent_id}'s signer",
            {"digest": "0x" + digest.hex(), "recovered": recovered, "expectedSigner": b.agent.signer},
        )
    return None


def _agent_active(b: Built, _ctx: Context) -> RelayerError | None:
    if not b.agent.active:
        return RelayerError("agent_inactive", f"agent {b.agent.agent_id} is deactivated")
    return None


def _not_paused(_b: Built, ctx: Context) -> RelayerError | None:
    return RelayerError("paused", "the TradeRouter is paused") if ctx.state.paused else None


def _nonce(b: Built, ctx: Context) -> RelayerError | None:
    got = b.intent.nonce
    if got != ctx.expected_nonce:
        return RelayerError(
            "nonce_mismatch",
            f"expected nonce {ctx.expected_nonce}, got {got}",
            {"expected": ctx.expected_nonce, "suggestion": {"nonce": ctx.expected_nonce}},
        )
    return None


def _deadline(b: Built, ctx: Context) -> RelayerError | None:
    """Judged against the time the transaction can be included (the next block, never before the
    latest one + 1) plus a margin, and refused beyond the horizon."""
    deadline = b.intent.deadline
    earliest = ctx.now + ctx.deadline_margin_s
    if deadline < earliest:
        return RelayerError(
            "deadline_expired",
            f"deadline {deadline} cannot be met: the transaction would be included at chain time "
            f"{ctx.now} at the earliest, and the relayer needs {ctx.deadline_margin_s} s of margin",
            {
                "deadline": deadline,
                "now": ctx.now,
                "marginS": ctx.deadline_margin_s,
                "suggestion": {"deadline": earliest + SUGGESTED_DEADLINE_S},
            },
        )
    if deadline > ctx.now + ctx.max_deadline_horizon_s:
        return invalid_request(
            f"deadline too far: at most {ctx.max_deadline_horizon_s} s after the chain time {ctx.now}",
            field="deadline",
            maxDeadline=ctx.now + ctx.max_deadline_horizon_s,
        )
    return None


def _token_allowed(b: Built, ctx: Context) -> RelayerError | None:
    if b.primary_type not in ("OpenPosition", "AddToPosition"):
        return None
    if (b.agent.vault_id, b.token.address) not in ctx.state.allowed:
        return RelayerError(
            "token_not_allowed",
            f"{b.token.symbol} is not enabled for vault {b.agent.vault_id}",
            {"symbol": b.token.symbol, "vaultId": b.agent.vault_id},
        )
    return None


def _position(b: Built, ctx: Context) -> RelayerError | None:
    if b.primary_type == "OpenPosition":
        existing = ctx.state.open_positions.get((b.agent.agent_id, b.token.address))
        if existing is not None:
            return RelayerError(
                "position_exists",
                f"agent {b.agent.agent_id} already holds position {existing} in {b.token.symbol}; "
                "use add or reduce",
                {"positionId": str(existing)},
            )
        return None
    assert b.position is not None
    current = ctx.state.positions.get(b.position.position_id, b.position)
    if not current.open:
        return RelayerError(
            "position_closed",
            f"position {current.position_id} is closed",
            {"positionId": str(current.position_id)},
        )
    return None


def _ladder(b: Built, ctx: Context) -> RelayerError | None:
    if b.exits is None:
        return None
    try:
        validate_ladder(b.exits, ctx.track)
    except LadderInvalid as exc:
        details: dict[str, object] = {"ruleIndex": exc.rule_index, "reason": exc.reason.name}
        fixed = suggest_ladder(b.exits, ctx.track)
        if fixed is not None:
            details["suggestion"] = {"exits": exits_to_json(fixed)}
        return RelayerError("exit_ladder_invalid", str(exc), details)
    return None


def _amounts(b: Built, _ctx: Context) -> RelayerError | None:
    intent = b.intent
    if isinstance(intent, eip712.UpdateExitLadder):
        return None
    reduce = isinstance(intent, eip712.ReducePosition)
    size = intent.token_amount if isinstance(intent, eip712.ReducePosition) else intent.usdc_amount
    if size == 0:
        field = "tokenAmount" if reduce else "usdcAmount"
        return invalid_request(f"{field} must be greater than zero", field=field)
    if intent.max_slippage_bps > BPS:
        return invalid_request("maxSlippageBps must be at most 10000", field="maxSlippageBps")
    return None


def _limits(b: Built, ctx: Context) -> RelayerError | None:
    if b.primary_type not in ("OpenPosition", "AddToPosition") or b.usdc_amount == 0:
        return None
    try:
        check_buy(ctx.book, ctx.track, b.usdc_amount)
    except LimitExceeded as exc:
        # The domain speaks base units (the revert's arguments); the API speaks USDC (SPEC §2.1).
        human: dict[str, object] = {k: format_amount(v, USDC_DECIMALS) for k, v in exc.details.items()}
        suggestion = suggest_buy(ctx.book, ctx.track, ctx.now, exc.code)
        if suggestion is not None:
            human["suggestion"] = suggestion
        return RelayerError(exc.code, exc.message, human)
    except ValueError as exc:
        return invalid_request(str(exc))
    return None


def market_closed(
    status: MarketStatus, track: Track, now: int, calendar: ExchangeCalendar | None
) -> MarketClosed:
    """The `MarketClosed` answer for an open or add refused in ``status``: ``nextOpen`` is the start of
    the next window of a session the track trades, per the calendar (null without one, or in a halt)."""
    next_open: int | None = None
    if calendar is not None and status is not MarketStatus.HALTED:
        opens = calendar.next_open(datetime.fromtimestamp(now, UTC), track.sessions)
        next_open = int(opens.timestamp()) if opens is not None else None
    return MarketClosed(status, next_open)


def market_error(closed: MarketClosed, symbol: str) -> RelayerError:
    """``422 market_closed`` with ``{marketStatus, nextOpen}`` (SPEC §4, §5.6), and, when the next
    open is known, ``suggestion.notBefore`` (SPEC §5.2): the same intent passes from then on."""
    details = closed.details()
    if closed.next_open is not None:
        details["suggestion"] = {"notBefore": closed.next_open}
    return RelayerError(closed.code, f"{symbol}: {closed.message}", details)


def _market(b: Built, ctx: Context) -> RelayerError | None:
    """Opens and adds in the track's sessions only, as `TradeRouter._openPrice` (SPEC §5.6): the status
    is the oracle's as indexed (Unknown, a feed without status, is not gated)."""
    if b.primary_type not in ("OpenPosition", "AddToPosition"):
        return None
    status = ctx.state.status_of(b.token.address)
    if isinstance(allows(IntentKind(b.primary_type), status, ctx.track.sessions), MarketClosed):
        return market_error(market_closed(status, ctx.track, ctx.now, ctx.calendar), b.token.symbol)
    return None


def _oracle(b: Built, ctx: Context) -> RelayerError | None:
    if b.primary_type == "UpdateExitLadder":
        return None
    price = ctx.state.prices.get(b.token.address)
    if price is None or ctx.now > price.updated_at + ctx.state.max_price_age_s:
        return RelayerError(
            "oracle_stale",
            f"the {b.token.symbol} price is older than {ctx.state.max_price_age_s} s",
            {
                "symbol": b.token.symbol,
                "updatedAt": price.updated_at if price else None,
                "suggestion": {"retryAfterS": RETRY_AFTER_S},
            },
        )
    return None


def _slippage(b: Built, ctx: Context) -> RelayerError | None:
    """The fill the venue will give at the current oracle price against the signed bounds."""
    intent = b.intent
    price = ctx.state.prices.get(b.token.address)
    if price is None or isinstance(intent, eip712.UpdateExitLadder) or intent.max_slippage_bps > BPS:
        return None
    dec, spread = b.token.decimals, ctx.state.spread_bps
    if isinstance(intent, eip712.ReducePosition):
        assert b.position is not None
        current = ctx.state.positions.get(b.position.position_id, b.position)
        tokens_in = min(intent.token_amount, current.size)
        out = exit_math.venue_sell_out(tokens_in, price.price, spread, dec)
        ok = out >= intent.min_usdc_out and exit_math.sell_within_slippage(
            tokens_in, out, price.price, intent.max_slippage_bps, dec
        )
        floor, out_decimals, unit = intent.min_usdc_out, USDC_DECIMALS, "USDC"
    else:
        out = exit_math.venue_buy_out(intent.usdc_amount, price.price, spread, dec)
        ok = out >= intent.min_token_out and exit_math.buy_within_slippage(
            intent.usdc_amount, out, price.price, intent.max_slippage_bps, dec
        )
        floor, out_decimals, unit = intent.min_token_out, dec, b.token.symbol
    if not ok:
        return RelayerError(
            "slippage_exceeded",
            f"the venue would fill {format_amount(out, out_decimals)} {unit}, outside the signed bounds",
            {
                "expectedOut": format_amount(out, out_decimals),
                "minOut": format_amount(floor, out_decimals),
                "maxSlippageBps": intent.max_slippage_bps,
            },
        )
    return None


# ---------------------------------------------------------------------- suggestions (SPEC §5.2)

# What a 503 suggests: the oracle is pushed every few seconds and a node restart takes as long.
RETRY_AFTER_S = 5


def largest_buy(book: AgentBook, track: Track) -> int:
    """The largest USDC amount (base units) a buy may have and pass every track limit that depends on
    the amount — trade size, headroom and today's turnover — computed from the same figures
    `check_buy` uses; 0 when none fits. Exact integers: `check_buy(book, track, largest_buy(...))`
    passes whenever the result is positive and the daily loss limit is not reached."""
    u = usage(book, track)
    return max(min(u.max_trade_size, u.headroom, u.max_daily_turnover - book.turnover_today), 0)


def suggest_buy(book: AgentBook, track: Track, now: int, code: str) -> dict[str, object] | None:
    """The fix for a buy a track limit refuses: a smaller `usdcAmount`, or for the daily loss limit the
    start of the next UTC day (`notBefore`), when buys resume."""
    if code == "daily_loss_limit_reached":
        return {"notBefore": (utc_day(now) + 1) * SECONDS_PER_DAY}
    largest = largest_buy(book, track)
    if largest <= 0:
        return None
    return {"usdcAmount": format_amount(largest, USDC_DECIMALS)}


def _default_stop(track: Track) -> int:
    return -min(1_000, track.max_stop_loss_bps)


def _default_take(track: Track) -> int:
    return min(max(2_000, track.min_take_profit_bps), track.max_take_profit_bps)


def suggest_ladder(
    rules: tuple[eip712.ExitRule, ...] | list[eip712.ExitRule], track: Track
) -> tuple[eip712.ExitRule, ...] | None:
    """The nearest ladder the track accepts: each trigger moved inside the track's bounds (a stop-loss
    that is not negative, or a take-profit not positive, gets the quote's default level), `exitBps`
    within 1..10000, a required stop-loss or take-profit added, rules the track cannot hold dropped, at
    most `MAX_RULES` rules, and the last rule exiting everything. None when the track accepts no
    ladder at all. The result is checked with `validate_ladder`, so a suggestion always validates."""
    stop, take = eip712.TriggerType.STOP_LOSS, eip712.TriggerType.TAKE_PROFIT
    possible = {
        stop: track.max_stop_loss_bps >= 1,
        take: max(track.min_take_profit_bps, 1) <= track.max_take_profit_bps,
    }
    required = {stop: track.require_stop_loss, take: track.require_take_profit}
    fixed: list[eip712.ExitRule] = []
    for rule in rules:
        kind, t = rule.trigger_type, rule.trigger_bps
        if kind not in possible or not possible[kind]:
            continue
        if kind == stop:
            t = _default_stop(track) if t >= 0 else max(t, -track.max_stop_loss_bps)
        else:
            t = (
                _default_take(track)
                if t <= 0
                else min(max(t, track.min_take_profit_bps), track.max_take_profit_bps)
            )
        fixed.append(eip712.ExitRule(kind, t, min(max(rule.exit_bps, 1), BPS)))
    if required[take] and not any(r.trigger_type == take for r in fixed):
        fixed.insert(0, eip712.ExitRule(take, _default_take(track), BPS // 2))
    if required[stop] and not any(r.trigger_type == stop for r in fixed):
        fixed.append(eip712.ExitRule(stop, _default_stop(track), BPS))
    if not fixed:
        kind = stop if possible[stop] else take
        fixed.append(
            eip712.ExitRule(kind, _default_stop(track) if kind == stop else _default_take(track), BPS)
        )
    while len(fixed) > MAX_RULES:
        # Drop from the end, never the last rule nor the only rule of a required kind.
        for i in range(len(fixed) - 2, -1, -1):
            kind = fixed[i].trigger_type
            if not required[kind] or sum(r.trigger_type == kind for r in fixed) > 1:
                del fixed[i]
                break
    last = fixed[-1]
    fixed[-1] = eip712.ExitRule(last.trigger_type, last.trigger_bps, BPS)
    try:
        validate_ladder(fixed, track)
    except LadderInvalid:
        return None
    return tuple(fixed)


SIGNED_CHECKS: tuple[tuple[str, Callable[[Built, Context], RelayerError | None]], ...] = (
    ("signature", _signature),
    ("agent_active", _agent_active),
    ("not_paused", _not_paused),
    ("nonce", _nonce),
    ("deadline", _deadline),
    ("token_allowed", _token_allowed),
    ("position", _position),
    ("exit_ladder", _ladder),
    ("amount", _amounts),
    ("limits", _limits),
    ("market_open", _market),
    ("oracle_fresh", _oracle),
    ("slippage", _slippage),
)

# Every check but the signature's, in the same order (for an intent whose signature was recovered).
UNSIGNED_CHECKS = tuple(c for c in SIGNED_CHECKS if c[0] != "signature")
# What a quote can say before anything is signed.
QUOTE_CHECKS = tuple(c for c in SIGNED_CHECKS if c[0] not in ("signature", "nonce", "deadline"))


def run(
    b: Built,
    ctx: Context,
    checks: tuple[tuple[str, Callable[[Built, Context], RelayerError | None]], ...] = SIGNED_CHECKS,
) -> list[Check]:
    return [Check(name, fn(b, ctx)) for name, fn in checks]


def first_failure(
    b: Built,
    ctx: Context,
    checks: tuple[tuple[str, Callable[[Built, Context], RelayerError | None]], ...] = SIGNED_CHECKS,
) -> RelayerError | None:
    for _name, fn in checks:
        error = fn(b, ctx)
        if error is not None:
            return error
    return None
