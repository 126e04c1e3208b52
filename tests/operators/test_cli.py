"""`alphagrid keys …` and `alphagrid webhooks …` on the running relayer's database (both databases):
a key made by the CLI authenticates over HTTP and shows its last use; a subscription added by the CLI
is picked up by the running relayer (its snapshot refresh, not an in-process invalidation) and
delivers; rotate, remove and revoke take effect."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook
from typer.testing import CliRunner

from relayer.cli import app

from .conftest import Api, Receiver, bearer
from .test_webhooks import eventually, open_position


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("ALPHAGRID_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    assert "Traceback" not in result.stdout + result.stderr
    return result.exit_code, result.stdout, result.stderr


def ok(env: dict[str, str], args: Sequence[str]) -> Any:
    code, out, err = run(env, *args, "--json")
    assert code == 0, (code, out, err)
    return json.loads(out)


def test_keys_and_webhooks_commands(api: Api, receiver: Receiver, tmp_path: Path) -> None:
    env = {"ALPHAGRID_DATABASE_URL": api.services.settings.database_url, "ALPHAGRID_HOME": str(tmp_path)}
    created = ok(env, ["keys", "create", "--name", "ops", "--scope", "operator"])
    assert created["key"].startswith("ag_") and created["scope"] == "operator" and not created["revoked"]
    ok(env, ["keys", "create", "--name", "alice", "--scope", "approver"])
    code, _, err = run(env, "keys", "create", "--name", "bob", "--scope", "root")
    assert code == 2 and "operator or approver" in err
    code, _, err = run(env, "keys", "create", "--name", "ops", "--scope", "operator")
    assert code == 2 and "already exists" in err

    assert api.client.get("/webhooks", headers=bearer(created["key"])).status_code == 200
    listed = {k["name"]: k for k in ok(env, ["keys", "list"])["keys"]}
    assert listed["ops"]["lastUsedAt"] is not None and listed["alice"]["lastUsedAt"] is None
    assert "key" not in listed["ops"]
    code, table, _ = run(env, "keys", "list")
    assert code == 0 and "ops" in table and "never" in table

    agent_id, _ = api.agent(0)
    hook = ok(env, ["webhooks", "add", receiver.url(), "--events", "fill", "--agent", str(agent_id)])
    assert hook["secret"].startswith("whsec_") and hook["events"] == ["fill"]
    eventually(lambda: int(hook["id"]) in api.services.subscriptions.matching("fill", agent_id), timeout_s=5)
    open_position(api)
    [delivery] = receiver.wait_for(lambda got: len(got) == 1)
    assert Webhook(hook["secret"]).verify(delivery.body, delivery.headers)["type"] == "fill"
    listed_hooks = eventually(
        lambda: [w for w in ok(env, ["webhooks", "list"])["webhooks"] if w["deliveries"]["delivered"] == 1]
    )
    assert listed_hooks[0]["lastAttempt"]["statusCode"] == 204
    code, table, _ = run(env, "webhooks", "list")
    assert code == 0 and receiver.url() in table

    rotated = ok(env, ["webhooks", "rotate", hook["id"], "--grace-s", "0"])
    assert rotated["secret"] not in (hook["secret"], "") and rotated["id"] == hook["id"]
    assert ok(env, ["webhooks", "remove", hook["id"]]) == {"id": hook["id"], "deleted": True}
    assert ok(env, ["webhooks", "list"]) == {"webhooks": []}
    code, _, err = run(env, "webhooks", "remove", hook["id"])
    assert code == 2 and f"no webhook {hook['id']}" in err
    code, _, err = run(env, "webhooks", "add", "ftp://x", "--events", "fill")
    assert code == 2 and "url" in err

    assert ok(env, ["keys", "revoke", "ops"])["revoked"] is True
    r = api.client.get("/webhooks", headers=bearer(created["key"]))
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    code, _, err = run(env, "keys", "revoke", "nobody")
    assert code == 2 and "no key named" in err
