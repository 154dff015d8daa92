"""Talking to ClickHouse: where it is, a pool of clients, and one query run to a frame.

Failures that mean "ClickHouse is not there (yet)" become :class:`StoreUnavailable`,
which says what to do; every uncached execution is logged in ``QUERY_LOG``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pandas as pd

from streams.config import Settings


class StoreUnavailable(RuntimeError):
    """ClickHouse cannot be reached, or its database is not migrated; says what to do."""


@dataclasses.dataclass(frozen=True)
class Db:
    """Where ClickHouse is: the connection parameters, hashable so it keys the cache."""

    host: str
    port: int
    secure: bool
    username: str
    password: str
    database: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Db:
        p = settings.clickhouse_params()
        return cls(
            p["host"],
            int(p["port"]),
            bool(p["secure"]),
            p["username"],
            p["password"],
            p["database"],
        )

    @property
    def label(self) -> str:
        """host:port/database, for people (no credentials)."""
        return f"{self.host}:{self.port}/{self.database}" + (" (TLS)" if self.secure else "")


# -------------------------------------------------------------------------- clients

_pool_lock = threading.Lock()
_idle: dict[Db, list[Any]] = {}
_POOL_SIZE = 8
# The last uncached executions (name, seconds, rows): what bench/dashboard.py reports.
QUERY_LOG: list[tuple[str, float, int]] = []
_QUERY_LOG_SIZE = 2000


@contextlib.contextmanager
def borrow(db: Db) -> Iterator[Any]:
    """A client used by this thread alone until it is handed back.

    clickhouse-connect clients are not for concurrent use, and Streamlit runs every
    session (and fragment) in threads of its own; a small pool keeps the connection
    set-up (a probe query) off the page's path without ever sharing one client.
    """
    with _pool_lock:
        idle = _idle.setdefault(db, [])
        client = idle.pop() if idle else None
    if client is None:
        client = _connect(db)
    ok = False
    try:
        yield client
        ok = True
    finally:
        if ok:
            with _pool_lock:
                if len(_idle[db]) < _POOL_SIZE:
                    _idle[db].append(client)
                    client = None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()


def _connect(db: Db) -> Any:
    import clickhouse_connect

    try:
        return clickhouse_connect.get_client(
            host=db.host,
            port=db.port,
            secure=db.secure,
            username=db.username,
            password=db.password,
            database=db.database,
            # Sessions would serialise a pool's clients and outlive a server restart.
            autogenerate_session_id=False,
            connect_timeout=5,
            send_receive_timeout=60,
            query_retries=1,
        )
    except Exception as err:  # clickhouse-connect raises many types; each means unavailable
        raise unavailable(db, err) from err


def unavailable(db: Db, err: BaseException) -> StoreUnavailable:
    text = str(err)
    if "UNKNOWN_DATABASE" in text or "Code: 81" in text:
        return StoreUnavailable(
            f"database `{db.database}` does not exist on {db.label}: "
            "run `lastmile db migrate` (or start the stack with `lastmile up`)"
        )
    if "UNKNOWN_TABLE" in text or "Code: 60" in text:
        return StoreUnavailable(f"the tables are missing in {db.label}: run `lastmile db migrate`")
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    return StoreUnavailable(
        f"cannot reach ClickHouse at {db.label} ({first[:200]}); "
        "start it with `lastmile up` or set LASTMILE_CLICKHOUSE_URL"
    )


def _record(name: str, seconds: float, rows: int) -> None:
    QUERY_LOG.append((name, seconds, rows))
    del QUERY_LOG[:-_QUERY_LOG_SIZE]


def query_frame(db: Db, name: str, sql: str, params: Mapping[str, Any]) -> pd.DataFrame:
    started = time.perf_counter()
    try:
        with borrow(db) as client:
            result = client.query(sql, parameters=dict(params))
    except StoreUnavailable:
        raise
    except Exception as err:  # clickhouse-connect raises many types; sorted below
        text = str(err)
        if any(m in text for m in ("UNKNOWN_DATABASE", "UNKNOWN_TABLE", "Code: 81", "Code: 60")):
            raise unavailable(db, err) from err
        if "Connection" in type(err).__name__ or "OperationalError" in type(err).__name__:
            raise unavailable(db, err) from err
        raise
    frame = pd.DataFrame(result.result_rows, columns=list(result.column_names))
    _record(name, time.perf_counter() - started, len(frame))
    return frame
