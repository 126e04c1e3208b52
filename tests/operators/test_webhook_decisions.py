"""The webhook layer's pure parts, case by case: back-off and giving up, the subscription lookup,
the body, the signature (checked with the standardwebhooks library's own verifier)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from relayer.errors import RelayerError
from relayer.operators import webhooks
from relayer.operators.delivery import Delivered, GiveUp, Retry, RetryPolicy, decide, signature
from relayer.operators.outbox import body, index, match

NO_JITTER = RetryPolicy(jitter=0.0)


@pytest.mark.parametrize("code", [200, 201, 204, 299])
def test_any_2xx_is_delivered(code: int) -> None:
    assert decide(code, 1, 0.0, NO_JITTER, 0.5) == Delivered()


@pytest.mark.parametrize(
    ("code", "attempts", "after_s"),
    [
        (None, 1, 1.0),
        (500, 2, 2.0),
        (404, 3, 4.0),
        (301, 4, 8.0),
        (None, 10, 512.0),
        (503, 11, 600.0),
        (None, 50, 600.0),
    ],
)
def test_failures_back_off_exponentially_up_to_ten_minutes(
    code: int | None, attempts: int, after_s: float
) -> None:
    assert decide(code, attempts, 0.0, NO_JITTER, 0.5) == Retry(after_s)


def test_gives_up_after_max_attempts_or_24_hours() -> None:
    assert isinstance(decide(500, 200, 0.0, NO_JITTER, 0.5), GiveUp)
    assert isinstance(decide(500, 20, 24 * 3600 - 100, NO_JITTER, 0.5), GiveUp)  # next try past 24 h
    assert decide(500, 20, 24 * 3600 - 700, NO_JITTER, 0.5) == Retry(600.0)


def test_jitter_stays_within_its_band() -> None:
    policy = RetryPolicy(jitter=0.1)
    assert policy.delay_s(3, 0.0) == pytest.approx(3.6) and policy.delay_s(3, 0.999999) == pytest.approx(4.4)


def test_lookup_by_type_and_agent() -> None:
    snapshot = index(
        [(1, ["fill"], None), (2, ["fill", "intent_status"], 7), (3, ["*"], None), (4, ["*"], 8)]
    )
    assert match(snapshot, "fill", 7) == [1, 2, 3]
    assert match(snapshot, "fill", 8) == [1, 3, 4]
    assert match(snapshot, "intent_status", 9) == [3]
    assert match(snapshot, "exit_fired", 7) == [3]
    assert match({}, "fill", 1) == []


def test_events_and_urls_are_checked() -> None:
    assert webhooks.check_events(["fill", "fill", "*"]) == ["*", "fill"]
    for bad in ([], ["fills"]):
        with pytest.raises(RelayerError) as e:
            webhooks.check_events(bad)
        assert e.value.code == "invalid_request" and e.value.details["field"] == "events"
    for url in ("ftp://x/y", "http://", "javascript:alert(1)", "http://" + "a" * 2001):
        with pytest.raises(RelayerError):
            webhooks.check_url(url)


def test_body_and_signature_verify_with_the_library() -> None:
    at = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)
    text = body(41, 7, "fill", {"positionId": "3", "usdc": "100"}, at)
    assert json.loads(text) == {
        "type": "fill",
        "timestamp": "2026-12-03T06:00:00Z",
        "eventId": 41,
        "agentId": "7",
        "data": {"positionId": "3", "usdc": "100"},
    }
    secret, old = webhooks.new_secret(), webhooks.new_secret()
    assert secret.startswith("whsec_") and secret != old
    now = datetime.now(UTC)
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature([secret, old], "msg_1", now, text),
    }
    assert headers["webhook-signature"].count("v1,") == 2
    assert Webhook(secret).verify(text, headers) == json.loads(text)
    assert Webhook(old).verify(text, headers) == json.loads(text)  # during a rotation's grace
    with pytest.raises(WebhookVerificationError):
        Webhook(webhooks.new_secret()).verify(text, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(text.replace("100", "101"), headers)


def test_signing_secrets_drop_the_previous_one_after_its_grace() -> None:
    now = datetime.now(UTC)
    assert webhooks.signing_secrets("new", "old", now + timedelta(seconds=5)) == ["new", "old"]
    assert webhooks.signing_secrets("new", "old", now - timedelta(seconds=5)) == ["new"]
    assert webhooks.signing_secrets("new", None, None) == ["new"]
