"""Exactly one active keeper per database, and a takeover when it dies (SPEC §3, §4.6).

PostgreSQL: two `alphagrid serve` processes on one schema; the one holding the advisory lock is
SIGKILLed and the other fires the next trigger. The lock is scoped to the schema, so relayers of
other deployments (other schemas of the same database) never block each other. SQLite (one host):
lease rows, with one winner even when several contenders race for an expired lease.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from web3 import Web3

from relayer.chain import artifacts
from relayer.chain.admin import revert_decoder
from relayer.chain.anvil import free_port
from relayer.chain.events import EventDecoder
from relayer.chain.router import RouterClient
from relayer.chain.seed import price_base
from relayer.chain.sender import TxSender
from relayer.devkeys import ANVIL_KEYS, OPERATOR_KEY
from relayer.keeper.jobs import KeeperJobs
from relayer.keeper.keeper import Keeper
from relayer.keeper.leader import AdvisoryLockLeader, LeaseLeader
from relayer.metrics import Metrics
from relayer.state import ChainState
from relayer.store.db import make_engine, make_session_factory
from relayer.store.migrate import upgrade

from .agentkit import send_raw, trade
from .conftest import PG_URL, Stack, _pg_available

REPO = Path(__file__).resolve().parents[2]
LADDER = [
    {"triggerType": "TakeProfit", "triggerBps": 1000, "exitBps": 5000},
    {"triggerType": "StopLoss", "triggerBps": -1000, "exitBps": 10000},
]


def _wait(predicate: Callable[[], object], what: str, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# ---------------------------------------------------------------------- PostgreSQL schemas


@pytest.fixture
def pg_schema() -> Iterator[Callable[[], str]]:
    """Makes fresh schemas in the test database; returns their URLs. All dropped afterwards."""
    if not _pg_available():
        pytest.fail("PostgreSQL at 127.0.0.1:5432 (database test) is required for the test suite")
    admin = make_engine(PG_URL)
    made: list[str] = []

    def make() -> str:
        schema = f"t_{uuid.uuid4().hex[:12]}"
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        made.append(schema)
        return f"{PG_URL}?options=-csearch_path%3D{schema}"

    yield make
    with admin.begin() as conn:
        for schema in made:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def test_advisory_lock_has_one_holder_per_schema(pg_schema: Callable[[], str]) -> None:
    url = pg_schema()
    engines = [make_engine(url) for _ in range(3)]
    try:
        leaders = [AdvisoryLockLeader(e) for e in engines]
        assert [leader.acquire() for leader in leaders] == [True, False, False]
        assert [leader.acquire() for leader in leaders] == [True, False, False]  # the holder renews
        leaders[0].release()
        assert leaders[1].acquire() is True
        assert leaders[2].acquire() is False
        assert leaders[0].acquire() is False
        leaders[1].release()
    finally:
        for e in engines:
            e.dispose()


def test_advisory_lock_does_not_reach_across_schemas(pg_schema: Callable[[], str]) -> None:
    """Advisory locks are database-wide: a fixed key would let one deployment's keeper (or another
    test run's) lock out every other schema's keeper in the same database."""
    first, second = make_engine(pg_schema()), make_engine(pg_schema())
    try:
        a, b = AdvisoryLockLeader(first), AdvisoryLockLeader(second)
        assert a.acquire() is True
        assert b.acquire() is True
        a.release()
        b.release()
    finally:
        first.dispose()
        second.dispose()


def test_advisory_lock_goes_with_the_holders_connection(pg_schema: Callable[[], str]) -> None:
    """A holder whose connection dies (its process was killed, its backend terminated) frees the
    lock at once, and the holder notices it lost it."""
    url = pg_schema()
    name = f"holder{uuid.uuid4().hex[:8]}"
    holder_engine, other_engine = make_engine(f"{url}&application_name={name}"), make_engine(url)
    try:
        holder, other = AdvisoryLockLeader(holder_engine), AdvisoryLockLeader(other_engine)
        assert holder.acquire() is True
        assert other.acquire() is False
        with other_engine.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :n"),
                {"n": name},
            )
        _wait(other.acquire, "the other to take the lock", timeout_s=5)
        assert holder.acquire() is False
        other.release()
    finally:
        holder_engine.dispose()
        other_engine.dispose()


# ---------------------------------------------------------------------- leases (SQLite and PostgreSQL)


@pytest.fixture
def lease_db(db_url: str) -> Iterator[str]:
    engine = make_engine(db_url)
    upgrade(engine)
    engine.dispose()
    yield db_url


def _lease_leader(url: str, ttl_s: float, holder: str) -> tuple[LeaseLeader, Callable[[], None]]:
    engine = make_engine(url)  # one engine per contender, as one per process
    return LeaseLeader(make_session_factory(engine), ttl_s=ttl_s, holder=holder), engine.dispose


def test_lease_has_one_holder_and_passes_on_after_its_ttl(lease_db: str) -> None:
    a, close_a = _lease_leader(lease_db, 0.5, "a")
    b, close_b = _lease_leader(lease_db, 0.5, "b")
    try:
        assert a.acquire() is True
        assert b.acquire() is False
        for _ in range(4):  # renewing within the ttl keeps it
            time.sleep(0.2)
            assert a.acquire() is True
            assert b.acquire() is False
        time.sleep(0.7)  # a stops renewing
        assert b.acquire() is True
        assert a.acquire() is False
        b.release()
        assert a.acquire() is True
    finally:
        close_a()
        close_b()


@pytest.mark.parametrize("expired", [False, True], ids=["no-lease-yet", "expired-lease"])
def test_lease_race_has_exactly_one_winner(lease_db: str, expired: bool) -> None:
    contenders = [_lease_leader(lease_db, 30.0, f"c{i}") for i in range(6)]
    try:
        if expired:
            stale, close = _lease_leader(lease_db, 0.05, "gone")
            assert stale.acquire() is True
            close()
            time.sleep(0.2)
        for _round in range(3):
            barrier = threading.Barrier(len(contenders))
            results: list[bool | BaseException] = [False] * len(contenders)

            def contend(
                i: int, barrier: threading.Barrier = barrier, results: list[bool | BaseException] = results
            ) -> None:
                barrier.wait()
                try:
                    results[i] = contenders[i][0].acquire()
                except BaseException as exc:  # an exception is a keeper thread that dies
                    results[i] = exc

            threads = [threading.Thread(target=contend, args=(i,)) for i in range(len(contenders))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert [r for r in results if not isinstance(r, bool)] == []
            assert sum(1 for r in results if r is True) == 1, results
            winner = results.index(True)
            contenders[winner][0].release()
    finally:
        for _leader, close in contenders:
            close()


# ---------------------------------------------------------------------- the keeper loop


class FlakyLeader:
    """A leadership check that fails (database unreachable) a few times, then grants."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def acquire(self) -> bool:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("database unreachable")
        return True

    def release(self) -> None:
        pass


