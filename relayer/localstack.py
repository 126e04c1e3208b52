"""The local stack behind `alphagrid up` (SPEC §4.5): a list of managed components, started in order and
stopped in reverse, so that nothing it started outlives it.

    preflight   both ports free, contracts built (`forge build` when `out/` is missing or stale)
    anvil       `AnvilNode`, on 127.0.0.1:$ALPHAGRID_RPC_PORT
    (seed)      contracts, tokens and prices, tracks, a funded vault, demo agents; the manifest
    feed        `relayer.feed.PriceFeed`, a random walk in a background thread, with its own key
    relayer     `relayer.server.RelayerServer`: the HTTP API, indexer, sender and keeper, on this Anvil

A component is anything with `name`, `start()`, `stop()` and `failure()` (`Component`). `stop()` must be
safe on a component whose `start()` failed or was interrupted half way.
"""

from __future__ import annotations

import logging
import random
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from eth_account import Account
from web3 import Web3

from relayer.amounts import format_amount
from relayer.chain.admin import CONTRACT_NAMES, PRICE_DECIMALS, USDC_DECIMALS, Admin
from relayer.chain.anvil import Anvil, PortInUseError, foundry_binary, port_is_free
from relayer.chain.seed import SeedPlan, seed_local
from relayer.config import REPO_ROOT, Settings
from relayer.domain.calendar import exchange_calendar
from relayer.feed import (
    LOCAL_FEEDER_KEY,
    AlwaysOpen,
    CalendarSessions,
    OraclePusher,
    PriceFeed,
    RandomWalk,
    Sessions,
    current_prices,
    grant_feeder,
)
from relayer.manifest import Manifest
from relayer.server import RelayerServer

log = logging.getLogger("alphagrid.localstack")

HOST = "127.0.0.1"
_DEV_BALANCE_WEI = 10_000 * 10**18


class StackError(RuntimeError):
    """The local stack cannot start or stopped working; the message is one line."""


