"""The sink's one error: a write to retry, because what failed passes."""

from __future__ import annotations

from streams.errors import StreamsError

__all__ = ["WriteRetry"]


class WriteRetry(StreamsError):
    """A write that failed for a reason that passes (ClickHouse or Kafka unavailable)."""
