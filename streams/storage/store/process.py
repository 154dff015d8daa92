"""The store process: the lock on its data directory and the server it runs until a
signal stops it."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from streams.storage.store.engine import Engine
from streams.storage.store.http import StoreServer
from streams.storage.store.protocol import LOCK_NAME, log

__all__ = ["serve"]


def _fail(message: str) -> int:
    """A fatal start-up error: one line on stderr (the last one), exit code 1."""
    sys.stderr.write(f"lastmile store: {message}\n")
    sys.stderr.flush()
    return 1


def _lock_data_dir(data_dir: Path) -> tuple[int | None, str | None]:
    """Create the data directory and take its lock; (fd, None) or (None, reason)."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return None, f"cannot create data directory {data_dir}: {err.strerror or err}"
    if not data_dir.is_dir():
        return None, f"data directory {data_dir} is not a directory"
    if not os.access(data_dir, os.W_OK | os.X_OK):
        return None, f"data directory {data_dir} is not writable"
    lock_path = data_dir / LOCK_NAME
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        return None, f"data directory {data_dir} is not writable: {err.strerror or err}"
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = ""
        with contextlib.suppress(OSError, ValueError):
            holder = os.pread(fd, 64, 0).decode().strip()
        os.close(fd)
        who = f" (pid {holder})" if holder else ""
        return None, f"data directory {data_dir} is already in use by another store{who}"
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd, None


def _chdb_holder(data_dir: Path) -> str | None:
    """None when no other process has chDB open on ``data_dir``, else " (pid N)" or "".

    chDB, like ClickHouse, flocks ``<data_dir>/status``; a process that opened the
    directory without this store (a direct ``chdb://`` client, say) holds it. Checked
    first because chDB's own failure is a vague "Error initializing EmbeddedServer".
    """
    status = data_dir / "status"
    try:
        fd = os.open(status, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        match = re.search(rb"PID: (\d+)", os.pread(fd, 256, 0))
        return f" (pid {match.group(1).decode()})" if match else ""
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def serve(
    data_dir: Path, port: int, host: str = "127.0.0.1", credentials: tuple[str, str] | None = None
) -> int:
    """Run the store in this process until SIGTERM or SIGINT; returns the exit code."""
    data_dir = Path(data_dir).resolve()
    fd, reason = _lock_data_dir(data_dir)
    if fd is None:
        return _fail(reason or "cannot lock the data directory")
    try:
        server = StoreServer((host, port), engine=None, credentials=credentials)  # type: ignore[arg-type]
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            return _fail(f"cannot listen on {host}:{port}: port {port} is already in use")
        return _fail(f"cannot listen on {host}:{port}: {err.strerror or err}")
    holder = _chdb_holder(data_dir)
    if holder is not None:
        server.server_close()
        return _fail(f"data directory {data_dir} is open in another chDB process{holder}")
    try:
        engine = Engine(data_dir)
    except Exception as exc:  # chDB's open raises untyped errors; report the first line
        server.server_close()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return _fail(f"cannot open chDB in {data_dir}: {first}")
    server.engine = engine

    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="store-http", daemon=True
    )
    thread.start()
    shown = f"[{host}]" if ":" in host else host
    log.info(
        "listening on http://%s:%d, data dir %s (chDB %s, pid %d)",
        shown,
        port,
        data_dir,
        engine.version,
        os.getpid(),
    )
    while not stop.wait(0.5):
        pass
    server.shutdown()
    engine.close()
    server.server_close()
    os.ftruncate(fd, 0)  # no pid: nobody holds the directory now
    os.close(fd)
    return 0
