"""The soak's agents: each a thread that quotes, signs and submits a mix of intents with its own
sequential nonces, and keeps retrying the SAME signed intent while the relayer is down, since
idempotency is what makes that safe. Every answer is recorded for the audit."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

import httpx
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak

from bench.soak.chain import SYMBOLS, SoakAgent

QUOTE_PATH = {
    "OpenPosition": "trade-intents/quote",
    "AddToPosition": "add-intents",
    "ReducePosition": "reduce-intents",
    "UpdateExitLadder": "exit-ladder-intents",
}
SUBMIT_PATH = {
    "OpenPosition": "trade-intents",
    "AddToPosition": "add-intents",
    "ReducePosition": "reduce-intents",
    "UpdateExitLadder": "exit-ladder-intents",
}
RETRY_STATUSES = frozenset({429, 503})  # answers a client waits out and sends the same intent again
MAX_ANSWER_RETRIES = 20


@dataclass
class Submission:
    """One signed intent, however many times it had to be posted."""

    agent_id: int
    primary_type: str
    nonce: int
    digest: str
    idempotency_key: str | None
    no_wait: bool
    posts: int = 0
    transport_errors: int = 0
    answers: list[int] = field(default_factory=list)
    status_code: int | None = None
    code: str | None = None
    intent_id: str | None = None
    answer_status: str | None = None
    duplicate_check: str | None = None  # "same" / "different: …" when re-posted after a 2xx on purpose

    @property
    def accepted(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Budget:
    """How many signed intents remain to be sent across all agents."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.taken = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.taken >= self.total:
                return False
            self.taken += 1
            return True


def digest_of(typed_data: dict[str, Any]) -> str:
    signable = encode_typed_data(full_message=typed_data)
    return "0x" + keccak(b"\x19" + signable.version + signable.header + signable.body).hex()


def sign(typed_data: dict[str, Any], key: str) -> str:
    signed = Account.sign_message(encode_typed_data(full_message=typed_data), key)
    return "0x" + bytes(signed.signature).hex()


def human(base: str | int, decimals: int) -> str:
    whole, frac = divmod(int(base), 10**decimals)
    return f"{whole}.{frac:0{decimals}d}".rstrip("0").rstrip(".") if frac else str(whole)


def body_from_quote(q: dict[str, Any], signature: str) -> dict[str, Any]:
    """The submit body mirroring the quoted message in human units (SPEC §2.3)."""
    m = q["typedData"]["message"]
    kind = q["typedData"]["primaryType"]
    common = {"deadline": int(m["deadline"]), "nonce": int(m["nonce"]), "signature": signature}
    if kind == "OpenPosition":
        return {
            "symbol": q["symbol"],
            "usdcAmount": human(m["usdcAmount"], 6),
            "minTokenOut": human(m["minTokenOut"], 18),
            "maxSlippageBps": int(m["maxSlippageBps"]),
            "exits": q["exits"],
            **common,
        }
    if kind == "AddToPosition":
        return {
            "positionId": q["positionId"],
            "usdcAmount": human(m["usdcAmount"], 6),
            "minTokenOut": human(m["minTokenOut"], 18),
            "maxSlippageBps": int(m["maxSlippageBps"]),
            **common,
        }
    if kind == "ReducePosition":
        return {
            "positionId": q["positionId"],
            "tokenAmount": human(m["tokenAmount"], 18),
            "minUsdcOut": human(m["minUsdcOut"], 6),
            "maxSlippageBps": int(m["maxSlippageBps"]),
            **common,
        }
    return {"positionId": q["positionId"], "exits": q["exits"], **common}


def random_ladder(rng: random.Random) -> list[dict[str, Any]]:
    """A ladder the `funded` track accepts (a take-profit and a stop-loss required), 2 or 3 rules,
    with triggers close enough that the price walk fires some of them."""

    def rule(kind: str, bps: int, exit_bps: int) -> dict[str, Any]:
        return {"triggerType": kind, "triggerBps": bps, "exitBps": exit_bps}

    take = rng.randint(100, 800)
    ladder = [rule("TakeProfit", take, rng.randint(2000, 8000))]
    if rng.random() < 0.3:
        ladder.append(rule("TakeProfit", take + rng.randint(50, 800), rng.randint(2000, 8000)))
    return [*ladder, rule("StopLoss", -rng.randint(150, 800), 10_000)]


