"""Operator API keys: made, stored hashed, checked in constant time, revoked.

A key reads `ag_<key id>_<secret>`: the key id (16 hex characters, not secret) finds the row, and the
SHA-256 of the whole key is compared with `hmac.compare_digest` over two 32-byte digests, so how long
the check takes does not depend on where a wrong key differs. SHA-256 (not bcrypt or argon2) is
enough because the secret part is 32 random bytes: there is no dictionary to try and 2^256 keys to
brute-force, so a slow hash would only add latency to every request.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from relayer.errors import RelayerError
from relayer.store.models import OperatorKey

PREFIX: Final = "ag_"
KEY_ID_HEX: Final = 16
SECRET_BYTES: Final = 32
# ag_ + 16 hex + _ + 43 urlsafe base64 characters (32 bytes, unpadded)
_KEY_RE: Final = re.compile(r"ag_([0-9a-f]{16})_[A-Za-z0-9_-]{43}")
NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# A key's last use is written at most this often per key (a write per request would cost more than
# the request).
LAST_USED_EVERY_S: Final = 60.0


class Scope(enum.StrEnum):
    OPERATOR = "operator"
    APPROVER = "approver"


# What each scope may do: an operator key can do what an approver key can (approve), not the reverse.
GRANTS: Final[dict[Scope, frozenset[Scope]]] = {
    Scope.OPERATOR: frozenset({Scope.OPERATOR, Scope.APPROVER}),
    Scope.APPROVER: frozenset({Scope.APPROVER}),
}


@dataclass(frozen=True)
class NewKey:
    key: str  # shown once, never stored
    key_id: str
    key_hash: str


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name (recorded as the actor) and its scope."""

    key_row_id: int
    name: str
    scope: Scope

    def allows(self, needed: Scope) -> bool:
        return needed in GRANTS[self.scope]


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def make_key() -> NewKey:
    key_id = secrets.token_hex(KEY_ID_HEX // 2)
    key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(SECRET_BYTES)}"
    return NewKey(key=key, key_id=key_id, key_hash=digest(key).hex())


def key_id_of(presented: str) -> str | None:
    """The lookup id of a well-formed key, or None for anything else (garbled, wrong length)."""
    match = _KEY_RE.fullmatch(presented)
    return match.group(1) if match else None


# Compared against when no row has the key id, so an unknown id costs the same hash and comparison.
_NO_DIGEST: Final = bytes(32)


def matches(stored_hash_hex: str | None, presented: str) -> bool:
    """Constant-time: both sides are 32-byte SHA-256 digests, compared with `hmac.compare_digest`."""
    stored = bytes.fromhex(stored_hash_hex) if stored_hash_hex else _NO_DIGEST
    return hmac.compare_digest(stored, digest(presented))


def unauthorized(message: str) -> RelayerError:
    return RelayerError("unauthorized", message)


def check(row: OperatorKey | None, presented: str) -> Principal:
    """The decision, pure: the row found by the key id (or None) and the key presented."""
    if not matches(row.key_hash if row is not None else None, presented) or row is None:
        raise unauthorized("unknown API key")
    if row.revoked_at is not None:
        raise unauthorized("this API key was revoked")
    return Principal(row.id, row.name, Scope(row.scope))


class KeyChecker:
    """Authenticates presented keys against the database and notes their last use, at most once per
    `LAST_USED_EVERY_S` per key and process (and the UPDATE skips rows another process just wrote)."""

    def __init__(self, last_used_every_s: float = LAST_USED_EVERY_S) -> None:
        self.last_used_every_s = last_used_every_s
        self._noted: dict[int, float] = {}
        self._lock = threading.Lock()

    def authenticate(self, session: Session, presented: str | None) -> Principal:
        if not presented:
            raise unauthorized("this endpoint needs an API key: Authorization: Bearer <key>")
        key_id = key_id_of(presented)
        if key_id is None:
            raise unauthorized("malformed API key")
        row = session.execute(select(OperatorKey).where(OperatorKey.key_id == key_id)).scalar_one_or_none()
        principal = check(row, presented)
        self._note_use(session, principal.key_row_id)
        return principal

    def _note_use(self, session: Session, row_id: int) -> None:
        now_m = time.monotonic()
        with self._lock:
            last = self._noted.get(row_id)
            if last is not None and now_m - last < self.last_used_every_s:
                return
            self._noted[row_id] = now_m
        now = datetime.now(UTC)
        session.execute(
            update(OperatorKey)
            .where(
                OperatorKey.id == row_id,
                or_(
                    OperatorKey.last_used_at.is_(None),
                    OperatorKey.last_used_at < now - timedelta(seconds=self.last_used_every_s),
                ),
            )
            .values(last_used_at=now)
        )
        session.commit()


# ---------------------------------------------------------------------- management (CLI)


def create(session: Session, name: str, scope: Scope) -> tuple[OperatorKey, str]:
    """A new key; the caller prints the returned key once. A name is never reused, not even a revoked
    key's, so `keys list` and the names recorded as actors stay unambiguous."""
    if not NAME_RE.fullmatch(name):
        raise RelayerError(
            "invalid_request", f"invalid key name {name!r}: letters, digits, '.', '_', '-', up to 64"
        )
    if session.execute(select(OperatorKey.id).where(OperatorKey.name == name)).first() is not None:
        raise RelayerError("invalid_request", f"a key named {name!r} already exists")
    new = make_key()
    row = OperatorKey(name=name, scope=scope.value, key_id=new.key_id, key_hash=new.key_hash)
    session.add(row)
    session.flush()
    return row, new.key


def list_keys(session: Session) -> list[OperatorKey]:
    return list(session.execute(select(OperatorKey).order_by(OperatorKey.id)).scalars())


def revoke(session: Session, name: str) -> OperatorKey:
    row = session.execute(select(OperatorKey).where(OperatorKey.name == name)).scalar_one_or_none()
    if row is None:
        raise RelayerError("key_not_found", f"no key named {name!r}")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
    return row


def key_json(row: OperatorKey) -> dict[str, object]:
    def iso(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment is not None else None

    return {
        "name": row.name,
        "scope": row.scope,
        "keyId": row.key_id,
        "createdAt": iso(row.created_at),
        "lastUsedAt": iso(row.last_used_at),
        "revokedAt": iso(row.revoked_at),
        "revoked": row.revoked_at is not None,
    }
