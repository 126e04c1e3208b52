"""The one exception the SDK raises for a rejection: the API's `{code, message, details}` (SPEC §2.1,
§5.2)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class AlphaGridError(Exception):
    """A request the relayer refused, or could not be reached for.

    `code` is the API's stable code (`nonce_mismatch`, `exit_ladder_invalid`, …); `status` the HTTP status.
    When the relayer could not be reached after the retries, `code` is `connection_failed` and `status`
    is None. `suggestion` is `details.suggestion` (SPEC §5.2): the fields that would make the same request
    pass, when the relayer can compute them.
    """

    def __init__(
        self, code: str, message: str, details: Mapping[str, Any] | None = None, status: int | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        self.status = status

    @property
    def suggestion(self) -> dict[str, Any] | None:
        s = self.details.get("suggestion")
        return dict(s) if isinstance(s, Mapping) else None

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}

    def __repr__(self) -> str:
        return f"AlphaGridError(code={self.code!r}, message={self.message!r}, status={self.status!r})"
