"""Token buckets for submits.

- Per agent (`RateLimiter` keyed by the parsed integer agent id): charged only once the intent's
  signature is verified, so nobody but the agent can spend the agent's budget (`/agents/02/…` and
  `/agents/2/…` are the same bucket).
- Per client address, for unauthenticated failures (`StrangerLimit`): malformed bodies, unknown ids,
  bad signatures. Past the budget such an answer becomes 429; a verified intent from the same address
  is never refused by it.

Memory is bounded: at most `max_keys` buckets, the least recently used dropped first (a dropped bucket
comes back full, which only forgives a client that has been quiet the longest).

In-process, so each API replica limits on its own; behind a load balancer the effective limit is the
per-replica rate times the replicas, and the client address is the proxy's unless it passes the
client's on (uvicorn's `--forwarded-allow-ips`).
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relayer.api.errors import error_response

DEFAULT_MAX_KEYS = 50_000


class _Bucket:
    __slots__ = ("at", "tokens")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens = tokens
        self.at = at


class RateLimiter:
    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        if rate_per_s <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("rate_per_s must be > 0, burst ≥ 1 and max_keys ≥ 1")
        self.rate = rate_per_s
        self.burst = burst
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: OrderedDict[Hashable, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def _refilled(self, key: Hashable, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
        return bucket

    def take(self, key: Hashable) -> float:
        """0.0 if `key` may go now (and spends a token); otherwise the seconds until it may."""
        now = self.clock()
        with self._lock:
            bucket = self._refilled(key, now)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate


_SUBMIT_PATH = re.compile(r"/agents/[^/]+/[a-z-]+-intents")
# Answers that mean the request never showed it came from the agent: malformed (400), bad signature
# (401), no such agent, symbol or position (404).
_UNAUTHENTICATED = frozenset({400, 401, 404})


class _HasStrangers(Protocol):
    strangers: RateLimiter


class StrangerLimit:
    """ASGI middleware on the submit endpoints: counts each unauthenticated failure against the client
    address's bucket; once the bucket is empty the failure is answered 429 `rate_limited` instead
    (with Retry-After). Successful and authenticated answers pass untouched and spend nothing."""

    def __init__(self, app: ASGIApp, services: _HasStrangers) -> None:
        self.app = app
        self.services = services  # `services.strangers` read on each request: it may be replaced

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not _SUBMIT_PATH.fullmatch(scope.get("path", ""))
        ):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else "unknown"
        refused: list[float] = []

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in _UNAUTHENTICATED:
                retry_after_s = self.services.strangers.take(address)
                if retry_after_s > 0:
                    refused.append(retry_after_s)
                    response = error_response(
                        429,
                        "rate_limited",
                        f"too many failed submits from {address}",
                        {"retryAfterS": round(retry_after_s, 3), "reason": "unauthenticated_failures"},
                    )
                    response.headers["Retry-After"] = str(max(1, math.ceil(retry_after_s)))
                    await response(scope, receive, send)
                    return
            if refused:
                return  # the refused answer's body
            await send(message)

        await self.app(scope, receive, counted)
