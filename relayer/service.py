"""Builds the relayer from its settings and manifest and runs its workers: the indexer, the sender's
receipt follower and the intent dispatcher, each a thread with a stop event, and the keeper's
APScheduler jobs (woken by the indexer's events). The HTTP app reads from the same `Services`.

A process has a `Role`. `alphagrid serve` is one process doing everything (`ALL`); with
`--api-processes N` (PostgreSQL) the supervisor (`relayer.supervisor`) runs one `ENGINE` (every
worker, no HTTP) and N `API` processes (HTTP, with an indexer that follows the engine's into memory
only), which wake each other with `relayer.store.signals`.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any, Final

from eth_account import Account
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from web3 import Web3

from relayer import eip712
from relayer.chain import artifacts, rpc
from relayer.chain.admin import revert_decoder
from relayer.chain.events import EventDecoder
from relayer.chain.router import RouterClient
from relayer.chain.sender import SenderPolicy, TxSender
from relayer.config import Settings
from relayer.domain import calendar
from relayer.indexer import Indexer
from relayer.intents.claims import PositionClaims
from relayer.intents.pipeline import BatchPolicy, IntentService
from relayer.keeper.jobs import KeeperJobs
from relayer.keeper.keeper import Keeper
from relayer.keeper.leader import make_leader
from relayer.manifest import Manifest
from relayer.metrics import Metrics
from relayer.operators.delivery import WebhookDelivery
from relayer.operators.keys import KeyChecker
from relayer.operators.outbox import Subscriptions
from relayer.ratelimit import RateLimiter
from relayer.state import ChainState
from relayer.store.db import make_engine, make_session_factory
from relayer.store.migrate import upgrade
from relayer.store.signals import Signal, Signals

log = logging.getLogger("alphagrid.service")

# The sender's poll when nothing told it to look (its stuck/drop/rebroadcast thresholds are seconds).
SENDER_FALLBACK_S = 0.5

# An API process reloads the webhook subscriptions this often (besides the `subscriptions` signal), as
# the engine's delivery worker does: the CLI changes them without a signal.
SUBSCRIPTIONS_REFRESH_S: Final = 1.0
# How long a process waits for its signal listener to LISTEN before it reports ready.
LISTEN_READY_S: Final = 10.0


class Role(StrEnum):
    ALL = "all"  # one process: the HTTP API and every worker
    ENGINE = "engine"  # indexer (writes the mirror), sender, dispatcher, finalizer, keeper, webhooks
    API = "api"  # the HTTP API, with an indexer that follows the engine's into memory; sends nothing


EVENT_SOURCES = ("TradeRouter", "AgentRegistry", "TokenRegistry", "PriceOracle", "OraclePriceVenue")


@dataclass
class Services:
    settings: Settings
    manifest: Manifest
    w3: Web3
    engine: Engine
    sessions: sessionmaker[Session]
    state: ChainState
    decoder: EventDecoder
    indexer: Indexer
    sender: TxSender
    intents: IntentService
    keeper: Keeper
    metrics: Metrics
    domain: eip712.Domain
    limiter: RateLimiter
    subscriptions: Subscriptions
    webhooks: WebhookDelivery
    keys: KeyChecker
    strangers: RateLimiter
    role: Role = Role.ALL
    signals: Signals | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    keeper_jobs: KeeperJobs | None = None

    def start(self) -> None:
        """Catches up with the chain, reconciles transactions, then starts the workers (an API process:
        only its indexer, and what it hears from the engine)."""
        calendar.warm(self.settings.market_calendar)  # nextOpen on /prices, loaded in the background
        self.indexer.bootstrap()
        if self.signals is not None:
            self._listen(self.signals)
        if self.role is Role.API:
            self.indexer.on_batch = self._indexed
            self._spawn("indexer", lambda: self.indexer.run(self.stop, interval_s=0.05))
            self._spawn("subscriptions", self._refresh_subscriptions)
            return
        if self.settings.keeper:
            self.keeper.load()
            self.keeper_jobs = KeeperJobs(self.keeper)
            self.indexer.on_event = self.keeper_jobs.on_event
        self.indexer.on_batch = self._indexed
        self.sender.add_listener(lambda _request_id: self.indexer.wake())  # its block is there to read
        self.sender.reconcile()
        self._spawn("indexer", lambda: self.indexer.run(self.stop, interval_s=0.05))
        # The sender polls when told (a broadcast, a new block from the indexer); its own interval is the
        # fallback (a 50 ms poll loop was a third of the GIL under a burst).
        self._spawn("sender", lambda: self.sender.run(self.stop, interval_s=SENDER_FALLBACK_S))
        self._spawn("dispatcher", lambda: self.intents.run(self.stop, interval_s=0.05))
        self._spawn("webhooks", lambda: self.webhooks.run(self.stop))
        if self.keeper_jobs is not None:
            self.keeper_jobs.start()

    def _listen(self, signals: Signals) -> None:
        """The engine hears new intents; an API process hears what its waiting submits wait for."""
        heard = (Signal.SENT, Signal.FINAL) if self.role is Role.API else (Signal.RECEIVED,)
        for kind in heard:
            signals.on(kind, functools.partial(self.intents.signalled, kind))
        if self.role is Role.API:
            signals.on(Signal.INDEXED, lambda _ids: self.indexer.wake())
        signals.on(Signal.SUBSCRIPTIONS, lambda _ids: self.subscriptions.reload())
        listening = threading.Event()
        self._spawn("signals", lambda: signals.listen(self.stop, ready=listening))
        if not listening.wait(LISTEN_READY_S):
            raise RuntimeError("the signal listener could not LISTEN on the database")

    def _refresh_subscriptions(self) -> None:
        while not self.stop.wait(SUBSCRIPTIONS_REFRESH_S):
            try:
                self.subscriptions.reload()
            except Exception:  # a database hiccup: the next round retries
                log.warning("reloading the webhook subscriptions failed", exc_info=True)

    def subscriptions_changed(self) -> None:
        """This process changed a webhook subscription: it and the relayer's other processes reload."""
        self.subscriptions.reload()
        if self.signals is not None:
            self.signals.send(Signal.SUBSCRIPTIONS)

    def _indexed(self, block_number: int) -> None:
        """After each batch of blocks the indexer applied: the submits and the dispatcher waiting for
        it, and the sender (a new block may have mined what it follows)."""
        self.intents.indexed(block_number)
        self.sender.notify()
        if self.signals is not None and self.role is Role.ENGINE:
            self.signals.send(Signal.INDEXED, [block_number])  # the API processes follow

    def dead_workers(self) -> list[str]:
        """The workers that stopped while the services run (each should run until `close`)."""
        dead = [t.name for t in self.threads if not t.is_alive()]
        if self.keeper_jobs is not None and not self.keeper_jobs.running:
            dead.append("alphagrid-keeper")
        return dead

    def _spawn(self, name: str, target: Callable[[], Any]) -> None:
        thread = threading.Thread(target=target, name=f"alphagrid-{name}", daemon=True)
        thread.start()
        self.threads.append(thread)

    def close(self) -> None:
        self.stop.set()
        self.intents.notify()
        self.sender.notify()
        self.webhooks.notify()
        if self.keeper_jobs is not None:
            self.keeper_jobs.shutdown()
        for thread in self.threads:
            thread.join(timeout=5)
        rpc.close_idle(self.w3)
        self.engine.dispose()