def test_keeper_loop_survives_a_failing_leadership_check(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'k.db'}")
    upgrade(engine)
    sessions = make_session_factory(engine)
    w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{free_port()}"))  # never called while idle
    leader = FlakyLeader(failures=2)
    keeper = Keeper(
        sessions=sessions,
        state=ChainState(),
        sender=TxSender(w3, sessions, [ANVIL_KEYS[1]], 31337),
        client=RouterClient(
            w3,
            "0x" + "00" * 20,
            caller="0x" + "00" * 20,
            reverts=revert_decoder(),
            events=EventDecoder([artifacts.abi("TradeRouter")]),
        ),
        metrics=Metrics(CollectorRegistry()),
        leader=leader,
    )
    jobs = KeeperJobs(keeper, lead_interval_s=0.01)
    jobs.start()
    try:
        _wait(lambda: leader.calls > leader.failures, "the keeper to ask again", timeout_s=5)
        assert jobs.running and jobs.leading
    finally:
        jobs.shutdown()
        engine.dispose()


# ---------------------------------------------------------------------- two relayer processes


@dataclass
class Relayer:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None


def _start_relayer(name: str, chain: Stack, db_url: str, home: Path, key: str) -> Relayer:
    home.mkdir(parents=True)
    chain.manifest.write(home / "deployment.json")
    port = free_port()
    log = home / "relayer.log"
    env = {
        **os.environ,
        "ALPHAGRID_HOME": str(home),
        "ALPHAGRID_API_PORT": str(port),
        "ALPHAGRID_RPC_URL": chain.anvil.url,
        # application_name tells the processes apart in pg_locks / pg_stat_activity.
        "ALPHAGRID_DATABASE_URL": f"{db_url}&application_name={name}",
        "ALPHAGRID_RELAYER_KEYS": key,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "relayer.cli", "serve"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    relayer = Relayer(name, port, process, log)

    def healthy() -> bool:
        assert relayer.alive(), log.read_text()[-3000:]
        try:
            return httpx.get(f"{relayer.url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    _wait(healthy, f"relayer {name} to serve", timeout_s=60)
    return relayer


def _lock_holders(db_url: str, names: set[str]) -> set[str]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = ANY(:names)"
                ),
                {"names": sorted(names)},
            ).scalars()
            return set(rows)
    finally:
        engine.dispose()


