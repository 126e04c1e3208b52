"""`alphagrid serve` SIGKILLed (no shutdown code runs) with deliveries waiting in the outbox, the
receiver down; after the restart, with the receiver back, every one is delivered with the webhook-id
it was written with, none lost, none enqueued twice."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from sqlalchemy import select
from standardwebhooks import Webhook

from relayer.operators import keys
from relayer.store.db import make_engine, make_session_factory
from relayer.store.migrate import upgrade
from relayer.store.models import WebhookOutbox
from tests.integration.agentkit import trade
from tests.integration.test_api_happy_paths import LADDER
from tests.reliability.harness import Stack
from tests.reliability.test_crash import serve, wait_for

from .conftest import Receiver, bearer, make_key


def test_sigkill_with_deliveries_in_the_outbox(
    chain: Stack, db_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    factory = make_session_factory(engine)
    key = make_key(factory, "ops", keys.Scope.OPERATOR)
    assert chain.manifest.demo is not None
    agents = chain.manifest.demo.agents[:2]

    def rows() -> list[WebhookOutbox]:
        with factory() as session:
            return list(session.execute(select(WebhookOutbox).order_by(WebhookOutbox.id)).scalars())

    def kinds(found: list[WebhookOutbox]) -> list[str]:
        return sorted(json.loads(r.body)["type"] for r in found)

    try:
        with serve(chain, db_url, tmp_path / "first", chain.anvil.url) as (proc, client):
            r = client.post(
                "/webhooks",
                json={"url": receiver.url(), "events": ["fill", "ladder_updated"]},
                headers=bearer(key),
            )
            assert r.status_code == 201, r.text
            secret = r.json()["secret"]
            receiver.down()
            for agent in agents:
                opened = trade(
                    client,
                    agent.agent_id,
                    agent.signer_key,
                    "OpenPosition",
                    symbol="NVDA",
                    usdcAmount="1000",
                    exits=LADDER,
                )
                assert opened.status_code == 201, opened.text
            # both opens' fill and ladder events are in the outbox, each tried and failed at least once
            wait_for(
                "the outbox to fill",
                lambda: (
                    kinds(rows()) == ["fill", "fill", "ladder_updated", "ladder_updated"]
                    and all(r.attempts >= 1 for r in rows())
                ),
                timeout_s=30,
            )
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        before = {r.id: r.webhook_id for r in rows()}
        assert all(r.status == "pending" for r in rows()) and receiver.received() == []

        receiver.up()
        with serve(chain, db_url, tmp_path / "second", chain.anvil.url):
            # a row whose lease the killed process held waits for it to expire (30 s)
            wait_for("every delivery", lambda: all(r.status == "delivered" for r in rows()), timeout_s=60)
        after = rows()
        assert {r.id: r.webhook_id for r in after} == before  # none lost, none added by the restart
        got = receiver.received()
        assert {d.headers["webhook-id"] for d in got} == set(before.values())
        bodies = {r.webhook_id: r.body for r in after}
        for d in got:
            assert d.body == bodies[d.headers["webhook-id"]]  # the same signed bytes as written
            Webhook(secret).verify(d.body, d.headers)
        assert len({json.loads(r.body)["eventId"] for r in after}) == 4
    finally:
        engine.dispose()
