"""Durable file writes for the registry: a version is on disk whole, or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path

__all__ = ["fsync_dir", "sweep_stale_tmp", "write_durably"]


def write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and fsync it: a registered version survives a crash."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def fsync_dir(path: Path) -> None:
    """Fsync a directory, so a rename into it (a new version) is on disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sweep_stale_tmp(mdir: Path, older_than: float = 3600.0) -> None:
    """Remove temporary dirs of registrations that died an hour or more ago."""
    now = time.time()
    for p in mdir.glob(".tmp-*"):
        with contextlib.suppress(OSError):
            if now - p.stat().st_mtime > older_than:
                shutil.rmtree(p, ignore_errors=True)