@pytest.fixture
def relayers(chain: Stack, pg_schema: Callable[[], str], tmp_path: Path) -> Iterator[RelayerPool]:
    pool = RelayerPool(chain, pg_schema(), tmp_path, uuid.uuid4().hex[:8])
    try:
        yield pool
    finally:
        pool.stop_all()


@dataclass
class RelayerPool:
    """`alphagrid serve` processes on one PostgreSQL schema, each with its own relayer key."""

    chain: Stack
    db_url: str
    home: Path
    tag: str
    started: list[Relayer] = field(default_factory=list)

    def start(self, name: str, key: str) -> Relayer:
        relayer = _start_relayer(f"{name}{self.tag}", self.chain, self.db_url, self.home / name, key)
        self.started.append(relayer)
        return relayer

    @property
    def names(self) -> set[str]:
        return {r.name for r in self.started}

    def lock_holders(self) -> set[str]:
        return _lock_holders(self.db_url, self.names)

    def stop_all(self) -> None:
        for r in self.started:
            if r.alive():
                os.killpg(r.process.pid, signal.SIGTERM)
        for r in self.started:
            try:
                r.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(r.process.pid, signal.SIGKILL)
                r.process.wait(timeout=5)


def _position(client: httpx.Client, agent_id: int, position_id: str) -> dict[str, Any]:
    r = client.get(f"/agents/{agent_id}/positions/{position_id}")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _open(client: httpx.Client, chain: Stack) -> tuple[int, str]:
    assert chain.manifest.demo is not None
    agent = chain.manifest.demo.agents[0]
    r = trade(
        client,
        agent.agent_id,
        agent.signer_key,
        "OpenPosition",
        symbol="NVDA",
        usdcAmount="1000",
        exits=LADDER,
    )
    assert r.status_code == 201, r.text
    return agent.agent_id, str(r.json()["positionId"])


def test_one_active_keeper_and_takeover_when_it_is_killed(chain: Stack, relayers: RelayerPool) -> None:
    both = [relayers.start("kA", ANVIL_KEYS[1]), relayers.start("kB", ANVIL_KEYS[2])]
    _wait(lambda: len(relayers.lock_holders()) == 1, "one keeper to lead")
    [leader_name] = relayers.lock_holders()
    time.sleep(1.5)  # several leadership rounds later, still exactly one, the same
    assert relayers.lock_holders() == {leader_name}
    leader = next(r for r in both if r.name == leader_name)
    survivor = next(r for r in both if r.name != leader_name)

    with httpx.Client(base_url=survivor.url, timeout=30) as client:
        agent_id, position_id = _open(client, chain)
        _wait(lambda: len(_position(client, agent_id, position_id)["ladder"]) == 2, "the ladder")
        # The active keeper dies without a word; the price crosses the stop at once, before the
        # survivor has taken the lock: it must still fire once it leads.
        os.killpg(leader.process.pid, signal.SIGKILL)
        leader.process.wait(timeout=5)
        killed_at = time.monotonic()
        chain.admin.set_prices([chain.manifest.tokens["NVDA"]], [price_base(Decimal("160"))])
        _wait(lambda: relayers.lock_holders() == {survivor.name}, "the survivor to lead", timeout_s=10)
        _wait(
            lambda: _position(client, agent_id, position_id)["status"] == "closed",
            "the survivor to fire the stop",
            timeout_s=10,
        )
        took_s = time.monotonic() - killed_at
        p = _position(client, agent_id, position_id)
    assert [h["ruleIndex"] for h in p["history"] if h["kind"] == "exit"] == [1]
    assert [a["action"] for a in p["audit"]] in (["sent"], ["sent", "confirmed"])
    assert took_s < 5, took_s
    assert survivor.alive()


