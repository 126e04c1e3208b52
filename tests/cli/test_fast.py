"""The command line starts fast because commands load lazily and `oracle set` has a web3-free path:
these tests check that the lazy registry says what the commands say, that the light paths import nothing
heavy, and that the light path's transaction and answer are the web3 path's. (The timings themselves are
a benchmark: `python -m bench --only cli`.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.main import get_command

from relayer.chain import admin as chain_admin
from relayer.cli import COMMANDS, inputs, rpc
from relayer.cli.app import load_command

from .conftest import Chain, fails, ok_json

HEAVY = ("web3", "fastapi", "sqlalchemy", "eth_account", "uvicorn", "relayer.service")


def test_each_lazy_entry_shows_its_commands_own_help() -> None:
    for name, (module, attribute, help_line) in COMMANDS.items():
        command = load_command(name, module, attribute)
        assert command.name == name
        assert (command.help or "").strip().splitlines()[0] == help_line, name


def test_the_root_lists_every_command_in_order() -> None:
    from typer._click.core import Context

    from relayer.cli import app

    group = get_command(app)
    assert group.list_commands(Context(group))[: len(COMMANDS)] == list(COMMANDS)


def test_decimals_match_the_chain_module() -> None:
    assert (inputs.USDC_DECIMALS, inputs.PRICE_DECIMALS) == (
        chain_admin.USDC_DECIMALS,
        chain_admin.PRICE_DECIMALS,
    )


def _loaded_modules(
    args: list[str], env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    code = (
        "import atexit, json, sys\n"
        "atexit.register(lambda: sys.stderr.write('\\nMODULES ' + json.dumps(sorted(sys.modules)) + '\\n'))\n"
        f"sys.argv = ['alphagrid', *{args!r}]\n"
        "from relayer.cli import app\n"
        "app()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    line = next(x for x in done.stderr.splitlines() if x.startswith("MODULES "))
    return done, set(json.loads(line.removeprefix("MODULES ")))


def _env(extra: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ALPHAGRID_")} | extra


def test_help_imports_nothing_heavy() -> None:
    done, modules = _loaded_modules(["--help"], _env({}))
    assert done.returncode == 0 and "oracle" in done.stdout
    assert not [m for m in HEAVY if m in modules]


def test_oracle_set_light_path_matches_the_web3_path(chain: Chain) -> None:
    done, modules = _loaded_modules(["oracle", "set", "NVDA", "190.5", "--json"], _env(chain.env))
    assert done.returncode == 0, done.stderr
    assert not [m for m in HEAVY if m in modules], "the ordinary oracle set took the web3 path"
    doc = json.loads(done.stdout)
    token = chain.manifest.tokens["NVDA"]
    price, updated_at, round_id = chain.admin.oracle.functions.latestPrice(token).call()
    assert doc == {
        "symbol": "NVDA",
        "token": token,
        "price": "190.5",
        "updatedAt": updated_at,
        "ageS": doc["ageS"],
        "roundId": round_id,
        "stale": False,
        "marketStatus": "Unknown",
        "sharePrice": "190.5",
        "multiplier": {"current": "1", "next": None, "effectiveAt": None, "epoch": 0},
    }
    assert price == 19_050_000_000 and 0 <= doc["ageS"] <= 5
    # The web3 path answers the same document for the same state.
    from relayer.cli.views import read_prices

    assert read_prices(chain.admin, {"NVDA": token})[0] | {"ageS": doc["ageS"]} == doc
    # In process too (CliRunner), and the unusual cases still end in the web3 path's one-line reasons.
    assert ok_json(["oracle", "set", "nvda", "191"], chain.env)["price"] == "191"
    assert fails(["oracle", "set", "QQQ", "1"], chain.env, 2).startswith("error: unknown symbol QQQ (known:")
    outsider = "0x" + "11" * 32
    line = fails(["oracle", "set", "NVDA", "1"], {**chain.env, "ALPHAGRID_OPERATOR_KEY": outsider}, 1)
    assert line.startswith("error: setting prices would revert: AccessControlUnauthorizedAccount(")


@settings(max_examples=40, deadline=None)
@given(
    key=st.integers(1, 2**255),
    chain_id=st.integers(1, 2**40),
    nonce=st.integers(0, 2**40),
    tip=st.integers(0, 10**12),
    extra=st.integers(0, 10**12),
    gas=st.integers(21_000, 30_000_000),
    data=st.binary(max_size=300),
    to=st.binary(min_size=20, max_size=20),
)
def test_raw_signer_signs_what_eth_account_signs(
    key: int, chain_id: int, nonce: int, tip: int, extra: int, gas: int, data: bytes, to: bytes
) -> None:
    key_hex = f"0x{key:064x}"
    signer = rpc.RawSigner(key_hex)
    account = Account.from_key(key_hex)
    assert signer.address == account.address
    to_hex = rpc.checksum(to.hex())
    raw = signer.sign(
        chain_id=chain_id, nonce=nonce, tip=tip, max_fee=tip + extra, gas=gas, to=to_hex, data=data
    )
    tx = {
        "type": 2,
        "chainId": chain_id,
        "nonce": nonce,
        "maxPriorityFeePerGas": tip,
        "maxFeePerGas": tip + extra,
        "gas": gas,
        "to": to_hex,
        "value": 0,
        "data": "0x" + data.hex(),
        "accessList": [],
    }
    assert raw == bytes(account.sign_transaction(tx).raw_transaction)


def test_abi_helpers_match_eth_abi() -> None:
    from eth_abi import encode

    tokens = ["0x" + "ab" * 20, "0x" + "01" * 20]
    body = rpc.call_address_and_uint_arrays("setPrices(address[],uint256[])", tokens, [5, 2**200])
    assert body[4:] == encode(["address[]", "uint256[]"], [tokens, [5, 2**200]])
    for text in ("", "NVDA", "X" * 33):
        assert rpc.call_string("tokenOf(string)", text)[4:] == encode(["string"], [text])
    assert rpc.selector("setPrices(address[],uint256[])") == bytes.fromhex(
        chain_admin.Web3.keccak(text="setPrices(address[],uint256[])").hex()[:8]
    )
