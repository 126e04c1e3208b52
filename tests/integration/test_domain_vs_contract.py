"""Differential: relayer/domain's verdicts against the deployed contracts on a real Anvil.

For seeded random cases — tracks, ladders, spreads, amounts and prices chosen around the exact
boundaries — the pure functions must predict what the contracts do: the same `ExitLadderInvalid`
index and reason, the same first failing track limit, the venue's fill and the slippage verdict,
and `executeExit`'s fills rule by rule, with `ExitNotTriggered` exactly when `decide_exits` holds.
Each case runs in its own EVM snapshot; the seeds are fixed so a failure replays.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from eth_abi.abi import decode, encode
from eth_account import Account
from eth_utils.crypto import keccak
from web3 import Web3
from web3.exceptions import ContractLogicError
from web3.types import RPCEndpoint, TxReceipt

from relayer import eip712
from relayer.chain import calls
from relayer.chain.admin import Admin, revert_decoder
from relayer.chain.reverts import DecodedRevert
from relayer.devkeys import OPERATOR_KEY, RELAYER_KEYS
from relayer.domain.exits import (
    MAX_PRICE,
    MIN_PRICE,
    Fire,
    PositionState,
    buy_within_slippage,
    decide_exits,
    trigger_threshold,
    venue_buy_out,
)
from relayer.domain.ladder import LadderError, LadderInvalid, LadderRule, validate_ladder
from relayer.domain.limits import AgentBook, LimitExceeded, check_buy, usage
from relayer.domain.track import Track
from relayer.eip712 import EXIT_RULE_TYPEHASH, ExitRule, TriggerType

from .conftest import Stack, core_of

USDC = 10**6
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
DECODER = revert_decoder()
RELAYER = Account.from_key(RELAYER_KEYS[0])
OPEN_TUPLE = "(uint256,address,address,uint256,uint256,uint16,bytes32,uint256,uint256)"
RULES_ARRAY = "(uint8,int32,uint16)[]"
FILL_TUPLE = "(uint256,uint256,uint256,uint256,uint256,int256,uint256,uint256)"
EXIT_EXECUTED = keccak(text=f"ExitExecuted(uint256,uint256,{FILL_TUPLE})")
POSITION_OPENED = keccak(text="PositionOpened(uint256,uint256,address,uint256,uint256,uint256)")
LIMIT_ERRORS = {
    "daily_loss_limit_reached": "DailyLossLimitReached",
    "trade_size_exceeded": "TradeSizeExceeded",
    "headroom_exceeded": "HeadroomExceeded",
    "daily_turnover_exceeded": "DailyTurnoverExceeded",
}


@dataclass(frozen=True)
class RawRule:
    """Raw ABI values: the contract takes any uint8 trigger type, which ExitRule cannot hold."""

    trigger_type: int
    trigger_bps: int
    exit_bps: int


def raw_exits_hash(rules: Sequence[LadderRule]) -> bytes:
    types = ["bytes32", "uint8", "int32", "uint16"]
    return keccak(
        b"".join(
            keccak(encode(types, [EXIT_RULE_TYPEHASH, int(r.trigger_type), r.trigger_bps, r.exit_bps]))
            for r in rules
        )
    )


def raw_open_calldata(intent: eip712.OpenPosition, rules: Sequence[LadderRule], signature: bytes) -> bytes:
    """`calls.open_position` for rules ExitRule cannot represent (checked equal where it can)."""
    values = tuple(getattr(intent, m.attr) for m in intent.MEMBERS)
    raw = [(int(r.trigger_type), r.trigger_bps, r.exit_bps) for r in rules]
    return keccak(text=calls.OPEN_SIGNATURE)[:4] + encode(
        [OPEN_TUPLE, RULES_ARRAY, "bytes"], [values, raw, signature]
    )


class Harness:
    """The first demo agent trading through the real router, with eth_calls and mined transactions."""

    def __init__(self, stack: Stack) -> None:
        m = stack.manifest
        assert m.demo is not None
        agent = m.demo.agents[0]
        # Its own connection that remembers the chain id: web3 asks for it on every call and
        # transaction otherwise, which is most of this file's round trips.
        provider = Web3.HTTPProvider(
            stack.anvil.url,
            request_kwargs={"timeout": 30},
            cache_allowed_requests=True,
            cacheable_requests={RPCEndpoint("eth_chainId")},
        )
        self.w3 = Web3(provider)
        self.admin = Admin(self.w3, OPERATOR_KEY, core_of(m))
        self.agent_id = agent.agent_id
        self.key = agent.signer_key
        self.router_address = Web3.to_checksum_address(m.contracts.trade_router)
        self.router = self.admin.router
        self.vault = Web3.to_checksum_address(m.vaults[0].address)
        self.tokens = [Web3.to_checksum_address(a) for _, a in sorted(m.tokens.items())]
        self.decimals = {
            t: int(self.admin.contract("EquityToken", t).functions.decimals().call()) for t in self.tokens
        }
        self.domain = eip712.Domain(m.chain_id, self.router_address)
        assert f"openPosition({OPEN_TUPLE},{RULES_ARRAY},bytes)" == calls.OPEN_SIGNATURE

    # ---------------------------------------------------------------- plumbing

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        snap = self.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
        try:
            yield
        finally:
            self.w3.provider.make_request("evm_revert", [snap])  # type: ignore[arg-type]
            self.admin.resync_nonce()

    def call(self, data: bytes) -> DecodedRevert | None:
        """eth_call: the decoded revert, or None when the call would succeed."""
        try:
            self.w3.eth.call({"from": RELAYER.address, "to": self.router_address, "data": data})
        except ContractLogicError as exc:
            raw = exc.data if isinstance(exc.data, str) else None
            assert raw is not None and raw.startswith("0x"), f"revert without data: {exc!r}"
            return DECODER.decode(bytes.fromhex(raw[2:]))
        return None

    def send(self, data: bytes) -> TxReceipt:
        tx: dict[str, Any] = {
            "to": self.router_address,
            "data": data,
            "from": RELAYER.address,
            "nonce": self.w3.eth.get_transaction_count(RELAYER.address, "pending"),
            "chainId": self.admin.chain_id,
            "gas": 3_000_000,
            "maxFeePerGas": 10**11,
            "maxPriorityFeePerGas": 10**9,
        }
        tx_hash = self.w3.eth.send_raw_transaction(RELAYER.sign_transaction(tx).raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, poll_latency=0.01)
        assert receipt["status"] == 1, self.call(data)
        return receipt

    # ---------------------------------------------------------------- agent, track, prices

    def use_track(self, track: Track) -> None:
        self.admin.set_track("differential", track)
        self.admin.set_agent_track(self.agent_id, "differential")

    def book(self) -> AgentBook:
        allocation = int(self.admin.agents.functions.agentConfig(self.agent_id).call()[4])
        _, deployed, day, turnover, realized = self.router.functions.agentState(self.agent_id).call()
        now = int(self.w3.eth.get_block("latest")["timestamp"])
        return AgentBook(allocation, deployed, turnover, realized).roll_day(day, now)

    def price(self, token: str) -> int:
        return int(self.admin.oracle.functions.latestPrice(token).call()[0])

    def set_price(self, token: str, price: int) -> None:
        self.admin.set_prices([token], [price])

    def spread(self) -> int:
        return int(self.admin.venue.functions.spreadBps().call())

    def set_spread(self, spread_bps: int) -> None:
        self.admin.send(self.admin.venue.functions.setSpread(spread_bps), "setting the spread")

    # ---------------------------------------------------------------- intents

    def open_calldata(
        self, token: str, usdc: int, rules: Sequence[LadderRule], max_slippage_bps: int = 10_000
    ) -> bytes:
        intent = eip712.OpenPosition(
            agent_id=self.agent_id,
            vault=self.vault,
            token=Web3.to_checksum_address(token),
            usdc_amount=usdc,
            min_token_out=0,
            max_slippage_bps=max_slippage_bps,
            exits_hash=raw_exits_hash(rules),
            deadline=int(time.time()) + 3600,
            nonce=int(self.router.functions.nextNonce(self.agent_id).call()),
        )
        signature = bytes(Account.unsafe_sign_hash(eip712.digest(self.domain, intent), self.key).signature)
        data = raw_open_calldata(intent, rules, signature)
        if all(isinstance(r, ExitRule) for r in rules):
            exit_rules = [r for r in rules if isinstance(r, ExitRule)]
            assert intent.exits_hash == eip712.exits_hash(exit_rules)
            assert data == calls.open_position(intent, exit_rules, signature)
        return data

    def open(
        self, token: str, usdc: int, rules: Sequence[ExitRule], max_slippage_bps: int
    ) -> tuple[int, int]:
        """Opens a position; returns (position id, tokens received)."""
        receipt = self.send(self.open_calldata(token, usdc, rules, max_slippage_bps))
        (log,) = [lg for lg in receipt["logs"] if lg["topics"][0] == POSITION_OPENED]
        _, tokens_out, _ = decode(["uint256", "uint256", "uint256"], log["data"])
        return int.from_bytes(log["topics"][1], "big"), int(tokens_out)

    def position(self, position_id: int) -> tuple[bool, PositionState, str]:
        view = self.router.functions.position(position_id).call()
        _, _, token, is_open, size, cost, _, _, mask = view
        return is_open, PositionState(size, cost, mask, self.decimals[token]), token


def fills(receipt: TxReceipt) -> list[tuple[Fire, int]]:
    """ExitExecuted events in log order, as (Fire, oracle price)."""
    out = []
    for log in receipt["logs"]:
        if log["topics"][0] != EXIT_EXECUTED:
            continue
        ((rule, tokens_in, usdc_out, price, _round, pnl, size, cost),) = decode([FILL_TUPLE], log["data"])
        out.append((Fire(rule, tokens_in, usdc_out, pnl, size, cost), price))
    return out


# --- random inputs, biased to the boundaries -------------------------------------------------------


def random_track(rng: random.Random) -> Track:
    """Limits AgentRegistry._validateTrack accepts."""
    min_tp = rng.choice([1, 100, rng.randint(1, 5_000)])
    return Track(
        max_trade_size_bps=rng.choice([1, 10_000, rng.randint(1, 10_000)]),
        max_daily_turnover_bps=rng.choice([1, rng.randint(1, 100_000)]),
        max_daily_loss_bps=rng.choice([1, 10_000, rng.randint(1, 10_000)]),
        max_stop_loss_bps=rng.choice([1, 10_000, rng.randint(1, 10_000)]),
        min_take_profit_bps=min_tp,
        max_take_profit_bps=rng.choice([min_tp, INT32_MAX, rng.randint(min_tp, 100_000)]),
        require_stop_loss=rng.random() < 0.5,
        require_take_profit=rng.random() < 0.5,
    )


def _int32(x: int) -> int:
    return max(INT32_MIN, min(INT32_MAX, x))


def random_rule(rng: random.Random, track: Track, *, last: bool, sloppy: bool) -> RawRule:
    """In bounds unless `sloppy`; sloppy rules hit each bound, its neighbour and the type's extremes."""
    kind = rng.choices([0, 1, 2], weights=[45, 45, 10 if sloppy else 0])[0]
    trigger_type = rng.randint(2, 255) if kind == 2 else kind
    sl_max, tp_min, tp_max = track.max_stop_loss_bps, track.min_take_profit_bps, track.max_take_profit_bps
    if kind == 0 or (kind == 2 and rng.random() < 0.5):
        inside = [-sl_max, -1, rng.randint(-sl_max, -1)]
        edges = [-sl_max - 1, 0, 1, INT32_MIN, rng.randint(-20_000, 20_000)]
    else:
        inside = [tp_min, tp_max, rng.randint(tp_min, tp_max)]
        edges = [tp_min - 1, tp_max + 1, 0, -1, INT32_MAX, rng.randint(-20_000, 20_000)]
    trigger_bps = _int32(rng.choice(inside + edges if sloppy else inside))
    if last and (not sloppy or rng.random() < 0.7):
        exit_bps = 10_000
    elif sloppy:
        exit_bps = rng.choice([0, 1, 3_333, 9_999, 10_000, 10_001, 65_535, rng.randint(1, 10_000)])
    else:
        exit_bps = rng.choice([1, 3_333, 5_000, 10_000, rng.randint(1, 10_000)])
    return RawRule(trigger_type, trigger_bps, exit_bps)


