"""The intent pipeline's decisions, as pure functions (the I/O around them is in `dispatcher` and
`finalize`). Each is tested case by case in tests/unit/intents/test_decisions.py.

- `dispatch_step`: what to do with an agent's queue of waiting intents — send a run of consecutive
  nonces, wait, or close the first one (its nonce was spent elsewhere, or its predecessor closed).
- `plan_batch`: which runs go into the next transaction, bounded by items and gas.
- `screen`: after simulating a batch, which items stay and which are rejected (and why).
- `settle_item`: an item's outcome once its transaction is final.
- `hold_on_exits`: an agent's intents on a position a keeper exit is in flight for wait for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from relayer.intents.lifecycle import CLOSED, IntentState

# What one item may cost, before its batch is simulated (the simulation then measures it): the
# router's figures (bench/gas.md) with room to spare. Used only to bound a batch's size.
GAS_BUDGET_BY_TYPE: Final[Mapping[str, int]] = {
    "OpenPosition": 260_000,
    "AddToPosition": 170_000,
    "ReducePosition": 170_000,
    "UpdateExitLadder": 110_000,
}


# ---------------------------------------------------------------------- dispatch_step


@dataclass(frozen=True)
class AgentQueue:
    """One agent's waiting intents and what is known of its nonce."""

    agent_id: int
    waiting: tuple[int, ...]  # nonces of `received` intents not in a transaction yet, ascending
    chain_next: int  # the router's next nonce, as this process's view of the chain has it
    in_flight: bool  # some intent of the agent is in a transaction that is not final yet
    max_confirmed: int | None  # its highest confirmed nonce (may be ahead of the view: not indexed yet)


@dataclass(frozen=True)
class Send:
    nonces: tuple[int, ...]  # consecutive, starting at the agent's next nonce


@dataclass(frozen=True)
class Wait:
    why: str


@dataclass(frozen=True)
class Spent:
    """The chain is past this waiting intent's nonce: it was relayed by someone else, or another
    intent used the nonce. The finalizer looks up which."""

    nonce: int


@dataclass(frozen=True)
class Gap:
    """The first waiting nonce is beyond the next one: fine while its predecessor is live; if the
    predecessor was closed it can never be mined (see `gap_step`)."""

    nonce: int
    next_nonce: int


DispatchStep = Send | Wait | Spent | Gap


def next_nonce(q: AgentQueue) -> int:
    """The nonce the agent's next transaction uses: the view's, or past what was confirmed since."""
    if q.max_confirmed is None:
        return q.chain_next
    return max(q.chain_next, q.max_confirmed + 1)


def dispatch_step(q: AgentQueue) -> DispatchStep:
    if not q.waiting:
        return Wait("nothing waiting")
    first = q.waiting[0]
    expected = next_nonce(q)
    if first < expected:
        return Spent(first)
    if q.in_flight:
        return Wait("an earlier intent of the agent is in a transaction")
    if first > expected:
        return Gap(first, expected)
    run = [first]
    for nonce in q.waiting[1:]:
        if nonce != run[-1] + 1:
            break
        run.append(nonce)
    return Send(tuple(run))


@dataclass(frozen=True)
class Orphaned:
    predecessor_id: int
    predecessor_state: IntentState


def gap_step(predecessor: tuple[int, IntentState] | None, live_between: bool) -> Orphaned | Wait:
    """A waiting intent beyond the next nonce: orphaned once the intent holding the nonce before it
    was closed and nothing live holds a nonce in between, otherwise it waits its turn — behind a
    predecessor pending approval exactly as behind one in a transaction."""
    if live_between:
        return Wait("an earlier nonce is held by a live intent")
    if predecessor is not None and predecessor[1] is IntentState.PENDING_APPROVAL:
        return Wait("the predecessor intent is pending approval")
    if predecessor is not None and predecessor[1] in CLOSED:
        return Orphaned(predecessor[0], predecessor[1])
    return Wait("the predecessor nonce is not closed")


# ---------------------------------------------------------------------- plan_batch


@dataclass(frozen=True)
class Candidate:
    intent_id: int
    agent_id: int
    nonce: int
    primary_type: str
    position_id: int | None = None  # the position it acts on (None: an open)

    @property
    def gas_budget(self) -> int:
        return GAS_BUDGET_BY_TYPE.get(self.primary_type, max(GAS_BUDGET_BY_TYPE.values()))


