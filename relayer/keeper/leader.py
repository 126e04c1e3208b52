"""Exactly one active keeper across relayer processes sharing a database (SPEC §3).

PostgreSQL: a session advisory lock held on a dedicated connection; it is released the moment that
process or its connection dies, so another keeper takes over on its next try. SQLite (one host): a
lease row with an expiry, renewed while the holder lives.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from relayer.store.models import Lease

log = logging.getLogger("alphagrid.keeper.leader")

ADVISORY_KEY = 0x41_6C_70_68_61_47_72  # "AlphaGr"


class Leadership(Protocol):
    def acquire(self) -> bool:
        """True while this process may act; tries to take or renew leadership."""

    def release(self) -> None: ...


class AdvisoryLockLeader:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection | None = None

    def acquire(self) -> bool:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                return True
            except Exception:
                log.warning("lost the keeper lock's connection")
                self._drop()
        conn = self.engine.connect()
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_KEY}).scalar())
        conn.commit()
        if got:
            self._conn = conn
            log.info("this process is the active keeper")
        else:
            conn.close()
        return got

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                log.debug("closing a dead connection failed", exc_info=True)
            self._conn = None

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_KEY})
                self._conn.commit()
            finally:
                self._drop()


class LeaseLeader:
    NAME = "keeper"

    def __init__(
        self, sessions: sessionmaker[Session], ttl_s: float = 5.0, holder: str | None = None
    ) -> None:
        self.sessions = sessions
        self.ttl = timedelta(seconds=ttl_s)
        self.holder = holder or uuid.uuid4().hex

    def acquire(self) -> bool:
        now = datetime.now(UTC)
        with self.sessions.begin() as session:
            lease = session.scalar(select(Lease).where(Lease.name == self.NAME).with_for_update())
            if lease is None:
                session.add(Lease(name=self.NAME, holder=self.holder, expires_at=now + self.ttl))
                return True
            expires = lease.expires_at if lease.expires_at.tzinfo else lease.expires_at.replace(tzinfo=UTC)
            if lease.holder == self.holder or expires < now:
                lease.holder = self.holder
                lease.expires_at = now + self.ttl
                return True
            return False

    def release(self) -> None:
        with self.sessions.begin() as session:
            lease = session.get(Lease, self.NAME)
            if lease is not None and lease.holder == self.holder:
                session.delete(lease)


def make_leader(engine: Engine, sessions: sessionmaker[Session]) -> Leadership:
    if engine.dialect.name == "postgresql":
        return AdvisoryLockLeader(engine)
    return LeaseLeader(sessions)
