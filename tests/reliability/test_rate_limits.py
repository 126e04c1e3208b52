"""Rate limits a stranger cannot turn against an agent (issue 13, High 3).

The agent's bucket is charged only for intents its signer signed, keyed by the parsed agent id;
unauthenticated failures (malformed bodies, unknown ids, bad signatures) spend the client address's
own bucket, and no request path creates a bucket of its own."""

from __future__ import annotations

from typing import Any

from relayer.config import Settings
from relayer.ratelimit import RateLimiter
from tests.integration.agentkit import sign_typed
from tests.integration.test_api_rejections import LADDER, signed, submit

from .harness import Api

GARBAGE: dict[str, Any] = {
    "symbol": "NVDA",
    "usdcAmount": "1",
    "minTokenOut": "0",
    "maxSlippageBps": 100,
    "exits": [],
    "deadline": 2**40,
    "nonce": 0,
    "signature": "0x" + "11" * 65,
}
STRANGER_KEY = "0x" + "42" * 32


def test_200_garbage_posts_for_an_agent_do_not_block_its_valid_open(api: Api) -> None:
    """The probe's case with the default limits (burst 100): 200 unsigned or wrongly signed posts for
    agent 1. They get 400/401, then 429 once the sender's address has failed too often; agent 1's own
    signed open from the same address still executes."""
    defaults = Settings.model_fields
    api.services.limiter = RateLimiter(
        defaults["submit_rate_per_s"].default, defaults["submit_burst"].default
    )
    api.services.strangers = RateLimiter(
        defaults["unauthenticated_rate_per_s"].default, defaults["unauthenticated_burst"].default
    )
    agent_id, _ = api.agent(0)
    q, valid = signed(api, 0, "OpenPosition", symbol="NVDA", usdcAmount="100", exits=LADDER)
    forged = {**valid, "signature": sign_typed(q["typedData"], STRANGER_KEY)}
    codes = []
    for i in range(200):
        r = submit(api, agent_id, "OpenPosition", GARBAGE if i % 2 else forged)
        codes.append(r.status_code)
        if r.status_code == 429:
            assert r.json()["details"]["reason"] == "unauthenticated_failures", r.text
            assert int(r.headers["Retry-After"]) >= 1
    assert set(codes) <= {400, 401, 429} and 401 in codes and 429 in codes, codes
    r = submit(api, agent_id, "OpenPosition", valid)
    assert r.status_code == 201, r.text
    assert list(api.services.limiter._buckets) == [agent_id]


def test_a_zero_padded_agent_id_shares_the_agents_bucket(api: Api) -> None:
    """`/agents/01/…` is agent 1: its submits spend the same bucket as `/agents/1/…`."""
    agent_id, _ = api.agent(0)
    api.services.limiter = RateLimiter(rate_per_s=0.01, burst=2)
    _q, first = signed(api, 0, "OpenPosition", symbol="NVDA", usdcAmount="100", exits=LADDER)
    assert submit(api, agent_id, "OpenPosition", first).status_code == 201
    assert submit(api, f"0{agent_id}", "OpenPosition", first).status_code == 200  # the same record
    r = submit(api, f"00{agent_id}", "OpenPosition", first)
    assert r.status_code == 429 and r.json()["code"] == "rate_limited", r.text
    assert list(api.services.limiter._buckets) == [agent_id]


def test_distinct_paths_create_no_buckets(api: Api) -> None:
    """Each distinct path string used to create a bucket that was never dropped (+8.5 MB per 3,000
    requests). Unknown or padded ids create none; the address has one bucket, whatever the paths."""
    api.services.strangers = RateLimiter(rate_per_s=2, burst=20)
    for i in range(600):
        api.client.post(f"/agents/{'0' * (i % 50)}{1_000_000 + i}/trade-intents", json=GARBAGE)
    assert len(api.services.limiter) == 0
    assert len(api.services.strangers) == 1
