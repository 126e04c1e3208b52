"""The transaction sender against a real Anvil, on SQLite and on PostgreSQL: nothing lost, nothing twice.

The first half tests the sender's pure decisions case by case (they belong with the unit tests; they
live here with the feature). The second half runs `TxSender` end to end: every node is a real Anvil
started for the test (automine, or `--no-mining` where a transaction must sit in the pool), every
database a fresh SQLite file or a fresh PostgreSQL schema migrated with Alembic.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from eth_account import Account
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from web3 import Web3
from web3.exceptions import RequestTimedOut, Web3RPCError

from relayer.chain.anvil import Anvil, free_port
from relayer.chain.fees import (
    GWEI,
    REPLACEMENT_MIN_BPS,
    AtCap,
    FeePolicy,
    Fees,
    bumped,
    initial_fees,
    next_fees,
)
from relayer.chain.sender import (
    ChainIdMismatchError,
    Dropped,
    Failed,
    LaneResync,
    MaybeSent,
    Mined,
    Pending,
    ReceiptView,
    Rejected,
    SenderPolicy,
    Slot,
    TxSender,
    Unconfirmed,
    UnknownRequestError,
    classify_broadcast_error,
    classify_broadcast_exception,
    intrinsic_gas,
    is_stuck,
    pick_lane,
    plan_lane_resync,
    request_outcome,
)
from relayer.devkeys import LOCAL_CHAIN_ID, RELAYER_KEYS
from relayer.errors import ChainUnavailableError
from relayer.store.db import make_engine, make_session_factory
from relayer.store.migrate import upgrade
from relayer.store.models import SenderLane, TxRequest

PG_URL = os.environ.get("ALPHAGRID_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
KEY_A, KEY_B = RELAYER_KEYS[0], RELAYER_KEYS[1]
ADDRESS_A = Account.from_key(KEY_A).address
TRANSFER_GAS = 21_000

# ====================================================================== pure decisions


class TestClassifyBroadcastError:
    @pytest.mark.parametrize(
        "message",
        [
            pytest.param("already known", id="ALREADY_KNOWN_geth"),
            pytest.param("transaction already imported", id="ALREADY_KNOWN_anvil"),
            pytest.param("AlreadyKnown", id="ALREADY_KNOWN_nethermind"),
            pytest.param("Known transaction (0xabc)", id="ALREADY_KNOWN_besu"),
            pytest.param("nonce too low: next nonce 5, tx nonce 4", id="NONCE_TOO_LOW"),
            pytest.param("replacement transaction underpriced", id="REPLACEMENT_UNDERPRICED"),
            pytest.param("the node said something new", id="UNKNOWN"),
        ],
    )
    def test_maybe_sent(self, message: str) -> None:
        assert isinstance(classify_broadcast_error(message), MaybeSent)

    @pytest.mark.parametrize(
        "message",
        [
            pytest.param("max fee per gas less than block base fee", id="BELOW_BASE_FEE"),
            pytest.param("transaction underpriced: tip needed 1, tip permitted 0", id="UNDERPRICED"),
            pytest.param("FeeTooLow", id="FEE_TOO_LOW_nethermind"),
        ],
    )
    def test_fee_too_low_is_rejected_for_a_bump(self, message: str) -> None:
        assert classify_broadcast_error(message) == Rejected(reason=message, fee_too_low=True)

    @pytest.mark.parametrize(
        "message",
        [
            pytest.param("insufficient funds for gas * price + value", id="INSUFFICIENT_FUNDS"),
            pytest.param("intrinsic gas too low", id="INTRINSIC_GAS"),
            pytest.param("exceeds block gas limit", id="BLOCK_GAS_LIMIT"),
            pytest.param("invalid chain id for signer", id="CHAIN_ID"),
        ],
    )
    def test_other_refusals_are_rejected(self, message: str) -> None:
        assert classify_broadcast_error(message) == Rejected(reason=message, fee_too_low=False)

    def test_replacement_underpriced_is_not_read_as_a_fee_problem(self) -> None:
        verdict = classify_broadcast_error("replacement transaction underpriced")
        assert isinstance(verdict, MaybeSent) and "nonce occupied" in verdict.reason


class TestClassifyBroadcastException:
    def test_rpc_error_is_read_by_its_node_message(self) -> None:
        response: Any = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32003, "message": "nonce too low"}}
        exc = Web3RPCError(str(response["error"]), rpc_response=response)
        verdict = classify_broadcast_exception(exc)
        assert isinstance(verdict, MaybeSent) and "nonce too low" in verdict.reason

    def test_rpc_error_rejection(self) -> None:
        exc = Web3RPCError("{'code': -32003, 'message': 'max fee per gas less than block base fee'}")
        verdict = classify_broadcast_exception(exc)
        assert isinstance(verdict, Rejected) and verdict.fee_too_low

    @pytest.mark.parametrize(
        "exc",
        [
            pytest.param(requests.exceptions.ReadTimeout("read timed out"), id="TIMEOUT_requests"),
            pytest.param(RequestTimedOut("timed out"), id="TIMEOUT_web3"),
            pytest.param(TimeoutError(), id="TIMEOUT_builtin"),
            pytest.param(requests.exceptions.ConnectionError("reset"), id="CONNECTION_RESET_requests"),
            pytest.param(ConnectionResetError(104, "Connection reset by peer"), id="CONNECTION_RESET_socket"),
            pytest.param(RuntimeError("surprise"), id="UNEXPECTED"),
        ],
    )
    def test_transport_failures_are_maybe_sent(self, exc: BaseException) -> None:
        assert isinstance(classify_broadcast_exception(exc), MaybeSent)


def _fee_policy(**kw: Any) -> FeePolicy:
    return FeePolicy(**{"tip_wei": GWEI, "bump_bps": 1_250, "max_fee_cap_wei": None, **kw})


class TestFees:
    def test_initial_is_twice_base_plus_tip(self) -> None:
        assert initial_fees(7 * GWEI, _fee_policy()) == Fees(15 * GWEI, GWEI)

    def test_initial_capped(self) -> None:
        assert initial_fees(100 * GWEI, _fee_policy(max_fee_cap_wei=50 * GWEI)) == Fees(50 * GWEI, GWEI)

    def test_bump_raises_both_by_the_bump(self) -> None:
        assert next_fees(Fees(40 * GWEI, 2 * GWEI), GWEI, _fee_policy()) == Fees(45 * GWEI, 2_250_000_000)

    def test_bump_rounds_up(self) -> None:
        fees = next_fees(Fees(1_001, 7), 0, _fee_policy(tip_wei=0))
        assert fees == Fees(1_127, 8)  # 1001·1.125 = 1126.125 → 1127; 7·1.125 = 7.875 → 8

    def test_bump_tip_at_least_the_policy_tip(self) -> None:
        fees = next_fees(Fees(40 * GWEI, 0), GWEI, _fee_policy())
        assert isinstance(fees, Fees) and fees.max_priority_fee_per_gas == GWEI

    def test_catch_up_follows_a_base_fee_that_outran_the_offer(self) -> None:
        fees = next_fees(Fees(3 * GWEI, GWEI), 10 * GWEI, _fee_policy())
        assert fees == Fees(2 * 10 * GWEI + 1_125_000_000, 1_125_000_000)

    def test_capped_still_a_valid_replacement(self) -> None:
        fees = next_fees(Fees(100 * GWEI, 2 * GWEI), GWEI, _fee_policy(max_fee_cap_wei=111 * GWEI))
        assert fees == Fees(111 * GWEI, 2_250_000_000)

    def test_at_cap_when_the_cap_leaves_less_than_ten_percent(self) -> None:
        current = Fees(100 * GWEI, 2 * GWEI)
        assert next_fees(current, GWEI, _fee_policy(max_fee_cap_wei=105 * GWEI)) == AtCap(current, 105 * GWEI)

    def test_policy_refuses_a_bump_nodes_would_refuse(self) -> None:
        with pytest.raises(ValueError, match="bump_bps"):
            FeePolicy(bump_bps=999)

    @given(
        max_fee=st.integers(1, 10**15),
        tip_share=st.floats(0, 1),
        base_fee=st.integers(0, 10**14),
        cap=st.one_of(st.none(), st.integers(1, 10**16)),
    )
    def test_every_bump_is_a_valid_replacement_under_the_cap(
        self, max_fee: int, tip_share: float, base_fee: int, cap: int | None
    ) -> None:
        current = Fees(max_fee, int(max_fee * tip_share))
        fees = next_fees(current, base_fee, _fee_policy(max_fee_cap_wei=cap))
        if isinstance(fees, AtCap):
            assert cap is not None
            return
        assert fees.max_fee_per_gas >= bumped(current.max_fee_per_gas, REPLACEMENT_MIN_BPS)
        assert fees.max_priority_fee_per_gas >= bumped(current.max_priority_fee_per_gas, REPLACEMENT_MIN_BPS)
        assert fees.max_priority_fee_per_gas <= fees.max_fee_per_gas
        assert cap is None or fees.max_fee_per_gas <= cap


def _receipt(status: int, tx_hash: str = "0xaa") -> ReceiptView:
    return ReceiptView(tx_hash=tx_hash, status=status, block_number=9, block_hash="0xbb", gas_used=21_000)


class TestRequestOutcome:
    def test_mined(self) -> None:
        assert request_outcome([_receipt(1)], chain_nonce=6, request_nonce=5) == Mined(_receipt(1))

    def test_failed(self) -> None:
        outcome = request_outcome([_receipt(0)], chain_nonce=6, request_nonce=5)
        assert isinstance(outcome, Failed) and "reverted" in outcome.reason

    def test_nonce_spent_unconfirmed(self) -> None:
        outcome = request_outcome([], chain_nonce=6, request_nonce=5, spent_for_s=9.9, drop_after_s=10)
        assert outcome == Unconfirmed(spent_for_s=9.9)

    def test_dropped(self) -> None:
        outcome = request_outcome([], chain_nonce=6, request_nonce=5, spent_for_s=10, drop_after_s=10)
        assert isinstance(outcome, Dropped) and "nonce 5" in outcome.reason

    @pytest.mark.parametrize("chain_nonce", [4, 5])
    def test_pending(self, chain_nonce: int) -> None:
        assert request_outcome([], chain_nonce=chain_nonce, request_nonce=5) == Pending()

    def test_a_receipt_wins_over_a_lagging_nonce(self) -> None:
        assert isinstance(request_outcome([_receipt(1)], chain_nonce=5, request_nonce=5), Mined)


class TestIsStuck:
    def test_too_old(self) -> None:
        assert is_stuck(30.0, None, stuck_after_s=30.0, stuck_after_blocks=None)

    def test_too_many_blocks(self) -> None:
        assert is_stuck(1.0, 3, stuck_after_s=30.0, stuck_after_blocks=3)

    def test_fresh(self) -> None:
        assert not is_stuck(29.9, 2, stuck_after_s=30.0, stuck_after_blocks=3)

    def test_unknown_block_count_never_counts(self) -> None:
        assert not is_stuck(1.0, None, stuck_after_s=None, stuck_after_blocks=1)


class TestPickLane:
    def test_least_loaded(self) -> None:
        assert pick_lane({"a": 3, "b": 1}, ["a", "b"], turn=0) == "b"

    def test_tie_rotates(self) -> None:
        assert [pick_lane({"a": 2, "b": 2, "c": 5}, ["a", "b", "c"], turn) for turn in range(4)] == [
            "a",
            "b",
            "a",
            "b",
        ]

    def test_a_sender_without_pending_counts_zero(self) -> None:
        assert pick_lane({"a": 1}, ["a", "b"], turn=0) == "b"

    def test_no_senders(self) -> None:
        with pytest.raises(ValueError):
            pick_lane({}, [], turn=0)


class TestPlanLaneResync:
    def test_new(self) -> None:
        assert plan_lane_resync(None, 7, {}) == LaneResync(next_nonce=7)

    def test_in_step(self) -> None:
        assert plan_lane_resync(7, 7, {}) == LaneResync(next_nonce=7)

    def test_chain_ahead_jumps(self) -> None:
        assert plan_lane_resync(7, 12, {}) == LaneResync(next_nonce=12)

    def test_chain_behind_with_only_our_pending_requests_is_the_normal_pipeline(self) -> None:
        slots = {5: Slot.PENDING, 6: Slot.PENDING}
        assert plan_lane_resync(7, 5, slots) == LaneResync(next_nonce=7)

    def test_chain_behind_never_moves_down_and_fills_or_reopens(self) -> None:
        slots = {3: Slot.ON_CHAIN, 4: Slot.LOST, 5: Slot.PENDING, 6: Slot.FREE}
        assert plan_lane_resync(8, 3, slots) == LaneResync(next_nonce=8, fill=(3, 6, 7), reopen=(4,))


def test_intrinsic_gas() -> None:
    assert intrinsic_gas(b"") == 21_000
    assert intrinsic_gas(b"\x00\x01") == 21_000 + 4 + 16


# ====================================================================== fixtures


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database migrated once per module: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sender') / 'sender.db'}"
        _migrate(url)
        yield url
        return
    schema = f"s_{secrets.token_hex(6)}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL is not reachable at {PG_URL}: {type(exc).__name__}")
    try:
        url = f"{PG_URL}?options=-csearch_path%3D{schema}"
        _migrate(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def _migrate(url: str) -> None:
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    """The module's database, emptied of the sender's rows for this test."""
    engine = make_engine(db_url)
    with engine.begin() as conn:
        for table in ("tx_attempts", "tx_requests", "sender_lanes"):
            conn.execute(text(f"DELETE FROM {table}"))
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def node() -> Iterator[Anvil]:
    """An automining Anvil shared by the module: every test starts its lanes at the chain's nonce."""
    with Anvil(port=free_port()).start() as anvil:
        yield anvil


