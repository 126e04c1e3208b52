"""After the soak: every 2xx intent is on chain exactly once or failed with a reason, nothing is left in
flight, nothing ran that no client was told about, and the database equals the chain (a relayer that
rebuilds from events alone on an empty database ends up with the same mirror)."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from web3 import Web3

from bench.soak.chain import ChainRecord, SoakChain
from bench.soak.client import Submission
from relayer.chain import rpc
from relayer.chain.admin import revert_decoder
from relayer.store.models import (
    AgentCounters,
    IndexerCursor,
    Intent,
    KeeperAudit,
    Position,
    PositionEvent,
    StreamEvent,
    TxAttempt,
    TxRequest,
)

LIVE = ("received", "submitted")
FINAL_FAILED = ("failed", "rejected")
# The router event that says what an intent did, besides its NonceUsed.
EFFECT = {
    "OpenPosition": "PositionOpened",
    "AddToPosition": "PositionIncreased",
    "ReducePosition": "PositionReduced",
    "UpdateExitLadder": "ExitLadderSet",
}
_NUMBERS = re.compile(r"0x[0-9a-fA-F]+|\d+")
INTENT_TYPE = {0: "OpenPosition", 1: "AddToPosition", 2: "ReducePosition", 3: "UpdateExitLadder"}


@dataclass
class Findings:
    accepted: int = 0
    confirmed: int = 0
    failed_with_reason: int = 0
    lost: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    pending_intents: list[str] = field(default_factory=list)
    pending_tx_requests: list[str] = field(default_factory=list)
    wrong_status: list[str] = field(default_factory=list)
    unacknowledged: list[str] = field(default_factory=list)
    nonce_gaps: list[str] = field(default_factory=list)
    duplicate_mismatch: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    mirror_diffs: list[str] = field(default_factory=list)
    chain_diffs: list[str] = field(default_factory=list)
    api_diffs: list[str] = field(default_factory=list)

    def problems(self) -> dict[str, list[str]]:
        return {
            name: items
            for name, items in (
                ("lost", self.lost),
                ("doubled", self.doubled),
                ("pending intents", self.pending_intents),
                ("pending tx requests", self.pending_tx_requests),
                ("wrong status", self.wrong_status),
                ("executed without a 2xx", self.unacknowledged),
                ("nonce gaps", self.nonce_gaps),
                ("duplicate submit answered differently", self.duplicate_mismatch),
                ("server errors (5xx other than 503)", self.server_errors),
                ("database mirror ≠ rebuilt mirror", self.mirror_diffs),
                ("database mirror ≠ chain views", self.chain_diffs),
                ("API ≠ rebuilt relayer's API", self.api_diffs),
            )
            if items
        }

    @property
    def ok(self) -> bool:
        return not self.problems()


# ---------------------------------------------------------------------- quiescence


def in_flight(engine: Engine) -> tuple[int, int]:
    with Session(engine) as session:
        intents = session.scalar(select(func.count()).where(Intent.status.in_(LIVE))) or 0
        txs = session.scalar(select(func.count()).where(TxRequest.status == "pending")) or 0
    return int(intents), int(txs)


def activity(engine: Engine) -> tuple[int, int, int, int]:
    """(intents in flight, transactions pending, intents recorded, transactions recorded)."""
    with Session(engine) as session:
        intents = session.scalar(select(func.count()).select_from(Intent)) or 0
        txs = session.scalar(select(func.count()).select_from(TxRequest)) or 0
    return (*in_flight(engine), int(intents), int(txs))


def wait_quiescent(engine: Engine, timeout_s: float, settle_s: float = 3.0) -> float:
    """Waits until nothing is in flight and nothing new has been recorded for `settle_s` (the keeper
    may still be firing exits after the last price move); returns the seconds it took."""
    began = time.monotonic()
    stable_since = time.monotonic()
    last = activity(engine)
    while time.monotonic() - began < timeout_s:
        time.sleep(0.25)
        now = activity(engine)
        if now != last or now[:2] != (0, 0):
            stable_since = time.monotonic()
        elif time.monotonic() - stable_since >= settle_s:
            break
        last = now
    return time.monotonic() - began


# ---------------------------------------------------------------------- intents against the chain


def audit_intents(
    findings: Findings, submissions: Sequence[Submission], chain: ChainRecord, engine: Engine
) -> None:
    with Session(engine) as session:
        rows = {r.digest.lower(): r for r in session.scalars(select(Intent)).all()}
        pending_tx = session.scalars(select(TxRequest).where(TxRequest.status == "pending")).all()
        findings.pending_tx_requests = [
            f"tx request {t.id} ({t.purpose}) sender {t.sender} nonce {t.nonce}" for t in pending_tx
        ]
    findings.pending_intents = [
        f"intent {r.id} agent {r.agent_id} nonce {r.nonce} {r.primary_type}: {r.status}"
        for r in rows.values()
        if r.status in LIVE
    ]

    # The chain: each agent's nonces 0..n-1 used once, each digest once, one effect per intent's tx.
    for agent_id, used in sorted(chain.nonce_used.items()):
        nonces = sorted(int(e.args["nonce"]) for e in used)
        if nonces != list(range(len(nonces))):
            findings.nonce_gaps.append(f"agent {agent_id}: nonces used {nonces}")
    for digest, used in chain.by_digest.items():
        if len(used) > 1:
            findings.doubled.append(f"digest {digest} used {len(used)} times: {[e.tx_hash for e in used]}")
    for digest, used in chain.by_digest.items():
        nonce_event = used[0]
        kind = INTENT_TYPE.get(int(nonce_event.args["intentType"]), "?")
        # The intent's own events: from its NonceUsed to the next item's NonceUsed or IntentFailed (a
        # batch carries several intents, an agent's pipelined ones included, in one transaction).
        in_tx = sorted(chain.by_tx[nonce_event.tx_hash.lower()], key=lambda e: e.log_index)
        start = next(i for i, e in enumerate(in_tx) if e.log_index == nonce_event.log_index)
        own = []
        for e in in_tx[start + 1 :]:
            if e.name in ("NonceUsed", "IntentFailed"):
                break
            own.append(e)
        effects = [
            e
            for e in own
            if e.name == EFFECT.get(kind)
            and int(e.args.get("agentId", nonce_event.args["agentId"])) == int(nonce_event.args["agentId"])
        ]
        if len(effects) != 1:
            findings.doubled.append(f"digest {digest} ({kind}) has {len(effects)} {EFFECT.get(kind)} events")

    accepted = {s.digest.lower(): s for s in submissions if s.accepted}
    answered_4xx = {s.digest.lower(): s for s in submissions if not s.accepted}
    findings.accepted = len(accepted)
    for digest, sub in accepted.items():
        on_chain = chain.by_digest.get(digest, [])
        row = rows.get(digest)
        what = f"agent {sub.agent_id} nonce {sub.nonce} {sub.primary_type} intent {sub.intent_id}"
        if row is None:
            findings.lost.append(f"{what}: answered {sub.status_code} but no record")
            continue
        if str(row.id) != sub.intent_id:
            findings.wrong_status.append(f"{what}: the record with its digest is intent {row.id}")
        if row.status == "confirmed":
            if len(on_chain) != 1:
                findings.wrong_status.append(f"{what}: confirmed but on chain {len(on_chain)} times")
            elif (row.tx_hash or "").lower() != on_chain[0].tx_hash.lower():
                findings.wrong_status.append(
                    f"{what}: confirmed in {row.tx_hash}, used in {on_chain[0].tx_hash}"
                )
            else:
                findings.confirmed += 1
        elif row.status in FINAL_FAILED:
            if on_chain:
                findings.wrong_status.append(f"{what}: {row.status} ({row.reason}) but executed")
            elif not row.reason:
                findings.lost.append(f"{what}: {row.status} without a reason")
            else:
                findings.failed_with_reason += 1
        elif not on_chain:
            findings.lost.append(f"{what}: still {row.status}, not on chain")
        # (executed but still live: counted among pending intents)
    for digest, used in chain.by_digest.items():
        if digest in accepted:
            continue
        e = used[0]
        answer = answered_4xx.get(digest)
        told = f"answered {answer.answers}" if answer else "never submitted by a client"
        findings.unacknowledged.append(
            f"agent {e.args['agentId']} nonce {e.args['nonce']} digest {digest} in {e.tx_hash}: {told}"
        )
    for s in submissions:
        if any(code >= 500 and code != 503 for code in s.answers):
            findings.server_errors.append(f"agent {s.agent_id} nonce {s.nonce} {s.primary_type}: {s.answers}")
        if s.duplicate_check not in (None, "same"):
            findings.duplicate_mismatch.append(
                f"agent {s.agent_id} intent {s.intent_id}: {s.duplicate_check}"
            )


# ---------------------------------------------------------------------- the mirror


def mirror_snapshot(engine: Engine) -> dict[str, dict[Any, Any]]:
    """The chain-derived tables, keyed by what identifies a row on chain (not by local ids)."""
    with Session(engine) as session:
        positions = {
            p.id: (
                p.agent_id,
                p.token.lower(),
                p.status,
                int(p.size),
                int(p.cost_basis),
                int(p.realized_pnl),
                p.exits_hash.lower(),
                p.rules,
                p.fired_mask,
                p.opened_at,
                p.open_tx.lower(),
                p.closed_at,
                (p.close_tx or "").lower(),
            )
            for p in session.scalars(select(Position)).all()
        }
        counters = {
            c.agent_id: (
                int(c.next_nonce),
                int(c.deployed),
                c.day,
                int(c.turnover_today),
                int(c.realized_pnl_today),
            )
            for c in session.scalars(select(AgentCounters)).all()
        }
        events = {
            (e.tx_hash.lower(), e.log_index): (
                e.position_id,
                e.kind,
                e.block_number,
                e.block_timestamp,
                e.data,
            )
            for e in session.scalars(select(PositionEvent)).all()
        }
        stream = {
            s.dedupe_key: (s.agent_id, s.type, s.data)
            for s in session.scalars(select(StreamEvent).where(StreamEvent.dedupe_key.is_not(None))).all()
        }
    return {"positions": positions, "agent_counters": counters, "position_events": events, "stream": stream}


def diff_snapshots(a: dict[str, dict[Any, Any]], b: dict[str, dict[Any, Any]], limit: int = 20) -> list[str]:
    out: list[str] = []
    for table in a:
        left, right = a[table], b[table]
        for key in sorted(set(left) | set(right), key=str):
            if left.get(key) != right.get(key):
                out.append(f"{table}[{key}]: soak={left.get(key)!r} rebuilt={right.get(key)!r}")
    return out[:limit] + ([f"… {len(out) - limit} more"] if len(out) > limit else [])


def cursor_block(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.max(IndexerCursor.block_number))) or -1)


def compare_with_chain(findings: Findings, soak: SoakChain, engine: Engine) -> None:
    """The mirror against the router's own views, read now."""
    router = soak.admin.router
    snap = mirror_snapshot(engine)
    for agent in soak.agents:
        view = router.functions.agentState(agent.agent_id).call()
        mine = snap["agent_counters"].get(agent.agent_id, (0, 0, 0, 0, 0))
        theirs = (int(view[0]), int(view[1]), int(view[2]), int(view[3]), int(view[4]))
        # The view rolls the UTC day over; the mirror holds the day of the agent's last event.
        width = 5 if mine[2] == theirs[2] else 2
        if mine[:width] != theirs[:width]:
            findings.chain_diffs.append(f"agent {agent.agent_id}: mirror {mine} chain {theirs}")
    count = int(router.functions.positionCount().call())
    if count != len(snap["positions"]):
        findings.chain_diffs.append(f"positions: mirror has {len(snap['positions'])}, chain {count}")
    for pid, row in snap["positions"].items():
        v = router.functions.position(pid).call()
        # PositionView: positionId, agentId, token, open, size, costBasis, exitsHash, ruleCount, firedMask
        open_ = bool(v[3])
        if open_ != (row[2] == "open") or int(v[1]) != row[0] or str(v[2]).lower() != row[1]:
            findings.chain_diffs.append(f"position {pid}: mirror {row[:3]} chain {v[:4]}")
        elif open_ and (int(v[4]), int(v[5]), "0x" + bytes(v[6]).hex(), int(v[8])) != (
            row[3],
            row[4],
            row[6],
            row[8],
        ):
            findings.chain_diffs.append(f"position {pid}: mirror {row[3:9]} chain {v[4:]}")
        elif open_ and len(row[7]) != int(v[7]):
            findings.chain_diffs.append(f"position {pid}: mirror has {len(row[7])} rules, chain {v[7]}")


