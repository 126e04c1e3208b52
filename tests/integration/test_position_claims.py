"""What other relayer processes have on their way, read from the database (relayer/intents/claims.py):
the positions named by exit transactions not final yet — the dispatcher of any process holds its
intents on them (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from relayer.chain import calls
from relayer.eip712 import ExitRule, TriggerType
from relayer.intents.claims import exits_pending
from relayer.store.models import TxRequest

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
