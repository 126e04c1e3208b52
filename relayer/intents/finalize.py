"""Finalize: once a transaction is final, record each of its intents' outcomes — all of a batch's in one
database transaction — from the receipt's per-item events (`decisions.settle_item`); follow reorgs;
close what can never be mined."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, sessionmaker

from relayer.amounts import format_amount
from relayer.chain import rpc
from relayer.chain.events import DecodedLog
from relayer.chain.router import NonceUseRecord, RouterClient
from relayer.errors import RelayerError
from relayer.intents import decisions, strikes
from relayer.intents.build import USDC_DECIMALS
from relayer.intents.decisions import Confirm, Fail, ItemEvidence, LookUpNonce
from relayer.intents.lifecycle import IntentState, for_transition, transition, transition_all
from relayer.metrics import Metrics
from relayer.state import ChainState
from relayer.store.models import Intent, TxRequest, utcnow

log = logging.getLogger("alphagrid.intents")

_FILL_EVENTS = ("PositionOpened", "PositionIncreased", "PositionReduced")


@dataclass(frozen=True)
class ItemLogs:
    """One intent's events in a mined transaction: from its NonceUsed (or IntentFailed) to the next."""

    evidence: ItemEvidence
    logs: tuple[DecodedLog, ...]


def group_by_digest(logs: Sequence[DecodedLog]) -> dict[str, ItemLogs]:
    """The router emits NonceUsed first in every intent it executes, and IntentFailed for each batch
    item that failed: each starts an item's group. Pure."""
    groups: dict[str, tuple[ItemEvidence, list[DecodedLog]]] = {}
    current: list[DecodedLog] | None = None
    for event in logs:
        if event.name == "NonceUsed":
            current = []
            groups[str(event.args["digest"]).lower()] = (ItemEvidence(True, None), current)
        elif event.name == "IntentFailed":
            current = None
            reason = event.args.get("reason") or b""
            groups[str(event.args["digest"]).lower()] = (ItemEvidence(False, bytes(reason)), [])
        elif current is not None:
            current.append(event)
    return {d: ItemLogs(e, tuple(items)) for d, (e, items) in groups.items()}


def fill_of(logs: Sequence[DecodedLog], state: ChainState) -> tuple[dict[str, str] | None, int | None]:
    """The fill (human units) and position id an intent's events report."""
    for event in logs:
        if event.name not in _FILL_EVENTS:
            continue
        a = event.args
        token = state.tokens.get(a["token"]) if "token" in a else None
        if token is None:
            p = state.positions.get(a["positionId"])
            token = state.tokens.get(p.token) if p else None
        decimals = token.decimals if token else 18
        if event.name == "PositionReduced":
            usdc, tokens = a["usdcOut"], a["tokensIn"]
        else:
            usdc, tokens = a["usdcIn"], a["tokensOut"]
        fill = {
            "usdc": format_amount(usdc, USDC_DECIMALS),
            "tokens": format_amount(tokens, decimals),
            "price": fill_price(usdc, tokens, decimals),
        }
        return fill, a["positionId"]
    for event in logs:
        if event.name == "ExitLadderSet":
            return None, event.args["positionId"]
    return None, None


