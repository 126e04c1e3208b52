"""The relayer's exception family and its stable codes (SPEC §2.1).

Domain code raises `RelayerError(code, message, details)`; `relayer.api.errors` turns it into the HTTP
answer in one place. Anything else that escapes is a bug: an opaque 500 and a log line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

STATUS_BY_CODE: Final[Mapping[str, int]] = {
    "invalid_request": 400,
    "invalid_signature": 401,
    "unauthorized": 401,
    "forbidden": 403,
    "agent_not_found": 404,
    "position_not_found": 404,
    "symbol_not_found": 404,
    "vault_not_found": 404,
    "intent_not_found": 404,
    "key_not_found": 404,
    "webhook_not_found": 404,
    "approval_not_found": 404,
    "nonce_mismatch": 409,
    "position_exists": 409,
    "position_closed": 409,
    "approval_decided": 409,
    "deadline_expired": 422,
    "approval_rejected": 422,
    "market_closed": 422,
    "token_not_allowed": 422,
    "exit_ladder_invalid": 422,
    "trade_size_exceeded": 422,
    "headroom_exceeded": 422,
    "daily_turnover_exceeded": 422,
    "daily_loss_limit_reached": 422,
    "slippage_exceeded": 422,
    "agent_inactive": 422,
    "paused": 422,
    "simulation_failed": 422,
    "rate_limited": 429,
    "chain_unavailable": 503,
    "oracle_stale": 503,
}

# The router's custom errors (ITradeRouter) and OpenZeppelin's pause error → the API's codes.
CODE_BY_REVERT: Final[Mapping[str, str]] = {
    "DeadlineExpired": "deadline_expired",
    "NonceMismatch": "nonce_mismatch",
    "SignatureMalformed": "invalid_request",
    "InvalidSigner": "invalid_signature",
    "AgentNotFound": "agent_not_found",
    "AgentInactive": "agent_inactive",
    "VaultMismatch": "invalid_request",
    "TokenNotAllowed": "token_not_allowed",
    "PositionExists": "position_exists",
    "PositionNotFound": "position_not_found",
    "PositionNotOpen": "position_closed",
    "ExitsHashMismatch": "invalid_request",
    "ExitLadderInvalid": "exit_ladder_invalid",
    "ZeroAmount": "invalid_request",
    "InvalidSlippageBps": "invalid_request",
    "TradeSizeExceeded": "trade_size_exceeded",
    "HeadroomExceeded": "headroom_exceeded",
    "DailyTurnoverExceeded": "daily_turnover_exceeded",
    "DailyLossLimitReached": "daily_loss_limit_reached",
    "SlippageExceeded": "slippage_exceeded",
    "MinOutputNotMet": "slippage_exceeded",
    "OraclePriceStale": "oracle_stale",
    "MarketClosed": "market_closed",
    "MarketHalted": "market_closed",
    "EnforcedPause": "paused",
    "AmountTooLarge": "invalid_request",
}


class RelayerError(Exception):
    """A rejection with a stable code; `details` are JSON-safe and never hold secrets."""

    def __init__(self, code: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        if code not in STATUS_BY_CODE:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})

    @property
    def status(self) -> int:
        return STATUS_BY_CODE[self.code]

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


def invalid_request(message: str, **details: Any) -> RelayerError:
    return RelayerError("invalid_request", message, details)


class ChainUnavailableError(RelayerError):
    def __init__(self, message: str = "the chain node is unreachable") -> None:
        super().__init__("chain_unavailable", message)
