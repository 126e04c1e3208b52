"""What other relayer processes have on their way, read from the database (relayer/intents/claims.py):
the positions named by exit transactions not final yet — the dispatcher of any process holds its
intents on them (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from relayer.chain import calls
from relayer.eip712 import ExitRule, TriggerType
from relayer.intents.claims import exits_pending, intents_settled_after, intents_submitted
from relayer.intents.lifecycle import IntentState
from relayer.store.models import Intent, TxRequest

RULES = [ExitRule(TriggerType.STOP_LOSS, -1000, 10_000)]


def _request(nonce: int, data: bytes, purpose: str, status: str) -> TxRequest:
    return TxRequest(
        sender="0x" + "11" * 20,
        nonce=nonce,
        to="0x" + "22" * 20,
        data="0x" + data.hex(),
        gas_limit=500_000,
        purpose=purpose,
        status=status,
    )


def test_exits_pending_names_the_positions_of_exit_transactions_not_final_yet(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        assert exits_pending(session) == frozenset()
        session.add_all(
            [
                _request(0, calls.execute_exits([(3, RULES), (5, RULES)]), "exit", "pending"),
                _request(1, calls.execute_exit(8, RULES), "exit", "pending"),
                _request(2, calls.execute_exit(7, RULES), "exit", "mined"),  # final: no longer holds
                _request(3, calls.execute_exit(9, RULES), "exit", "failed"),
                _request(4, b"\x12\x34\x56\x78", "intent", "pending"),  # not an exit
            ]
        )
    with sessions() as session:
        assert exits_pending(session) == frozenset({3, 5, 8})


def _intent(nonce: int, position_id: int, status: IntentState, block: int | None) -> Intent:
    return Intent(
        agent_id=1,
        primary_type="UpdateExitLadder",
        nonce=nonce,
        digest="0x" + f"{nonce:064x}",
        request={},
        message={},
        signature="0x",
        status=status.value,
        position_id=position_id,
        block_number=block,
    )


def test_an_intent_mined_after_the_keepers_index_still_holds_its_position(
    sessions: sessionmaker[Session],
) -> None:
    """The keeper holds an exit while an intent on its position is on its way, and still once it is
    mined in a block its index has not read (the ladder it replaced would be judged otherwise)."""
    with sessions.begin() as session:
        session.add_all(
            [
                _intent(1, 10, IntentState.SUBMITTED, None),
                _intent(2, 11, IntentState.CONFIRMED, 41),
                _intent(3, 12, IntentState.CONFIRMED, 40),
                _intent(4, 13, IntentState.FAILED, 42),  # reverted on chain: its block still counts
            ]
        )
    with sessions() as session:
        ids = {i.position_id: i.id for i in session.query(Intent)}
        assert intents_submitted(session, [10, 11, 12, 13, 14]) == {10: ids[10]}
        waited = {11: ids[11], 12: ids[12], 13: ids[13]}
        assert intents_settled_after(session, waited, indexed_block=40) == {11: ids[11], 13: ids[13]}
        assert intents_settled_after(session, waited, indexed_block=42) == {}
        assert intents_settled_after(session, {}, indexed_block=0) == {}
