"""One client process of the burst and single benchmarks (bench/burst.py): quote → sign → submit
for each job of its spec, `concurrency` at a time, on one httpx AsyncClient. Imports only what a
client needs, so it starts fast.

    python -m bench.burst_client <spec.json>

Protocol: prints `READY` once its connections are open, reads the start wall time from stdin, runs,
then prints {"answers": [...], "cpu_s": CPU seconds from the start} as JSON."""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.soak.client import QUOTE_PATH, SUBMIT_PATH, body_from_quote, sign

_WARM_TYPED_DATA: dict[str, Any] = {
    "types": {
        "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"}],
        "Warm": [{"name": "n", "type": "uint256"}],
    },
    "primaryType": "Warm",
    "domain": {"name": "warm", "chainId": 1},
    "message": {"n": 1},
}


def _label(r: httpx.Response, what: str) -> str:
    try:
        doc = r.json()
    except ValueError:
        doc = {}
    if not isinstance(doc, dict):
        doc = {}
    word = doc.get("status") if r.is_success else doc.get("code")
    return f"{r.status_code} {word or r.text[:60]}" + ("" if what == "submit" else f" ({what})")


async def _cycle(client: httpx.AsyncClient, job: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    """quote → sign → submit for one job {agent, key, kind, params}."""
    agent, kind = job["agent"], job["kind"]
    start = time.time()
    q = await client.get(f"/agents/{agent}/{QUOTE_PATH[kind]}", params=job["params"])
    if q.status_code != 200:
        return {
            "agent": agent,
            "start": start,
            "submit": None,
            "end": time.time(),
            "code": q.status_code,
            "label": _label(q, "quote"),
        }
    quoted = q.json()
    body = body_from_quote(quoted, sign(quoted["typedData"], job["key"]))
    submit = time.time()
    r = await client.post(f"/agents/{agent}/{SUBMIT_PATH[kind]}", json=body, headers=headers)
    end = time.time()
    return {
        "agent": agent,
        "start": start,
        "submit": submit,
        "end": end,
        "code": r.status_code,
        "label": _label(r, "submit"),
    }


async def _client_main(spec: dict[str, Any]) -> dict[str, Any]:
    jobs: list[dict[str, Any]] = spec["jobs"]
    concurrency = max(1, int(spec["concurrency"]))
    headers = {"Prefer": f"wait={spec['prefer_wait']:g}"} if spec.get("prefer_wait") is not None else {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    answers: list[dict[str, Any]] = []
    queue = list(reversed(jobs))
    async with httpx.AsyncClient(base_url=spec["url"], timeout=120, limits=limits) as client:
        # Open the connections before the clock (as a client that has been running would have them).
        await asyncio.gather(*(client.get("/health") for _ in range(concurrency)))
        # Warm the signing path too (its first call builds caches), then wait for the common start.
        sign(_WARM_TYPED_DATA, "0x" + "11" * 32)
        print("READY", flush=True)
        start_at = float(await asyncio.to_thread(sys.stdin.readline))
        cpu_before = _cpu_s()
        await asyncio.sleep(max(0.0, start_at - time.time()))

        async def worker() -> None:
            while queue:
                answers.append(await _cycle(client, queue.pop(), headers))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"answers": answers, "cpu_s": _cpu_s() - cpu_before}


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps(asyncio.run(_client_main(spec))))


if __name__ == "__main__":
    main()
