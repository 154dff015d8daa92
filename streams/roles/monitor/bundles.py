"""The partitioned monitor's repartition records: what the routing stage sends to each
partition of ``monitor.input`` and the owning stage reads back.

A *bundle* is one record holding, for one repartition partition and one routing batch:

- ``items``: the input messages of the partition's models, each as it was read
  (source topic, partition, offset, timestamp, key, value, headers), so the owner folds
  exactly what one monitor would have read, and drops a second routing of a message by
  its source offset, as one monitor drops a message it already folded;
- ``frontier``: per predictions partition the router reads, the newest event time it
  routed from there (None: none yet) and the offset it routed up to: an owner counts a
  predictions partition as lagging while that offset is short of the partition's end,
  and holds its watermark to the slowest lagging one, as one monitor does with the
  partitions it reads (:meth:`~streams.roles.monitor.predictions.PredictionFolding._frontier`).
  The owner asks the broker for the ends itself: a router that has not routed a new
  message yet cannot say it lags;
- ``rate_time``: the newest scorer time the router saw (a prediction's ``scored_time``,
  a dead letter's ``ts``), to which every owner advances its dead-letter rate window,
  held back (as the predictions' window is in event time) to the newest scorer time of
  the slowest lagging predictions partition (the stamps carry it too);
- ``rates``: only to the partition of :data:`~streams.roles.monitor.rates.ALL_MODELS`:
  every row of the dead-letter rate of all traffic, per source partition (offsets,
  scorer times, dead-letter flags), so one owner counts the rate of all models.

Every routing batch sends a bundle to every partition, records or not: a partition
whose models went quiet still learns how far the others got, and closes its windows
where one monitor would. A large batch is cut into several bundles; the frontier, the
rate time and the rates ride on the last, after the items they cover.

Bundles are pickled: the topic is the monitor's own, like its pickled state.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.kafka.held_message import HeldMessage

__all__ = ["BUNDLE_BYTES", "BUNDLE_FORMAT", "Bundle", "FrontierStamp", "RateRows", "Item"]

BUNDLE_FORMAT = 1
#: Payload bytes per bundle record: well under Kafka's default 1 MB message size.
BUNDLE_BYTES = 256 * 1024

#: A routed message: (topic, partition, offset, timestamp ms or None, key, value, headers).
Item = tuple[str, int, int, int | None, bytes | None, bytes | None, list | None]


@dataclass(frozen=True)
class FrontierStamp:
    """What a router knows of one predictions partition it reads."""

    topic: str
    partition: int
    newest: float | None  # the newest event time routed from it, seconds
    routed: int  # the offset after the last message routed from it
    scored: float | None = None  # the newest scorer time routed from it, seconds


@dataclass
class RateRows:
    """Rows of the all-models dead-letter rate from one source partition, in offset order."""

    topic: str
    partition: int
    offsets: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    dead: list[bool] = field(default_factory=list)


@dataclass
class Bundle:
    """One repartition record (see the module doc)."""

    items: list[Item] = field(default_factory=list)
    frontier: list[FrontierStamp] = field(default_factory=list)
    rate_time: float | None = None
    rates: list[RateRows] = field(default_factory=list)

    def encode(self) -> bytes:
        return pickle.dumps(
            (BUNDLE_FORMAT, self.items, self.frontier, self.rate_time, self.rates),
            protocol=pickle.HIGHEST_PROTOCOL,
        )

    @classmethod
    def decode(cls, value: bytes) -> Bundle:
        """A bundle from its record value.

        >>> b = Bundle([("t", 0, 5, None, b"k", b"v", None)], [FrontierStamp("t", 0, 9.0, 6)])
        >>> Bundle.decode(b.encode()) == b
        True
        """
        fmt, items, frontier, rate_time, rates = pickle.loads(value)
        if fmt != BUNDLE_FORMAT:
            raise ValueError(f"monitor bundle format {fmt!r} is not {BUNDLE_FORMAT}")
        return cls(items, frontier, rate_time, rates)

    def messages(self) -> Iterator[HeldMessage]:
        """The routed messages, shaped like the ones the router read."""
        for topic, partition, offset, ts, key, value, headers in self.items:
            yield HeldMessage(topic, partition, offset, key, value, headers, ts)


def split_items(items: Sequence[Item], limit: int = BUNDLE_BYTES) -> list[list[Item]]:
    """`items` in runs of about `limit` payload bytes (at least one run, maybe empty).

    >>> item = ("t", 0, 0, None, b"k", b"v" * 100, None)
    >>> [len(run) for run in split_items([item] * 5, limit=400)]
    [2, 2, 1]
    >>> split_items([])
    [[]]
    """
    runs: list[list[Item]] = [[]]
    size = 0
    for item in items:
        n = 64 + len(item[4] or b"") + len(item[5] or b"") + _headers_size(item[6])
        if runs[-1] and size + n > limit:
            runs.append([])
            size = 0
        runs[-1].append(item)
        size += n
    return runs


def _headers_size(headers: Any) -> int:
    return sum(len(k) + len(v or b"") for k, v in headers) if headers else 0