@pytest.fixture
def own_node() -> Iterator[Anvil]:
    """An automining Anvil of the test's own (for tests that move nonces)."""
    with Anvil(port=free_port()).start() as anvil:
        yield anvil


@pytest.fixture
def quiet_node() -> Iterator[Anvil]:
    """An Anvil that mines only on `evm_mine`: transactions wait in its pool."""
    with Anvil(port=free_port(), extra_args=["--no-mining"]).start() as anvil:
        yield anvil


def web3_of(anvil: Anvil) -> Web3:
    return Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 10}))


def rpc(w3: Web3, method: str, *params: Any) -> Any:
    response = w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
    assert "error" not in response, response
    return response.get("result")


@dataclass
class FakeClock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def make_sender(
    w3: Web3,
    sessions: sessionmaker[Session],
    keys: Sequence[str] = (KEY_A,),
    clock: Callable[[], datetime] | None = None,
    **policy: Any,
) -> TxSender:
    sender = TxSender(
        w3,
        sessions,
        list(keys),
        LOCAL_CHAIN_ID,
        fees=FeePolicy(tip_wei=GWEI),
        policy=SenderPolicy(**policy),
        **({"clock": clock} if clock else {}),
    )
    sender.reconcile()
    return sender


def fresh_address() -> str:
    return str(Account.create().address)


