"""A message held in memory, shaped like a confluent-kafka ``Message``: what a role rebuilds
from its own state (the learner's outcome of an ``O`` value) to dead-letter or replay it.

>>> m = HeldMessage("scoring.outcomes", 2, 41, b"k", b"{}", [("trace", b"t1")], 1_700_000_000_000)
>>> m.topic(), m.partition(), m.offset(), m.key(), m.timestamp(), m.error()
('scoring.outcomes', 2, 41, b'k', (1, 1700000000000), None)
>>> HeldMessage("t", 0, 0, None, None).timestamp()
(0, -1)
"""

from __future__ import annotations

__all__ = ["HeldMessage"]


class HeldMessage:
    """The parts of a message; ``timestamp`` is its create time in millis, None when the
    message had none (``timestamp()`` then says ``TIMESTAMP_NOT_AVAILABLE``)."""

    __slots__ = ("_headers", "_key", "_offset", "_partition", "_topic", "_ts", "_value")

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes | None]] | None = None,
        timestamp: int | None = None,
    ) -> None:
        self._topic, self._partition, self._offset = topic, partition, offset
        self._key, self._value, self._headers, self._ts = key, value, headers, timestamp

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes | None]] | None:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return (0, -1) if self._ts is None else (1, self._ts)

    def error(self) -> None:
        return None
