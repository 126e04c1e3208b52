"""Keys off Anvil (issue 13, High 4): on a chain other than the development chain (here a second
Anvil started with `--chain-id 1`), every command that signs refuses, with one line and exit 2, to run
while its key is unset or one of Anvil's public keys; reads still work; the operator's own key signs,
and is never printed nor written to the manifest."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from relayer.chain.anvil import Anvil, free_port
from relayer.devkeys import OPERATOR_KEY, RELAYER_KEYS

from .conftest import fails, invoke, ok_json

OWN_OPERATOR = "0x" + "a1" * 32
OWN_RELAYER = "0x" + "b2" * 32
REFUSAL = "error: refusing to sign on chain 1 with Anvil's public development keys"


@pytest.fixture(scope="module")
def mainnet_like() -> Iterator[Anvil]:
    with Anvil(port=free_port(), chain_id=1).start() as node:
        w3 = Web3(Web3.HTTPProvider(node.url))
        for key in (OWN_OPERATOR, OWN_RELAYER):
            address = Account.from_key(key).address
            w3.provider.make_request("anvil_setBalance", [address, hex(10**21)])  # type: ignore[arg-type]
        yield node


def _nonces(node: Anvil) -> list[int]:
    w3 = Web3(Web3.HTTPProvider(node.url))
    keys = (OPERATOR_KEY, *RELAYER_KEYS, OWN_OPERATOR)
    return [w3.eth.get_transaction_count(Account.from_key(k).address) for k in keys]


def test_deploy_refuses_unset_or_development_keys_off_the_development_chain(
    mainnet_like: Anvil, tmp_path: Path
) -> None:
    env = {"ALPHAGRID_HOME": str(tmp_path), "ALPHAGRID_RPC_URL": mainnet_like.url}
    before = _nonces(mainnet_like)
    for extra in ({}, {"ALPHAGRID_OPERATOR_KEY": OPERATOR_KEY}, {"ALPHAGRID_OPERATOR_KEY": RELAYER_KEYS[0]}):
        line = fails(["deploy"], {**env, **extra}, 2)
        assert line.startswith(REFUSAL) and "ALPHAGRID_OPERATOR_KEY" in line, line
    assert _nonces(mainnet_like) == before, "something was signed"
    assert not (tmp_path / "deployment.json").exists()


def test_every_signing_command_refuses_development_keys_and_the_operators_own_key_works(
    mainnet_like: Anvil, tmp_path: Path
) -> None:
    env = {"ALPHAGRID_HOME": str(tmp_path), "ALPHAGRID_RPC_URL": mainnet_like.url}
    key_file = tmp_path / "operator.key"
    key_file.write_text(OWN_OPERATOR + "\n")
    own = {**env, "ALPHAGRID_OPERATOR_KEY_FILE": str(key_file)}
    result = invoke(["deploy"], own)
    assert result.exit_code == 0, result.stderr
    assert OWN_OPERATOR.removeprefix("0x") not in result.stdout + result.stderr
    assert OWN_OPERATOR.removeprefix("0x") not in (tmp_path / "deployment.json").read_text()
    before = _nonces(mainnet_like)
    signing = [
        (["oracle", "set", "NVDA", "1"], "ALPHAGRID_OPERATOR_KEY"),
        (["oracle", "feed", "--count", "1"], "ALPHAGRID_OPERATOR_KEY"),
        (["vault", "create"], "ALPHAGRID_OPERATOR_KEY"),
        (["vault", "fund", "1", "10"], "ALPHAGRID_OPERATOR_KEY"),
        (
            [
                "agent",
                "register",
                "--signer",
                Account.from_key(OWN_RELAYER).address,
                "--vault",
                "1",
                "--track",
                "evaluation",
                "--allocation",
                "10",
            ],
            "ALPHAGRID_OPERATOR_KEY",
        ),
        (["agent", "deactivate", "1"], "ALPHAGRID_OPERATOR_KEY"),
        (["track", "set", "evaluation", "--max-trade-size-bps", "100"], "ALPHAGRID_OPERATOR_KEY"),
        (["serve"], "ALPHAGRID_RELAYER_KEYS"),
        (["keeper"], "ALPHAGRID_RELAYER_KEYS"),
    ]
    for args, variable in signing:
        line = fails(args, env, 2)
        assert line.startswith(REFUSAL) and variable in line, (args, line)
    # The relayer's keys unset (or Anvil's) with the operator's own key: serve still refuses.
    line = fails(["serve"], {**own, "ALPHAGRID_RELAYER_KEYS": RELAYER_KEYS[0]}, 2)
    assert line.startswith(REFUSAL) and "ALPHAGRID_RELAYER_KEYS" in line
    assert _nonces(mainnet_like) == before, "something was signed"
    # Reads need no key; the operator's own key signs.
    assert ok_json(["oracle", "show"], env)["prices"]
    prices = ok_json(["oracle", "set", "NVDA", "123"], own)
    assert json.dumps(prices).count("123") >= 1


def test_a_custom_operator_key_is_never_printed(mainnet_like: Anvil, tmp_path: Path) -> None:
    env = {"ALPHAGRID_HOME": str(tmp_path), "ALPHAGRID_RPC_URL": mainnet_like.url}
    result = invoke(
        ["deploy", "--json"], {**env, "ALPHAGRID_OPERATOR_KEY": OWN_OPERATOR, "ALPHAGRID_DEBUG": "1"}
    )
    assert result.exit_code == 0, result.stderr
    for text in (result.stdout, result.stderr, (tmp_path / "deployment.json").read_text()):
        assert OWN_OPERATOR.removeprefix("0x") not in text


def test_up_shows_the_development_operator_key_but_never_a_custom_one() -> None:
    """`alphagrid up` prints the local stack's keys (public Anvil keys, as the README shows); with
    ALPHAGRID_OPERATOR_KEY set to the operator's own key, the summary carries no key to print."""
    from rich.console import Console

    from relayer.cli.up import _render

    def rendered(key: str | None) -> str:
        doc = {
            "rpcUrl": "http://127.0.0.1:1",
            "chainId": 31337,
            "blockTimeS": None,
            "apiUrl": "http://x",
            "manifestPath": "m",
            "feed": {"running": False},
            "contracts": {},
            "tokens": [],
            "tracks": [],
            "vaults": [],
            "demoAgents": [],
            "operator": {"address": "0xabc", "key": key},
        }
        console = Console(record=True, width=200)
        _render(doc)(console)
        return console.export_text()

    assert OPERATOR_KEY in rendered(OPERATOR_KEY)
    text = rendered(None)
    assert "your own key: not shown" in text and "None" not in text
