"""Operator keys: made, stored hashed, checked in constant time by construction, scoped, revoked —
on both databases, over real HTTP for the 401/403 answers."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from relayer.errors import RelayerError
from relayer.operators import keys
from relayer.store.models import OperatorKey

from .conftest import Api, bearer, make_key

# ---------------------------------------------------------------------- pure


def test_make_key_is_high_entropy_and_parses_back() -> None:
    a, b = keys.make_key(), keys.make_key()
    assert a.key != b.key and a.key_id != b.key_id
    assert a.key.startswith("ag_") and len(a.key) == 3 + 16 + 1 + 43
    assert keys.key_id_of(a.key) == a.key_id
    assert a.key_hash == hashlib.sha256(a.key.encode()).hexdigest()


@pytest.mark.parametrize(
    "garbled",
    [
        "",
        "Bearer",
        "ag_",
        "ag_zz",
        "xx_0123456789abcdef_" + "A" * 43,
        "ag_0123456789abcdef_" + "A" * 42,
        "ag_0123456789ABCDEF_" + "A" * 43,
        "ag_0123456789abcdef_" + "A" * 43 + "\n",
    ],
)
def test_key_id_of_refuses_garbled_keys(garbled: str) -> None:
    assert keys.key_id_of(garbled) is None


def test_comparison_is_compare_digest_over_fixed_length_digests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Constant time by construction: every check, whatever the presented key (right, wrong at the
    first or the last character, unknown id), is one `hmac.compare_digest` of two 32-byte digests."""
    calls: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(keys.hmac, "compare_digest", spy)
    new = keys.make_key()
    first_wrong = new.key[:20] + ("B" if new.key[20] != "B" else "C") + new.key[21:]
    last_wrong = new.key[:-1] + ("B" if new.key[-1] != "B" else "C")
    assert keys.matches(new.key_hash, new.key)
    assert not keys.matches(new.key_hash, first_wrong)
    assert not keys.matches(new.key_hash, last_wrong)
    assert not keys.matches(None, new.key)  # no row for the id: still one comparison
    assert calls == [(32, 32)] * 4


# ---------------------------------------------------------------------- with a database


def test_create_list_revoke(sessions: sessionmaker[Session]) -> None:
    key = make_key(sessions, "alice", keys.Scope.APPROVER)
    with sessions() as session:
        row = session.execute(select(OperatorKey)).scalar_one()
        assert row.key_hash == hashlib.sha256(key.encode()).hexdigest() and key not in row.key_hash
        assert keys.key_json(row)["lastUsedAt"] is None
        principal = keys.KeyChecker().authenticate(session, key)
    assert principal.name == "alice" and principal.scope is keys.Scope.APPROVER
    assert principal.allows(keys.Scope.APPROVER) and not principal.allows(keys.Scope.OPERATOR)
    with sessions() as session:
        assert [k.last_used_at is not None for k in keys.list_keys(session)] == [True]
    with sessions.begin() as session, pytest.raises(RelayerError) as taken:
        keys.create(session, "alice", keys.Scope.OPERATOR)
    assert taken.value.code == "invalid_request"
    with sessions.begin() as session:
        keys.revoke(session, "alice")
    with sessions() as session, pytest.raises(RelayerError) as revoked:
        keys.KeyChecker().authenticate(session, key)
    assert revoked.value.code == "unauthorized" and "revoked" in revoked.value.message
    with sessions.begin() as session, pytest.raises(RelayerError) as missing:
        keys.revoke(session, "bob")
    assert missing.value.code == "key_not_found"


def test_last_used_is_written_at_most_once_per_interval(sessions: sessionmaker[Session]) -> None:
    key = make_key(sessions, "ops", keys.Scope.OPERATOR)
    checker = keys.KeyChecker(last_used_every_s=3600)
    with sessions() as session:
        checker.authenticate(session, key)
    with sessions() as session:
        first = session.execute(select(OperatorKey.last_used_at)).scalar_one()
        checker.authenticate(session, key)
    with sessions() as session:
        assert session.execute(select(OperatorKey.last_used_at)).scalar_one() == first


# ---------------------------------------------------------------------- over HTTP


def _webhook_body(api: Api) -> dict[str, Any]:
    return {"url": "http://127.0.0.1:9/hook", "events": ["fill"]}


def test_http_no_key_wrong_key_revoked_key_and_scope(api: Api) -> None:
    c = api.client
    sessions = api.services.sessions
    operator = make_key(sessions, "ops", keys.Scope.OPERATOR)
    approver = make_key(sessions, "approver", keys.Scope.APPROVER)

    def answer(headers: dict[str, str]) -> tuple[int, dict[str, Any], str | None]:
        r = c.get("/webhooks", headers=headers)
        return r.status_code, r.json(), r.headers.get("www-authenticate")

    status, body, challenge = answer({})
    assert (status, body["code"], challenge) == (401, "unauthorized", "Bearer")
    assert set(body) == {"code", "message", "details"}
    for garbled in (
        {"Authorization": "Basic YWxhZGRpbjpvcGVuc2VzYW1l"},
        {"Authorization": "Bearer"},
        bearer("not-a-key"),
        bearer(operator + "x"),
    ):
        assert answer(garbled)[:1] == (401,), garbled
        assert answer(garbled)[1]["code"] == "unauthorized"
    # well formed, right id, wrong secret; and a well-formed key nobody made
    wrong_secret = operator[:-1] + ("A" if operator[-1] != "A" else "B")
    assert answer(bearer(wrong_secret))[1]["code"] == "unauthorized"
    assert answer(bearer(keys.make_key().key))[1]["code"] == "unauthorized"

    status, body, _ = answer(bearer(approver))
    assert (status, body["code"]) == (403, "forbidden")
    assert body["details"] == {"scope": "approver", "required": "operator"}
    r = c.post("/webhooks", json=_webhook_body(api), headers=bearer(approver))
    assert r.status_code == 403 and r.json()["code"] == "forbidden"

    assert answer(bearer(operator))[0] == 200
    with sessions.begin() as session:
        keys.revoke(session, "ops")
    status, body, _ = answer(bearer(operator))
    assert (status, body["code"]) == (401, "unauthorized") and "revoked" in body["message"]

    with sessions() as session:
        used = {k.name: k.last_used_at for k in keys.list_keys(session)}
    assert used["ops"] is not None and used["approver"] is not None


def test_openapi_documents_the_bearer_scheme(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert doc["paths"]["/webhooks"]["post"]["security"] == [{"HTTPBearer": []}]