def plan_batch(runs: Sequence[Sequence[Candidate]], *, max_items: int, max_gas: int) -> list[Candidate]:
    """The next transaction's items: whole runs (an agent's consecutive nonces) in the order given
    (oldest first), a run cut short rather than skipped once a bound is reached, never reordered
    within an agent. At least one item, whatever its budget."""
    chosen: list[Candidate] = []
    gas = 0
    for run in runs:
        for c in run:
            if chosen and (len(chosen) >= max_items or gas + c.gas_budget > max_gas):
                return chosen
            chosen.append(c)
            gas += c.gas_budget
    return chosen


# ---------------------------------------------------------------------- screen


@dataclass(frozen=True)
class Refused:
    """The item's own revert data: rejected with the router's reason."""

    revert: bytes


@dataclass(frozen=True)
class BehindRefused:
    """An earlier item of the same agent in the batch was refused, so this one's nonce cannot be next."""

    predecessor: Candidate


Drop = Refused | BehindRefused


def screen(
    items: Sequence[Candidate], results: Sequence[bytes]
) -> tuple[list[Candidate], list[tuple[Candidate, Drop]]]:
    """Split a simulated batch into the items to send and the items to reject. A refused item changes
    nothing on chain, so the others' results stand without it — except an agent's later items, which
    needed its nonce."""
    if len(items) != len(results):
        raise ValueError(f"{len(results)} results for {len(items)} items")
    keep: list[Candidate] = []
    drop: list[tuple[Candidate, Drop]] = []
    refused_agent: dict[int, Candidate] = {}
    for item, result in zip(items, results, strict=True):
        earlier = refused_agent.get(item.agent_id)
        if earlier is not None:
            drop.append((item, BehindRefused(earlier)))
        elif result:
            refused_agent[item.agent_id] = item
            drop.append((item, Refused(bytes(result))))
        else:
            keep.append(item)
    return keep, drop


# ---------------------------------------------------------------------- settle_item


class TxOutcome:
    MINED = "mined"
    FAILED = "failed"  # reverted as a whole
    DROPPED = "dropped"


@dataclass(frozen=True)
class Confirm:
    tx_hash: str


@dataclass(frozen=True)
class Fail:
    reason: str
    revert: bytes | None = None


@dataclass(frozen=True)
class LookUpNonce:
    """Not executed by our transaction: whether the intent executed anyway (someone relayed it first)
    is for the chain's NonceUsed index to tell; `otherwise` is the outcome if it did not."""

    otherwise: Fail


Settle = Confirm | Fail | LookUpNonce


@dataclass(frozen=True)
class ItemEvidence:
    """What the mined transaction's receipt says about one item."""

    nonce_used: bool  # a NonceUsed with this intent's digest
    failed_with: bytes | None  # an IntentFailed with this intent's digest: its revert data


def settle_item(
    tx_status: str, tx_hash: str | None, evidence: ItemEvidence, drop_error: str | None = None
) -> Settle:
    """An intent's outcome once its transaction is final. `evidence` is what the receipt says of the
    item (nothing, for a transaction that did not get mined)."""
    if tx_status == TxOutcome.MINED and tx_hash is not None:
        if evidence.nonce_used:
            return Confirm(tx_hash)
        if evidence.failed_with is not None:
            return LookUpNonce(Fail(f"its item in the batch {tx_hash} failed", evidence.failed_with))
        return LookUpNonce(Fail(f"the transaction {tx_hash} did not execute it"))
    if tx_status == TxOutcome.FAILED:
        return LookUpNonce(Fail(f"the transaction reverted on chain ({tx_hash})"))
    if tx_status == TxOutcome.DROPPED:
        return LookUpNonce(Fail(f"the transaction was dropped: {drop_error or 'nonce consumed'}"))
    raise ValueError(f"not a final transaction status: {tx_status!r}")


# ---------------------------------------------------------------------- hold_on_exits


@dataclass(frozen=True)
class HeldForExit:
    """An intent on a position a keeper exit is in flight for: it stays `received` (and with it the
    agent's later nonces) until the exit settles, instead of racing it and reverting."""

    candidate: Candidate
    position_id: int


def hold_on_exits(
    run: Sequence[Candidate], exits_in_flight: frozenset[int]
) -> tuple[list[Candidate], HeldForExit | None]:
    """Cut an agent's run of consecutive nonces at its first intent on a position with an exit in
    flight. The items before it go; it and the agent's later items wait (their nonces come after it)."""
    for index, c in enumerate(run):
        if c.position_id is not None and c.position_id in exits_in_flight:
            return list(run[:index]), HeldForExit(c, c.position_id)
    return list(run), None
