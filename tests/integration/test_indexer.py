"""The indexer against a real chain: the in-memory state and the mirror follow every event, a restart
resumes from the cursor, and a lost database is rebuilt from events alone."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from relayer.chain import artifacts
from relayer.chain.events import EventDecoder
from relayer.indexer import Indexer
from relayer.state import ChainState
from relayer.store import mirror
from relayer.store.models import Position, PositionEvent, StreamEvent

from .conftest import Stack
from .test_contracts_on_anvil import test_python_signed_intents_execute_on_chain as trade_round_trip

DECODER = EventDecoder(
    artifacts.abi(n) for n in ("TradeRouter", "AgentRegistry", "TokenRegistry", "PriceOracle")
)


def _indexer(stack: Stack, sessions: sessionmaker[Session], state: ChainState) -> Indexer:
    c = stack.manifest.contracts
    return Indexer(
        stack.w3,
        sessions,
        state,
        DECODER,
        [c.trade_router, c.agent_registry, c.token_registry, c.price_oracle],
        stack.manifest.start_block,
    )


def test_bootstrap_projects_the_seeded_chain(chain: Stack, sessions: sessionmaker[Session]) -> None:
    state = ChainState()
    _indexer(chain, sessions, state).bootstrap()
    m = chain.manifest
    assert set(state.symbols) == set(m.tokens)
    assert set(state.track_ids) == {"evaluation", "funded", "prime"}
    assert m.demo is not None
    for agent in m.demo.agents:
        assert state.agents[agent.agent_id].vault == m.vaults[0].address
    assert all((1, t) in state.allowed for t in m.tokens.values())
    assert state.prices[m.tokens["NVDA"]].price == 182_35000000


def test_positions_mirror_and_rebuild_from_events(chain: Stack, sessions: sessionmaker[Session]) -> None:
    state = ChainState()
    indexer = _indexer(chain, sessions, state)
    indexer.bootstrap()
    trade_round_trip(chain)  # open, add, reduce, ladder update, stop-loss exit
    while indexer.poll_once():
        pass

    position = state.positions[1]
    assert not position.open
    assert position.size == 0 and position.cost_basis == 0
    assert state.counters[1].next_nonce == 4
    assert state.counters[1].deployed == 0
    with sessions() as s:
        kinds = s.scalars(select(PositionEvent.kind).order_by(PositionEvent.id)).all()
        assert kinds == ["opened", "ladder", "increased", "reduced", "ladder", "exit", "closed"]
        assert s.get(Position, 1).status == "closed"  # type: ignore[union-attr]
        streamed = s.scalar(select(func.count()).select_from(StreamEvent))

    # A second relayer on the same database resumes; one that lost its database rebuilds the same.
    resumed = ChainState()
    _indexer(chain, sessions, resumed).bootstrap()
    assert resumed.positions == state.positions and resumed.counters == state.counters
    with sessions.begin() as s:
        mirror.clear(s)
    rebuilt = ChainState()
    _indexer(chain, sessions, rebuilt).bootstrap()
    assert rebuilt.positions == state.positions
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(PositionEvent)) == len(kinds)
        assert s.scalar(select(func.count()).select_from(StreamEvent)) == streamed, "no stream event twice"


def test_a_batch_the_database_rolls_back_is_not_counted_twice_in_memory(
    chain: Stack, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    state = ChainState()
    indexer = _indexer(chain, sessions, state)
    indexer.bootstrap()
    trade_round_trip(chain)  # open, add, reduce, ladder update, stop-loss exit: all in the next batch

    real_set_cursor = mirror.set_cursor

    def failing_once(session: Session, block_number: int, block_hash: str) -> None:
        monkeypatch.setattr(mirror, "set_cursor", real_set_cursor)
        raise OperationalError("UPDATE cursor", {}, Exception("database went away"))

    monkeypatch.setattr(mirror, "set_cursor", failing_once)
    with pytest.raises(OperationalError):
        indexer.poll_once()  # memory took the batch, the database rolled it back
    while indexer.poll_once():
        pass

    reference = ChainState()
    with sessions.begin() as s:
        mirror.clear(s)
    _indexer(chain, sessions, reference).bootstrap()
    assert state.positions == reference.positions
    assert state.counters == reference.counters
    assert state.block_number == reference.block_number
    with sessions() as s:
        kinds = s.scalars(select(PositionEvent.kind).order_by(PositionEvent.id)).all()
    assert kinds == ["opened", "ladder", "increased", "reduced", "ladder", "exit", "closed"]


def _rows(sessions: sessionmaker[Session]) -> tuple[int, int, int]:
    with sessions() as session:
        return (
            session.scalar(select(func.count()).select_from(Position)) or 0,
            session.scalar(select(func.count()).select_from(PositionEvent)) or 0,
            session.scalar(select(func.count()).select_from(StreamEvent)) or 0,
        )


def test_a_follower_keeps_memory_only_and_never_passes_the_mirror(
    chain: Stack, sessions: sessionmaker[Session]
) -> None:
    """An API process's indexer (`serve --api-processes`): it writes nothing, and reads no block the
    engine's indexer has not committed, so what it answers from memory the database also serves."""
    follower_state = ChainState()
    follower = Indexer(
        chain.w3,
        sessions,
        follower_state,
        DECODER,
        [c for c in _indexer(chain, sessions, ChainState()).addresses],
        chain.manifest.start_block,
        writes_mirror=False,
    )
    follower.bootstrap()
    assert follower_state.block_number < chain.manifest.start_block  # no mirror yet: nothing to follow
    engine_state = ChainState()
    engine = _indexer(chain, sessions, engine_state)
    engine.bootstrap()
    trade_round_trip(chain)  # open, add, reduce, ladder update, stop-loss exit
    written = _rows(sessions)

    while follower.poll_once():
        pass
    assert follower_state.block_number == engine_state.block_number  # the mirror's cursor, not the head
    assert 1 not in follower_state.positions
    while engine.poll_once():
        pass
    assert _rows(sessions) != written
    written = _rows(sessions)
    while follower.poll_once():
        pass
    assert follower_state.block_number == engine_state.block_number
    assert follower_state.positions[1] == engine_state.positions[1]
    assert follower_state.counters == engine_state.counters
    assert _rows(sessions) == written  # the follower wrote nothing
