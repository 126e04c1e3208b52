"""The sender's risky decisions as pure functions with named cases; `TxSender` does the I/O around them.

Nothing here talks to a node or a database, so every case is tested on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final

from web3.exceptions import RequestTimedOut, Web3RPCError

# ---------------------------------------------------------------------- broadcast verdicts


@dataclass(frozen=True)
class Accepted:
    """The node answered with the transaction's hash."""


@dataclass(frozen=True)
class MaybeSent:
    """The transaction may be in a pool or mined (ours, a retry of ours, or a rival at its nonce).

    Never re-allocate its nonce, never sign it again under a new nonce: follow it by hash.
    """

    reason: str


@dataclass(frozen=True)
class Rejected:
    """The node refused this signed transaction; it is in no pool. The request keeps its nonce."""

    reason: str
    fee_too_low: bool = False


BroadcastVerdict = Accepted | MaybeSent | Rejected

# Lower-cased fragments of node messages (geth, erigon, nethermind, besu, reth, anvil). Order matters:
# "replacement transaction underpriced" must be read as MAYBE_SENT before "underpriced" as a fee.
_MAYBE_SENT: Final[tuple[tuple[str, str], ...]] = (
    ("already known", "already known"),  # geth, reth
    ("already imported", "already known"),  # anvil: "transaction already imported"
    ("alreadyknown", "already known"),  # nethermind
    ("known transaction", "already known"),  # openethereum, besu
    ("already in mempool", "already known"),
    ("already exists", "already known"),
    ("nonce too low", "nonce too low"),  # geth, anvil: the nonce is used — perhaps by this very tx
    ("nonce is too low", "nonce too low"),
    ("oldnonce", "nonce too low"),  # nethermind
    ("replacement transaction underpriced", "nonce occupied in the pool"),
    ("replacement underpriced", "nonce occupied in the pool"),
    ("replacement_underpriced", "nonce occupied in the pool"),
)
_FEE_TOO_LOW: Final[tuple[str, ...]] = (
    "less than block base fee",  # geth, anvil: "max fee per gas less than block base fee"
    "fee cap less than",
    "feecap too low",
    "feetoolow",
    "fee too low",
    "underpriced",  # "transaction underpriced": below the node's minimum tip
    "gas price too low",
    "max fee per gas less than",
)
_REJECTED: Final[tuple[str, ...]] = (
    "insufficient funds",
    "intrinsic gas too low",
    "exceeds block gas limit",
    "gas limit reached",
    "invalid sender",
    "invalid chain id",
    "tip higher than fee cap",
    "max priority fee per gas higher than max fee per gas",
    "oversized data",
    "txpool is full",
    "nonce too high",
    "invalid transaction",
)


def classify_broadcast_error(message: str) -> MaybeSent | Rejected:
    """What a node's `eth_sendRawTransaction` error means for the request.

    Cases:
    - ALREADY_KNOWN ("already known", anvil's "transaction already imported"): an earlier send of
      these very bytes got through (a retry after a lost response) → `MaybeSent`.
    - NONCE_TOO_LOW: the nonce is used on chain — by this transaction, another attempt of the same
      request, or a rival → `MaybeSent`; receipts by hash decide mined vs dropped.
    - REPLACEMENT_UNDERPRICED: another transaction holds the nonce in the pool → `MaybeSent`.
    - FEE_TOO_LOW ("max fee per gas less than block base fee", "transaction underpriced") →
      `Rejected(fee_too_low=True)`: bump and send again.
    - REJECTED (insufficient funds, intrinsic gas, …) → `Rejected`: keep the nonce, retry later.
    - UNKNOWN → `MaybeSent`: an unrecognised answer must never lead to a second send under a new
      nonce; following by hash (and re-broadcasting what the node does not know) is always safe.
    """
    text = message.lower()
    for fragment, reason in _MAYBE_SENT:
        if fragment in text:
            return MaybeSent(reason=f"{reason}: {message}")
    if any(fragment in text for fragment in _FEE_TOO_LOW):
        return Rejected(reason=message, fee_too_low=True)
    if any(fragment in text for fragment in _REJECTED):
        return Rejected(reason=message)
    return MaybeSent(reason=f"unrecognised node answer: {message}")


