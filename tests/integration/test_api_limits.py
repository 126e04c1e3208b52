"""Abuse limits over HTTP: oversized bodies (declared or chunked) and a submit flood."""

from __future__ import annotations

from collections.abc import Iterator

from relayer.ratelimit import RateLimiter

from .conftest import Api
from .test_api_rejections import LADDER, signed


def test_oversized_bodies_are_refused_before_parsing(api: Api) -> None:
    agent_id, _ = api.agent(0)
    big = b'{"symbol": "NVDA", "pad": "' + b"x" * 100_000 + b'"}'
    declared = api.client.post(
        f"/agents/{agent_id}/trade-intents", content=big, headers={"content-type": "application/json"}
    )
    assert declared.status_code == 400 and declared.json()["code"] == "invalid_request"

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(big), 8_192):
            yield big[i : i + 8_192]

    chunked = api.client.post(
        f"/agents/{agent_id}/trade-intents", content=chunks(), headers={"content-type": "application/json"}
    )
    assert chunked.status_code == 400 and "larger than" in chunked.json()["message"]


def test_a_submit_flood_gets_429_with_retry_after(api: Api) -> None:
    """The agent's own signed intents spend its bucket (a resubmission too); another agent is not
    slowed. Unsigned garbage spends the sender's address bucket instead: `rel/test_rate_limits.py`."""
    agent_id, _ = api.agent(0)
    api.services.limiter = RateLimiter(rate_per_s=0.5, burst=3)
    _q, body = signed(api, 0, "OpenPosition", symbol="NVDA", usdcAmount="100", exits=LADDER)
    codes = [api.client.post(f"/agents/{agent_id}/trade-intents", json=body).status_code for _ in range(5)]
    assert codes == [201, 200, 200, 429, 429], codes
    limited = api.client.post(f"/agents/{agent_id}/trade-intents", json=body)
    assert limited.json()["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    # Another agent is not slowed by the first one's flood.
    _q, other = signed(api, 1, "OpenPosition", symbol="NVDA", usdcAmount="100", exits=LADDER)
    assert api.client.post(f"/agents/{api.agent(1)[0]}/trade-intents", json=other).status_code == 201
