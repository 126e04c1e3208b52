"""Each operator command once for success against the chain, and its bad arguments for their message."""

from __future__ import annotations

import json
from pathlib import Path

from eth_account import Account
from web3 import Web3

from relayer.chain.anvil import free_port
from relayer.intents import strikes
from relayer.manifest import Manifest
from relayer.store.db import make_engine, make_session_factory
from relayer.store.migrate import upgrade
from relayer.store.models import utcnow

from .conftest import Chain, fails, invoke, ok_json

NEW_SIGNER = Account.from_key("0x" + "11" * 32).address


# ------------------------------------------------------------------------------------------ deploy


def test_deploy_writes_a_manifest_without_demo_section(chain: Chain, tmp_path: Path) -> None:
    env = {"ALPHAGRID_HOME": str(tmp_path / "fresh"), "ALPHAGRID_RPC_URL": chain.anvil.url}
    doc = ok_json(["deploy"], env)
    manifest = Manifest.read(tmp_path / "fresh" / "deployment.json")
    assert doc["manifest"]["contracts"]["TradeRouter"] == manifest.contracts.trade_router
    assert set(manifest.tokens) == {"NVDA", "AAPL", "TSLA", "MSFT", "SPY"}
    assert manifest.demo is None and manifest.vaults == []
    assert manifest.chain_id == 31337 and manifest.rpc_url == chain.anvil.url
    assert {t["name"] for t in doc["tracks"]} == {"evaluation", "funded", "prime"}
    assert {p["symbol"]: p["price"] for p in doc["prices"]}["NVDA"] == "182.35"
    assert chain.w3.eth.get_code(Web3.to_checksum_address(manifest.contracts.trade_router))

    # A second deploy would orphan the live deployment the manifest points at.
    line = fails(["deploy"], env, 1)
    assert "already describes a live deployment" in line and "--force" in line
    again = ok_json(["deploy", "--force"], env)
    assert again["manifest"]["contracts"]["TradeRouter"] != manifest.contracts.trade_router