# The market as of the moment of the request (SPEC §5.6), not the chain's projection: `nextOpen` is
# null until a process has loaded its exchange calendar, so two processes may differ for a while.
_MARKET_NOW = frozenset({"nextOpen", "marketStatus", "multiplier"})


def _without_market_now(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_market_now(v) for k, v in value.items() if k not in _MARKET_NOW}
    if isinstance(value, list):
        return [_without_market_now(v) for v in value]
    return value


def compare_apis(findings: Findings, soak: SoakChain, a: str, b: str) -> None:
    with httpx.Client(timeout=30) as client:
        for agent in soak.agents:
            for path in (f"/agents/{agent.agent_id}", f"/agents/{agent.agent_id}/positions?status=all"):
                left = _without_market_now(client.get(a + path).json())
                right = _without_market_now(client.get(b + path).json())
                if left != right:
                    findings.api_diffs.append(f"{path}: soak={left!r:.300} rebuilt={right!r:.300}")


def wait_for(predicate: Callable[[], bool], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def status_counts(engine: Engine) -> Counter[str]:
    with Session(engine) as session:
        return Counter(
            {
                s: int(n)
                for s, n in session.execute(select(Intent.status, func.count()).group_by(Intent.status))
            }
        )


def closed_reasons(engine: Engine) -> Counter[str]:
    """Why intents ended failed/rejected, with ids, hashes and numbers blanked so like reasons group."""
    with Session(engine) as session:
        rows = session.execute(select(Intent.status, Intent.reason).where(Intent.status.in_(FINAL_FAILED)))
        return Counter(f"{status}: {_NUMBERS.sub('#', reason or '')}" for status, reason in rows)


def tx_counts(engine: Engine) -> Counter[str]:
    """The relayer's transaction requests by purpose and outcome (an exit that reverted cost gas)."""
    with Session(engine) as session:
        rows = session.execute(
            select(TxRequest.purpose, TxRequest.status, func.count()).group_by(
                TxRequest.purpose, TxRequest.status
            )
        )
        return Counter({f"{purpose} {status}": int(n) for purpose, status, n in rows})


ENDINGS = ("confirmed", "superseded", "failed", "retry")


@dataclass
class KeeperFindings:
    """The keeper's exits and their audit trail (SPEC §3: what was sent and how it ended). Reported
    beside the verdict, which is about intents."""

    sent: int = 0
    reverted: int = 0
    overlapping: list[str] = field(default_factory=list)  # same exit call sent while one was pending
    unaudited: list[str] = field(default_factory=list)  # exit transactions the audit never mentions
    unended: list[str] = field(default_factory=list)  # "sent" in the audit, never an outcome


def audit_keeper(engine: Engine) -> KeeperFindings:
    out = KeeperFindings()
    with Session(engine) as session:
        exits = session.scalars(
            select(TxRequest).where(TxRequest.purpose == "exit").order_by(TxRequest.id)
        ).all()
        hashes = {
            a.tx_hash.lower(): a.request_id
            for a in session.scalars(
                select(TxAttempt).join(TxRequest).where(TxRequest.purpose == "exit")
            ).all()
        }
        audit = session.scalars(
            select(KeeperAudit).where(KeeperAudit.action.in_((*ENDINGS, "sent"))).order_by(KeeperAudit.id)
        ).all()
    out.sent = len(exits)
    out.reverted = sum(1 for r in exits if r.status == "failed")
    for i, first in enumerate(exits):
        for later in exits[i + 1 :]:
            if later.data == first.data and later.created_at < first.updated_at:
                out.overlapping.append(
                    f"tx requests {first.id} and {later.id}: the same executeExit call, the second sent "
                    f"while the first was {first.status} only later"
                )
    mentioned = {a.tx_hash.lower() for a in audit if a.tx_hash}
    requests_mentioned = {hashes[h] for h in mentioned if h in hashes}
    out.unaudited = [f"tx request {r.id} ({r.status})" for r in exits if r.id not in requests_mentioned]
    last_ending: dict[tuple[int, int], int] = {}
    for a in audit:
        if a.action in ENDINGS:
            last_ending[(a.position_id, a.rule_index)] = a.id
    out.unended = [
        f"position {a.position_id} rule {a.rule_index} sent in {a.tx_hash}"
        for a in audit
        if a.action == "sent" and last_ending.get((a.position_id, a.rule_index), -1) < a.id
    ]
    return out


def replay_failures(engine: Engine, w3: Web3) -> list[str]:
    """Why the relayer's transactions that reverted on chain reverted: each is replayed with eth_call
    on its block's parent state (exact on an automining Anvil, where a block holds one transaction;
    otherwise the state the transactions before it in the block left is missing)."""
    decoder = revert_decoder()
    with Session(engine) as session:
        failed = session.scalars(select(TxRequest).where(TxRequest.status == "failed")).all()
        intents = {
            i.tx_request_id: i for i in session.scalars(select(Intent).where(Intent.status == "failed")).all()
        }
    out = []
    for r in failed:
        if r.mined_hash is None or r.block_number is None:
            continue
        tx = w3.eth.get_transaction(r.mined_hash)  # type: ignore[arg-type]
        call = {
            "from": tx["from"],
            "to": tx["to"],
            "data": "0x" + bytes(tx["input"]).hex(),
            "gas": hex(tx["gas"]),
        }
        response = rpc.request(w3, "eth_call", [call, hex(r.block_number - 1)])
        error = response.get("error") or {}
        data = error.get("data")
        if isinstance(data, dict):
            data = data.get("data")
        raw = bytes.fromhex(data[2:]) if isinstance(data, str) and data.startswith("0x") else b""
        why = decoder.decode(raw).name if raw else ("no revert on replay" if "error" not in response else "?")
        intent = intents.get(r.id)
        what = (
            f"{intent.primary_type} of agent {intent.agent_id} nonce {intent.nonce}" if intent else r.purpose
        )
        out.append(f"{what} in block {r.block_number}: {why}")
    return out
