"""Operator tests: the integration fixtures (a seeded Anvil, SQLite and PostgreSQL via `db_url`, the
relayer over HTTP as `api`), a real webhook receiver on loopback, and operator keys."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from relayer.operators import keys
from tests.integration.conftest import (  # noqa: F401  (fixtures, re-exported for this directory)
    Api,
    anvil,
    api,
    chain,
    db_url,
    sessions,
    stack,
)


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: str


@dataclass
class Receiver:
    """A webhook receiver: a threaded http.server on a loopback port that records every POST and
    answers `status`. `down()` closes the socket (connection refused), `up()` listens again on the
    same port."""

    status: int = 204
    deliveries: list[Delivery] = field(default_factory=list)
    port: int = 0
    _server: http.server.ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def up(self) -> Receiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
                with receiver._lock:
                    receiver.deliveries.append(
                        Delivery(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def received(self, path: str | None = None) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if path is None or d.path == path]

    def wait_for(
        self, check: Callable[[list[Delivery]], bool], timeout_s: float = 30.0, path: str | None = None
    ) -> list[Delivery]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.received(path)
            if check(got):
                return got
            time.sleep(0.05)
        raise AssertionError(f"receiver: condition not met in {timeout_s} s; got {self.received(path)}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().up()
    yield r
    r.down()


def make_key(factory: sessionmaker[Session], name: str, scope: keys.Scope) -> str:
    with factory.begin() as session:
        _row, key = keys.create(session, name, scope)
    return key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