def rpc_error_message(exc: Web3RPCError) -> str:
    """The node's own message out of web3's error (which wraps the whole JSON-RPC error object)."""
    response = exc.rpc_response
    if isinstance(response, Mapping):
        error = response.get("error")
        if isinstance(error, Mapping) and isinstance(error.get("message"), str):
            return str(error["message"])
    return str(exc.message)


def classify_broadcast_exception(exc: BaseException) -> MaybeSent | Rejected:
    """Any exception out of a broadcast → a verdict. Transport failures are `MaybeSent`.

    Cases: TIMEOUT (`RequestTimedOut`, `TimeoutError`, requests' `Timeout`, all `OSError`s) and
    CONNECTION_RESET (`ConnectionError`, requests' `ConnectionError`) → `MaybeSent` (the node may
    have taken it before the line dropped); an RPC error → `classify_broadcast_error` of its message;
    anything else → `MaybeSent` (the attempt is recorded; following it by hash is always safe).
    """
    if isinstance(exc, RequestTimedOut):
        return MaybeSent(reason=f"timeout: {exc}")
    if isinstance(exc, Web3RPCError):
        return classify_broadcast_error(rpc_error_message(exc))
    if isinstance(exc, OSError):  # requests' exceptions are IOErrors; so are socket resets and timeouts
        return MaybeSent(reason=f"transport: {type(exc).__name__}: {exc}")
    return MaybeSent(reason=f"unexpected {type(exc).__name__}: {exc}")


# ---------------------------------------------------------------------- request outcome


@dataclass(frozen=True)
class ReceiptView:
    """The fields of a receipt the sender keeps."""

    tx_hash: str
    status: int
    block_number: int
    block_hash: str
    gas_used: int


@dataclass(frozen=True)
class Mined:
    receipt: ReceiptView


@dataclass(frozen=True)
class Failed:
    receipt: ReceiptView
    reason: str


@dataclass(frozen=True)
class Dropped:
    reason: str


@dataclass(frozen=True)
class Unconfirmed:
    """The nonce is spent but no attempt's receipt is visible yet: send nothing, look again."""

    spent_for_s: float


@dataclass(frozen=True)
class Pending:
    pass


Outcome = Mined | Failed | Dropped | Unconfirmed | Pending


def request_outcome(
    receipts: Sequence[ReceiptView],
    chain_nonce: int,
    request_nonce: int,
    spent_for_s: float = 0.0,
    drop_after_s: float = 0.0,
) -> Outcome:
    """Where a request stands, from the receipts of its attempts' hashes and its sender's nonce.

    Precondition: `chain_nonce` (the sender's `latest` transaction count) was read BEFORE the
    receipts were looked up; otherwise an attempt mined in between would look dropped.
    `spent_for_s`: how long the nonce has been seen spent with no receipt (0 the first time).

    Cases:
    - MINED: an attempt has a receipt with status 1 (one nonce, so at most one attempt mines).
    - FAILED: an attempt has a receipt with status 0: it reverted and its nonce is spent.
    - NONCE_SPENT_UNCONFIRMED: no receipt, the chain's nonce is past the request's, for less than
      `drop_after_s` → `Unconfirmed`. A node can show an account's new nonce a moment before the
      receipts of the block that spent it (Anvil commits state before it stores the block; behind a
      load balancer the nonce and the receipt may come from different nodes): never conclude
      "dropped" from one look.
    - DROPPED: the same for `drop_after_s` or longer: some other transaction consumed the nonce, so
      none of the attempts can ever be mined.
    - PENDING: no receipt and the nonce is still ahead of the chain.
    """
    if receipts:
        receipt = receipts[0]
        if receipt.status == 1:
            return Mined(receipt)
        return Failed(receipt, reason=f"reverted on chain in block {receipt.block_number}")
    if chain_nonce > request_nonce:
        if spent_for_s < drop_after_s:
            return Unconfirmed(spent_for_s=spent_for_s)
        return Dropped(
            reason=(
                f"nonce {request_nonce} was consumed by another transaction "
                f"(chain nonce {chain_nonce}, none of the request's attempts was mined "
                f"in {spent_for_s:.0f}s)"
            )
        )
    return Pending()


