"""Anvil's well-known development keys (mnemonic "test test … junk").

Public knowledge: they fund every local chain and must never hold value. The relayer defaults to
them only when it talks to a local development chain (chain id 31337).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

ANVIL_KEYS: Final[tuple[str, ...]] = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
)

LOCAL_CHAIN_ID: Final = 31337

# Roles on a local chain: account 0 operates, 1 and 2 relay (one nonce lane each), 5+ sign as demo agents.
OPERATOR_KEY: Final = ANVIL_KEYS[0]
RELAYER_KEYS: Final = ANVIL_KEYS[1:3]
DEMO_AGENT_KEYS: Final = ANVIL_KEYS[5:8]

_PUBLIC: Final = frozenset(k.lower() for k in ANVIL_KEYS)


def is_dev_key(key: str) -> bool:
    """One of Anvil's public keys (with or without 0x, any case)."""
    text = key.strip().lower()
    return ("0x" + text.removeprefix("0x")) in _PUBLIC


def unsafe_keys(chain_id: int, dev_chain_id: int, keys: Mapping[str, Sequence[str]]) -> str | None:
    """Why signing on `chain_id` with `keys` (variable → its keys) must be refused, or None.

    Off the development chain, a key that is one of Anvil's public keys (which is what an unset key
    defaults to) would make the contracts' admin or the relayer's gas wallets keys the whole world
    holds."""
    if chain_id == dev_chain_id:
        return None
    public = [name for name, values in keys.items() if any(is_dev_key(k) for k in values)]
    if not public:
        return None
    names = ", ".join(public)
    return (
        f"refusing to sign on chain {chain_id} with Anvil's public development keys ({names} unset or "
        f"set to a development key): set {names} (or its _FILE / keystore form) to your own keys; "
        f"development keys sign only on chain {dev_chain_id}"
    )
