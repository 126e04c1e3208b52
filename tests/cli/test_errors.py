"""Every failure the layers below raise becomes one line and the right exit code; operator input is
parsed strictly. No chain needed."""

from __future__ import annotations

import pydantic
import pytest
import requests
import typer
from typer.testing import CliRunner
from web3.exceptions import ContractLogicError, TimeExhausted, Web3RPCError

from relayer.amounts import AmountError
from relayer.chain.admin import OperatorError
from relayer.chain.anvil import AnvilError, PortInUseError
from relayer.chain.artifacts import ArtifactMissingError
from relayer.cli import inputs
from relayer.cli.app import AlphaGridGroup
from relayer.cli.errors import BadInput, ChainUnreachable, CliError, NoManifest, describe
from relayer.config import Settings
from relayer.feed import FeedError, FeedStalledError
from relayer.localstack import StackError


def _settings_error() -> pydantic.ValidationError:
    try:
        Settings(rpc_port="nope")  # type: ignore[arg-type]
    except pydantic.ValidationError as exc:
        return exc
    raise AssertionError("expected a validation error")


@pytest.mark.parametrize(
    ("exc", "code", "text"),
    [
        (BadInput("unknown symbol X"), 2, "unknown symbol X"),
        (CliError("boom"), 1, "boom"),
        (NoManifest("/h/deployment.json"), 1, "no deployment manifest at /h/deployment.json"),
        (ChainUnreachable("http://x"), 1, "cannot reach the chain at http://x"),
        (
            AmountError("too_many_decimals", "1.0000001", 6),
            2,
            "invalid amount '1.0000001': at most 6 decimals",
        ),
        (AmountError("sign", "-1", 6), 2, "amounts are unsigned"),
        (OperatorError("setting prices would revert: InvalidPrice(price=0)"), 1, "InvalidPrice"),
        (ArtifactMissingError("no build of X"), 1, "no build of X"),
        (PortInUseError("127.0.0.1", 8545), 1, "port 8545 on 127.0.0.1 is already in use"),
        (AnvilError("anvil not found"), 1, "anvil not found"),
        (StackError("forge build failed: x"), 1, "forge build failed"),
        (FeedError("f.csv:2: empty symbol"), 2, "f.csv:2: empty symbol"),
        (FeedStalledError("price feed stopped"), 1, "price feed stopped"),
        (_settings_error(), 2, "invalid configuration: ALPHAGRID_RPC_PORT"),
        (requests.ConnectionError("refused\nmore"), 1, "lost the connection to the chain: refused more"),
        (TimeExhausted("not mined"), 1, "did not mine"),
        (ContractLogicError("execution reverted"), 1, "a contract call reverted: execution reverted"),
        (Web3RPCError("nonce too low"), 1, "the chain refused the request: nonce too low"),
        (OSError("disk full"), 1, "disk full"),
    ],
)
def test_every_known_failure_is_one_line(exc: BaseException, code: int, text: str) -> None:
    described = describe(exc)
    assert described is not None
    assert described[0] == code
    assert text in described[1]
    assert "\n" not in described[1]


def test_a_bug_is_not_described() -> None:
    assert describe(KeyError("x")) is None


def test_the_boundary_turns_a_bug_into_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALPHAGRID_DEBUG", raising=False)
    app = typer.Typer(cls=AlphaGridGroup)

    @app.command()
    def explode() -> None:
        raise KeyError("surprise")

    @app.command()
    def operator() -> None:
        raise OperatorError("registering the agent would revert: UnknownVault(vaultId=9)")

    result = CliRunner().invoke(app, ["explode"])
    assert result.exit_code == 1
    assert result.stderr == "error: unexpected KeyError: 'surprise' (ALPHAGRID_DEBUG=1 shows the traceback)\n"
    result = CliRunner().invoke(app, ["operator"])
    assert (result.exit_code, result.stderr) == (
        1,
        "error: registering the agent would revert: UnknownVault(vaultId=9)\n",
    )


# ------------------------------------------------------------------------------------------ inputs


def test_usdc_and_price_amounts() -> None:
    assert inputs.usdc("100") == 100_000_000
    assert inputs.usdc("0.000001") == 1
    assert inputs.price("182.35") == 18_235_000_000
    for bad, reason in [
        ("1.0000001", "at most 6 decimals"),
        ("-1", "unsigned"),
        ("1e6", "plain decimal"),
        ("", "empty"),
        ("01", "leading zero"),
        (" 1", "plain decimal"),
    ]:
        with pytest.raises(BadInput, match=reason):
            inputs.usdc(bad)
    with pytest.raises(BadInput, match="more than 0"):
        inputs.usdc("0", positive=True)
    with pytest.raises(BadInput, match="at most 8 decimals"):
        inputs.price("1.000000001")
    with pytest.raises(BadInput, match="more than 0"):
        inputs.price("0.00000000")


def test_addresses() -> None:
    checksummed = "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc"
    assert inputs.address(checksummed.lower()) == checksummed
    assert inputs.address("0x" + checksummed[2:].upper()) == checksummed
    with pytest.raises(BadInput, match="checksum"):
        inputs.address("0x9965507d1a55bcC2695C58ba16FB37d819B0A4dc")
    for bad in ("9965507D1a55bcC2695C58ba16FB37d819B0A4dc", "0x1234", checksummed + "00", "0xZZ" + "0" * 38):
        with pytest.raises(BadInput, match="expected 0x and 40 hex digits"):
            inputs.address(bad)
    with pytest.raises(BadInput, match="zero address"):
        inputs.address("0x" + "0" * 40)


def test_symbols_and_track_names() -> None:
    assert inputs.symbol("nvda") == "NVDA"
    assert inputs.symbols(["nvda,AAPL", "TSLA", "NVDA", " , "]) == ["NVDA", "AAPL", "TSLA"]
    for bad in ("", "N$DA", "TOOLONGSYMBOL1"):
        with pytest.raises(BadInput, match="malformed symbol"):
            inputs.symbol(bad)
    assert inputs.track_name("eval-2") == "eval-2"
    with pytest.raises(BadInput, match="malformed track name"):
        inputs.track_name("a b")
