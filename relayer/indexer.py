"""Follows the contracts' events into the in-memory state and the database mirror.

Reads `confirmations` blocks behind the head. A cursor (block number and hash) makes restarts resume;
a cursor whose hash the chain no longer has means a reorg: the mirror is dropped and rebuilt from
`startBlock`, which is also what a relayer that lost its database does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from web3 import Web3

from relayer.chain import rpc
from relayer.chain.events import DecodedLog, EventDecoder
from relayer.domain.exits import trigger_threshold
from relayer.domain.ladder import exits_to_json
from relayer.domain.market import exit_gap_json
from relayer.state import ChainState, PositionInfo
from relayer.store import mirror
from relayer.store.models import IndexerCursor

log = logging.getLogger("alphagrid.indexer")

_NEVER = 2**63  # `_persist_from` of a follower that never writes the mirror

# Router events → the kind recorded in a position's history and the stream event type.
_POSITION_KINDS = {
    "PositionOpened": "opened",
    "PositionIncreased": "increased",
    "PositionReduced": "reduced",
    "ExitExecuted": "exit",
    "ExitLadderSet": "ladder",
    "PositionClosed": "closed",
}
_STREAM_TYPES = {
    "PositionOpened": "fill",
    "PositionIncreased": "fill",
    "PositionReduced": "fill",
    "ExitExecuted": "exit_fired",
    "ExitLadderSet": "ladder_updated",
    "PositionClosed": "position_closed",
}


def _jsonable(args: dict[str, Any]) -> dict[str, Any]:
    def conv(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, bytes):
            return "0x" + v.hex()
        return v

    return {k: conv(v) for k, v in args.items()}


def exit_trigger_price(position: PositionInfo | None, rule_index: int, token_decimals: int) -> int | None:
    """The oracle price at which rule ``rule_index`` fired, as the keeper's trigger index computes it
    (`trigger_threshold`, exact) for the position as it stood before the fill: the ladder in force,
    the size and the basis then. None when the relayer did not see that rule (an unknown position,
    an index beyond its ladder) or no oracle price triggers it."""
    if position is None or not 0 <= rule_index < len(position.rules):
        return None
    return trigger_threshold(position.rules[rule_index], position.size, position.cost_basis, token_decimals)


class Indexer:
    def __init__(
        self,
        w3: Web3,
        sessions: sessionmaker[Session],
        state: ChainState,
        decoder: EventDecoder,
        addresses: Sequence[str],
        start_block: int,
        *,
        confirmations: int = 0,
        batch_blocks: int = 2_000,
        on_event: Callable[[DecodedLog, PositionInfo | None], None] | None = None,
        on_batch: Callable[[int], None] | None = None,
        writes_mirror: bool = True,
    ) -> None:
        """`writes_mirror=False`: an API process's follower (`alphagrid serve --api-processes`). It keeps
        only the in-memory state, never writes the database, and never reads past the block the
        engine's indexer has committed (the mirror's cursor), so its memory is never ahead of the
        history the database serves."""
        self.w3 = w3
        self.sessions = sessions
        self.state = state
        self.decoder = decoder
        self.addresses = list(addresses)
        self.start_block = start_block
        self.confirmations = confirmations
        self.batch_blocks = batch_blocks
        self.on_event = on_event
        self.on_batch = on_batch  # called with the last block of each batch applied
        self._next_block = start_block
        self._persist_from = start_block
        self._last_hash: str | None = None
        self._timestamps: dict[int, int] = {}
        self._memory_dirty = False
        self.writes_mirror = writes_mirror
        self._wake = threading.Event()

    # ------------------------------------------------------------------ lifecycle

    def bootstrap(self) -> None:
        """Rebuilds the in-memory state from `startBlock`; persists only what the database lacks."""
        if not self.writes_mirror:
            self._persist_from = _NEVER
            self._next_block = self.start_block
            while self.poll_once():
                pass
            return
        with self.sessions.begin() as session:
            cur = mirror.cursor(session)
            if cur is not None and self._hash_at(cur.block_number) != cur.block_hash:
                log.warning("indexer cursor %s is not on the chain any more: rebuilding", cur.block_number)
                mirror.clear(session)
                cur = None
            self._persist_from = cur.block_number + 1 if cur is not None else self.start_block
        self._next_block = self.start_block
        while self.poll_once():
            pass

    def run(self, stop: threading.Event, interval_s: float = 0.2) -> None:
        """Polls every `interval_s`, or at once when woken (`wake`)."""
        while not stop.is_set():
            self._wake.clear()
            try:
                self.poll_once()
            except Exception:  # a transient RPC or DB failure must not kill the follower
                log.exception("indexer poll failed")
                stop.wait(1.0)
            self._wake.wait(interval_s)

    def wake(self) -> None:
        """A block may be there to read: a transaction of ours was mined, or (a follower) the engine's
        indexer committed one."""
        self._wake.set()

    # ------------------------------------------------------------------ one step

    def poll_once(self) -> int:
        """Indexes the next batch of confirmed blocks; returns how many blocks it covered."""
        if self._memory_dirty:
            self._replay_memory()
        head = int(rpc.call(self.w3, "eth_blockNumber", []), 16) - self.confirmations
        # Before the height: a chain rolled back below our cursor, or re-mined to the same height,
        # has no new blocks to offer, and only the cursor's hash tells.
        if self._last_hash is not None and self._hash_at(self._next_block - 1) != self._last_hash:
            self._rebuild()
            return 1
        mirrored: IndexerCursor | None = None
        if not self.writes_mirror:
            with self.sessions() as session:
                mirrored = mirror.cursor(session)
            if mirrored is None:
                return 0  # the engine has not indexed anything yet
            head = min(head, mirrored.block_number)
        if head < self._next_block:
            return 0
        from_block = self._next_block
        to_block = min(head, from_block + self.batch_blocks - 1)
        self._timestamps.clear()
        raw_logs = rpc.call(
            self.w3,
            "eth_getLogs",
            [{"fromBlock": hex(from_block), "toBlock": hex(to_block), "address": self.addresses}],
        )
        to_hash = self._hash_at(to_block)
        if mirrored is not None and to_block == mirrored.block_number and to_hash != mirrored.block_hash:
            return 0  # the engine's cursor is off the chain (a reorg it is rebuilding from): wait for it
        # Every network read happens before memory changes, so only the database can fail below.
        events = [
            (decoded, self._timestamp(raw))
            for raw in raw_logs
            if (decoded := self.decoder.decode(raw)) is not None
        ]
        # The state lock spans the batch and outlives the commit: a reader never sees half a transaction
        # (an open without its ladder), nor memory ahead of the history the database serves.
        try:
            if not self.writes_mirror:
                with self.state.lock:
                    for event, timestamp in events:
                        self._apply(None, event, timestamp)
            else:
                with self.state.lock, self.sessions.begin() as session:
                    with mirror.buffered(session):  # one executemany per table, not statements per event
                        for event, timestamp in events:
                            self._apply(session, event, timestamp)
                    if to_block >= self._persist_from:
                        mirror.set_cursor(session, to_block, to_hash)
        except BaseException:
            # Memory took (part of) a batch the database rolled back; retrying on top of it would
            # count those events twice. The next poll rebuilds memory before it retries.
            self._memory_dirty = True
            raise
        # Blocks without our events still move the chain's clock (and say how far we have read).
        self.state.observe_block(to_block, self._timestamps[to_block])
        self._next_block = to_block + 1
        self._last_hash = to_hash
        if self.on_batch is not None:
            self.on_batch(to_block)
        return to_block - from_block + 1

    def _apply(self, session: Session | None, event: DecodedLog, timestamp: int) -> None:
        trigger: int | None = None
        if event.name == "ExitExecuted":
            # The trigger of the ladder in force when the rule fired: read before the fill applies.
            before = self.state.positions.get(event.args["positionId"])
            token = self.state.tokens.get(before.token) if before is not None else None
            if token is not None:
                trigger = exit_trigger_price(before, event.args["fill"]["ruleIndex"], token.decimals)
        position = self.state.apply(event, timestamp)
        if session is None or event.block_number < self._persist_from:
            session = None  # memory only: a block the database has, or a follower's
        if event.name == "NonceUsed" or position is not None:
            agent_id = event.args.get("agentId")
            if session is not None and agent_id is not None:
                mirror.upsert_counters(session, agent_id, self.state.counters[agent_id])
            if session is not None and event.name == "NonceUsed":
                mirror.record_nonce_use(
                    session,
                    event.args["agentId"],
                    event.args["nonce"],
                    event.args["digest"],
                    event.tx_hash,
                    event.block_number,
                )
        if self.on_event is not None:
            self.on_event(event, position)
        if position is None or session is None:
            return
        mirror.upsert_position(session, position)
        data = _jsonable(event.args)
        if event.name == "ExitExecuted":
            data["triggerPrice"] = trigger  # 8-decimal base units, or None
        mirror.add_position_event(
            session,
            position.position_id,
            _POSITION_KINDS[event.name],
            block_number=event.block_number,
            block_timestamp=timestamp,
            tx_hash=event.tx_hash,
            log_index=event.log_index,
            data=data,
        )
        stream = {"positionId": str(position.position_id), "txHash": event.tx_hash, **data}
        if event.name == "ExitLadderSet":
            stream["rules"] = exits_to_json(position.rules)
        elif event.name == "ExitExecuted":
            f = event.args["fill"]
            decimals = self.state.tokens[position.token].decimals
            stream.update(exit_gap_json(trigger, f["oraclePrice"], f["usdcOut"], f["tokensIn"], decimals))
        mirror.append_stream(
            session,
            position.agent_id,
            _STREAM_TYPES[event.name],
            stream,
            dedupe_key=f"{event.tx_hash}:{event.log_index}",
        )

    def _rebuild(self) -> None:
        """Re-reads the chain from `startBlock` into a fresh projection and the cleared mirror, then
        swaps the projection in: readers of memory see the old view until the new one is complete,
        never an empty one (an agent that 404s mid-rebuild)."""
        log.warning(
            "reorg below block %s: rebuilding the mirror from block %s", self._next_block, self.start_block
        )
        if self.writes_mirror:
            with self.sessions.begin() as session:
                mirror.clear(session)
        live, self.state = self.state, ChainState()
        self._next_block = self.start_block
        self._persist_from = self.start_block if self.writes_mirror else _NEVER
        self._last_hash = None
        self._timestamps.clear()
        try:
            while self.poll_once():
                pass
        except BaseException:
            self._memory_dirty = True  # the live view is behind the mirror: replay it before going on
            raise
        finally:
            rebuilt, self.state = self.state, live
        live.replace_with(rebuilt)

    def _replay_memory(self) -> None:
        """Rebuilds the in-memory projection aside, from `startBlock` to the last block the database
        holds, and swaps it in: readers see the old projection or the new one, and nothing is
        re-persisted or re-announced (the database and the hook already have those blocks)."""
        last = self._next_block - 1
        log.warning("rebuilding the in-memory state up to block %s after a failed batch", last)
        fresh = ChainState()
        block = self.start_block
        while block <= last:
            to_block = min(last, block + self.batch_blocks - 1)
            self._timestamps.clear()
            raw_logs = rpc.call(
                self.w3,
                "eth_getLogs",
                [{"fromBlock": hex(block), "toBlock": hex(to_block), "address": self.addresses}],
            )
            for raw in raw_logs:
                decoded = self.decoder.decode(raw)
                if decoded is not None:
                    fresh.apply(decoded, self._timestamp(raw))
            block = to_block + 1
        if last >= self.start_block:
            self._hash_at(last)
            fresh.observe_block(last, self._timestamps[last])
        self.state.replace_with(fresh)
        self._memory_dirty = False

    # ------------------------------------------------------------------ helpers

    def _hash_at(self, block_number: int) -> str:
        block = rpc.call(self.w3, "eth_getBlockByNumber", [hex(block_number), False])
        if block is None:
            return ""
        h: str = block["hash"]
        self._timestamps[block_number] = int(block["timestamp"], 16)
        return h

    def _timestamp(self, raw: dict[str, Any]) -> int:
        if raw.get("blockTimestamp"):
            return int(raw["blockTimestamp"], 16)
        number = int(raw["blockNumber"], 16)
        if number not in self._timestamps:
            self._hash_at(number)
        return self._timestamps[number]