class AgentClient:
    def __init__(
        self,
        base_url: str,
        agent: SoakAgent,
        budget: Budget,
        rng: random.Random,
        abort: threading.Event,
    ) -> None:
        self.agent = agent
        self.budget = budget
        self.rng = rng
        self.abort = abort
        self.client = httpx.Client(base_url=base_url, timeout=httpx.Timeout(30.0, connect=2.0))
        self.submissions: list[Submission] = []
        self.quote_errors: Counter[str] = Counter()
        self.transport_errors = 0
        self.error: BaseException | None = None
        self._n = 0

    # ------------------------------------------------------------------ plumbing

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One HTTP exchange, retried on transport errors (the relayer is down or was killed mid-answer)."""
        while True:
            if self.abort.is_set():
                raise RuntimeError("aborted")
            try:
                return self.client.request(method, path, **kwargs)
            except httpx.TransportError:
                self.transport_errors += 1
                time.sleep(self.rng.uniform(0.05, 0.3))

    def run(self) -> None:
        try:
            while self.budget.take():
                self.submissions.append(self.one())
        except BaseException as exc:
            self.error = exc
        finally:
            self.client.close()

    # ------------------------------------------------------------------ one intent

    def one(self) -> Submission:
        """Quote → sign → submit one intent; re-quotes (no intent sent yet) while quotes are refused."""
        while True:
            primary_type, params = self.choose()
            q = self._request(
                "GET", f"/agents/{self.agent.agent_id}/{QUOTE_PATH[primary_type]}", params=params
            )
            if q.status_code == 200:
                break
            self.quote_errors[f"{q.status_code} {_code(q)}"] += 1
            time.sleep(0.02)
        quoted = q.json()
        typed = quoted["typedData"]
        body = body_from_quote(quoted, sign(typed, self.agent.key))
        self._n += 1
        key = (
            f"soak-{self.agent.agent_id}-{self._n}-{self.rng.getrandbits(32):08x}"
            if self.rng.random() < 0.3
            else None
        )
        sub = Submission(
            agent_id=self.agent.agent_id,
            primary_type=primary_type,
            nonce=int(typed["message"]["nonce"]),
            digest=digest_of(typed),
            idempotency_key=key,
            no_wait=self.rng.random() < 0.35,
        )
        headers = {"Prefer": "wait=0"} if sub.no_wait else {}
        if key is not None:
            headers["Idempotency-Key"] = key
        path = f"/agents/{self.agent.agent_id}/{SUBMIT_PATH[primary_type]}"
        self._submit(sub, path, body, headers)
        if sub.accepted and self.rng.random() < 0.05:
            again = self._request("POST", path, json=body, headers=headers)
            same = again.status_code == 200 and again.json().get("intentId") == sub.intent_id
            sub.duplicate_check = "same" if same else f"different: {again.status_code} {again.text[:200]}"
        return sub

    def _submit(self, sub: Submission, path: str, body: dict[str, Any], headers: dict[str, str]) -> None:
        for _ in range(MAX_ANSWER_RETRIES):
            before = self.transport_errors
            sub.posts += 1
            r = self._request("POST", path, json=body, headers=headers)
            sub.posts += self.transport_errors - before
            sub.transport_errors += self.transport_errors - before
            sub.answers.append(r.status_code)
            sub.status_code = r.status_code
            doc = _json(r)
            sub.code = doc.get("code")
            if r.is_success:
                sub.intent_id = str(doc["intentId"])
                sub.answer_status = doc.get("status")
                return
            if r.status_code not in RETRY_STATUSES and r.status_code < 500:
                return
            time.sleep(self.rng.uniform(0.1, 0.5))  # 429 / 503 / a 5xx: the same signed intent again

    # ------------------------------------------------------------------ what to do next

    def choose(self) -> tuple[str, dict[str, str]]:
        r = self._request("GET", f"/agents/{self.agent.agent_id}/positions")
        held = {p["symbol"]: p for p in r.json()["positions"]} if r.status_code == 200 else {}
        free = [s for s in SYMBOLS if s not in held]
        roll = self.rng.random()
        if not held or (free and roll < 0.25):
            symbol = self.rng.choice(free)
            exits = json.dumps(random_ladder(self.rng))
            return "OpenPosition", {
                "symbol": symbol,
                "usdcAmount": str(self.rng.randint(200, 3000)),
                "exits": exits,
            }
        p = held[self.rng.choice(sorted(held))]
        if roll < 0.5:
            return "AddToPosition", {"positionId": p["id"], "usdcAmount": str(self.rng.randint(100, 1500))}
        if roll < 0.75:
            params = {"positionId": p["id"]}
            if self.rng.random() < 0.7:  # otherwise the quote defaults to the whole position
                part = Decimal(p["size"]) * Decimal(str(self.rng.uniform(0.1, 0.6)))
                params["tokenAmount"] = str(part.quantize(Decimal("0.000001"), rounding=ROUND_DOWN))
            return "ReducePosition", params
        return "UpdateExitLadder", {"positionId": p["id"], "exits": json.dumps(random_ladder(self.rng))}


def _json(r: httpx.Response) -> dict[str, Any]:
    try:
        doc = r.json()
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _code(r: httpx.Response) -> str:
    return str(_json(r).get("code", "?"))