def build_services(settings: Settings, manifest: Manifest, role: Role = Role.ALL) -> Services:
    """`role` other than `ALL` needs PostgreSQL (the processes signal each other through it)."""
    w3 = Web3(Web3.HTTPProvider(settings.rpc_url, request_kwargs={"timeout": 15}))
    engine = make_engine(settings.database_url)
    if settings.database_url.startswith("sqlite"):
        settings.home.mkdir(parents=True, exist_ok=True)
    upgrade(engine)
    signals = Signals(engine) if role is not Role.ALL else None
    sessions = make_session_factory(engine)
    # Stream events written through these sessions also fill the webhook outbox (SPEC §5.5).
    subscriptions = Subscriptions(sessions)
    subscriptions.attach()
    subscriptions.reload()
    state = ChainState()
    decoder = EventDecoder(artifacts.abi(name) for name in EVENT_SOURCES)
    c = manifest.contracts
    metrics = Metrics(CollectorRegistry())
    indexer = Indexer(
        w3,
        sessions,
        state,
        decoder,
        [c.trade_router, c.agent_registry, c.token_registry, c.price_oracle, c.venue],
        manifest.start_block,
        confirmations=settings.confirmations,
        writes_mirror=role is not Role.API,
    )
    keys = [k.get_secret_value() for k in settings.relayer_keys]
    sender = TxSender(
        w3, sessions, keys, manifest.chain_id, policy=SenderPolicy(confirmation_depth=settings.confirmations)
    )
    domain = eip712.Domain(manifest.chain_id, Web3.to_checksum_address(c.trade_router))
    router = RouterClient(
        w3,
        c.trade_router,
        caller=Account.from_key(keys[0]).address,
        reverts=revert_decoder(),
        events=decoder,
        sessions=sessions,
    )
    claims = PositionClaims()  # the dispatcher and the keeper never race on one position
    intents = IntentService(
        sessions=sessions,
        state=state,
        domain=domain,
        sender=sender,
        router=router,
        policy=BatchPolicy(
            max_items=settings.batch_max_items,
            max_in_flight=settings.batch_max_in_flight,
            enabled=settings.batch_max_items > 1,
        ),
        claims=claims,
        metrics=metrics,
        strike_policy=settings.strike_policy,
        market_calendar=settings.market_calendar,
        signals=signals,
    )
    keeper = Keeper(
        sessions=sessions,
        state=state,
        sender=sender,
        client=router,
        metrics=metrics,
        leader=make_leader(engine, sessions),
        claims=claims,
        market_calendar=settings.market_calendar,
    )
    if role is Role.API:
        settings = settings.model_copy(update={"keeper": False})
    return Services(
        role=role,
        signals=signals,
        settings=settings,
        manifest=manifest,
        w3=w3,
        engine=engine,
        sessions=sessions,
        state=state,
        decoder=decoder,
        indexer=indexer,
        sender=sender,
        intents=intents,
        keeper=keeper,
        metrics=metrics,
        domain=domain,
        limiter=RateLimiter(settings.submit_rate_per_s, settings.submit_burst),
        subscriptions=subscriptions,
        webhooks=WebhookDelivery(
            sessions, subscriptions, retention=timedelta(days=settings.webhook_retention_days)
        ),
        keys=KeyChecker(),
        strangers=RateLimiter(settings.unauthenticated_rate_per_s, settings.unauthenticated_burst),
    )
