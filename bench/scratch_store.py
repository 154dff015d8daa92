"""A ClickHouse store of a benchmark's own: the embedded store in a temporary directory,
running for the ``with`` block, the directory removed after."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from streams.local.processes import free_port
from streams.storage.store import EmbeddedStore

__all__ = ["scratch_store"]


@contextlib.contextmanager
def scratch_store(prefix: str) -> Iterator[tuple[EmbeddedStore, Path]]:
    """The running store (data in ``clickhouse/``, its log ``store.log``) and the
    temporary directory (named from ``prefix``), for whatever else the run keeps there."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        root = Path(tmp)
        with EmbeddedStore(root / "clickhouse", free_port(), log_path=root / "store.log") as store:
            yield store, root