def random_ladder(rng: random.Random, track: Track, *, sloppy: bool) -> list[RawRule]:
    n = rng.choices(range(11), weights=[1, 8, 8, 6, 4, 3, 2, 2, 3, 2, 1])[0] if sloppy else rng.randint(1, 8)
    return [random_rule(rng, track, last=i == n - 1, sloppy=sloppy) for i in range(n)]


def as_exit_rules(rules: Sequence[RawRule]) -> list[ExitRule]:
    return [ExitRule(TriggerType(r.trigger_type), r.trigger_bps, r.exit_bps) for r in rules]


def log_uniform(rng: random.Random, low: int, high: int) -> int:
    return max(low, min(high, int(math.exp(rng.uniform(math.log(low), math.log(high))))))


# --- the differential tests ------------------------------------------------------------------------


def test_validate_ladder_agrees_with_the_contract(chain: Stack) -> None:
    h = Harness(chain)
    rng = random.Random(0x1ADDE5)
    token = h.tokens[0]
    invalid_seen: set[str] = set()
    valid_seen = 0
    for _ in range(6):
        track = random_track(rng)
        h.use_track(track)
        usdc = 1 * USDC
        check_buy(h.book(), track, usdc)  # limits never get in the way of the ladder verdict here
        for _ in range(25):
            rules = random_ladder(rng, track, sloppy=rng.random() < 0.6)
            revert = h.call(h.open_calldata(token, usdc, rules))
            try:
                validate_ladder(rules, track)
            except LadderInvalid as exc:
                assert revert is not None and revert.name == "ExitLadderInvalid", (rules, track, revert)
                assert (revert.args["ruleIndex"], revert.args["reason"]) == (exc.rule_index, exc.reason), (
                    rules,
                    track,
                )
                invalid_seen.add(exc.reason.name)
            else:
                assert revert is None, (rules, track, revert)
                valid_seen += 1
    # the generator reaches every reason, and plenty of valid ladders
    assert valid_seen >= 20 and invalid_seen == {e.name for e in LadderError}, (valid_seen, invalid_seen)


