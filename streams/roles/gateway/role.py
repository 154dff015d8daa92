"""The gateway as a role of a worker: the HTTP server on a thread of its own.

Granian's embedded server (Rust sockets and HTTP parsing, the ASGI app on this thread's
asyncio loop) was chosen by measurement: with a raw ASGI app it answered 2.5x the
requests/s of uvicorn (h11; httptools and uvloop are not installed) at 32 connections.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from dataclasses import dataclass, field

from streams.config import Settings
from streams.roles.gateway.app import GatewayApp
from streams.roles.gateway.service import Inference

__all__ = ["GatewayRole", "GatewayStats", "gateway_role"]

log = logging.getLogger("lastmile.gateway")

SWITCH_INTERVAL_S = 0.0005


@dataclass
class GatewayStats:
    """The gateway's counters on ``/lastmile/status``."""

    inference: Inference
    last_error: str | None = None
    started_at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, object]:
        return {
            "counts": dict(self.inference.scorer.counts),
            "ready": self.inference.ready,
            "delivery_failures": self.inference.publisher.failures,
            "last_error": self.last_error,
            "uptime_s": round(time.time() - self.started_at, 1),
        }


class GatewayRole:
    """Serves the Open Inference Protocol on ``gateway_port`` (see :mod:`streams.roles.gateway`)."""

    group_id = "none (reads models.events from the start, writes scoring.predictions)"

    def __init__(self, settings: Settings, host: str | None = None) -> None:
        self.settings = settings
        self.host = host or ("127.0.0.1" if settings.embedded_kafka else "0.0.0.0")
        self.port = settings.gateway_port
        self.inference = Inference(settings)
        self.app = GatewayApp(self.inference)
        self.stats = GatewayStats(self.inference)
        self.failed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: object | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="lastmile-gateway", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        # An answer crosses threads (the delivery thread settles it, the loop sends it): with
        # Python's 5 ms switch interval the woken thread may wait that long for the GIL.
        # Shorter slices, for the whole process: back-to-back bench runs went from 784 to
        # 915-928 req/s at one connection and from 44 ms to 6-11 ms p99 at 500 req/s.
        if sys.getswitchinterval() > SWITCH_INTERVAL_S:
            sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.inference.start()
        self._thread.start()

    def _run(self) -> None:
        from granian.constants import Interfaces
        from granian.server.embed import Server

        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            server = self._server = Server(
                self.app,
                address=self.host,
                port=self.port,
                interface=Interfaces.ASGINL,
                log_enabled=False,
                websockets=False,
            )
            log.info("gateway: serving the Open Inference Protocol on %s", self.url)
            loop.run_until_complete(server.serve())
        except BaseException as err:  # the thread's end, whatever ended it, is the role's failure
            self.stats.last_error = f"{type(err).__name__}: {err}"
            log.exception("gateway: the server stopped")
            self.failed = not self._stopping
        finally:
            loop.close()

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping = True
        loop, server = self._loop, self._server
        if loop is not None and server is not None and not loop.is_closed():
            loop.call_soon_threadsafe(server.signal_handler_interrupt)  # type: ignore[attr-defined]
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.inference.close()

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """True once ``/v2/health/ready`` answers 200 within ``timeout`` seconds: the server
        is bound and every model event up to the start is applied."""
        import httpx

        from streams.local.processes import wait_for

        ready = f"{self.url}/v2/health/ready"
        return wait_for(lambda: httpx.get(ready, timeout=1.0).is_success, timeout)

    def details(self) -> dict[str, object]:
        return {"url": self.url, "models": len(self.inference.table.models())}


def gateway_role(settings: Settings) -> GatewayRole:
    return GatewayRole(settings)