def submit_transfer(sender: TxSender) -> TxRequest:
    return sender.submit(fresh_address(), b"", TRANSFER_GAS, "test")


def requests_in(sessions: sessionmaker[Session]) -> list[TxRequest]:
    with sessions() as session:
        return list(session.scalars(select(TxRequest).order_by(TxRequest.id)))


# ====================================================================== end to end


def test_submit_records_then_mines_once(node: Anvil, sessions: sessionmaker[Session]) -> None:
    w3 = web3_of(node)
    sender = make_sender(w3, sessions)
    before = w3.eth.get_transaction_count(ADDRESS_A)

    submitted = submit_transfer(sender)
    assert submitted.status == "pending" and submitted.nonce == before
    assert len(submitted.attempts) == 1 and submitted.attempts[0].broadcast_at is not None

    done = sender.wait(submitted.id, timeout_s=10)
    assert done.status == "mined"
    assert done.mined_hash == submitted.attempts[0].tx_hash
    receipt = w3.eth.get_transaction_receipt(done.mined_hash)
    assert (done.block_number, done.block_hash, done.gas_used) == (
        receipt["blockNumber"],
        "0x" + receipt["blockHash"].hex(),
        TRANSFER_GAS,
    )
    assert w3.eth.get_transaction_count(ADDRESS_A) == before + 1


