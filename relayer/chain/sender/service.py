"""`TxSender`: the relayer's transactions, from a nonce to a receipt — nothing lost, nothing twice.

How it keeps that promise:

- **The relayer owns the nonces.** Each relayer key is a lane (`SenderLane`); a nonce is taken by one
  atomic `UPDATE sender_lanes SET next_nonce = next_nonce + 1 … RETURNING` in the same database
  transaction that inserts the request. On PostgreSQL the UPDATE holds the lane's row lock until
  commit (the same lock `SELECT … FOR UPDATE` takes, without a second round trip); on SQLite it takes
  the database's single write lock. Two threads or processes can never get one nonce, and a rolled
  back transaction gives its nonce back. The node's `pending` count is never consulted.
- **Recorded before broadcast.** The signed raw transaction and its hash (`TxAttempt`) are committed
  before the first byte goes to the node. A crash in between leaves an attempt with no
  `broadcast_at`; `reconcile()` (and `poll()`, after a grace period) broadcasts it.
- **Maybe sent is not failed.** A timeout, a reset connection, "already known" or "nonce too low" mean
  the transaction may be in flight (web3's HTTP provider itself retries `eth_sendRawTransaction`, so a
  lost answer comes back as "already known"). Its nonce is never re-allocated and nothing is signed
  under a new nonce; receipts by hash decide (`decisions.classify_broadcast_error`).
- **Followed to the end.** `poll()` reads each sender's `latest` nonce, then the receipts of the
  request's attempts: mined / failed (reverted) / dropped (nonce consumed by something else, seen so
  for `drop_after_s`) / still pending (`decisions.request_outcome`). A pending attempt the node no
  longer knows is re-broadcast from its recorded bytes; one pending past the threshold is replaced
  with both fees bumped (`fees.next_fees`), recorded before it is sent, like the first.
- **Restart.** `reconcile()` meets each lane with the chain (`decisions.plan_lane_resync`) and runs a
  poll with no grace period.

Several relayer processes may share one PostgreSQL database with the same keys: nonce allocation is
serialized by the lane row, and `poll()` takes each request's row with `FOR UPDATE SKIP LOCKED`, so
two processes never handle one request at once. SQLite is for a single process; within a process,
a striped lock per request plays the same part.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress, HexStr
from pydantic import SecretStr
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, selectinload, sessionmaker
from web3 import Web3
from web3.exceptions import TransactionNotFound

from relayer.chain import rpc
from relayer.chain.fees import AtCap, FeePolicy, Fees, initial_fees, next_fees
from relayer.chain.sender.decisions import (
    Accepted,
    BroadcastVerdict,
    Dropped,
    Failed,
    MaybeSent,
    Mined,
    Outcome,
    Pending,
    ReceiptView,
    Rejected,
    Slot,
    Unconfirmed,
    classify_broadcast_exception,
    intrinsic_gas,
    is_stuck,
    pick_lane,
    plan_lane_resync,
    request_outcome,
)
from relayer.eip712 import checksum
from relayer.errors import ChainUnavailableError
from relayer.store.models import SenderLane, TxAttempt, TxRequest, utcnow

_log = logging.getLogger("relayer.chain.sender")

PENDING = "pending"
MINED = "mined"
FAILED = "failed"
DROPPED = "dropped"
FINAL_STATUSES = frozenset({MINED, FAILED, DROPPED})
PURPOSE_MAX_LEN = 16  # TxRequest.purpose is String(16)
FILLER_GAS = 21_000
_LOCK_STRIPES = 64
_REORG_BATCH = 50


@dataclass(frozen=True)
class SenderPolicy:
    """When a pending transaction counts as stuck, and how closely the sender follows the chain.

    - `stuck_after_s` / `stuck_after_blocks`: an attempt is replaced with higher fees once either
      threshold is reached (`None` disables one). Blocks are counted from when this process first saw
      the attempt broadcast, so after a restart only the time threshold applies at first.
    - `unbroadcast_grace_s`: `poll()` leaves a recorded-but-unbroadcast attempt alone this long, since
      its `submit()` / `broadcast()` is most likely still running; `reconcile()` uses no grace.
    - `confirmation_depth`: mined requests within this many blocks of the head have their block hash
      re-checked on every poll; a request whose block left the canonical chain goes back to pending.
      0 (the default, fine for Anvil) skips the check.
    - `drop_after_s`: a request is `dropped` only once its nonce has been seen spent, with no receipt
      for any of its attempts, for this long (`decisions.request_outcome`, NONCE_SPENT_UNCONFIRMED).
    - `wait_interval_s`: how often `wait()` looks at its request.
    - `rejected_retry_s`: after the node refused an attempt outright (insufficient funds, a chain id
      it no longer serves, …), `poll()` sends it again no sooner than this: the request keeps its
      nonce and is retried until the cause goes away, without a refusal on every pass.
    - `base_fee_max_age_s`: a first offer may use a base fee read this recently (0: read it every
      time). maxFee = 2·baseFee + tip absorbs several blocks of base-fee rise, and an offer that
      turns out too low is rejected and bumped at once; a bump always reads the base fee afresh.
    """

    stuck_after_s: float | None = 30.0
    stuck_after_blocks: int | None = None
    unbroadcast_grace_s: float = 5.0
    confirmation_depth: int = 0
    drop_after_s: float = 10.0
    wait_interval_s: float = 0.05
    base_fee_max_age_s: float = 1.0
    rejected_retry_s: float = 2.0

    def __post_init__(self) -> None:
        if self.stuck_after_s is not None and self.stuck_after_s < 0:
            raise ValueError("stuck_after_s must be ≥ 0")
        if self.stuck_after_blocks is not None and self.stuck_after_blocks < 1:
            raise ValueError("stuck_after_blocks must be ≥ 1")
        if self.confirmation_depth < 0:
            raise ValueError("confirmation_depth must be ≥ 0")
        if self.drop_after_s < 0:
            raise ValueError("drop_after_s must be ≥ 0")
        if self.wait_interval_s <= 0:
            raise ValueError("wait_interval_s must be > 0")
        if self.base_fee_max_age_s < 0:
            raise ValueError("base_fee_max_age_s must be ≥ 0")
        if self.rejected_retry_s < 0:
            raise ValueError("rejected_retry_s must be ≥ 0")


class UnknownRequestError(LookupError):
    def __init__(self, request_id: int) -> None:
        super().__init__(f"no transaction request {request_id}")
        self.request_id = request_id


class ChainIdMismatchError(RuntimeError):
    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"the node serves chain {actual}, the sender signs for chain {expected}")
        self.expected = expected
        self.actual = actual


def _rpc(what: str) -> AbstractContextManager[None]:
    """Transport failures on reads → `ChainUnavailableError`, named after what was being read."""
    return rpc.transport_errors(what)


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes for timezone-aware columns; they were written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class _Outgoing:
    """A recorded attempt about to be sent: what the send step needs, without another read."""

    request_id: int
    attempt_id: int
    tx_hash: str
    raw_tx: str

    @classmethod
    def of(cls, attempt: TxAttempt) -> _Outgoing:
        return cls(attempt.request_id, attempt.id, attempt.tx_hash, attempt.raw_tx)


def _numbered(rows: Sequence[Any]) -> list[tuple[int, int, str | None]]:
    """(request id, block number, block hash) rows of mined requests (whose block number is set)."""
    return [(int(r[0]), int(r[1]), r[2]) for r in rows if r[1] is not None]


def _receipt_view(receipt: Mapping[str, str]) -> ReceiptView:
    """From the node's raw receipt (hex strings): web3's formatting of every field costs more CPU
    than the rest of settling a request, and these five are all the sender reads."""
    return ReceiptView(
        tx_hash=receipt["transactionHash"].lower(),
        status=int(receipt["status"], 16),
        block_number=int(receipt["blockNumber"], 16),
        block_hash=receipt["blockHash"].lower(),
        gas_used=int(receipt["gasUsed"], 16),
    )


class _ChainView:
    """What one pass needs from the node, each read at most once per pass."""

    def __init__(self, w3: Web3) -> None:
        self._w3 = w3
        self._nonces: dict[str, int] = {}
        self._base_fee: int | None = None
        self._block: int | None = None

    def nonce(self, sender: ChecksumAddress) -> int:
        if sender not in self._nonces:
            self._nonces[sender] = int(rpc.call(self._w3, "eth_getTransactionCount", [sender, "latest"]), 16)
        return self._nonces[sender]

    def next_base_fee(self) -> int:
        if self._base_fee is None:
            self._base_fee = read_next_base_fee(self._w3)
        return self._base_fee

    def latest_block(self) -> int:
        if self._block is None:
            self._block = int(rpc.call(self._w3, "eth_blockNumber", []), 16)
        return self._block


def read_next_base_fee(w3: Web3) -> int:
    """The next block's base fee: the last entry of `eth_feeHistory(1, "latest")`."""
    with _rpc("eth_feeHistory"):
        history = w3.eth.fee_history(1, "latest")
    return int(history["baseFeePerGas"][-1])