class Component(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def failure(self) -> str | None:
        """Why the component stopped working on its own, or None while it is fine."""


# ---------------------------------------------------------------------------------------- build


def forge_binary() -> str:
    return foundry_binary("forge")


def build_is_stale(root: Path = REPO_ROOT) -> bool:
    """True when an artifact the stack deploys is missing, or a source is newer than the last build."""
    artifacts = [root / "out" / f"{n}.sol" / f"{n}.json" for n in CONTRACT_NAMES]
    if not all(a.exists() for a in artifacts):
        return True
    cache = root / "cache" / "solidity-files-cache.json"
    built = cache.stat().st_mtime if cache.exists() else min(a.stat().st_mtime for a in artifacts)
    sources = [*(root / "contracts" / "src").rglob("*.sol"), root / "foundry.toml"]
    return any(s.stat().st_mtime > built for s in sources if s.exists())


def ensure_build(progress: Callable[[str], None], root: Path = REPO_ROOT) -> bool:
    """Runs `forge build` when needed; returns whether it did."""
    if not build_is_stale(root):
        return False
    progress("building the contracts (forge build)")
    proc = subprocess.run(
        [forge_binary(), "build", "--quiet"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        raise StackError(f"forge build failed: {lines[-1] if lines else f'exit code {proc.returncode}'}")
    return True


# ---------------------------------------------------------------------------------------- components


@dataclass
class AnvilNode:
    """Anvil as a component; `block_time_s` is applied after seeding (`set_block_time`), so the seed's
    forty-odd transactions are mined at once rather than one per block."""

    port: int
    host: str = HOST
    name: str = "anvil"
    anvil: Anvil = field(init=False)

    def __post_init__(self) -> None:
        self.anvil = Anvil(port=self.port, host=self.host)

    @property
    def url(self) -> str:
        return self.anvil.url

    @property
    def pid(self) -> int | None:
        return self.anvil.process.pid if self.anvil.process is not None else None

    def start(self) -> None:
        self.anvil.start()

    def stop(self) -> None:
        self.anvil.stop()

    def failure(self) -> str | None:
        proc = self.anvil.process
        if proc is not None and proc.poll() is not None:
            return f"anvil exited unexpectedly with code {proc.returncode}"
        return None

    def set_block_time(self, w3: Web3, block_time_s: int) -> None:
        answer = w3.provider.make_request("evm_setIntervalMining", [block_time_s])  # type: ignore[arg-type]
        if answer.get("error"):
            raise StackError(f"anvil refused a block time of {block_time_s} s: {answer['error']}")


# ---------------------------------------------------------------------------------------- the stack


@dataclass(frozen=True)
class StackOptions:
    feed: bool = True
    block_time_s: int | None = None
    feed_interval_s: float = 5.0
    feed_volatility_bps: int = 25
    # The feed's sessions: None keeps the market always open (Regular), so a demo trades at any hour;
    # an exchange code (XNYS) follows that calendar (`alphagrid up --calendar XNYS`).
    feed_calendar: str | None = None
    plan: SeedPlan = field(default_factory=SeedPlan)


class LocalStack:
    def __init__(
        self,
        settings: Settings,
        options: StackOptions | None = None,
        progress: Callable[[str], None] = lambda _msg: None,
    ) -> None:
        self.settings = settings
        self.options = options or StackOptions()
        self.progress = progress
        self.components: list[Component] = []
        self.anvil: AnvilNode | None = None
        self.manifest: Manifest | None = None
        self.admin: Admin | None = None
        self.feed: PriceFeed | None = None
        self._lock = threading.Lock()

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.settings.api_port}"

    @property
    def feeder_address(self) -> str:
        return str(Account.from_key(LOCAL_FEEDER_KEY).address)

    def _launch(self, component: Component) -> None:
        # Listed before start(): a start that fails or is interrupted half way is still stopped.
        with self._lock:
            self.components.append(component)
        self.progress(f"starting {component.name}")
        component.start()

    def preflight(self) -> None:
        rpc_port, api_port = self.settings.rpc_port, self.settings.api_port
        if rpc_port == api_port:
            raise StackError(f"ALPHAGRID_RPC_PORT and ALPHAGRID_API_PORT are both {rpc_port}")
        if not port_is_free(HOST, rpc_port):
            raise PortInUseError(HOST, rpc_port)
        if not port_is_free(HOST, api_port):
            raise StackError(
                f"port {api_port} on {HOST} is already in use (set ALPHAGRID_API_PORT to another)"
            )
        ensure_build(self.progress)

    def start(self) -> Manifest:
        """Starts everything; the manifest is written last, so its appearance means the stack is up."""
        self.preflight()
        self.settings.manifest_path.unlink(missing_ok=True)  # a previous run's chain is gone
        self._forget_previous_database()
        self.anvil = AnvilNode(port=self.settings.rpc_port)
        self._launch(self.anvil)
        w3 = Web3(Web3.HTTPProvider(self.anvil.url, request_kwargs={"timeout": 30}))
        operator = Account.from_key(self.settings.operator_key.get_secret_value())
        self._fund_dev_account(w3, operator.address)
        admin = Admin(w3, self.settings.operator_key.get_secret_value())
        manifest = seed_local(
            admin,
            rpc_url=self.anvil.url,
            api_url=self.api_url,
            plan=self.options.plan,
            progress=self.progress,
        )
        grant_feeder(admin, self.feeder_address)
        if self.options.block_time_s:
            self.anvil.set_block_time(w3, self.options.block_time_s)
        self.manifest, self.admin = manifest, admin

        if self.options.feed:
            self.feed = self._make_feed(manifest)
            self._launch(self.feed)
        # The service talks to this Anvil whatever ALPHAGRID_RPC_URL says.
        service_settings = self.settings.model_copy(update={"rpc_url": self.anvil.url})
        self._launch(RelayerServer(service_settings, manifest))
        manifest.write(self.settings.manifest_path)
        self.progress(f"manifest written to {self.settings.manifest_path}")
        return manifest

    def _forget_previous_database(self) -> None:
        """The default SQLite database remembers the previous run's chain, which is gone: start empty.
        A database named by ALPHAGRID_DATABASE_URL is the operator's and is left alone."""
        default = self.settings.home / "relayer.db"
        if self.settings.database_url == f"sqlite:///{default.resolve()}":
            for suffix in ("", "-wal", "-shm"):
                default.with_name(default.name + suffix).unlink(missing_ok=True)

    def _fund_dev_account(self, w3: Web3, address: str) -> None:
        """A custom operator key gets Anvil ether too, so the seed can pay its gas."""
        if w3.eth.get_balance(Web3.to_checksum_address(address)) == 0:
            w3.provider.make_request("anvil_setBalance", [address, hex(_DEV_BALANCE_WEI)])  # type: ignore[arg-type]

    def _make_feed(self, manifest: Manifest) -> PriceFeed:
        assert self.anvil is not None and self.admin is not None
        w3 = Web3(Web3.HTTPProvider(self.anvil.url, request_kwargs={"timeout": 30}))
        feeder = Admin(w3, LOCAL_FEEDER_KEY, self.admin.core)
        walk = RandomWalk(
            current_prices(feeder, manifest.tokens), self.options.feed_volatility_bps, random.Random()
        )
        sessions: Sessions = (
            CalendarSessions(exchange_calendar(self.options.feed_calendar))
            if self.options.feed_calendar
            else AlwaysOpen()
        )
        return PriceFeed(
            walk,
            OraclePusher(feeder, manifest.tokens, per_token=True),
            interval_s=self.options.feed_interval_s,
            sessions=sessions,
        )

    def failure(self) -> str | None:
        with self._lock:
            components = list(self.components)
        for c in components:
            problem = c.failure()
            if problem:
                return f"{c.name}: {problem}"
        return None

    def wait(self, stop: threading.Event, poll_s: float = 0.5) -> str | None:
        """Blocks until ``stop`` is set (None) or a component fails (its reason)."""
        while not stop.wait(poll_s):
            problem = self.failure()
            if problem:
                return problem
        return None

    def stop(self) -> None:
        """Stops every component started, newest first; one that fails to stop does not spare the rest."""
        with self._lock:
            components, self.components = list(reversed(self.components)), []
        for c in components:
            self.progress(f"stopping {c.name}")
            try:
                c.stop()
            except Exception as exc:  # keep stopping the others: no process may be left behind
                log.error("stopping %s failed: %s", c.name, exc)

    def summary(self) -> dict[str, Any]:
        """Where everything is, for the operator (and `--json`)."""
        assert self.manifest is not None and self.admin is not None and self.anvil is not None
        m = self.manifest
        prices = current_prices(self.admin, m.tokens)
        demo = m.demo

        def allocation(agent_id: int) -> str:
            base = int(self.admin.agents.functions.agentConfig(agent_id).call()[4]) if self.admin else 0
            return format_amount(base, USDC_DECIMALS)

        return {
            "chainId": m.chain_id,
            "rpcUrl": m.rpc_url,
            "apiUrl": m.api_url,
            "api": {"running": True, "url": self.api_url},
            "manifestPath": str(self.settings.manifest_path),
            "contracts": m.contracts.model_dump(by_alias=True),
            "tokens": [
                {"symbol": s, "address": t, "price": format_amount(prices[s], PRICE_DECIMALS)}
                for s, t in m.tokens.items()
            ],
            "vaults": [v.model_dump(by_alias=True) for v in m.vaults],
            "demoAgents": [
                {
                    "agentId": a.agent_id,
                    "address": Account.from_key(a.signer_key).address,
                    "signerKey": a.signer_key,
                    "track": a.track,
                    "allocation": allocation(a.agent_id),
                }
                for a in (demo.agents if demo else [])
            ],
            "operator": {"address": self.admin.account.address, "key": demo.operator_key if demo else None},
            "feed": {
                "running": self.feed is not None,
                "intervalS": self.options.feed_interval_s if self.feed else None,
                "volatilityBps": self.options.feed_volatility_bps if self.feed else None,
                "sessions": (
                    f"calendar {self.options.feed_calendar}" if self.options.feed_calendar else "always-open"
                )
                if self.feed
                else None,
                "signer": self.feeder_address,
            },
            "blockTimeS": self.options.block_time_s,
            "anvilPid": self.anvil.pid,
            "startedAt": int(time.time()),
        }