EXIT_TRACK = Track(
    max_trade_size_bps=10_000,
    max_daily_turnover_bps=1_000_000,
    max_daily_loss_bps=10_000,
    max_stop_loss_bps=10_000,
    min_take_profit_bps=1,
    # Prices stay within a few times the entry, so the venue's USDC always covers a sale.
    max_take_profit_bps=20_000,
    require_stop_loss=False,
    require_take_profit=False,
)


def next_price(rng: random.Random, rules: Sequence[ExitRule], state: PositionState, entry: int) -> int:
    """Exactly at, or one unit beside, an armed rule's threshold; or a random move."""
    armed = [r for i, r in enumerate(rules) if not state.fired_mask & 1 << i]
    if armed and rng.random() < 0.75:
        t = trigger_threshold(rng.choice(armed), state.size, state.cost_basis, state.token_decimals)
        if t is not None:
            return max(MIN_PRICE, min(MAX_PRICE, t + rng.choice([-1, 0, 0, 1])))
    return max(MIN_PRICE, int(entry * rng.uniform(0.05, 3.2)))


def test_decide_exits_agrees_with_execute_exit(chain: Stack) -> None:
    h = Harness(chain)
    rng = random.Random(0xE817)
    h.use_track(EXIT_TRACK)
    fired_total = holds = slippage_rejections = 0
    for _ in range(24):
        with h.snapshot():
            spread = rng.choice([0, 1, 10, 37, 999, 1_000])
            h.set_spread(spread)
            token = rng.choice(h.tokens)
            decimals = h.decimals[token]
            if rng.random() < 0.5:
                h.set_price(token, log_uniform(rng, 10**6, 10**12))
            entry_price = h.price(token)
            usdc = log_uniform(rng, 1, 100_000 * USDC)
            rules = as_exit_rules(random_ladder(rng, EXIT_TRACK, sloppy=False))
            validate_ladder(rules, EXIT_TRACK)

            # the venue's fill and the router's slippage verdict
            tokens_expected = venue_buy_out(usdc, entry_price, spread, decimals)
            max_slippage = rng.randint(0, 2 * spread + 2)
            within = buy_within_slippage(usdc, tokens_expected, entry_price, max_slippage, decimals)
            revert = h.call(h.open_calldata(token, usdc, rules, max_slippage))
            if within:
                assert revert is None, revert
            else:
                assert revert is not None and revert.name == "SlippageExceeded", revert
                slippage_rejections += 1
            position_id, tokens_out = h.open(token, usdc, rules, max_slippage if within else 10_000)
            assert tokens_out == tokens_expected

            for _ in range(3):
                is_open, state, _ = h.position(position_id)
                if not is_open:
                    break
                price = next_price(rng, rules, state, entry_price)
                h.set_price(token, price)
                decision = decide_exits(state, rules, price, spread)
                data = calls.execute_exit(position_id, rules)
                revert = h.call(data)
                if not decision:
                    assert revert is not None and revert.name == "ExitNotTriggered", (
                        state,
                        rules,
                        price,
                        revert,
                    )
                    holds += 1
                    continue
                assert revert is None, (state, rules, price, revert)
                got = fills(h.send(data))
                assert [f for f, _ in got] == decision, (state, rules, price, spread)
                assert {p for _, p in got} == {price}
                fired_total += len(got)
                is_open, after, _ = h.position(position_id)
                last = decision[-1]
                assert is_open == (last.size_after > 0)
                if is_open:
                    mask = state.fired_mask | sum(1 << f.rule_index for f in decision)
                    assert (after.size, after.cost_basis, after.fired_mask) == (
                        last.size_after,
                        last.cost_basis_after,
                        mask,
                    )
    assert fired_total >= 15 and holds >= 5 and slippage_rejections >= 1, (
        fired_total,
        holds,
        slippage_rejections,
    )