def fill_price(usdc: int, tokens: int, decimals: int) -> str:
    if tokens == 0:
        return "0"
    # USD per whole token, to 6 decimals, rounded down.
    return format_amount(usdc * 10**decimals // tokens, USDC_DECIMALS)


def close(
    session: Session,
    row: Intent,
    to: IntentState,
    reason: str,
    error: dict[str, Any] | None,
    *,
    nonce_unused: bool = True,
    **fields: Any,
) -> bool:
    """Reject or fail `row` (with `fields` set in the same UPDATE); if its nonce stays unused, the
    agent's later waiting intents — received or pending approval — can never be mined: they are
    rejected now too, instead of left waiting for ever."""
    if not transition(session, row, to, reason, error=error, **fields):
        return False
    log.info("intent %s %s: %s", row.id, to, reason)
    if nonce_unused:
        later = session.scalars(
            select(Intent).where(
                Intent.agent_id == row.agent_id,
                Intent.nonce > row.nonce,
                Intent.status.in_((IntentState.RECEIVED.value, IntentState.PENDING_APPROVAL.value)),
            )
        ).all()
        for successor in later:
            extra = {"approval": "rejected"} if successor.status == IntentState.PENDING_APPROVAL else {}
            transition(
                session,
                successor,
                IntentState.REJECTED,
                f"its predecessor intent {row.id} (nonce {row.nonce}) was {to}",
                **extra,
            )
    return True


class Finalizer:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        state: ChainState,
        router: RouterClient,
        on_final: Callable[[list[int]], None],
        metrics: Metrics | None = None,
    ) -> None:
        self.sessions = sessions
        self.state = state
        self.router = router
        self.on_final = on_final  # wakes the submits waiting for these intents, and the dispatcher
        self.metrics = metrics

    # ------------------------------------------------------------------ settled transactions

    def finalize_settled(self, request_id: int | None = None) -> int:
        """Records the outcome of every submitted intent whose transaction is final (or those of one
        transaction). Returns how many intents it finalized."""
        query = (
            select(Intent.id, TxRequest.id, TxRequest.status, TxRequest.mined_hash, TxRequest.error)
            .join(TxRequest, Intent.tx_request_id == TxRequest.id)
            .where(Intent.status == IntentState.SUBMITTED.value, TxRequest.status != "pending")
        )
        if request_id is not None:
            query = query.where(TxRequest.id == request_id)
        with self.sessions() as session:
            rows = session.execute(query).all()
        by_request: dict[int, list[int]] = defaultdict(list)
        facts: dict[int, tuple[str, str | None, str | None]] = {}
        for intent_id, req_id, status, mined_hash, error in rows:
            by_request[req_id].append(intent_id)
            facts[req_id] = (status, mined_hash, error)
        done = 0
        for req_id, intent_ids in by_request.items():
            status, mined_hash, error = facts[req_id]
            try:
                done += self._settle_request(intent_ids, status, mined_hash, error)
            except (RelayerError, rpc.RpcError) as exc:  # the node is away or forgot: a later pass
                log.warning("settling request %s deferred: %s", req_id, exc)
        return done

    def _settle_request(
        self, intent_ids: list[int], tx_status: str, mined_hash: str | None, drop_error: str | None
    ) -> int:
        groups: dict[str, ItemLogs] = {}
        receipt_block: int | None = None
        if tx_status == decisions.TxOutcome.MINED and mined_hash:
            receipt = self.router.receipt(mined_hash)
            if receipt is None:
                return 0  # the node forgot it (a reorg in progress): the sender reopens it
            receipt_block = int(receipt["blockNumber"], 16)
            groups = group_by_digest(self.router.router_logs(receipt))
        with self.sessions() as session:
            rows = session.execute(
                select(Intent.id, Intent.agent_id, Intent.nonce, Intent.digest).where(
                    Intent.id.in_(intent_ids)
                )
            ).all()
            items = [(int(i), int(a), int(n), str(d).lower()) for i, a, n, d in rows]
        # Decide each item (reading the chain where the receipt cannot tell) before writing anything.
        plans: list[tuple[int, Confirm | Fail, Mapping[str, Any]]] = []
        strikes_by_intent: dict[int, tuple[int, str]] = {}  # intent → (agent, why): front-run
        for intent_id, agent_id, nonce, digest in items:
            group = groups.get(digest)
            evidence = group.evidence if group is not None else ItemEvidence(False, None)
            step = decisions.settle_item(tx_status, mined_hash, evidence, drop_error)
            if isinstance(step, Confirm):
                plans.append((intent_id, step, {"logs": group.logs if group else (), "block": receipt_block}))
                continue
            if isinstance(step, LookUpNonce):
                found = self.router.nonce_used(agent_id, nonce)
                if found is not None and found.digest.lower() == digest:
                    log.info("intent %s was relayed by someone else first (%s)", intent_id, found.tx_hash)
                    plans.append((intent_id, Confirm(found.tx_hash), self._foreign(found)))
                    continue
                step = self._named(step.otherwise, mined_hash)
                if found is not None:  # (the NonceMismatch of a batch item or a whole transaction)
                    why = f"nonce {nonce} was used by a different intent ({found.digest}) in {found.tx_hash}"
                    strikes_by_intent[intent_id] = (agent_id, why)
            plans.append((intent_id, step, {}))
        finalized: list[int] = []
        with self.sessions.begin() as session:
            # One read of the rows, and every confirmation of the transaction in a few statements.
            submitted = {
                r.id: r
                for r in for_transition(session, [intent_id for intent_id, _s, _e in plans])
                if r.status == IntentState.SUBMITTED.value
            }
            confirms: dict[int, dict[str, Any]] = {
                intent_id: self._confirmed_fields(step.tx_hash, extra.get("logs", ()), extra.get("block"))
                for intent_id, step, extra in plans
                if isinstance(step, Confirm) and intent_id in submitted
            }
            if confirms:
                to_confirm = [submitted[intent_id] for intent_id in confirms]
                moved = transition_all(session, to_confirm, IntentState.CONFIRMED, each=confirms)
                finalized += [row.id for row in moved]
            for intent_id, step, _extra in plans:
                row = submitted.get(intent_id)
                if row is None or isinstance(step, Confirm):
                    continue
                # Its nonce used by a different intent: the agent's next intents can still be mined.
                strike = strikes_by_intent.get(intent_id)
                error = self._error_of(step)
                fields: dict[str, Any] = {}
                if mined_hash and tx_status in (decisions.TxOutcome.MINED, decisions.TxOutcome.FAILED):
                    # Mined and reverted (alone, or its item in the batch): the hash on the record, and
                    # an error that says so, whatever the router's reason.
                    fields["tx_hash"] = mined_hash
                    error = error or {"code": "simulation_failed", "message": step.reason, "details": {}}
                    error["details"] = {
                        **error.get("details", {}),
                        "onChain": "reverted" if tx_status == decisions.TxOutcome.FAILED else "item_failed",
                        "transactionHash": mined_hash,
                    }
                if close(
                    session,
                    row,
                    IntentState.FAILED,
                    step.reason,
                    error,
                    nonce_unused=strike is None,
                    **fields,
                ):
                    finalized.append(intent_id)
                    self._count_failure(step, tx_status)
                    if strike is not None:
                        strikes.record(session, strike[0], intent_id, strike[1], utcnow())
        if finalized:
            self.on_final(finalized)
        return len(finalized)

    def _named(self, fail: Fail, tx_hash: str | None) -> Fail:
        """A failure with the router's reason: the item's own revert data, or the reverted
        transaction's call replayed at its block."""
        if fail.revert is not None:
            revert = self.router.decode_revert(fail.revert)
            return Fail(f"{fail.reason}: {revert.code} ({revert.name})", fail.revert)
        if tx_hash and "reverted" in fail.reason:
            cause = self.router.replay(tx_hash)
            if cause is not None:
                return Fail(
                    f"{fail.reason}: {cause.code} ({cause.name})", bytes.fromhex(cause.decoded.data[2:])
                )
        return fail

    def _failure_name(self, fail: Fail) -> str | None:
        return self.router.decode_revert(fail.revert).name if fail.revert is not None else None

    def _count_failure(self, fail: Fail, tx_status: str) -> None:
        """A submitted intent passed its simulation: its failure on chain is counted, by reason."""
        if self.metrics is None:
            return
        dropped = tx_status == decisions.TxOutcome.DROPPED
        reason = self._failure_name(fail) or ("dropped" if dropped else "unknown")
        self.metrics.intents_failed_after_simulation.labels(reason).inc()

    def _error_of(self, fail: Fail) -> dict[str, Any] | None:
        if fail.revert is None:
            return None
        return self.router.decode_revert(fail.revert).error().to_json()

    def _foreign(self, found: NonceUseRecord) -> Mapping[str, Any]:
        """The events of an intent someone else relayed: from their transaction's receipt."""
        receipt = self.router.receipt(found.tx_hash)
        if receipt is None:
            return {"logs": (), "block": None}
        group = group_by_digest(self.router.router_logs(receipt)).get(found.digest.lower())
        return {"logs": group.logs if group else (), "block": int(receipt["blockNumber"], 16)}

    def _confirmed_fields(
        self, tx_hash: str, logs: Sequence[DecodedLog], block: int | None
    ) -> dict[str, Any]:
        fill, position_id = fill_of(logs, self.state)
        fields: dict[str, Any] = {"tx_hash": tx_hash, "block_number": block, "fill": fill}
        if position_id is not None:
            fields["position_id"] = position_id
        return fields

    def _confirm(
        self, session: Session, row: Intent, tx_hash: str, logs: Sequence[DecodedLog], block: int | None
    ) -> bool:
        return transition(session, row, IntentState.CONFIRMED, **self._confirmed_fields(tx_hash, logs, block))

    # ------------------------------------------------------------------ closing

    def close_now(
        self,
        intent_id: int,
        to: IntentState,
        reason: str,
        error: dict[str, Any] | None,
        *,
        nonce_unused: bool = True,
        **fields: Any,
    ) -> bool:
        with self.sessions.begin() as session:
            row = session.get(Intent, intent_id)
            done = row is not None and close(
                session, row, to, reason, error, nonce_unused=nonce_unused, **fields
            )
        if done:
            self.on_final([intent_id])
        return done

    def confirm_relayed(self, intent_id: int, found: NonceUseRecord) -> bool:
        """A waiting intent that someone else relayed: confirmed with their transaction."""
        extra = self._foreign(found)
        with self.sessions.begin() as session:
            row = session.get(Intent, intent_id)
            done = row is not None and self._confirm(
                session, row, found.tx_hash, extra["logs"], extra["block"]
            )
        if done:
            self.on_final([intent_id])
        return done

    # ------------------------------------------------------------------ reorgs

    def follow_reorgs(self) -> int:
        """A confirmed intent whose transaction's block left the chain (the sender reopened it to send
        it again) is `submitted` again until it is mined again — or `failed`, with the reason, if the
        re-sent transaction reverts. Intents confirmed by someone else's transaction (ours reverted
        against the used nonce) are left alone: their request's hash is not theirs."""
        with self.sessions() as session:
            ids = session.scalars(
                select(Intent.id)
                .join(TxRequest, Intent.tx_request_id == TxRequest.id)
                .where(
                    Intent.status == IntentState.CONFIRMED.value,
                    or_(
                        TxRequest.status == "pending",
                        and_(TxRequest.status == "failed", Intent.tx_hash == TxRequest.mined_hash),
                    ),
                )
            ).all()
        reopened: list[int] = []
        for intent_id in ids:
            with self.sessions.begin() as session:
                row = session.get(Intent, intent_id)
                if row is None:
                    continue
                reason = f"the block of {row.tx_hash} left the canonical chain: following it again"
                if transition(session, row, IntentState.SUBMITTED, reason):
                    reopened.append(intent_id)
                    log.warning("intent %s back to submitted: %s", intent_id, reason)
        if reopened:
            self.on_final(reopened)
        return len(reopened)
