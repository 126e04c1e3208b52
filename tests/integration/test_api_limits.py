"""Abuse limits over HTTP: oversized bodies (declared or chunked) and a submit flood."""

from __future__ import annotations

from collections.abc import Iterator

from relayer.ratelimit import RateLimiter

from .conftest import Api


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
    agent_id, _ = api.agent(0)
    other_id, _ = api.agent(1)
    api.services.limiter = RateLimiter(rate_per_s=0.5, burst=3)
    body = {
        "symbol": "NVDA",
        "usdcAmount": "1",
        "minTokenOut": "0",
        "maxSlippageBps": 100,
        "exits": [],
        "deadline": 2**40,
        "nonce": 0,
        "signature": "0x" + "11" * 65,
    }
    codes = [api.client.post(f"/agents/{agent_id}/trade-intents", json=body).status_code for _ in range(5)]
    assert codes[:3] != [429, 429, 429] and codes[3:] == [429, 429]
    limited = api.client.post(f"/agents/{agent_id}/trade-intents", json=body)
    assert limited.json()["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    # Another agent is not slowed by the first one's flood.
    assert api.client.post(f"/agents/{other_id}/trade-intents", json=body).status_code != 429
