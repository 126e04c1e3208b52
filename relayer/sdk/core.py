"""What the sync and async clients share and that does no I/O: where a deployment is, the quote paths and
parameters, the submit body mirroring a signed quote (SPEC §2.3), the answer → result/error decision,
the retry decision, and the Server-Sent Events parser. `tests/sdk` drives both clients against a real
relayer; the decisions here are the same code for both.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from relayer.sdk.errors import AlphaGridError
from relayer.sdk.models import Event, ExitRule, exits_json

USDC_DECIMALS: Final = 6
DEFAULT_URL: Final = "http://127.0.0.1:8000"
RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})

# primary type → (quote path, submit path) under /agents/{agentId}/
PATHS: Final = {
    "OpenPosition": ("trade-intents/quote", "trade-intents"),
    "AddToPosition": ("add-intents", "add-intents"),
    "ReducePosition": ("reduce-intents", "reduce-intents"),
    "UpdateExitLadder": ("exit-ladder-intents", "exit-ladder-intents"),
}


# ---------------------------------------------------------------------- the deployment (local stack)


def home_dir() -> Path:
    """`$ALPHAGRID_HOME`, else `ALPHAGRID_HOME=` in `./.env`, else `.alphagrid` (as `relayer.config`)."""
    if os.environ.get("ALPHAGRID_HOME"):
        return Path(os.environ["ALPHAGRID_HOME"])
    env = Path(".env")
    if env.is_file():
        for line in env.read_text().splitlines():
            name, sep, value = line.strip().partition("=")
            if sep and name.strip() == "ALPHAGRID_HOME" and value.strip():
                return Path(value.strip().strip("'\""))
    return Path(".alphagrid")


def deployment_path() -> Path:
    return home_dir() / "deployment.json"


@dataclass(frozen=True)
class Deployment:
    """The parts of `deployment.json` (SPEC §4.3) an agent needs: where the relayer is, and on a local
    chain the demo agents' ids and keys."""

    api_url: str
    agents: tuple[tuple[int, str], ...]  # (agentId, signerKey) of the demo section

    @classmethod
    def read(cls, path: Path | str | None = None) -> Deployment:
        p = Path(path) if path is not None else deployment_path()
        doc = json.loads(p.read_text())
        demo = doc.get("demo") or {}
        agents = tuple(
            (int(a["agentId"]), str(a["signerKey"]))
            for a in demo.get("agents") or []
            if "agentId" in a and "signerKey" in a
        )
        return cls(str(doc.get("apiUrl") or DEFAULT_URL), agents)


# ---------------------------------------------------------------------- requests