def test_pipelined_submits_from_threads_take_consecutive_nonces(
    node: Anvil, sessions: sessionmaker[Session]
) -> None:
    w3 = web3_of(node)
    sender = make_sender(w3, sessions)
    start = w3.eth.get_transaction_count(ADDRESS_A)

    with ThreadPoolExecutor(max_workers=8) as pool:
        submitted = list(pool.map(lambda _: submit_transfer(sender), range(20)))

    assert sorted(r.nonce for r in submitted) == list(range(start, start + 20))
    finals = [sender.wait(r.id, timeout_s=10) for r in submitted]
    assert {r.status for r in finals} == {"mined"}
    assert w3.eth.get_transaction_count(ADDRESS_A) == start + 20
    with sessions() as session:
        assert session.get(SenderLane, ADDRESS_A) is not None
        assert session.get(SenderLane, ADDRESS_A).next_nonce == start + 20  # type: ignore[union-attr]


def test_several_keys_spread_over_their_lanes(node: Anvil, sessions: sessionmaker[Session]) -> None:
    w3 = web3_of(node)
    sender = make_sender(w3, sessions, keys=(KEY_A, KEY_B))
    starts = {a: w3.eth.get_transaction_count(a) for a in sender.senders}

    with ThreadPoolExecutor(max_workers=8) as pool:
        submitted = list(pool.map(lambda _: submit_transfer(sender), range(20)))

    by_sender: dict[str, list[int]] = {}
    for r in submitted:
        by_sender.setdefault(r.sender, []).append(r.nonce)
    assert set(by_sender) == set(sender.senders)
    for address, nonces in by_sender.items():
        assert sorted(nonces) == list(range(starts[address], starts[address] + len(nonces)))
    assert {sender.wait(r.id, timeout_s=10).status for r in submitted} == {"mined"}


