"""The chDB engine of the store process: connection handles, one per HTTP session plus
a pool for requests without one, and the settings applied to them."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from streams.storage.store.errors import ClickHouseError
from streams.storage.store.protocol import (
    ABORTED,
    DEFAULT_SESSION_TIMEOUT,
    MAX_IDLE_HANDLES,
    SESSION_IS_LOCKED,
    SESSION_NOT_FOUND,
    SETTING_NAME,
    UNKNOWN_SETTING,
    log,
)
from streams.storage.store.sql import quote_identifier, quote_value

__all__ = ["Handle", "Engine", "prepare_handle", "query_summary"]


class Handle:
    """One chDB connection handle: a ClickHouse session's state and its lock."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.lock = threading.Lock()
        self.applied: dict[str, str] = {}  # settings set from URL parameters
        self.database: str | None = "default"
        self.timeout = DEFAULT_SESSION_TIMEOUT
        self.expires = 0.0
        self.dirty = False

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.session.close()


class Engine:
    """The chDB engine of this process and its connection handles.

    The first handle opens the data directory and stays open until :meth:`close`;
    the others come and go with sessions. All bookkeeping is under one lock; chDB
    calls are made outside it, under the handle's own lock.
    """

    def __init__(self, path: Path) -> None:
        import chdb.session

        self._session_class = chdb.session.Session
        self.path = str(path)
        self._base = self._session_class(self.path)
        row = self._base.query("SELECT version(), timezone()", "TabSeparated").bytes()
        self.version, self.timezone = row.decode().strip().split("\t")
        self._lock = threading.Condition()
        self._idle: list[Handle] = []
        self._sessions: dict[str, Handle] = {}
        self._active = 0
        self._closed = False
        self._reaper = threading.Thread(target=self._reap, name="store-sessions", daemon=True)
        self._reaper.start()

    def _new_handle(self) -> Handle:
        try:
            return Handle(self._session_class(self.path))
        except Exception as exc:  # chDB raises untyped errors; from_chdb reads their code
            raise ClickHouseError.from_chdb(exc) from None

    @contextlib.contextmanager
    def handle(self, session_id: str | None, timeout: float, check: bool) -> Iterator[Handle]:
        """Lend the handle of ``session_id`` (or a pooled one) for one request."""
        with self._lock:
            if self._closed:
                raise ClickHouseError.make(ABORTED, "The store is shutting down")
            if session_id:
                handle = self._sessions.get(session_id)
                if handle is None:
                    if check:
                        raise ClickHouseError.make(
                            SESSION_NOT_FOUND, f"Session {session_id} not found"
                        )
                    handle = self._sessions[session_id] = self._new_handle()
                if not handle.lock.acquire(blocking=False):
                    raise ClickHouseError.make(
                        SESSION_IS_LOCKED, f"Session {session_id} is locked by a concurrent client"
                    )
                handle.timeout = timeout
            else:
                handle = self._idle.pop() if self._idle else self._new_handle()
                handle.lock.acquire()
            self._active += 1
        try:
            yield handle
        finally:
            retired = None
            with self._lock:
                handle.expires = time.monotonic() + handle.timeout
                handle.lock.release()
                if not session_id:
                    if handle.dirty or self._closed or len(self._idle) >= MAX_IDLE_HANDLES:
                        retired = handle
                    else:
                        self._idle.append(handle)
                self._active -= 1
                self._lock.notify_all()
            if retired is not None:
                retired.close()

    def _reap(self) -> None:
        """Close sessions idle longer than their timeout, as ClickHouse does."""
        while True:
            time.sleep(2.0)
            expired = []
            with self._lock:
                if self._closed:
                    return
                now = time.monotonic()
                for sid, handle in list(self._sessions.items()):
                    if handle.expires < now and handle.lock.acquire(blocking=False):
                        del self._sessions[sid]
                        expired.append(handle)
            for handle in expired:
                handle.close()

    def close(self, timeout: float = 8.0) -> None:
        """Refuse new work, wait for what runs, then close every handle.

        Closing the last handle shuts the engine down, so the next store finds the
        data directory intact and unlocked.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            deadline = time.monotonic() + timeout
            while self._active and time.monotonic() < deadline:
                self._lock.wait(0.1)
            if self._active:
                log.warning("closing chDB with %d request(s) still running", self._active)
            handles = self._idle + list(self._sessions.values())
            self._idle, self._sessions = [], {}
        for handle in handles:
            handle.close()
        with contextlib.suppress(Exception):
            self._base.close()


def prepare_handle(handle: Handle, database: str | None, settings: dict[str, str]) -> None:
    """Bring a handle to the request's database and settings, sending only changes."""
    session = handle.session
    if "readonly" in settings:
        handle.dirty = True  # readonly cannot be undone on this handle
    try:
        if database and database != handle.database:
            handle.database = None
            session.query(f"USE {quote_identifier(database)}", "TabSeparated")
            handle.database = database
        for key, value in settings.items():
            if handle.applied.get(key) != value:
                if not SETTING_NAME.match(key):
                    raise ClickHouseError.make(UNKNOWN_SETTING, f"Unknown setting '{key}'")
                session.query(f"SET {key} = {quote_value(value)}", "TabSeparated")
                handle.applied[key] = value
    except ClickHouseError:
        raise
    except Exception as exc:  # chDB raises untyped errors; from_chdb reads their code
        raise ClickHouseError.from_chdb(exc) from None
    for key in [k for k in handle.applied if k not in settings]:
        del handle.applied[key]
        try:
            session.query(f"SET {key} = DEFAULT", "TabSeparated")
        except Exception as exc:
            # e.g. after readonly = 1 nothing can be changed: do not fail this request
            # for the last one's setting, but do not lend the handle out again either.
            log.debug("cannot reset %s: %s", key, exc)
            handle.dirty = True


def query_summary(
    read_rows: int,
    read_bytes: int,
    written_rows: int,
    written_bytes: int,
    result_rows: int,
    result_bytes: int,
    elapsed: float,
) -> str:
    """X-ClickHouse-Summary: ClickHouse sends every figure as a string."""
    return json.dumps(
        {
            "read_rows": str(read_rows),
            "read_bytes": str(read_bytes),
            "written_rows": str(written_rows),
            "written_bytes": str(written_bytes),
            "total_rows_to_read": "0",
            "result_rows": str(result_rows),
            "result_bytes": str(result_bytes),
            "elapsed_ns": str(int(elapsed * 1e9)),
        },
        separators=(",", ":"),
    )
