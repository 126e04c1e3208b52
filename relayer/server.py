"""The relayer as one running thing: services (indexer, sender, dispatcher, keeper) plus the HTTP API
served by uvicorn (uvloop and httptools when installed). Used by `alphagrid serve` and by `up`."""

from __future__ import annotations

import logging
import threading
import time

import httpx
import uvicorn

from relayer.api.app import create_app
from relayer.config import Settings
from relayer.manifest import Manifest
from relayer.service import Services, build_services

log = logging.getLogger("alphagrid.server")


class RelayerServer:
    name = "relayer"

    def __init__(self, settings: Settings, manifest: Manifest) -> None:
        self.settings = settings
        self.manifest = manifest
        self.services: Services | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    @property
    def url(self) -> str:
        return self.settings.api_url

    def start(self, timeout_s: float = 60.0) -> None:
        """Returns once the API answers `/health`; raises RuntimeError if it does not come up."""
        self.services = build_services(self.settings, self.manifest)
        self.services.start()
        config = uvicorn.Config(
            create_app(self.services),
            host=self.settings.api_host,
            port=self.settings.api_port,
            log_level="warning",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="alphagrid-api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._thread.is_alive():
                raise RuntimeError(f"the API server on port {self.settings.api_port} stopped while starting")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    log.info("relayer API on %s", self.url)
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the relayer API did not answer on {self.url} within {timeout_s:.0f} s")

    def failure(self) -> str | None:
        if self._stopping or self._thread is None:
            return None
        if not self._thread.is_alive():
            return "the API server stopped"
        if self.services is not None:
            dead = self.services.dead_workers()
            if dead:
                return f"worker stopped: {', '.join(dead)}"
        return None

    def stop(self) -> None:
        self._stopping = True
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.services is not None:
            self.services.close()


def stack_component(settings: Settings, manifest: Manifest) -> RelayerServer:
    """The hook `relayer.localstack` looks for: the relayer API + keeper as one more component."""
    return RelayerServer(settings, manifest)