def test_two_processes_on_one_database_never_share_a_nonce(node: Anvil, db_url: str) -> None:
    """Two relayer processes: two engines, two senders, the same keys and database."""
    w3 = web3_of(node)
    engines = [make_engine(db_url) for _ in range(2)]
    upgrade(engines[0])
    senders = [make_sender(w3, make_session_factory(e), keys=(KEY_A, KEY_B)) for e in engines]
    starts = {a: w3.eth.get_transaction_count(a) for a in senders[0].senders}
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            submitted = list(pool.map(lambda i: submit_transfer(senders[i % 2]), range(24)))
        seen = {(r.sender, r.nonce) for r in submitted}
        assert len(seen) == 24
        for address in starts:
            nonces = sorted(n for s, n in seen if s == address)
            assert nonces == list(range(starts[address], starts[address] + len(nonces)))
        assert {senders[0].wait(r.id, timeout_s=10).status for r in submitted} == {"mined"}
    finally:
        for engine in engines:
            engine.dispose()


def test_crash_between_record_and_broadcast_is_sent_once_after_restart(
    node: Anvil, sessions: sessionmaker[Session]
) -> None:
    w3 = web3_of(node)
    first = make_sender(w3, sessions)
    before = w3.eth.get_transaction_count(ADDRESS_A)
    with sessions.begin() as session:
        request = first.prepare(session, to=fresh_address(), data=b"", gas_limit=TRANSFER_GAS, purpose="test")
        request_id, tx_hash = request.id, request.attempts[0].tx_hash
    # … the process dies here: recorded and committed, never broadcast.
    assert first.get(request_id).attempts[0].broadcast_at is None
    assert w3.eth.get_transaction_count(ADDRESS_A) == before

    restarted = make_sender(w3, sessions)  # make_sender reconciles, as a starting relayer does
    done = restarted.wait(request_id, timeout_s=10)

    assert done.status == "mined" and done.mined_hash == tx_hash
    assert len(done.attempts) == 1
    assert w3.eth.get_transaction_count(ADDRESS_A) == before + 1
    assert len(requests_in(sessions)) == 1


def test_a_rolled_back_prepare_gives_its_nonce_back(node: Anvil, sessions: sessionmaker[Session]) -> None:
    w3 = web3_of(node)
    sender = make_sender(w3, sessions)
    start = w3.eth.get_transaction_count(ADDRESS_A)
    with sessions() as session:
        assert sender.prepare(session, fresh_address(), b"", TRANSFER_GAS, "test").nonce == start
        session.rollback()  # the caller's own row failed: neither its row nor the request exist
    assert requests_in(sessions) == []
    assert submit_transfer(sender).nonce == start


