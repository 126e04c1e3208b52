"""`AsyncAgentClient`: the twin of `AgentClient` for asyncio (httpx.AsyncClient); the same methods, awaited.

Every trade is quote → sign the returned typed data unchanged → submit. A submit whose answer is lost
(connection dropped, 502/503/504, 429) is sent again with the *same* signed body, never re-quoted: the
relayer answers a repeated intent with the first one's record (200), so a retry cannot trade twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from relayer.sdk import core
from relayer.sdk.errors import AlphaGridError
from relayer.sdk.models import Account, Event, ExitRule, Intent, Position, Price, Quote
from relayer.sdk.signer import Signer

Amount = str | int | float | Decimal
Exits = Sequence[ExitRule | Mapping[str, Any]]
EVENTS_MAX_FAILURES = 30  # consecutive failed reconnections before events() gives up


class AsyncAgentClient:
    """`AsyncAgentClient(url, agent_id=1, key="0x…")`; `wait` is the default `Prefer: wait=N` of submits
    (None: the relayer's default, 10 s; 0: answer as soon as the intent is accepted)."""

    def __init__(
        self,
        url: str = core.DEFAULT_URL,
        *,
        agent_id: int,
        key: str,
        wait: float | None = None,
        timeout: float = 30.0,
        retry: core.RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.agent_id = int(agent_id)
        self.wait_s = wait
        self.retry = retry or core.RetryPolicy()
        self._signer = Signer(key)
        self._timeout = timeout
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout, transport=transport)
        self._decimals: dict[str, int] = {}

    @classmethod
    def from_deployment(
        cls,
        path: Path | str | None = None,
        *,
        agent: int = 0,
        agent_id: int | str | None = None,
        key: str | None = None,
        url: str | None = None,
        **kwargs: Any,
    ) -> AsyncAgentClient:
        """The local stack's demo agent number `agent` from `$ALPHAGRID_HOME/deployment.json` (or `path`);
        `agent_id`, `key` and `url` override what the manifest says."""
        p = Path(path) if path is not None else core.deployment_path()
        d = core.Deployment.read(p) if p.exists() or key is None else core.Deployment(core.DEFAULT_URL, ())
        if key is None or agent_id is None:
            if len(d.agents) <= agent:
                raise AlphaGridError(
                    "agent_not_found", f"{p} has no demo agent {agent}: give agent_id and key"
                )
            agent_id = d.agents[agent][0] if agent_id is None else agent_id
            key = d.agents[agent][1] if key is None else key
        return cls(url or d.api_url, agent_id=int(agent_id), key=key, **kwargs)

    @property
    def address(self) -> str:
        """The agent's signer address (the key itself never leaves the client)."""
        return self._signer.address

    def __repr__(self) -> str:
        return f"AsyncAgentClient({self.url!r}, agent_id={self.agent_id}, signer={self.address})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncAgentClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ transport

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> tuple[int, Any]:
        """One request, retried per `self.retry` with the same body; (status, JSON) of a 2xx answer."""
        attempt = 0
        while True:
            try:
                r = await self._http.request(
                    method,
                    path,
                    params=params,
                    json=json_body,
                    headers=headers,
                    timeout=timeout if timeout is not None else self._timeout,
                )
            except httpx.TransportError as exc:
                if not self.retry.retries(attempt, None):
                    raise core.connection_failed(self.url, exc) from exc
                await asyncio.sleep(self.retry.delay(attempt))
                attempt += 1
                continue
            if r.status_code < 300:
                return r.status_code, core.json_or_error(r.status_code, r.text)
            error = core.error_of(r.status_code, r.text)
            if not self.retry.retries(attempt, r.status_code):
                raise error
            await asyncio.sleep(self.retry.delay(attempt, error))
            attempt += 1

    async def _get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return (await self._request("GET", path, params=params))[1]

    def _agent(self, tail: str) -> str:
        return f"/agents/{self.agent_id}/{tail}"

    # ------------------------------------------------------------------ reads

    async def prices(self, *symbols: str) -> list[Price]:
        """Oracle prices, all symbols when none are given: `c.prices("NVDA")`."""
        params = {"symbols": ",".join(symbols)} if symbols else None
        return [Price.from_json(p) for p in (await self._get("/prices", params))["prices"]]

    async def account(self) -> Account:
        return Account.from_json(await self._get(f"/agents/{self.agent_id}"))

    async def positions(self, status: str = "open") -> list[Position]:
        """`open` (default), `closed` or `all`."""
        doc = await self._get(self._agent("positions"), {"status": status})
        return [Position.from_json(p) for p in doc["positions"]]

    async def position(self, position_id: int | str) -> Position:
        return Position.from_json(await self._get(self._agent(f"positions/{position_id}")))

    async def intents(self, limit: int = 100) -> list[Intent]:
        doc = await self._get(self._agent("intents"), {"limit": str(limit)})
        return [Intent.from_json(i) for i in doc["intents"]]

    async def intent(self, intent_id: int | str | Intent) -> Intent:
        iid = intent_id.intent_id if isinstance(intent_id, Intent) else intent_id
        return Intent.from_json(await self._get(self._agent(f"intents/{iid}")))

    # ------------------------------------------------------------------ quotes

    async def _quote(self, primary_type: str, **kwargs: Any) -> Quote:
        params = core.quote_params(primary_type, **kwargs)
        return Quote.from_json(await self._get(self._agent(core.PATHS[primary_type][0]), params))

    async def quote_open(
        self,
        symbol: str,
        usdc: Amount,
        exits: Exits,
        *,
        max_slippage_bps: int | None = None,
        deadline: int | None = None,
    ) -> Quote:
        return await self._quote(
            "OpenPosition",
            symbol=symbol,
            usdc=usdc,
            exits=exits,
            max_slippage_bps=max_slippage_bps,
            deadline=deadline,
        )

    async def quote_add(
        self,
        position_id: int | str,
        usdc: Amount,
        *,
        max_slippage_bps: int | None = None,
        deadline: int | None = None,
    ) -> Quote:
        return await self._quote(
            "AddToPosition",
            position_id=position_id,
            usdc=usdc,
            max_slippage_bps=max_slippage_bps,
            deadline=deadline,
        )

    async def quote_reduce(
        self,
        position_id: int | str,
        tokens: Amount | None = None,
        *,
        max_slippage_bps: int | None = None,
        deadline: int | None = None,
    ) -> Quote:
        """`tokens=None` quotes selling the whole position."""
        return await self._quote(
            "ReducePosition",
            position_id=position_id,
            tokens=tokens,
            max_slippage_bps=max_slippage_bps,
            deadline=deadline,
        )

    async def quote_update_exits(
        self, position_id: int | str, exits: Exits, *, deadline: int | None = None
    ) -> Quote:
        return await self._quote("UpdateExitLadder", position_id=position_id, exits=exits, deadline=deadline)

    # ------------------------------------------------------------------ submits

    async def _token_decimals(self, token: str) -> int:
        key = token.lower()
        if key not in self._decimals:
            vault_id = (await self.account()).vault_id
            doc = await self._get(f"/vaults/{vault_id}/tokens")
            for t in doc["tokens"]:
                self._decimals[str(t["address"]).lower()] = int(t["decimals"])
        if key not in self._decimals:
            raise AlphaGridError("token_not_allowed", f"token {token} is not in the agent's vault")
        return self._decimals[key]

    async def signed_body(self, quote: Quote) -> dict[str, Any]:
        """The submit body for `quote`, signed with the agent's key (what `submit` sends)."""
        decimals = await self._token_decimals(str(quote.token)) if core.needs_decimals(quote.raw) else 0
        return core.submit_body(quote.raw, self._signer.sign_typed_data(quote.typed_data), decimals)

    async def submit(self, quote: Quote, *, wait: float | None = None) -> Intent:
        """Signs `quote` and submits it: 201 mined, 202 still in flight (follow it with `wait(intent)`)."""
        return await self.submit_body(quote.primary_type, await self.signed_body(quote), wait=wait)

    async def submit_body(
        self, primary_type: str, body: Mapping[str, Any], *, wait: float | None = None
    ) -> Intent:
        wait_s = wait if wait is not None else self.wait_s
        status, doc = await self._request(
            "POST",
            self._agent(core.PATHS[primary_type][1]),
            json_body=dict(body),
            headers=core.prefer_header(wait_s),
            timeout=self._timeout + (wait_s if wait_s is not None else 10.0),
        )
        return Intent.from_json(doc, http_status=status)

    async def open(
        self,
        symbol: str,
        usdc: Amount,
        exits: Exits,
        *,
        max_slippage_bps: int | None = None,
        wait: float | None = None,
    ) -> Intent:
        """Opens a position: `c.open("NVDA", usdc="100", exits=[TakeProfit(1000, 5000), StopLoss(-500)])`."""
        return await self.submit(
            await self.quote_open(symbol, usdc, exits, max_slippage_bps=max_slippage_bps), wait=wait
        )

    async def add(
        self,
        position_id: int | str,
        usdc: Amount,
        *,
        max_slippage_bps: int | None = None,
        wait: float | None = None,
    ) -> Intent:
        return await self.submit(
            await self.quote_add(position_id, usdc, max_slippage_bps=max_slippage_bps), wait=wait
        )

    async def reduce(
        self,
        position_id: int | str,
        tokens: Amount | None = None,
        *,
        max_slippage_bps: int | None = None,
        wait: float | None = None,
    ) -> Intent:
        """Sells `tokens` of the position (all of it when None)."""
        return await self.submit(
            await self.quote_reduce(position_id, tokens, max_slippage_bps=max_slippage_bps), wait=wait
        )

    async def update_exits(
        self, position_id: int | str, exits: Exits, *, wait: float | None = None
    ) -> Intent:
        return await self.submit(await self.quote_update_exits(position_id, exits), wait=wait)

    async def wait(
        self, intent: Intent | int | str, *, timeout: float = 60.0, poll_s: float = 0.25
    ) -> Intent:
        """Follows an intent (a 202 answer) until it is confirmed, failed or rejected."""
        deadline = time.monotonic() + timeout
        record = await self.intent(intent)
        while not record.final:
            if time.monotonic() >= deadline:
                raise AlphaGridError(
                    "timeout", f"intent {record.intent_id} still {record.status} after {timeout:g} s"
                )
            await asyncio.sleep(poll_s)
            record = await self.intent(record.intent_id or 0)
        return record

    # ------------------------------------------------------------------ events

    async def events(
        self, last_event_id: int | str | None = None, *, reconnect: bool = True
    ) -> AsyncIterator[Event]:
        """The agent's event stream (SPEC §2.6), forever. After a dropped connection it reconnects with
        `Last-Event-ID`, so nothing is missed; `last_event_id` resumes an earlier stream."""
        last = None if last_event_id is None else str(last_event_id)
        failures = 0
        while True:
            parser = core.SseParser()
            headers = {"Accept": "text/event-stream"} | ({"Last-Event-ID": last} if last else {})
            try:
                async with self._http.stream(
                    "GET",
                    self._agent("events"),
                    headers=headers,
                    timeout=httpx.Timeout(self._timeout, read=45.0),
                ) as r:
                    if r.status_code != 200:
                        await r.aread()
                        raise core.error_of(r.status_code, r.text)
                    failures = 0
                    async for line in r.aiter_lines():
                        event = parser.feed(line)
                        if parser.last_id is not None:
                            last = parser.last_id
                        if event is not None:
                            yield event
            except httpx.TransportError as exc:
                failures += 1
                if not reconnect or failures > EVENTS_MAX_FAILURES:
                    raise core.connection_failed(self.url, exc) from exc
            if not reconnect:
                return
            # The server's `retry:` hint (1 s) between reconnections, the first one at once.
            await asyncio.sleep((parser.retry_ms or 1000) / 1000 if failures > 1 else 0.05)
