"""Exactly one active keeper across relayer processes sharing a database (SPEC §3).

PostgreSQL: a session advisory lock held on a dedicated connection; it is released the moment that
process or its connection dies, so another keeper takes over on its next try. Advisory locks are
database-wide, so the key is derived from the schema the relayer's tables live in: deployments (or
test runs) in other schemas of one database never lock each other out. SQLite (one host): a lease
row with an expiry, renewed while the holder lives, taken over with one conditional UPDATE so that
contenders racing for an expired lease cannot both win.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import Connection, CursorResult, Engine, or_, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from relayer.store.models import Lease

log = logging.getLogger("alphagrid.keeper.leader")

ADVISORY_NAMESPACE = "alphagrid.keeper"


def advisory_key(schema: str) -> int:
    """The advisory lock's 64-bit key for the keepers of the relayer whose tables are in `schema`."""
    digest = hashlib.blake2b(f"{ADVISORY_NAMESPACE}:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Leadership(Protocol):
    def acquire(self) -> bool:
        """True while this process may act; tries to take or renew leadership."""

    def release(self) -> None: ...


class AdvisoryLockLeader:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection | None = None
        self._key: int | None = None

    def acquire(self) -> bool:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                return True
            except Exception:
                log.warning("lost the keeper lock's connection")
                self._drop()
        # Autocommit: the connection holds the lock for hours and must not sit "idle in transaction"
        # (which pins a snapshot and is what idle_in_transaction_session_timeout kills).
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            schema = conn.execute(text("SELECT current_schema()")).scalar() or "public"
            self._key = advisory_key(str(schema))
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key}).scalar())
        except Exception:
            conn.close()
            raise
        if got:
            self._conn = conn
            log.info("this process is the active keeper (advisory lock %s)", self._key)
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
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
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
        """Renews our lease or takes an expired one in one conditional UPDATE (atomic on SQLite and
        PostgreSQL alike); creates the row if there is none. A lost insert race is a plain False."""
        now = datetime.now(UTC)
        try:
            with self.sessions.begin() as session:
                taken = session.execute(
                    update(Lease)
                    .where(Lease.name == self.NAME, or_(Lease.holder == self.holder, Lease.expires_at < now))
                    .values(holder=self.holder, expires_at=now + self.ttl)
                    .execution_options(synchronize_session=False)
                )
                if cast(CursorResult[Any], taken).rowcount == 1:
                    return True
                if session.get(Lease, self.NAME) is not None:
                    return False
                session.add(Lease(name=self.NAME, holder=self.holder, expires_at=now + self.ttl))
            return True
        except IntegrityError:
            return False  # another contender created the row first

    def release(self) -> None:
        with self.sessions.begin() as session:
            lease = session.get(Lease, self.NAME)
            if lease is not None and lease.holder == self.holder:
                session.delete(lease)


def make_leader(engine: Engine, sessions: sessionmaker[Session]) -> Leadership:
    if engine.dialect.name == "postgresql":
        return AdvisoryLockLeader(engine)
    return LeaseLeader(sessions)