def _exit_requests(db_url: str) -> list[tuple[str, str]]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT sender, status FROM tx_requests WHERE purpose = 'exit' ORDER BY id")
            ).all()
            return [(r[0], r[1]) for r in rows]
    finally:
        engine.dispose()


def test_takeover_with_an_exit_in_flight_does_not_send_it_again(chain: Stack, relayers: RelayerPool) -> None:
    """The active keeper sends an exit and dies before it is mined. The one taking over finds the
    exit in the database, sends nothing for that position while the node still holds the
    transaction, and records the confirmation (with the rule the chain fired) once it is mined."""
    both = [relayers.start("kA", ANVIL_KEYS[1]), relayers.start("kB", ANVIL_KEYS[2])]
    _wait(lambda: len(relayers.lock_holders()) == 1, "one keeper to lead")
    [leader_name] = relayers.lock_holders()
    leader = next(r for r in both if r.name == leader_name)
    survivor = next(r for r in both if r.name != leader_name)
    w3 = chain.w3
    with httpx.Client(base_url=survivor.url, timeout=30) as client:
        agent_id, position_id = _open(client, chain)
        _wait(lambda: len(_position(client, agent_id, position_id)["ladder"]) == 2, "the ladder")
        w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
        try:
            oracle = chain.admin.oracle
            data = oracle.functions.setPrices(
                [chain.manifest.tokens["NVDA"]], [price_base(Decimal("160"))]
            )._encode_transaction_data()
            send_raw(w3, oracle.address, data, OPERATOR_KEY)
            w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
            _wait(
                lambda: [a["action"] for a in _position(client, agent_id, position_id)["audit"]] == ["sent"],
                "the leader to send the exit",
            )
            os.killpg(leader.process.pid, signal.SIGKILL)
            leader.process.wait(timeout=5)
            _wait(lambda: relayers.lock_holders() == {survivor.name}, "the survivor to lead", timeout_s=10)
            time.sleep(2)  # several of the survivor's steps with the exit still in the pool
            assert [a["action"] for a in _position(client, agent_id, position_id)["audit"]] == ["sent"]
        finally:
            w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
            w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
            chain.admin.resync_nonce()
        _wait(
            lambda: (
                [a["action"] for a in _position(client, agent_id, position_id)["audit"]]
                == ["sent", "confirmed"]
            ),
            "the survivor to record the confirmation",
        )
        p = _position(client, agent_id, position_id)
    assert p["status"] == "closed"
    assert [h["ruleIndex"] for h in p["history"] if h["kind"] == "exit"] == [1]
    assert [a["ruleIndex"] for a in p["audit"]] == [1, 1]
    [(sender, _status)] = _exit_requests(relayers.db_url)
    leader_key = ANVIL_KEYS[1] if leader is both[0] else ANVIL_KEYS[2]
    assert sender == Account.from_key(leader_key).address, "one exit, sent by the keeper that died"


def test_two_relayers_both_keep_indexing(chain: Stack, relayers: RelayerPool) -> None:
    """SPEC §4.6: several relayer processes share one PostgreSQL database. Both must follow the
    chain — the standby keeper can only take over with a current view."""
    first = relayers.start("kA", ANVIL_KEYS[1])
    second = relayers.start("kB", ANVIL_KEYS[2])
    with httpx.Client(base_url=first.url, timeout=30) as client:
        _open(client, chain)
    chain.admin.set_prices([chain.manifest.tokens["NVDA"]], [price_base(Decimal("190"))])

    def sees_new_price(r: Relayer) -> bool:
        prices = httpx.get(f"{r.url}/prices", params={"symbols": "NVDA"}, timeout=5).json()["prices"]
        return bool(prices[0]["price"] == "190")

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (sees_new_price(first) and sees_new_price(second)):
        time.sleep(0.1)
    assert sees_new_price(first) and sees_new_price(second)


def test_relayer_keys_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    """`ALPHAGRID_RELAYER_KEYS=0xaa,0xbb` (README, config.py) — what one gives two relayer processes
    their own nonce lanes."""
    from relayer.config import Settings

    monkeypatch.setenv("ALPHAGRID_RELAYER_KEYS", f"{ANVIL_KEYS[1]},{ANVIL_KEYS[2]}")
    keys = [k.get_secret_value() for k in Settings().relayer_keys]
    assert keys == [ANVIL_KEYS[1], ANVIL_KEYS[2]]