# ---------------------------------------------------------------------- stuck, lanes


def is_stuck(
    age_s: float, blocks_waited: int | None, stuck_after_s: float | None, stuck_after_blocks: int | None
) -> bool:
    """Whether an attempt has waited long enough to be replaced by a fee bump.

    Cases: TOO_OLD (age ≥ `stuck_after_s`), TOO_MANY_BLOCKS (≥ `stuck_after_blocks` blocks since it
    was first seen broadcast), FRESH (neither). A threshold set to `None` is not checked; an unknown
    block count (`None`, e.g. right after a restart) never counts as stuck by blocks.
    """
    if stuck_after_s is not None and age_s >= stuck_after_s:
        return True
    if stuck_after_blocks is None or blocks_waited is None:
        return False
    return blocks_waited >= stuck_after_blocks


def pick_lane(pending_by_sender: Mapping[str, int], senders: Sequence[str], turn: int) -> str:
    """The lane for a new request: the sender with the fewest pending requests.

    Cases: LEAST_LOADED wins; TIE → rotate among the tied senders by `turn`, so a burst that reads the
    same counts still spreads across keys.
    """
    if not senders:
        raise ValueError("no sender keys")
    fewest = min(pending_by_sender.get(s, 0) for s in senders)
    tied = [s for s in senders if pending_by_sender.get(s, 0) == fewest]
    return tied[turn % len(tied)]


class Slot(Enum):
    """What the database knows about one nonce of a lane that the chain says is still unused."""

    PENDING = "pending"  # a pending request holds it: leave it, it will be (re)broadcast
    ON_CHAIN = "on_chain"  # a mined/failed request whose receipt the node still has: the nonce was rewound
    LOST = "lost"  # a mined/failed request whose receipt is gone: the chain forgot it (reset, deep reorg)
    FREE = "free"  # no request, or a dropped one


@dataclass(frozen=True)
class LaneResync:
    next_nonce: int
    fill: tuple[int, ...] = ()
    reopen: tuple[int, ...] = ()


def plan_lane_resync(lane_next: int | None, chain_nonce: int, slots: Mapping[int, Slot]) -> LaneResync:
    """How a lane meets the chain on start (`reconcile`). `slots` covers [chain_nonce, lane_next).

    Cases:
    - NEW: no lane yet → start at the chain's nonce.
    - IN_STEP / CHAIN_AHEAD: chain nonce ≥ lane → jump to the chain's nonce (something else used the
      key, or `anvil_setNonce` raised it); pending requests below it resolve as mined or dropped.
    - CHAIN_BEHIND: chain nonce < lane. The lane never moves down — (sender, nonce) is unique in the
      database and reusing a nonce the relayer already spent could execute an old request twice.
      Instead each nonce in between is made usable again: PENDING is left to be rebroadcast, LOST is
      reopened (its recorded signed bytes are sent again: the chain never executed them), ON_CHAIN
      and FREE are filled with a no-op self-transfer so the requests above are not stuck behind a gap.
    """
    if lane_next is None or chain_nonce >= lane_next:
        return LaneResync(next_nonce=chain_nonce)
    fill: list[int] = []
    reopen: list[int] = []
    for nonce in range(chain_nonce, lane_next):
        slot = slots.get(nonce, Slot.FREE)
        if slot is Slot.LOST:
            reopen.append(nonce)
        elif slot is not Slot.PENDING:
            fill.append(nonce)
    return LaneResync(next_nonce=lane_next, fill=tuple(fill), reopen=tuple(reopen))


# ---------------------------------------------------------------------- validation

TX_BASE_GAS: Final = 21_000


def intrinsic_gas(data: Iterable[int]) -> int:
    """Gas a call transaction costs before executing anything: 21000 + 4 per zero, 16 per other byte."""
    return TX_BASE_GAS + sum(4 if b == 0 else 16 for b in data)