def test_deploy_to_an_unreachable_chain(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    line = fails(["deploy"], {"ALPHAGRID_HOME": str(tmp_path), "ALPHAGRID_RPC_URL": url}, 1)
    assert (
        line
        == f"error: cannot reach the chain at {url} (is `alphagrid up` running, or ALPHAGRID_RPC_URL right?)"
    )


# ------------------------------------------------------------------------------------------ vault


def test_vault_create_fund_and_allow(chain: Chain) -> None:
    created = ok_json(["vault", "create", "--fund", "2500.5"], chain.env)
    vault_id = created["vaultId"]
    assert vault_id == 2 and created["usdc"] == "2500.5" and created["tokens"] == []
    manifest = Manifest.read(chain.home / "deployment.json")
    assert [v.vault_id for v in manifest.vaults] == [1, 2]

    funded = ok_json(["vault", "fund", str(vault_id), "0.25"], chain.env)
    assert funded["usdc"] == "2500.75" and funded["funded"] == "0.25"

    allowed = ok_json(["vault", "allow-token", str(vault_id), "nvda"], chain.env)
    assert allowed["symbol"] == "NVDA" and allowed["allowed"] is True and allowed["tokens"] == ["NVDA"]
    assert chain.admin.tokens.functions.isAllowed(vault_id, chain.manifest.tokens["NVDA"]).call()

    removed = ok_json(["vault", "allow-token", str(vault_id), "NVDA", "--disallow"], chain.env)
    assert removed["allowed"] is False and removed["tokens"] == []


def test_vault_create_allow_all(chain: Chain) -> None:
    created = ok_json(["vault", "create", "--allow-all"], chain.env)
    assert created["tokens"] == ["NVDA", "AAPL", "TSLA", "MSFT", "SPY"]


def test_vault_bad_arguments(chain: Chain) -> None:
    assert fails(["vault", "fund", "1", "1.0000001"], chain.env, 2) == (
        "error: invalid USDC amount '1.0000001': at most 6 decimals"
    )
    assert "amounts are unsigned" in fails(["vault", "fund", "1", "--", "-5"], chain.env, 2)
    assert "not a plain decimal" in fails(["vault", "fund", "1", "1e6"], chain.env, 2)
    assert "must be more than 0" in fails(["vault", "fund", "1", "0"], chain.env, 2)
    assert fails(["vault", "fund", "9", "10"], chain.env, 2) == "error: unknown vault 9 (vault ids: 1..1)"
    assert fails(["vault", "allow-token", "1", "XYZ"], chain.env, 2) == (
        "error: unknown symbol XYZ (known: NVDA, AAPL, TSLA, MSFT, SPY)"
    )
    assert "malformed symbol" in fails(["vault", "allow-token", "1", "N$DA"], chain.env, 2)
    assert "Missing argument 'AMOUNT'" in fails(["vault", "fund", "1"], chain.env, 2)


# ------------------------------------------------------------------------------------------ agent


def test_agent_register_and_change(chain: Chain) -> None:
    doc = ok_json(
        [
            "agent",
            "register",
            "--signer",
            NEW_SIGNER.lower(),
            "--vault",
            "1",
            "--track",
            "prime",
            "--allocation",
            "5000.5",
        ],
        chain.env,
    )
    agent_id = doc["agentId"]
    assert agent_id == 3
    assert doc["signer"] == NEW_SIGNER and doc["vaultId"] == 1 and doc["track"]["name"] == "prime"
    assert doc["allocation"] == "5000.5" and doc["active"] is True and doc["nonce"] == 0

    moved = ok_json(["agent", "set-track", str(agent_id), "evaluation"], chain.env)
    assert moved["track"]["name"] == "evaluation" and moved["track"]["maxTradeSizeBps"] == 1000
    assert moved["maxTradeSize"] == "500.05"

    resized = ok_json(["agent", "set-allocation", str(agent_id), "100"], chain.env)
    assert resized["allocation"] == "100" and resized["headroom"] == "100"

    assert ok_json(["agent", "deactivate", str(agent_id)], chain.env)["active"] is False
    assert ok_json(["agent", "activate", str(agent_id)], chain.env)["active"] is True


def test_agent_show(chain: Chain) -> None:
    doc = ok_json(["agent", "show", "1"], chain.env)
    assert doc["agentId"] == 1 and doc["track"]["name"] == "funded" and doc["allocation"] == "100000"
    assert doc["deployed"] == "0" and doc["turnoverToday"] == "0" and doc["realizedPnlToday"] == "0"
    assert doc["vault"] == chain.manifest.vaults[0].address
    human = invoke(["agent", "show", "1"], chain.env)
    assert human.exit_code == 0 and "funded" in human.stdout and "100000 USDC" in human.stdout


def test_agent_bad_arguments(chain: Chain) -> None:
    base = ["agent", "register", "--vault", "1", "--track", "funded", "--allocation", "10"]
    assert fails([*base, "--signer", "0x1234"], chain.env, 2) == (
        "error: malformed signer address '0x1234': expected 0x and 40 hex digits"
    )
    bad_checksum = NEW_SIGNER[:-1] + ("a" if NEW_SIGNER[-1] != "a" else "b")
    bad_checksum = "0x" + bad_checksum[2:3].swapcase() + bad_checksum[3:]
    assert "checksum" in fails([*base, "--signer", bad_checksum], chain.env, 2)
    assert "zero address" in fails([*base, "--signer", "0x" + "0" * 40], chain.env, 2)
    line = fails(
        [
            "agent",
            "register",
            "--signer",
            NEW_SIGNER,
            "--vault",
            "1",
            "--track",
            "gold",
            "--allocation",
            "10",
        ],
        chain.env,
        2,
    )
    assert line == "error: unknown track gold (known: evaluation, funded, prime)"
    line = fails(
        [
            "agent",
            "register",
            "--signer",
            NEW_SIGNER,
            "--vault",
            "1",
            "--track",
            "funded",
            "--allocation",
            "10.1234567",
        ],
        chain.env,
        2,
    )
    assert line == "error: invalid allocation '10.1234567': at most 6 decimals"
    assert fails(["agent", "show", "99"], chain.env, 2) == "error: unknown agent 99 (agent ids: 1..2)"
    assert fails(["agent", "set-track", "1", "gold"], chain.env, 2).startswith("error: unknown track gold")
    assert fails(["agent", "deactivate", "42"], chain.env, 2).startswith("error: unknown agent 42")
    assert "Missing option '--signer'" in fails(["agent", "register", "--vault", "1"], chain.env, 2)
    assert "AGENT_ID" in fails(["agent", "show", "one"], chain.env, 2)


# ------------------------------------------------------------------------------------------ track


def test_track_set_updates_only_what_is_given(chain: Chain) -> None:
    before = {t["name"]: t for t in ok_json(["track", "list"], chain.env)["tracks"]}["funded"]
    doc = ok_json(
        ["track", "set", "funded", "--max-trade-size-bps", "1500", "--no-require-take-profit"], chain.env
    )
    assert doc["created"] is False and doc["trackId"] == before["trackId"]
    assert doc["maxTradeSizeBps"] == 1500 and doc["requireTakeProfit"] is False
    for key in (
        "maxDailyTurnoverBps",
        "maxDailyLossBps",
        "maxStopLossBps",
        "minTakeProfitBps",
        "maxTakeProfitBps",
        "requireStopLoss",
    ):
        assert doc[key] == before[key], key


def test_track_set_creates_and_lists(chain: Chain) -> None:
    args = [
        "track",
        "set",
        "scout",
        "--max-trade-size-bps",
        "500",
        "--max-daily-turnover-bps",
        "10000",
        "--max-daily-loss-bps",
        "200",
        "--max-stop-loss-bps",
        "800",
        "--min-take-profit-bps",
        "100",
        "--max-take-profit-bps",
        "2000",
    ]
    doc = ok_json(args, chain.env)
    assert doc["created"] is True and doc["trackId"] == 4
    assert doc["requireStopLoss"] is True and doc["requireTakeProfit"] is False
    assert doc["sessions"] == ["Regular"] and doc["exitsWhenClosed"] == "hold"
    names = [t["name"] for t in ok_json(["track", "list"], chain.env)["tracks"]]
    assert names == ["evaluation", "funded", "prime", "scout"]
    human = invoke(["track", "list"], chain.env)
    assert human.exit_code == 0 and "scout" in human.stdout


def test_track_set_sessions_and_exit_policy(chain: Chain) -> None:
    tracks = {t["name"]: t for t in ok_json(["track", "list"], chain.env)["tracks"]}
    assert all(t["sessions"] == ["Regular"] and t["exitsWhenClosed"] == "hold" for t in tracks.values())
    doc = ok_json(
        ["track", "set", "funded", "--sessions", "Regular,PreMarket", "--exits-when-closed", "fire"],
        chain.env,
    )
    assert doc["sessions"] == ["PreMarket", "Regular"] and doc["exitsWhenClosed"] == "fire"
    assert doc["maxTradeSizeBps"] == tracks["funded"]["maxTradeSizeBps"]
    listed = {t["name"]: t for t in ok_json(["track", "list"], chain.env)["tracks"]}["funded"]
    assert listed["sessions"] == ["PreMarket", "Regular"] and listed["exitsWhenClosed"] == "fire"
    human = invoke(["track", "list"], chain.env)
    assert "PreMarket,Regular" in human.stdout and "fire" in human.stdout
    back = ok_json(["track", "set", "funded", "--exits-when-closed", "hold"], chain.env)
    assert back["sessions"] == ["PreMarket", "Regular"] and back["exitsWhenClosed"] == "hold"


def test_track_set_refuses_bad_sessions(chain: Chain) -> None:
    assert "Halted cannot be a session" in fails(
        ["track", "set", "funded", "--sessions", "Halted"], chain.env, 2
    )
    assert "unknown market status 'Lunch'" in fails(
        ["track", "set", "funded", "--sessions", "Regular,Lunch"], chain.env, 2
    )
    assert "at least one status" in fails(["track", "set", "funded", "--sessions", ","], chain.env, 2)
    assert "--exits-when-closed" in fails(
        ["track", "set", "funded", "--exits-when-closed", "maybe"], chain.env, 2
    )


def test_track_bad_arguments(chain: Chain) -> None:
    line = fails(["track", "set", "scout", "--max-trade-size-bps", "500"], chain.env, 2)
    assert line.startswith("error: a new track needs --max-daily-turnover-bps, --max-daily-loss-bps")
    assert "--max-trade-size-bps" in fails(
        ["track", "set", "funded", "--max-trade-size-bps", "-1"], chain.env, 2
    )
    line = fails(["track", "set", "funded", "--max-trade-size-bps", "20000"], chain.env, 1)
    assert (
        line
        == "error: setting track funded would revert: InvalidTrack(reason=maxTradeSizeBps not in 1..10000)"
    )
    assert "malformed track name" in fails(["track", "set", "a b", "--max-trade-size-bps", "1"], chain.env, 2)


# ------------------------------------------------------------------------------------------ oracle


def test_oracle_set_and_show(chain: Chain) -> None:
    doc = ok_json(["oracle", "set", "NVDA", "150.12345678"], chain.env)
    assert doc["symbol"] == "NVDA" and doc["price"] == "150.12345678" and doc["stale"] is False
    assert chain.admin.oracle.functions.latestPrice(chain.manifest.tokens["NVDA"]).call()[0] == 15_012_345_678
    shown = ok_json(["oracle", "show"], chain.env)["prices"]
    assert [p["symbol"] for p in shown] == ["NVDA", "AAPL", "TSLA", "MSFT", "SPY"]
    assert shown[0]["price"] == "150.12345678" and shown[1]["price"] == "231.5"
    only = ok_json(["oracle", "show", "--symbols", "spy,AAPL"], chain.env)["prices"]
    assert [p["symbol"] for p in only] == ["SPY", "AAPL"]


def test_oracle_bad_arguments(chain: Chain) -> None:
    assert fails(["oracle", "set", "XYZ", "1"], chain.env, 2) == (
        "error: unknown symbol XYZ (known: NVDA, AAPL, TSLA, MSFT, SPY)"
    )
    assert fails(["oracle", "set", "NVDA", "1.123456789"], chain.env, 2) == (
        "error: invalid price '1.123456789': at most 8 decimals"
    )
    assert (
        fails(["oracle", "set", "NVDA", "0"], chain.env, 2) == "error: invalid price '0': must be more than 0"
    )
    assert "not a plain decimal" in fails(["oracle", "set", "NVDA", "1e3"], chain.env, 2)
    assert "unknown symbol QQQ" in fails(["oracle", "show", "--symbols", "NVDA,QQQ"], chain.env, 2)


# ------------------------------------------------------------------------------------------ environment


def test_missing_manifest(tmp_path: Path) -> None:
    env = {"ALPHAGRID_HOME": str(tmp_path / "nothing")}
    line = fails(["agent", "show", "1"], env, 1)
    assert line == (
        f"error: no deployment manifest at {tmp_path / 'nothing' / 'deployment.json'}: "
        "run `alphagrid up` (local chain) or `alphagrid deploy` first"
    )


def test_serve_in_several_processes_needs_postgresql(tmp_path: Path) -> None:
    env = {
        "ALPHAGRID_HOME": str(tmp_path / "home"),
        "ALPHAGRID_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}",
    }
    line = fails(["serve", "--api-processes", "2"], env, 1)
    assert line.startswith("error: --api-processes needs PostgreSQL")


def test_chain_unreachable(chain: Chain) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    env = {**chain.env, "ALPHAGRID_RPC_URL": url}
    for args in (["oracle", "show"], ["positions", "1"], ["vault", "fund", "1", "1"]):
        assert fails(args, env, 1).startswith(f"error: cannot reach the chain at {url}")


def test_the_manifest_rpc_url_is_used_without_an_override(chain: Chain) -> None:
    assert (
        ok_json(["agent", "show", "2"], {"ALPHAGRID_HOME": str(chain.home)})["track"]["name"] == "evaluation"
    )


def test_a_reset_chain_is_named(chain: Chain, tmp_path: Path) -> None:
    data = json.loads((chain.home / "deployment.json").read_text())
    data["contracts"]["TradeRouter"] = "0x" + "42" * 20
    (tmp_path / "deployment.json").write_text(json.dumps(data))
    env = {"ALPHAGRID_HOME": str(tmp_path), "ALPHAGRID_RPC_URL": chain.anvil.url}
    assert "the chain was reset" in fails(["agent", "show", "1"], env, 1)


def test_invalid_configuration(chain: Chain) -> None:
    line = fails(["agent", "show", "1"], {**chain.env, "ALPHAGRID_API_PORT": "eighty"}, 2)
    assert line.startswith("error: invalid configuration: ALPHAGRID_API_PORT")
    assert fails(["oracle", "set", "NVDA", "1"], {**chain.env, "ALPHAGRID_OPERATOR_KEY": "0x1234"}, 2) == (
        "error: invalid configuration: ALPHAGRID_OPERATOR_KEY: not a 32-byte hex private key"
    )


def test_usage_errors_are_one_line(chain: Chain) -> None:
    line = fails(["vault", "create", "--bogus"], chain.env, 2)
    assert line.startswith("error: No such option: --bogus") and "alphagrid vault create --help" in line
    assert fails(["nonsense"], chain.env, 2).startswith("error: No such command")


def test_agent_show_and_clear_strikes(chain: Chain, tmp_path: Path) -> None:
    """The relayer's throttling of an agent that front-runs its intents (its database's strikes) is
    shown by `agent show`, and `agent clear-strikes` lifts it."""
    url = f"sqlite:///{tmp_path / 'relayer.db'}"
    env = {**chain.env, "ALPHAGRID_DATABASE_URL": url}
    assert ok_json(["agent", "show", "1"], env)["relayerStatus"] is None  # no relayer database yet
    engine = make_engine(url)
    upgrade(engine)
    with make_session_factory(engine).begin() as session:
        for intent_id in (11, 12, 13):
            strikes.record(session, 1, intent_id, "nonce used by a different intent", utcnow())
    engine.dispose()
    status = ok_json(["agent", "show", "1"], env)["relayerStatus"]
    assert status["status"] == "throttled" and "3 of its relayed intents" in status["reason"], status
    human = invoke(["agent", "show", "1"], env)
    assert human.exit_code == 0 and "THROTTLED until" in human.stdout
    assert ok_json(["agent", "show", "2"], env)["relayerStatus"] is None
    cleared = ok_json(["agent", "clear-strikes", "1"], env)
    assert cleared == {"agentId": 1, "cleared": 3, "relayerStatus": None}
    assert ok_json(["agent", "show", "1"], env)["relayerStatus"] is None
