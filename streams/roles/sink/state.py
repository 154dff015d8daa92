"""The state every part of the sink shares, and its per-thread ClickHouse clients.

:class:`~streams.roles.sink.role.Sink` is built in layers, each a module of one
idea: this state, dead letters, ClickHouse inserts, the journal, the writer
thread, the consuming loop, the role's lifecycle. Each layer subclasses the one
below, so a layer calls only what is beneath it.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import os
import queue
import socket
import threading
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from schemas import Codec
from streams.config import Settings
from streams.kafka.idle import IdlePause
from streams.roles.sink.batching import PartitionBuffer, Round
from streams.roles.sink.options import SinkOptions
from streams.roles.sink.reader import RouteReader
from streams.roles.sink.routes import ROUTES
from streams.roles.sink.stats import SinkStats
from streams.storage import db

__all__ = ["SinkState"]


class SinkState:
    """Settings, readers, buffers, rounds and clients of one sink."""

    def __init__(
        self,
        settings: Settings,
        options: SinkOptions | None = None,
        roles: Sequence[str] | None = None,
        worker: str | None = None,
        migrate: bool = True,
    ) -> None:
        self.settings = settings
        self.options = options or SinkOptions.from_settings(settings)
        self.group_id = self.options.group_id
        self.database = db.database_name(settings)
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"
        self.migrate = migrate
        self.codec = Codec.from_settings(settings)
        wanted = set(roles) if roles else {r.role for r in ROUTES}
        self.readers: dict[str, RouteReader] = {}
        for route in ROUTES:
            if route.role in wanted:
                topic = settings.topics[route.role]
                self.readers[topic] = RouteReader(self.codec, route, topic)
        self.stats = SinkStats()
        self.failed = False
        self._stop = threading.Event()
        self._assigned = threading.Event()
        self._thread: threading.Thread | None = None
        self._parts: dict[tuple[str, int], PartitionBuffer] = {}
        # Rounds handed to the writer, oldest first; committed in this order.
        self._inflight: collections.deque[Round] = collections.deque()
        self._rounds: queue.Queue[Round | None] = queue.Queue()
        self._to_commit: list[TopicPartition] = []
        self._paused = False  # flow control: the buffer is full
        self._repause = False
        # Stop fetching after a spell without records (the embedded broker's default).
        self._idle = IdlePause(positions=self._next_offsets) if settings.idle_pause else None
        self._local = threading.local()
        self._journal_lock = threading.Lock()
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._next_lookup = 0.0
        self._lookup_backoff = 0.2
        self._next_lag = 0.0

    def _next_offsets(self) -> dict[tuple[str, int], int]:
        """The offset after the last message received, of each partition that had one."""
        return {k: p.next_offset for k, p in self._parts.items() if p.next_offset is not None}

    def _client(self, timeout: float = 120.0) -> Any:
        """This thread's ClickHouse client (clients are not shared between threads)."""
        key = f"client_{int(timeout)}"
        client = getattr(self._local, key, None)
        if client is None:
            client = db.connect(self.settings, send_receive_timeout=timeout)
            setattr(self._local, key, client)
        return client

    def _drop_client(self, timeout: float = 120.0) -> None:
        key = f"client_{int(timeout)}"
        client = getattr(self._local, key, None)
        if client is not None:
            setattr(self._local, key, None)
            with contextlib.suppress(Exception):
                client.close()