class TxSender:
    """Sends the relayer's transactions from one or more keys (one nonce lane each).

    Thread-safe: `submit`/`prepare`/`broadcast`/`wait` run in worker threads while `run()` polls in
    another. Builds nothing at import time and holds no globals; every dependency is an argument.
    """

    def __init__(
        self,
        w3: Web3,
        session_factory: sessionmaker[Session],
        keys: Sequence[str | SecretStr],
        chain_id: int,
        fees: FeePolicy | None = None,
        policy: SenderPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        accounts: dict[ChecksumAddress, LocalAccount] = {}
        for key in keys:
            secret = key.get_secret_value() if isinstance(key, SecretStr) else key
            account: LocalAccount = Account.from_key(secret)
            accounts.setdefault(account.address, account)
        if not accounts:
            raise ValueError("TxSender needs at least one relayer key")
        self.w3 = w3
        self.chain_id = chain_id
        self.fees = fees or FeePolicy()
        self.policy = policy or SenderPolicy()
        self._sessions = session_factory
        self._clock = clock
        self._accounts = accounts
        self._senders: tuple[ChecksumAddress, ...] = tuple(accounts)
        self._turns = itertools.count()
        self._lanes_ready = False
        self._lanes_lock = threading.Lock()
        self._request_locks = tuple(threading.Lock() for _ in range(_LOCK_STRIPES))
        self._first_seen_block: dict[str, int] = {}
        self._spent_since: dict[int, datetime] = {}  # request id → first seen with its nonce spent
        self._rejected_at: dict[int, float] = {}  # request id → monotonic time the node last refused it
        self._head_seen: tuple[int, str] | None = None  # (number, hash) of the head the last pass saw
        self._newest_recorded: tuple[int, str] | None = None  # the newest block this process recorded
        self._base_fee_lock = threading.Lock()
        self._base_fee_cache: tuple[float, int] | None = None  # (monotonic time read, wei)
        self._listeners: list[Callable[[int], None]] = []
        self._lane_seen: dict[str, int] = {}  # a lane's next nonce as last read (lanes only move up)
        self._poke = threading.Event()  # something to follow: `run` polls now, not at its interval

    def add_listener(self, on_settled: Callable[[int], None]) -> None:
        """Call `on_settled(request_id)` each time a request becomes final (mined, failed, dropped),
        after that is committed: whoever waits for a request can wait for this instead of polling the
        database. Called from the thread that settled it (the poll loop or a `wait`); keep it short."""
        self._listeners.append(on_settled)

    @property
    def senders(self) -> tuple[ChecksumAddress, ...]:
        """The lanes' addresses, in the order the keys were given."""
        return self._senders

    # ------------------------------------------------------------------ submitting

    def submit(self, to: str, data: bytes, gas_limit: int, purpose: str) -> TxRequest:
        """Record a transaction on the least busy lane, commit, then broadcast it.

        Returns the request (with its attempt) once it has been handed to the node — or once handing
        it over failed in a way that leaves it "maybe sent" or rejected: it is recorded either way
        and `poll()` / `wait()` take it from there. Never raises after the record is committed, so a
        caller cannot be tempted into a second submit. Raises `ValueError` for an invalid call and
        `ChainUnavailableError` when the base fee cannot be read (nothing is recorded then).
        """
        with self._sessions() as session, session.begin():
            request = self.prepare(session, to, data, gas_limit, purpose)
        outgoing = _Outgoing.of(request.attempts[-1])
        with self._request_lock(outgoing.request_id):
            sent = self._send(outgoing, bump_if_fee_too_low=True)
        return sent if sent is not None else request

    def prepare(self, session: Session, to: str, data: bytes, gas_limit: int, purpose: str) -> TxRequest:
        """Allocate a nonce, sign, and add the `TxRequest` with its first `TxAttempt` to `session`.

        The caller commits — together with its own rows (e.g. the intent that points at this
        request), so both exist or neither — and then calls `broadcast(request.id)`. Until that
        commit the lane is locked (PostgreSQL: its row; SQLite: the database), so commit promptly.
        If the caller crashes after committing and before broadcasting, `poll()` broadcasts the
        attempt once `unbroadcast_grace_s` has passed.
        """
        to_address = self._validate(to, data, gas_limit, purpose)
        self._ensure_lanes()
        fees = initial_fees(self._recent_base_fee(), self.fees)
        sender = self._pick_lane(session)
        nonce = self._allocate_nonce(session, sender)
        now = self._clock()
        request = TxRequest(
            sender=sender,
            nonce=nonce,
            to=to_address,
            data=_hex(data),
            gas_limit=gas_limit,
            purpose=purpose,
            status=PENDING,
            created_at=now,
            updated_at=now,
        )
        attempt = self._sign(self._accounts[sender], request, fees, now)
        request.attempts.append(attempt)
        session.add(request)
        session.flush()
        _log.info(
            "tx recorded request=%s sender=%s nonce=%s hash=%s purpose=%s max_fee=%s tip=%s",
            request.id,
            sender,
            nonce,
            attempt.tx_hash,
            purpose,
            fees.max_fee_per_gas,
            fees.max_priority_fee_per_gas,
        )
        return request

    def broadcast(self, request_id: int) -> None:
        """Send the request's newest recorded attempt (after `prepare` + commit). Safe to repeat.

        Never raises for a broadcast that went wrong: the verdict is recorded (see `submit`) and the
        request is followed by `poll()` / `wait()`. Raises `UnknownRequestError` for an unknown id.
        """
        with self._request_lock(request_id):
            with self._sessions() as session:
                request = session.get(TxRequest, request_id)
                if request is None:
                    raise UnknownRequestError(request_id)
                outgoing = _Outgoing.of(request.attempts[-1]) if request.status == PENDING else None
            if outgoing is not None:
                self._send(outgoing, bump_if_fee_too_low=True)

    def can_pay(self, gas_limit: int) -> bool:
        """Whether some lane's balance covers `gas_limit` at the fee a first attempt would offer now.

        A relayer whose keys are drained cannot get anything mined: callers refuse new work (503)
        rather than accept what would sit unsent. Raises `ChainUnavailableError` if the node is away.
        """
        self._ensure_lanes()
        cost = gas_limit * initial_fees(self._recent_base_fee(), self.fees).max_fee_per_gas
        for sender in self._senders:
            if int(rpc.call(self.w3, "eth_getBalance", [sender, "latest"]), 16) >= cost:
                return True
        return False

    # ------------------------------------------------------------------ following

    def get(self, request_id: int) -> TxRequest:
        """The request with its attempts loaded (detached: safe to read after return)."""
        with self._sessions() as session:
            request = session.scalars(
                select(TxRequest).where(TxRequest.id == request_id).options(selectinload(TxRequest.attempts))
            ).first()
        if request is None:
            raise UnknownRequestError(request_id)
        return request

    def poll(self) -> list[TxRequest]:
        """One pass over every pending request; returns the requests whose status changed.

        Per request: mined → `mined` (or `failed` if it reverted) with the mined attempt's hash, block
        and gas; nonce consumed without any of its attempts for `drop_after_s` → `dropped` (nothing is
        sent for it meanwhile); otherwise an attempt never
        broadcast (older than the grace period) is broadcast, a stuck one is replaced with bumped fees,
        and one the node has forgotten is re-broadcast. Also lifts lanes the chain has moved past and
        reopens requests whose block was reorganised away (`_check_reorgs`).
        Raises `ChainUnavailableError` if the node cannot be reached (nothing is changed for the
        requests not reached yet).
        """
        return self._poll(grace_s=self.policy.unbroadcast_grace_s)

    def wait(self, request_id: int, timeout_s: float) -> TxRequest:
        """Follow one request until it is final or `timeout_s` passes.

        A timeout is not a failure: the still-pending request is returned and keeps being followed by
        `poll()`. An unreachable node during the wait is logged and waited out likewise.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                changed = self._advance(
                    request_id, _ChainView(self.w3), grace_s=self.policy.unbroadcast_grace_s
                )
            except ChainUnavailableError as exc:
                _log.warning("tx wait: chain unavailable request=%s: %s", request_id, exc.message)
                changed = None
            if changed is not None and changed.status in FINAL_STATUSES:
                return changed
            request = self.get(request_id)
            remaining = deadline - time.monotonic()
            if request.status in FINAL_STATUSES or remaining <= 0:
                return request
            time.sleep(min(self.policy.wait_interval_s, remaining))

    def check(self, request_id: int) -> TxRequest | None:
        """Settle one request now if the chain already has its outcome (an automining node mines on
        receipt): its listeners hear of it at once instead of at the next poll. Never raises for an
        unreachable node (the poll follows the request as usual)."""
        try:
            return self._advance(request_id, _ChainView(self.w3), grace_s=self.policy.unbroadcast_grace_s)
        except ChainUnavailableError:
            return None

    def notify(self) -> None:
        """Something to follow now: a transaction was broadcast, or the chain has a new block. `run`
        polls at once instead of at its next interval (which is then only the fallback)."""
        self._poke.set()

    def run(self, stop: threading.Event, interval_s: float = 1.0) -> None:
        """Poll when notified (`notify`: a broadcast, a new block) and at least every `interval_s`,
        until `stop` is set. Meant for its own thread."""
        _log.info("tx sender loop started senders=%s interval_s=%s", ",".join(self._senders), interval_s)
        while not stop.is_set():
            self._poke.clear()  # before the pass: a notice during it makes the next pass start at once
            try:
                self.poll()
            except ChainUnavailableError as exc:
                _log.warning("tx poll skipped: %s", exc.message)
            except Exception:  # a supervisor loop: log it and go on; the next pass starts from the DB
                _log.exception("tx poll failed")
            if not stop.is_set():
                self._poke.wait(interval_s)
        _log.info("tx sender loop stopped")

    def reconcile(self) -> list[TxRequest]:
        """On start: meet every lane with the chain, then poll with no grace period.

        - Checks that the node serves `chain_id` (`ChainIdMismatchError` otherwise).
        - Creates missing lanes at the chain's `latest` nonce.
        - Chain nonce ≥ lane (another wallet used the key, `anvil_setNonce` raised it): the lane jumps
          to the chain's nonce. Pending requests below it are then settled by the poll: mined if one
          of their attempts has a receipt, else `dropped` once that has held for `drop_after_s`.
        - Chain nonce < lane (`anvil_setNonce` lowered it, the node was reset, a deep reorg): the lane
          does NOT move down — a (sender, nonce) is used once in the database, and re-using a nonce
          the relayer already spent could execute an old request a second time. Instead every nonce in
          between is made usable again: a pending request's recorded transaction is re-broadcast by
          the poll; a mined/failed request whose receipt the node no longer has goes back to pending
          (its recorded bytes are sent again, the chain never executed them); a nonce whose request is
          still on chain, was dropped, or has no request is filled with a 0-value self-transfer, so
          the requests above it are not stuck behind a gap. Fillers carry no payload and are not
          recorded; each is logged with its hash.
        - Then one poll over every pending request with no grace: attempts recorded but never
          broadcast (a crash between record and broadcast) are broadcast now.
        Returns the requests whose status changed.
        """
        with _rpc("eth_chainId"):
            actual = int(self.w3.eth.chain_id)
        if actual != self.chain_id:
            raise ChainIdMismatchError(self.chain_id, actual)
        self._lanes_ready = False
        self._ensure_lanes()
        view = _ChainView(self.w3)
        changed: list[TxRequest] = []
        fillers: list[tuple[ChecksumAddress, int]] = []
        for sender in self._senders:
            chain_nonce = view.nonce(sender)
            with self._sessions() as session, session.begin():
                lane_next = self._lock_lane(session, sender)
                rows = session.scalars(
                    select(TxRequest)
                    .where(
                        TxRequest.sender == sender,
                        TxRequest.nonce >= chain_nonce,
                        TxRequest.nonce < lane_next,
                    )
                    .options(selectinload(TxRequest.attempts))
                ).all()
                slots = {row.nonce: self._slot(row) for row in rows}
                plan = plan_lane_resync(lane_next, chain_nonce, slots)
                if plan.next_nonce != lane_next:
                    session.execute(
                        update(SenderLane)
                        .where(SenderLane.sender == sender)
                        .values(next_nonce=plan.next_nonce)
                        .execution_options(synchronize_session=False)
                    )
                    _log.warning(
                        "tx lane resynced sender=%s from=%s to=%s chain_nonce=%s",
                        sender,
                        lane_next,
                        plan.next_nonce,
                        chain_nonce,
                    )
                for row in rows:
                    if row.nonce in plan.reopen:
                        self._reopen(row, f"the chain no longer has transaction {row.mined_hash}")
                        changed.append(row)
                fillers += [(sender, nonce) for nonce in plan.fill]
        if fillers:
            self._send_fillers(fillers, view.next_base_fee())
        changed += self._poll(grace_s=0.0)
        return changed

    # ------------------------------------------------------------------ one request, one step

    def _poll(self, grace_s: float) -> list[TxRequest]:
        view = _ChainView(self.w3)
        changed = self._check_reorgs(view)
        with self._sessions() as session:
            ids = session.scalars(
                select(TxRequest.id)
                .where(TxRequest.status == PENDING)
                .order_by(TxRequest.sender, TxRequest.nonce)
            ).all()
        for request_id in ids:
            try:
                request = self._advance(request_id, view, grace_s)
            except SQLAlchemyError:
                _log.exception("tx poll: request=%s could not be updated; next pass retries", request_id)
                continue
            if request is not None:
                changed.append(request)
        self._lift_lanes(view)
        return changed

    def _advance(self, request_id: int, view: _ChainView, grace_s: float) -> TxRequest | None:
        """Settle one pending request against the chain, then send what it needs sent, if anything."""
        with self._request_lock(request_id):
            changed, outgoing, bumped = self._settle(request_id, view, grace_s)
            if outgoing is not None:
                self._send(outgoing, bump_if_fee_too_low=not bumped)
        if changed is not None and changed.status in FINAL_STATUSES:
            self._settled(request_id)
        return changed

    def _settled(self, request_id: int) -> None:
        for listener in self._listeners:
            try:
                listener(request_id)
            except Exception:  # a listener's failure is its own: the request is settled and recorded
                _log.exception("tx settled listener failed request=%s", request_id)

    def _settle(
        self, request_id: int, view: _ChainView, grace_s: float
    ) -> tuple[TxRequest | None, _Outgoing | None, bool]:
        """(the request if its status changed, an attempt to send after commit, whether it is a bump)."""
        with self._sessions() as session, session.begin():
            request = session.scalars(
                select(TxRequest)
                .where(TxRequest.id == request_id, TxRequest.status == PENDING)
                .with_for_update(skip_locked=True)
            ).first()
            if request is None:
                return None, None, False  # settled already, or another process holds it right now
            chain_nonce = view.nonce(self._address(request.sender))  # read BEFORE the receipts
            receipts = self._receipts(request.attempts) if chain_nonce > request.nonce else []
            now = self._clock()
            if chain_nonce > request.nonce and not receipts:
                spent_since = self._spent_since.setdefault(request.id, now)
            else:
                spent_since = self._spent_since.pop(request.id, now)
            outcome = request_outcome(
                receipts,
                chain_nonce,
                request.nonce,
                spent_for_s=(now - spent_since).total_seconds(),
                drop_after_s=self.policy.drop_after_s,
            )
            if isinstance(outcome, Unconfirmed):
                if outcome.spent_for_s == 0:
                    _log.info(
                        "tx nonce spent, no receipt yet request=%s sender=%s nonce=%s chain_nonce=%s",
                        request.id,
                        request.sender,
                        request.nonce,
                        chain_nonce,
                    )
                return None, None, False
            if not isinstance(outcome, Pending):
                self._apply(request, outcome)
                return request, None, False
            newest = request.attempts[-1]
            if self._refused_recently(request.id):
                return None, None, False
            if newest.broadcast_at is None:
                if (now - _aware(newest.created_at)).total_seconds() >= grace_s:
                    _log.info(
                        "tx broadcasting recorded attempt request=%s hash=%s", request.id, newest.tx_hash
                    )
                    return None, _Outgoing.of(newest), False
                return None, None, False
            if self._is_stuck(newest, view, now):
                bump = self._record_bump(request, view.next_base_fee())
                if bump is not None:
                    session.flush()
                    return None, _Outgoing.of(bump), True
            if not self._node_knows(newest.tx_hash):
                _log.warning(
                    "tx unknown to the node, re-broadcasting request=%s nonce=%s hash=%s",
                    request.id,
                    request.nonce,
                    newest.tx_hash,
                )
                return None, _Outgoing.of(newest), False
            return None, None, False

    def _refused_recently(self, request_id: int) -> bool:
        refused = self._rejected_at.get(request_id)
        return refused is not None and time.monotonic() - refused < self.policy.rejected_retry_s

    def _apply(self, request: TxRequest, outcome: Outcome) -> None:
        if isinstance(outcome, Mined | Failed):
            receipt = outcome.receipt
            request.status = MINED if isinstance(outcome, Mined) else FAILED
            request.mined_hash = receipt.tx_hash
            request.block_number = receipt.block_number
            request.block_hash = receipt.block_hash
            request.gas_used = receipt.gas_used
            request.error = outcome.reason if isinstance(outcome, Failed) else None
            if self._newest_recorded is None or receipt.block_number >= self._newest_recorded[0]:
                self._newest_recorded = (receipt.block_number, receipt.block_hash)
        elif isinstance(outcome, Dropped):
            request.status = DROPPED
            request.error = outcome.reason
        self._spent_since.pop(request.id, None)
        self._rejected_at.pop(request.id, None)
        for attempt in request.attempts:
            self._first_seen_block.pop(attempt.tx_hash, None)
        log = _log.info if request.status == MINED else _log.warning
        log(
            "tx %s request=%s sender=%s nonce=%s hash=%s block=%s attempts=%s reason=%s",
            request.status,
            request.id,
            request.sender,
            request.nonce,
            request.mined_hash,
            request.block_number,
            len(request.attempts),
            request.error,
        )

    def _reopen(self, request: TxRequest, reason: str) -> None:
        _log.warning(
            "tx back to pending request=%s nonce=%s hash=%s block=%s: %s",
            request.id,
            request.nonce,
            request.mined_hash,
            request.block_number,
            reason,
        )
        request.status = PENDING
        request.mined_hash = None
        request.block_number = None
        request.block_hash = None
        request.gas_used = None
        request.error = reason

    # ------------------------------------------------------------------ broadcasting

    def _send(self, outgoing: _Outgoing, bump_if_fee_too_low: bool) -> TxRequest | None:
        """Broadcast a recorded attempt and record the verdict; the request as it now stands.

        Raises nothing: the attempt is already recorded, so if the verdict or an immediate bump
        cannot be written (database or node trouble), `poll()` redoes the step later. `None` then.
        """
        try:
            return self._send_and_record(outgoing, bump_if_fee_too_low)
        except (SQLAlchemyError, ChainUnavailableError):
            _log.exception(
                "tx sent but its outcome not recorded request=%s hash=%s; poll() follows it",
                outgoing.request_id,
                outgoing.tx_hash,
            )
            return None

    def _send_and_record(self, outgoing: _Outgoing, bump_if_fee_too_low: bool) -> TxRequest | None:
        request_id, tx_hash = outgoing.request_id, outgoing.tx_hash
        verdict = self._broadcast_raw(HexStr(outgoing.raw_tx))
        now = self._clock()
        with self._sessions() as session, session.begin():
            request = session.scalars(
                select(TxRequest).where(TxRequest.id == request_id).options(selectinload(TxRequest.attempts))
            ).first()
            attempt = (
                next((a for a in request.attempts if a.id == outgoing.attempt_id), None) if request else None
            )
            if request is not None and attempt is not None:
                if isinstance(verdict, Rejected):
                    request.error = f"broadcast rejected: {verdict.reason}"
                else:
                    attempt.broadcast_at = attempt.broadcast_at or now
                    if isinstance(verdict, Accepted) and request.status == PENDING:
                        request.error = None
        if isinstance(verdict, Rejected) and not verdict.fee_too_low:
            self._rejected_at[request_id] = time.monotonic()
        else:
            self._rejected_at.pop(request_id, None)
        self._poke.set()  # followed from now on by the poll (an automining node has mined it already)
        if isinstance(verdict, Accepted):
            _log.info("tx broadcast request=%s hash=%s", request_id, tx_hash)
        elif isinstance(verdict, MaybeSent):
            _log.info(
                "tx maybe sent, following by hash request=%s hash=%s: %s", request_id, tx_hash, verdict.reason
            )
        else:
            _log.warning("tx broadcast rejected request=%s hash=%s: %s", request_id, tx_hash, verdict.reason)
            if verdict.fee_too_low and bump_if_fee_too_low:
                return self._bump_now(request_id) or request
        return request

    def _broadcast_raw(self, raw_tx: HexStr) -> BroadcastVerdict:
        try:
            self.w3.eth.send_raw_transaction(raw_tx)
        except Exception as exc:  # every answer maps to a verdict: the attempt is recorded, so "maybe
            return classify_broadcast_exception(exc)  # sent" is always a safe fallback (never a re-send)
        return Accepted()

    def _bump_now(self, request_id: int) -> TxRequest | None:
        base_fee = read_next_base_fee(self.w3)
        with self._sessions() as session, session.begin():
            request = session.scalars(
                select(TxRequest)
                .where(TxRequest.id == request_id, TxRequest.status == PENDING)
                .with_for_update(skip_locked=True)
            ).first()
            bump = self._record_bump(request, base_fee) if request is not None else None
            if bump is not None:
                session.flush()
            outgoing = _Outgoing.of(bump) if bump is not None else None
        if outgoing is None:
            return None
        return self._send(outgoing, bump_if_fee_too_low=False)

    def _record_bump(self, request: TxRequest, base_fee: int) -> TxAttempt | None:
        account = self._accounts.get(self._address(request.sender))
        newest = request.attempts[-1]
        if account is None:
            _log.warning(
                "tx stuck but its key is not configured request=%s sender=%s", request.id, request.sender
            )
            return None
        current = Fees(newest.max_fee_per_gas, newest.max_priority_fee_per_gas)
        fees = next_fees(current, base_fee, self.fees)
        if isinstance(fees, AtCap):
            _log.warning(
                "tx stuck at the fee cap request=%s nonce=%s max_fee=%s cap=%s",
                request.id,
                request.nonce,
                current.max_fee_per_gas,
                fees.cap_wei,
            )
            return None
        attempt = self._sign(account, request, fees, self._clock())
        request.attempts.append(attempt)
        _log.info(
            "tx fee bump request=%s nonce=%s hash=%s max_fee=%s->%s tip=%s->%s base_fee=%s",
            request.id,
            request.nonce,
            attempt.tx_hash,
            current.max_fee_per_gas,
            fees.max_fee_per_gas,
            current.max_priority_fee_per_gas,
            fees.max_priority_fee_per_gas,
            base_fee,
        )
        return attempt

    def _send_fillers(self, fillers: Sequence[tuple[ChecksumAddress, int]], base_fee: int) -> None:
        fees = initial_fees(base_fee, self.fees)
        for sender, nonce in fillers:
            signed = self._accounts[sender].sign_transaction(
                {
                    "type": 2,
                    "chainId": self.chain_id,
                    "nonce": nonce,
                    "to": sender,
                    "value": 0,
                    "data": b"",
                    "gas": FILLER_GAS,
                    "maxFeePerGas": fees.max_fee_per_gas,
                    "maxPriorityFeePerGas": fees.max_priority_fee_per_gas,
                }
            )
            verdict = self._broadcast_raw(HexStr(_hex(signed.raw_transaction)))
            _log.warning(
                "tx nonce gap filled with a no-op sender=%s nonce=%s hash=%s verdict=%s",
                sender,
                nonce,
                _hex(signed.hash),
                verdict,
            )

    # ------------------------------------------------------------------ chain reads

    def _receipts(self, attempts: Sequence[TxAttempt]) -> list[ReceiptView]:
        """The receipt of whichever attempt was mined (newest first; one nonce mines at most once)."""
        for attempt in reversed(attempts):
            receipt = rpc.call(self.w3, "eth_getTransactionReceipt", [attempt.tx_hash])
            if receipt is not None:
                return [_receipt_view(receipt)]
        return []

    def _node_knows(self, tx_hash: str) -> bool:
        return rpc.call(self.w3, "eth_getTransactionByHash", [tx_hash]) is not None

    def _is_stuck(self, attempt: TxAttempt, view: _ChainView, now: datetime) -> bool:
        policy = self.policy
        since = attempt.broadcast_at or attempt.created_at
        age_s = (now - _aware(since)).total_seconds()
        blocks_waited: int | None = None
        if policy.stuck_after_blocks is not None:
            head = view.latest_block()
            blocks_waited = head - self._first_seen_block.setdefault(attempt.tx_hash, head)
        return is_stuck(age_s, blocks_waited, policy.stuck_after_s, policy.stuck_after_blocks)

    def _check_reorgs(self, view: _ChainView) -> list[TxRequest]:
        """Reopens mined/failed requests whose block left the canonical chain.

        With `confirmation_depth` > 0 every recorded block that close to the head is re-checked. At any
        depth (0 included) the chain can also go backwards as a whole — a node restarted from an older
        state file (Anvil killed), `anvil_rollback`, `anvil_reorg`. Two tripwires, each a block read
        at most: the head the previous pass saw, and the newest block this process recorded a receipt
        from (blocks are hash-chained, so if that one is canonical so is everything below it). When
        either is no longer canonical, the recorded blocks (every process's) are walked down, newest
        first, until one is, and everything above it is reopened and sent again. The first pass of a
        process always walks: it cannot know what happened while it was down.
        """
        # Raw JSON-RPC (hex strings): web3's formatting of a whole block cost more than the rest of a
        # pass that finds nothing to do.
        latest = rpc.call(self.w3, "eth_getBlockByNumber", ["latest", False])
        head, head_hash = int(latest["number"], 16), str(latest["hash"]).lower()
        canonical: dict[int, str | None] = {head: head_hash}

        def on_chain(number: int, block_hash: str | None) -> bool:
            if number not in canonical:
                canonical[number] = self._canonical_hash(number, head)
            return canonical[number] == block_hash

        seen, newest = self._head_seen, self._newest_recorded
        walk = seen is None or not on_chain(*seen) or (newest is not None and not on_chain(*newest))
        mined = select(TxRequest.id, TxRequest.block_number, TxRequest.block_hash).where(
            TxRequest.status.in_((MINED, FAILED)), TxRequest.block_number.is_not(None)
        )
        gone: dict[int, tuple[int, str | None]] = {}
        with self._sessions() as session:
            depth = self.policy.confirmation_depth
            if depth > 0:
                for request_id, number, block_hash in _numbered(
                    session.execute(mined.where(TxRequest.block_number > head - depth)).all()
                ):
                    if not on_chain(number, block_hash):
                        gone[request_id] = (number, block_hash)
            newest_first = mined.order_by(TxRequest.block_number.desc(), TxRequest.id.desc())
            offset = 0
            while walk:
                batch = _numbered(session.execute(newest_first.offset(offset).limit(_REORG_BATCH)).all())
                reached = next((i for i, row in enumerate(batch) if on_chain(row[1], row[2])), None)
                for request_id, number, block_hash in batch[:reached]:
                    gone[request_id] = (number, block_hash)
                if reached is not None or len(batch) < _REORG_BATCH:
                    break
                offset += len(batch)
        changed: list[TxRequest] = []
        for request_id, (number, block_hash) in gone.items():
            with self._sessions() as session, session.begin():
                request = session.scalars(
                    select(TxRequest)
                    .where(TxRequest.id == request_id, TxRequest.block_hash == block_hash)
                    .with_for_update()
                ).first()
                if request is not None:
                    self._reopen(request, f"block {number} ({block_hash}) left the canonical chain")
                    changed.append(request)
        self._head_seen = (head, head_hash)
        return changed

    def _canonical_hash(self, number: int, head: int) -> str | None:
        if number > head:
            return None
        block = rpc.call(self.w3, "eth_getBlockByNumber", [hex(number), False])
        return str(block["hash"]).lower() if block is not None else None

    def _slot(self, request: TxRequest) -> Slot:
        if request.status == PENDING:
            return Slot.PENDING
        if request.status in (MINED, FAILED) and request.mined_hash:
            try:
                with _rpc("eth_getTransactionReceipt"):
                    self.w3.eth.get_transaction_receipt(HexStr(request.mined_hash))
            except TransactionNotFound:
                return Slot.LOST
            return Slot.ON_CHAIN
        return Slot.FREE

    # ------------------------------------------------------------------ lanes

    def _ensure_lanes(self) -> None:
        """Create each key's lane at the chain's `latest` nonce if it does not exist yet."""
        if self._lanes_ready:
            return
        with self._lanes_lock:
            if self._lanes_ready:
                return
            for sender in self._senders:
                with self._sessions() as session:
                    if session.get(SenderLane, sender) is not None:
                        continue
                    with _rpc("eth_getTransactionCount"):
                        chain_nonce = int(self.w3.eth.get_transaction_count(sender, "latest"))
                    session.add(SenderLane(sender=sender, next_nonce=chain_nonce))
                    try:
                        session.commit()
                    except IntegrityError:  # another process created it first: theirs stands
                        session.rollback()
                        continue
                    _log.info("tx lane created sender=%s next_nonce=%s", sender, chain_nonce)
            self._lanes_ready = True

    def _pick_lane(self, session: Session) -> ChecksumAddress:
        if len(self._senders) == 1:
            return self._senders[0]
        rows = session.execute(
            select(TxRequest.sender, func.count())
            .where(TxRequest.status == PENDING, TxRequest.sender.in_(self._senders))
            .group_by(TxRequest.sender)
        ).all()
        counts = {sender: int(count) for sender, count in rows}
        chosen = pick_lane(counts, self._senders, next(self._turns))
        return self._address(chosen)

    @staticmethod
    def _allocate_nonce(session: Session, sender: str) -> int:
        """Take the lane's next nonce. The UPDATE locks the lane until the caller's commit."""
        next_nonce = session.execute(
            update(SenderLane)
            .where(SenderLane.sender == sender)
            .values(next_nonce=SenderLane.next_nonce + 1)
            .returning(SenderLane.next_nonce)
            .execution_options(synchronize_session=False)
        ).scalar_one()
        return int(next_nonce) - 1

    @staticmethod
    def _lock_lane(session: Session, sender: str) -> int:
        """Lock the lane (a no-op UPDATE: a row lock on PostgreSQL, the write lock on SQLite)."""
        next_nonce = session.execute(
            update(SenderLane)
            .where(SenderLane.sender == sender)
            .values(next_nonce=SenderLane.next_nonce)
            .returning(SenderLane.next_nonce)
            .execution_options(synchronize_session=False)
        ).scalar_one()
        return int(next_nonce)

    def _lift_lanes(self, view: _ChainView) -> None:
        """A lane the chain has moved past (the key was used elsewhere) jumps to the chain's nonce."""
        for sender in self._senders:
            chain_nonce = view.nonce(sender)
            # A lane never moves down: once read at or above the chain's nonce, no need to read it again.
            if chain_nonce <= self._lane_seen.get(sender, -1):
                continue
            with self._sessions() as session:
                lane = session.get(SenderLane, sender)
                if lane is None:
                    continue
                if lane.next_nonce >= chain_nonce:
                    self._lane_seen[sender] = lane.next_nonce
                    continue
            with self._sessions() as session, session.begin():
                lifted = session.execute(
                    update(SenderLane)
                    .where(SenderLane.sender == sender, SenderLane.next_nonce < chain_nonce)
                    .values(next_nonce=chain_nonce)
                    .execution_options(synchronize_session=False)
                )
            if lifted.rowcount:  # type: ignore[attr-defined]
                _log.warning(
                    "tx lane lifted to the chain's nonce sender=%s next_nonce=%s", sender, chain_nonce
                )

    # ------------------------------------------------------------------ helpers

    def _recent_base_fee(self) -> int:
        """The next base fee, read at most `base_fee_max_age_s` ago (first offers only)."""
        max_age_s = self.policy.base_fee_max_age_s
        with self._base_fee_lock:
            cached = self._base_fee_cache
            if cached is not None and time.monotonic() - cached[0] < max_age_s:
                return cached[1]
        base_fee = read_next_base_fee(self.w3)
        with self._base_fee_lock:
            self._base_fee_cache = (time.monotonic(), base_fee)
        return base_fee

    def _validate(self, to: str, data: bytes, gas_limit: int, purpose: str) -> ChecksumAddress:
        if not Web3.is_address(to):
            raise ValueError(f"not an address: {to!r}")
        if not 0 < len(purpose) <= PURPOSE_MAX_LEN:
            raise ValueError(f"purpose must be 1–{PURPOSE_MAX_LEN} characters")
        floor = intrinsic_gas(data)
        if gas_limit < floor:
            raise ValueError(f"gas_limit {gas_limit} is below the intrinsic gas {floor} of this call")
        return Web3.to_checksum_address(to)

    def _sign(self, account: LocalAccount, request: TxRequest, fees: Fees, now: datetime) -> TxAttempt:
        signed = account.sign_transaction(
            {
                "type": 2,
                "chainId": self.chain_id,
                "nonce": request.nonce,
                "to": self._address(request.to),
                "value": 0,
                "data": HexStr(request.data),
                "gas": request.gas_limit,
                "maxFeePerGas": fees.max_fee_per_gas,
                "maxPriorityFeePerGas": fees.max_priority_fee_per_gas,
            }
        )
        return TxAttempt(
            tx_hash=_hex(signed.hash),
            raw_tx=_hex(signed.raw_transaction),
            max_fee_per_gas=fees.max_fee_per_gas,
            max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
            broadcast_at=None,
            created_at=now,
        )

    @staticmethod
    def _address(sender: str) -> ChecksumAddress:
        return checksum(sender)  # cached: every poll checksums each pending request's sender

    def _request_lock(self, request_id: int) -> threading.Lock:
        return self._request_locks[request_id % _LOCK_STRIPES]
