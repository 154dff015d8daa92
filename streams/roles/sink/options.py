"""The sink's knobs: batch and buffer bounds, threads, backoff, consumer group."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from streams.config import Settings

__all__ = ["SinkOptions"]

_ENV = "LASTMILE_SINK_"


@dataclass(frozen=True)
class SinkOptions:
    """Knobs of the sink. :meth:`from_settings` reads ``settings.sink_<name>`` when
    Settings has it, else ``LASTMILE_SINK_<NAME>``, else the default.

    >>> SinkOptions.from_settings(None, env={"LASTMILE_SINK_BATCH_ROWS": "1000"}).batch_rows
    1000
    """

    batch_rows: int = 50_000  # most messages one insert takes from one partition
    batch_seconds: float = 1.0  # oldest buffered message waits at most this long
    buffer_rows: int = 200_000  # pause consuming at this many buffered messages...
    buffer_bytes: int = 128 << 20  # ...or this many buffered bytes
    insert_threads: int = 4  # concurrent inserts (one ClickHouse client each)
    max_backoff_s: float = 5.0  # longest wait between two attempts of a failed batch
    status_every_s: float = 10.0  # how often a row goes to sink_status
    group_id: str = "lastmile-sink"

    @classmethod
    def from_settings(
        cls, settings: Settings | None, env: Mapping[str, str] | None = None, **overrides: Any
    ) -> SinkOptions:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = getattr(settings, f"sink_{f.name}", None) if settings is not None else None
            if raw is None:
                raw = env.get(f"{_ENV}{f.name.upper()}")
            if raw is None or raw == "":
                continue
            kind = type(f.default)
            try:
                values[f.name] = kind(raw)
            except (TypeError, ValueError):
                problem = f"{raw!r} is not a {kind.__name__}"
                raise ValueError(f"sink setting {f.name}: {problem}") from None
        values.update(overrides)
        return cls(**values)