def amount(value: str | int | float | Decimal, name: str) -> str:
    """A decimal string for the API. Floats are taken by their shortest repr (0.1 → "0.1")."""
    if isinstance(value, bool):
        raise TypeError(f"{name}: a decimal string, int or Decimal, not a bool")
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        value = Decimal(repr(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    raise TypeError(f"{name}: a decimal string, int or Decimal, not {type(value).__name__}")


def quote_params(
    primary_type: str,
    *,
    symbol: str | None = None,
    position_id: int | str | None = None,
    usdc: str | int | float | Decimal | None = None,
    tokens: str | int | float | Decimal | None = None,
    exits: Sequence[ExitRule | Mapping[str, Any]] | None = None,
    max_slippage_bps: int | None = None,
    deadline: int | None = None,
) -> dict[str, str]:
    params: dict[str, str] = {}
    if symbol is not None:
        params["symbol"] = symbol
    if position_id is not None:
        params["positionId"] = str(position_id)
    if usdc is not None:
        params["usdcAmount"] = amount(usdc, "usdc")
    if tokens is not None:
        params["tokenAmount"] = amount(tokens, "tokens")
    if exits is not None:
        params["exits"] = json.dumps(exits_json(exits), separators=(",", ":"))
    if max_slippage_bps is not None:
        params["maxSlippageBps"] = str(int(max_slippage_bps))
    if deadline is not None:
        params["deadline"] = str(int(deadline))
    return params


def human(base: str | int, decimals: int) -> str:
    """Base units → the API's decimal string, exactly (1500000, 6 → "1.5")."""
    whole, frac = divmod(int(base), 10**decimals)
    return f"{whole}.{frac:0{decimals}d}".rstrip("0").rstrip(".") if frac else str(whole)


def submit_body(quote: Mapping[str, Any], signature: str, token_decimals: int) -> dict[str, Any]:
    """The submit body that mirrors the signed message in human units (SPEC §2.3)."""
    typed = quote["typedData"]
    m = typed["message"]
    kind = typed["primaryType"]
    common = {"deadline": int(m["deadline"]), "nonce": int(m["nonce"]), "signature": signature}
    if kind == "OpenPosition":
        return {
            "symbol": quote["symbol"],
            "usdcAmount": human(m["usdcAmount"], USDC_DECIMALS),
            "minTokenOut": human(m["minTokenOut"], token_decimals),
            "maxSlippageBps": int(m["maxSlippageBps"]),
            "exits": quote["exits"],
            **common,
        }
    if kind == "AddToPosition":
        return {
            "positionId": quote["positionId"],
            "usdcAmount": human(m["usdcAmount"], USDC_DECIMALS),
            "minTokenOut": human(m["minTokenOut"], token_decimals),
            "maxSlippageBps": int(m["maxSlippageBps"]),
            **common,
        }
    if kind == "ReducePosition":
        return {
            "positionId": quote["positionId"],
            "tokenAmount": human(m["tokenAmount"], token_decimals),
            "minUsdcOut": human(m["minUsdcOut"], USDC_DECIMALS),
            "maxSlippageBps": int(m["maxSlippageBps"]),
            **common,
        }
    if kind == "UpdateExitLadder":
        return {"positionId": quote["positionId"], "exits": quote["exits"], **common}
    raise AlphaGridError("invalid_request", f"the quote has an unknown primaryType {kind!r}")


def needs_decimals(quote: Mapping[str, Any]) -> bool:
    return bool(quote.get("typedData", {}).get("primaryType") != "UpdateExitLadder")


def prefer_header(wait_s: float | None) -> dict[str, str]:
    return {} if wait_s is None else {"Prefer": f"wait={wait_s:g}"}


# ---------------------------------------------------------------------- answers


def error_of(status: int, text: str) -> AlphaGridError:
    """The API's error shape, or a faithful stand-in when something else (a proxy) answered."""
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("code"), str):
        details = doc.get("details")
        return AlphaGridError(
            doc["code"], str(doc.get("message", "")), details if isinstance(details, dict) else {}, status
        )
    return AlphaGridError("http_error", f"HTTP {status}: {text.strip()[:300]}", {}, status)


def json_or_error(status: int, text: str) -> Any:
    if 200 <= status < 300:
        try:
            return json.loads(text)
        except ValueError:
            raise AlphaGridError(
                "http_error", f"HTTP {status} with a body that is not JSON", {}, status
            ) from None
    raise error_of(status, text)


@dataclass(frozen=True)
class RetryPolicy:
    """Up to `attempts` tries of one request. A lost connection or a 502/503/504 is retried after
    `backoff_s · 2^k` seconds; a 429 after the relayer's `retryAfterS`. Submits are retried with the
    same signed body, which the relayer answers idempotently (SPEC §2.3)."""

    attempts: int = 4
    backoff_s: float = 0.25
    max_delay_s: float = 5.0

    def delay(self, attempt: int, error: AlphaGridError | None = None) -> float:
        hinted = None
        if error is not None:
            hint = error.details.get("retryAfterS")
            suggestion = error.suggestion or {}
            hint = suggestion.get("retryAfterS", hint)
            if isinstance(hint, int | float) and not isinstance(hint, bool):
                hinted = float(hint)
        base = hinted if hinted is not None else self.backoff_s * 2**attempt
        return min(max(base, 0.0), self.max_delay_s)

    def retries(self, attempt: int, status: int | None) -> bool:
        """Whether try number `attempt` (0-based) that failed with `status` (None: no answer) is retried."""
        if attempt + 1 >= self.attempts:
            return False
        return status is None or status in RETRY_STATUSES


def connection_failed(url: str, exc: BaseException) -> AlphaGridError:
    return AlphaGridError(
        "connection_failed", f"could not reach the relayer at {url}: {type(exc).__name__}: {exc}", {}, None
    )


# ---------------------------------------------------------------------- Server-Sent Events


class SseParser:
    """Lines in, events out (the WHATWG event-stream rules the relayer uses: id, event, data, retry)."""

    def __init__(self) -> None:
        self.last_id: str | None = None
        self.retry_ms: int | None = None
        self._type = ""
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, line: str) -> Event | None:
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._type = value
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> Event | None:
        if self._id is not None:
            self.last_id = self._id
        if not self._data:
            self._type, self._id = "", None
            return None
        text = "\n".join(self._data)
        try:
            data: Any = json.loads(text)
        except ValueError:
            data = text
        event = Event(
            id=int(self._id) if self._id is not None and self._id.isdigit() else None,
            type=self._type or "message",
            data=data,
        )
        self._type, self._data, self._id = "", [], None
        return event