def limits_track(rng: random.Random, kind: str) -> Track:
    """A random track, or one where a loss or the headroom is the limit that binds first."""
    track = random_track(rng)
    if kind == "loss":
        return replace(
            track,
            max_daily_loss_bps=rng.randint(1, 50),
            max_trade_size_bps=10_000,
            max_daily_turnover_bps=100_000,
            max_stop_loss_bps=max(track.max_stop_loss_bps, 3_000),
        )
    if kind == "headroom":
        return replace(track, max_trade_size_bps=10_000, max_daily_turnover_bps=100_000)
    return track


def test_check_buy_agrees_with_the_contract(chain: Stack) -> None:
    h = Harness(chain)
    rng = random.Random(0x11A175)
    seen: set[str] = set()
    for kind in ["loss", "headroom", "random", "random"] * 2:
        with h.snapshot():
            track = limits_track(rng, kind)
            stop_bps = rng.randint(1_000, 3_000) if kind == "loss" else rng.randint(1, 3_000)
            # a ladder the track accepts: a take-profit at its minimum, a stop within its bound
            rules = [
                ExitRule(TriggerType.TAKE_PROFIT, track.min_take_profit_bps, 5_000),
                ExitRule(TriggerType.STOP_LOSS, -min(track.max_stop_loss_bps, stop_bps), 10_000),
            ]
            h.use_track(track)
            first, second = rng.sample(h.tokens, 2)
            u = usage(h.book(), track)
            budget = min(u.max_trade_size, u.headroom, u.max_daily_turnover)
            if budget > 0:
                # A position, so the book is not fresh: kept open (deployed capital, less headroom),
                # or closed at a loss through its stop-loss (realized PnL).
                usdc = rng.randint(max(1, budget // 2), budget)
                position_id, _ = h.open(first, usdc, rules, 10_000)
                if kind != "headroom" and rng.random() < 0.8:
                    _, state, _ = h.position(position_id)
                    stop = trigger_threshold(rules[1], state.size, state.cost_basis, state.token_decimals)
                    assert stop is not None
                    h.set_price(first, max(MIN_PRICE, stop - rng.randint(0, stop // 4)))
                    h.send(calls.execute_exit(position_id, rules))
            book = h.book()
            u = usage(book, track)
            probes = {
                1,
                u.max_trade_size,
                u.max_trade_size + 1,
                u.headroom,
                u.headroom + 1,
                u.max_daily_turnover - book.turnover_today,
                u.max_daily_turnover - book.turnover_today + 1,
                rng.randint(1, max(1, u.allocation)),
            }
            for amount in sorted(p for p in probes if p > 0):
                revert = h.call(h.open_calldata(second, amount, rules))
                try:
                    check_buy(book, track, amount)
                except LimitExceeded as exc:
                    assert revert is not None and revert.name == LIMIT_ERRORS[exc.code], (book, track, amount)
                    assert dict(revert.args) == exc.details
                    seen.add(exc.code)
                else:
                    assert revert is None, (book, track, amount, revert)
    assert seen == set(LIMIT_ERRORS), seen
