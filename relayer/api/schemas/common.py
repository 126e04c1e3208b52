"""What every operation shares: typed ids for paths, the error body, and the per-route table of the
error codes an operation can answer (SPEC §2.1, §5.3)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final

from fastapi import Path
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from relayer.errors import STATUS_BY_CODE
from relayer.numbers import MAX_DB_ID, MAX_UINT256, NumberError, parse_id, parse_uint


class Public(BaseModel):
    """A response body. Closed (`additionalProperties: false`): a field the relayer answers but the
    document does not name fails the schema-conformance tests, so the document cannot fall behind."""

    model_config = ConfigDict(extra="forbid")


def _strict_id(raw: object) -> object:
    if isinstance(raw, str):
        try:
            return parse_id(raw)
        except NumberError as exc:
            raise ValueError(f"an id {exc}") from None
    return raw


def _strict_uint(raw: object) -> object:
    if isinstance(raw, str):
        try:
            return parse_uint(raw, high=MAX_UINT256)
        except NumberError as exc:
            raise ValueError(f"an integer {exc}") from None
    return raw


# Any integer parameter that arrives as text: ASCII digits only, bounded length before int() (the
# parameter's own ge/le then apply). Pydantic's lax int would take " 7", "+7", "1_0" and "7.0".
StrictUint = BeforeValidator(_strict_uint)


def _id_path(description: str) -> Any:
    return Path(ge=1, le=MAX_DB_ID, description=description, examples=[1])


# Ids in paths: ASCII digits only (no `²`, `١`, `+7`, `1_0`), 1..MAX_DB_ID, so a lookup never reaches the
# database with a number it cannot hold. Anything else is 400 invalid_request.
_StrictId = BeforeValidator(_strict_id)  # after the Path(...): its bounds stay in the document
AgentIdPath = Annotated[int, _id_path("The agent's id (the AgentRegistry's agentId)."), _StrictId]
PositionIdPath = Annotated[int, _id_path("The position's id (the TradeRouter's positionId)."), _StrictId]
VaultIdPath = Annotated[int, _id_path("The vault's id (the AgentRegistry's vaultId)."), _StrictId]
IntentIdPath = Annotated[int, _id_path("The intent's id, as a submit answered it."), _StrictId]
ApprovalIdPath = Annotated[
    int, _id_path("The approval's id (`approvalId`, as the submit answered it: its intent's id)."), _StrictId
]


# ---------------------------------------------------------------------- errors


class ErrorDetails(BaseModel):
    """Machine-readable context. Keys depend on the code (SPEC §2.1): `field` and `reason` for
    invalid_request, `expected` for nonce_mismatch, `ruleIndex` and `reason` for exit_ladder_invalid,
    the limit figures for the track limits, `revert` for simulation_failed. `suggestion` (SPEC §5.2),
    when present, holds the request fields that would make the same request pass."""

    model_config = ConfigDict(extra="allow")

    field: str | None = Field(default=None, description="The request field at fault (invalid_request).")
    suggestion: dict[str, Any] | None = Field(
        default=None,
        description='Fields that would make the same request pass: {"nonce": 4}, {"usdcAmount": "412.5"}, '
        '{"exits": [...]}, {"retryAfterS": 3}, {"deadline": ...}, {"notBefore": ...}.',
    )


class ErrorPublic(BaseModel):
    """Every error the relayer answers: `{"code", "message", "details"}` with a stable code."""

    code: str = Field(description="Stable error code (SPEC §2.1).", examples=["nonce_mismatch"])
    message: str = Field(description="For humans; may change between versions.")
    details: ErrorDetails


_EXAMPLE_MESSAGES: Final[Mapping[str, str]] = {
    "invalid_request": "usdcAmount: invalid amount '1e6' for 6 decimals: syntax",
    "nonce_mismatch": "expected nonce 4, got 3",
    "rate_limited": "agent 1 is submitting faster than 5/s",
    "market_closed": "NVDA: the market is Closed and the track does not trade then until Mon 7 Dec 09:30 ET",
}

_STATUS_TEXT: Final[Mapping[int, str]] = {
    400: "Bad request",
    401: "Signature does not recover to the agent's signer",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    422: "Refused by a rule of the router or the track",
    429: "Too many requests",
    503: "The chain or a fresh price is unavailable; retry later",
}


def error_responses(*codes: str) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of an operation: for each status its codes answer, the error schema, the codes
    named in the description and one example per code. `invalid_request` (400) is always included:
    any parameter or body can be malformed."""
    wanted = ["invalid_request", *(c for c in codes if c != "invalid_request")]
    by_status: dict[int, list[str]] = {}
    for code in wanted:
        by_status.setdefault(STATUS_BY_CODE[code], []).append(code)
    out: dict[int | str, dict[str, Any]] = {}
    for status, names in sorted(by_status.items()):
        examples = {
            name: {
                "summary": name,
                "value": {
                    "code": name,
                    "message": _EXAMPLE_MESSAGES.get(name, name.replace("_", " ")),
                    "details": {},
                },
            }
            for name in names
        }
        out[status] = {
            "model": ErrorPublic,
            "description": f"{_STATUS_TEXT.get(status, 'Error')}. `code` is one of: "
            + ", ".join(f"`{n}`" for n in names),
            "content": {"application/json": {"examples": examples}},
        }
    return out


def codes_of(responses: Mapping[str, Any]) -> dict[int, set[str]]:
    """The error codes an operation of the OpenAPI document declares, by status (for tests and
    clients): the inverse of `error_responses`."""
    out: dict[int, set[str]] = {}
    for status, response in responses.items():
        examples = response.get("content", {}).get("application/json", {}).get("examples", {})
        codes = {e["value"]["code"] for e in examples.values() if "code" in e.get("value", {})}
        if codes:
            out[int(status)] = codes
    return out