@pytest.mark.parametrize("mining", ["automine", "no_mining"])
def test_lost_response_is_maybe_sent_and_mined_once(
    mining: str, sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    extra = ["--no-mining"] if mining == "no_mining" else []
    with Anvil(port=free_port(), extra_args=extra).start() as anvil:
        w3 = web3_of(anvil)
        sender = make_sender(w3, sessions)
        with sessions.begin() as session:
            request = sender.prepare(session, fresh_address(), b"", TRANSFER_GAS, "test")
            request_id, raw_tx = request.id, request.attempts[0].raw_tx
        # The node took it, but the answer never reached the sender; its retry then finds it known.
        w3.eth.send_raw_transaction(raw_tx)
        with caplog.at_level(logging.INFO, logger="relayer.chain.sender"):
            sender.broadcast(request_id)
        expected = "nonce too low" if mining == "automine" else "already known"
        assert any("maybe sent" in r.getMessage() and expected in r.getMessage() for r in caplog.records)
        after = sender.get(request_id)
        assert after.status == "pending" and after.error is None
        assert after.attempts[0].broadcast_at is not None

        if mining == "no_mining":
            rpc(w3, "evm_mine")
        done = sender.wait(request_id, timeout_s=10)
        assert done.status == "mined" and len(done.attempts) == 1
        assert w3.eth.get_transaction_count(ADDRESS_A) == 1


def test_stuck_transaction_gets_both_fees_bumped(quiet_node: Anvil, sessions: sessionmaker[Session]) -> None:
    w3 = web3_of(quiet_node)
    clock = FakeClock(datetime.now(UTC))
    sender = make_sender(w3, sessions, clock=clock, stuck_after_s=30.0)
    request = submit_transfer(sender)
    first = request.attempts[0]

    assert sender.poll() == [] and len(sender.get(request.id).attempts) == 1  # not stuck yet
    rpc(w3, "anvil_setNextBlockBaseFeePerGas", hex(10 * GWEI))
    assert first.max_fee_per_gas < 10 * GWEI
    clock.advance(31)
    sender.poll()

    attempts = sender.get(request.id).attempts
    assert len(attempts) == 2
    bump = attempts[1]
    assert bump.max_fee_per_gas >= bumped(first.max_fee_per_gas, 1_250)
    assert bump.max_priority_fee_per_gas >= bumped(first.max_priority_fee_per_gas, 1_250)
    assert bump.max_fee_per_gas >= 2 * 10 * GWEI and bump.broadcast_at is not None

    rpc(w3, "evm_mine")
    done = sender.wait(request.id, timeout_s=10)
    assert done.status == "mined"
    assert done.mined_hash in {a.tx_hash for a in attempts}
    mined_block = w3.eth.get_block(done.block_number or 0)
    assert done.mined_hash in {"0x" + h.hex() for h in mined_block["transactions"]}  # type: ignore[union-attr]
    assert w3.eth.get_transaction_count(ADDRESS_A) == 1


def test_fee_too_low_at_broadcast_is_bumped_at_once(
    quiet_node: Anvil, sessions: sessionmaker[Session]
) -> None:
    w3 = web3_of(quiet_node)
    sender = make_sender(w3, sessions)
    with sessions.begin() as session:
        request_id = sender.prepare(session, fresh_address(), b"", TRANSFER_GAS, "test").id
    rpc(w3, "anvil_setNextBlockBaseFeePerGas", hex(10 * GWEI))  # the base fee jumps before we send

    sender.broadcast(request_id)

    attempts = sender.get(request_id).attempts
    assert len(attempts) == 2
    assert attempts[0].broadcast_at is None and attempts[1].broadcast_at is not None
    rpc(w3, "evm_mine")
    done = sender.wait(request_id, timeout_s=10)
    assert done.status == "mined" and done.mined_hash == attempts[1].tx_hash


def test_nonce_taken_by_another_transaction_is_dropped(
    quiet_node: Anvil, sessions: sessionmaker[Session]
) -> None:
    w3 = web3_of(quiet_node)
    clock = FakeClock(datetime.now(UTC))
    sender = make_sender(w3, sessions, clock=clock, drop_after_s=10.0)
    request = submit_transfer(sender)
    rpc(w3, "anvil_dropTransaction", request.attempts[0].tx_hash)
    rival = Account.from_key(KEY_A).sign_transaction(
        {
            "chainId": LOCAL_CHAIN_ID,
            "nonce": request.nonce,
            "to": fresh_address(),
            "value": 1,
            "gas": TRANSFER_GAS,
            "maxFeePerGas": 5 * GWEI,
            "maxPriorityFeePerGas": GWEI,
        }
    )
    w3.eth.send_raw_transaction(rival.raw_transaction)
    rpc(w3, "evm_mine")

    assert sender.poll() == []  # nonce spent, no receipt: not concluded from one look
    assert len(sender.get(request.id).attempts) == 1  # … and nothing sent meanwhile
    clock.advance(10)
    changed = sender.poll()

    assert [(r.id, r.status) for r in changed] == [(request.id, "dropped")]
    assert changed[0].error is not None and f"nonce {request.nonce}" in changed[0].error
    follow_up = submit_transfer(sender)
    assert follow_up.nonce == request.nonce + 1
    rpc(w3, "evm_mine")
    assert sender.wait(follow_up.id, timeout_s=10).status == "mined"


def test_transaction_forgotten_by_the_node_is_rebroadcast(
    quiet_node: Anvil, sessions: sessionmaker[Session]
) -> None:
    w3 = web3_of(quiet_node)
    sender = make_sender(w3, sessions)
    request = submit_transfer(sender)
    tx_hash = request.attempts[0].tx_hash
    rpc(w3, "anvil_dropTransaction", tx_hash)  # as a restarted node would forget its pool

    sender.poll()

    assert rpc(w3, "eth_getTransactionByHash", tx_hash) is not None
    rpc(w3, "evm_mine")
    done = sender.wait(request.id, timeout_s=10)
    assert done.status == "mined" and done.mined_hash == tx_hash and len(done.attempts) == 1


def test_chain_nonce_moved_up_lane_follows(own_node: Anvil, sessions: sessionmaker[Session]) -> None:
    w3 = web3_of(own_node)
    sender = make_sender(w3, sessions)
    assert sender.wait(submit_transfer(sender).id, timeout_s=10).status == "mined"
    rpc(w3, "anvil_setNonce", ADDRESS_A, hex(40))  # the key was used elsewhere

    sender.poll()

    request = submit_transfer(sender)
    assert request.nonce == 40
    assert sender.wait(request.id, timeout_s=10).status == "mined"


def test_chain_nonce_moved_down_reconcile_fills_the_gap(
    own_node: Anvil, sessions: sessionmaker[Session]
) -> None:
    w3 = web3_of(own_node)
    sender = make_sender(w3, sessions)
    mined = [sender.wait(submit_transfer(sender).id, timeout_s=10) for _ in range(3)]
    assert [r.nonce for r in mined] == [0, 1, 2]
    rpc(w3, "anvil_setNonce", ADDRESS_A, hex(1))

    sender.reconcile()

    assert w3.eth.get_transaction_count(ADDRESS_A) == 3  # nonces 1 and 2 filled with no-ops
    request = submit_transfer(sender)
    assert request.nonce == 3
    assert sender.wait(request.id, timeout_s=10).status == "mined"
    assert [r.status for r in requests_in(sessions)] == ["mined"] * 4  # no old request ran again


def test_reorged_request_goes_back_to_pending_and_is_mined_again(
    quiet_node: Anvil, sessions: sessionmaker[Session]
) -> None:
    w3 = web3_of(quiet_node)
    sender = make_sender(w3, sessions, confirmation_depth=3)
    snapshot = rpc(w3, "evm_snapshot")
    request = submit_transfer(sender)
    rpc(w3, "evm_mine")
    first = sender.wait(request.id, timeout_s=10)
    assert first.status == "mined" and first.block_number == 1

    rpc(w3, "evm_revert", snapshot)  # block 1 is gone, and the transaction with it
    rpc(w3, "evm_mine")  # another block 1

    changed = sender.poll()  # reopens it, finds the node does not know it, re-broadcasts
    assert [(r.id, r.status) for r in changed] == [(request.id, "pending")]
    rpc(w3, "evm_mine")
    again = sender.wait(request.id, timeout_s=10)
    assert again.status == "mined" and again.block_number == 2 and again.block_hash != first.block_hash


def test_wait_timeout_returns_the_pending_request(quiet_node: Anvil, sessions: sessionmaker[Session]) -> None:
    sender = make_sender(web3_of(quiet_node), sessions)
    request = submit_transfer(sender)
    started = time.monotonic()

    waited = sender.wait(request.id, timeout_s=0.3)

    assert waited.status == "pending" and waited.error is None
    assert 0.3 <= time.monotonic() - started < 3


def test_background_loop_follows_to_mined(quiet_node: Anvil, sessions: sessionmaker[Session]) -> None:
    w3 = web3_of(quiet_node)
    sender = make_sender(w3, sessions)
    request = submit_transfer(sender)
    stop = threading.Event()
    loop = threading.Thread(target=sender.run, args=(stop, 0.02))
    loop.start()
    try:
        rpc(w3, "evm_mine")
        deadline = time.monotonic() + 10
        while sender.get(request.id).status == "pending" and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        loop.join(timeout=5)
    assert not loop.is_alive()
    assert sender.get(request.id).status == "mined"


def test_listeners_hear_of_each_request_once_it_is_final_and_committed(
    quiet_node: Anvil, sessions: sessionmaker[Session]
) -> None:
    w3 = web3_of(quiet_node)
    sender = make_sender(w3, sessions)
    heard: list[tuple[int, str]] = []
    # What a listener reads in the database when it is called: the settled status, already committed.
    sender.add_listener(lambda request_id: heard.append((request_id, sender.get(request_id).status)))
    sender.add_listener(lambda _request_id: 1 // 0)  # a failing listener does not stop the others
    request = submit_transfer(sender)

    assert sender.poll() == [] and heard == []  # pending: nobody is told
    rpc(w3, "evm_mine")
    changed = sender.poll()

    assert [r.id for r in changed] == [request.id]
    assert heard == [(request.id, "mined")]
    assert sender.poll() == [] and heard == [(request.id, "mined")]  # told once


def test_node_down_after_the_record_is_maybe_sent_before_it_nothing_is_recorded(
    own_node: Anvil, sessions: sessionmaker[Session]
) -> None:
    w3 = Web3(
        Web3.HTTPProvider(own_node.url, request_kwargs={"timeout": 2}, exception_retry_configuration=None)
    )
    sender = make_sender(w3, sessions, base_fee_max_age_s=0)
    with sessions.begin() as session:
        request_id = sender.prepare(session, fresh_address(), b"", TRANSFER_GAS, "test").id
    own_node.stop()

    sender.broadcast(request_id)  # connection refused: maybe sent, never an exception

    after = sender.get(request_id)
    assert after.status == "pending" and after.attempts[0].broadcast_at is not None
    assert sender.wait(request_id, timeout_s=0.2).status == "pending"
    with pytest.raises(ChainUnavailableError):
        submit_transfer(sender)  # the base fee cannot be read: refused before anything is recorded
    assert [r.id for r in requests_in(sessions)] == [request_id]


def test_reverted_call_is_failed(node: Anvil, sessions: sessionmaker[Session]) -> None:
    w3 = web3_of(node)
    sender = make_sender(w3, sessions)
    # init code that reverts, deployed as a contract whose every call reverts: PUSH1 0 PUSH1 0 REVERT
    runtime = bytes.fromhex("60006000fd")
    initcode = bytes.fromhex("64") + runtime + bytes.fromhex("6000526005601bf3")
    deployer = Account.from_key(RELAYER_KEYS[1])
    signed = deployer.sign_transaction(
        {
            "chainId": LOCAL_CHAIN_ID,
            "nonce": w3.eth.get_transaction_count(deployer.address),
            "data": initcode,
            "gas": 100_000,
            "maxFeePerGas": 5 * GWEI,
            "maxPriorityFeePerGas": GWEI,
            "value": 0,
        }
    )
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))
    reverter = receipt["contractAddress"]
    assert reverter is not None and w3.eth.get_code(reverter) == runtime

    done = sender.wait(sender.submit(reverter, b"\x01", 50_000, "test").id, timeout_s=10)

    assert done.status == "failed" and done.error is not None and "reverted" in done.error
    assert done.mined_hash is not None and done.gas_used is not None


