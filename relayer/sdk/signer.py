"""The agent's key, held in the process: it signs the quoted typed data unchanged and is never shown."""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data

from relayer.sdk.errors import AlphaGridError


class Signer:
    __slots__ = ("_account",)

    def __init__(self, key: str) -> None:
        try:
            self._account = Account.from_key(key)
        except (ValueError, TypeError):
            # Never echo the key: not even a malformed one.
            raise AlphaGridError("invalid_key", "the agent key is not a 32-byte hex private key") from None

    @property
    def address(self) -> str:
        return str(self._account.address)

    def sign_typed_data(self, typed_data: dict[str, Any]) -> str:
        """`eth_signTypedData_v4` over the relayer's typed data exactly as quoted (SPEC §2.3)."""
        signed = self._account.sign_message(encode_typed_data(full_message=typed_data))
        return "0x" + bytes(signed.signature).hex()

    def __repr__(self) -> str:
        return f"Signer(address={self.address})"

    def __reduce__(self) -> Any:
        raise TypeError("a Signer holds a private key and is not pickled")