def test_invalid_calls_record_nothing(node: Anvil, sessions: sessionmaker[Session]) -> None:
    sender = make_sender(web3_of(node), sessions)
    with pytest.raises(ValueError, match="intrinsic gas"):
        sender.submit(fresh_address(), b"\x01", TRANSFER_GAS, "test")
    with pytest.raises(ValueError, match="not an address"):
        sender.submit("0x1234", b"", TRANSFER_GAS, "test")
    with pytest.raises(ValueError, match="purpose"):
        sender.submit(fresh_address(), b"", TRANSFER_GAS, "x" * 17)
    with pytest.raises(UnknownRequestError):
        sender.get(12345)
    assert requests_in(sessions) == []


def test_reconcile_refuses_another_chain(node: Anvil, sessions: sessionmaker[Session]) -> None:
    sender = TxSender(web3_of(node), sessions, [KEY_A], chain_id=1)
    with pytest.raises(ChainIdMismatchError):
        sender.reconcile()


# ====================================================================== throughput (opt-in)


@pytest.mark.skipif(not os.environ.get("ALPHAGRID_BENCH"), reason="a benchmark: set ALPHAGRID_BENCH=1")
@pytest.mark.parametrize("keys", [(KEY_A,), (KEY_A, KEY_B)], ids=["one_key", "two_keys"])
def test_throughput_submit_to_mined(
    keys: tuple[str, ...], own_node: Anvil, sessions: sessionmaker[Session]
) -> None:
    """Prints submit→mined sends/s on automine with 8 worker threads; asserts nothing about time."""
    w3 = web3_of(own_node)
    sender = make_sender(w3, sessions, keys=keys)
    count = int(os.environ.get("ALPHAGRID_BENCH_N", "300"))

    def one(_: int) -> str:
        return sender.wait(submit_transfer(sender).id, timeout_s=30).status

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(one, range(count)))
    elapsed = time.perf_counter() - started
    assert set(statuses) == {"mined"}
    rate = count / elapsed
    print(f"\nsender throughput: {count} submit→mined in {elapsed:.2f}s = {rate:.0f}/s ({len(keys)} keys)")
