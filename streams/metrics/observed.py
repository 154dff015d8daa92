"""The metrics that need an observation where the work happens: a batch's size and
times, a ClickHouse insert's time and errors.

They live in ``prometheus_client``'s default registry, so anything that exposes it (a
worker's ``/metrics``, the gateway's) shows them. One observation a batch or an
insert, never one a record: the per-record figures (predictions, scoring latency)
are :class:`~streams.metrics.tallies.ScorerTally`'s.

>>> from prometheus_client import CollectorRegistry
>>> registry = CollectorRegistry()
>>> h = Histogram("t_seconds", "t", ["role"], registry=registry)
>>> with lane_timer(h, "scorer"):
...     pass
>>> registry.get_sample_value("t_seconds_count", {"role": "scorer"})
1.0
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from prometheus_client import Counter, Histogram

__all__ = [
    "BATCH_SECONDS",
    "BATCH_SIZE",
    "CLICKHOUSE_ERRORS",
    "COMMIT_SECONDS",
    "INSERT_SECONDS",
    "TRANSACTION_SECONDS",
    "batch_done",
    "clickhouse_insert",
    "lane_timer",
]

_TIMES_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SIZES = (1, 5, 10, 50, 100, 500, 1000, 2500, 5000, 10000, 20000, 50000)

BATCH_SIZE = Histogram(
    "lastmile_batch_size",
    "Messages in a batch a role processed and committed.",
    ["role"],
    buckets=_SIZES,
)
BATCH_SECONDS = Histogram(
    "lastmile_batch_process_seconds",
    "Time a role's handler took over one batch (decode, route, score or fold).",
    ["role"],
    buckets=_TIMES_S,
)
TRANSACTION_SECONDS = Histogram(
    "lastmile_transaction_seconds",
    "Time to make a batch durable: its Kafka transaction from begin to commit "
    "(exactly once), or produce, flush and offset commit (at least once).",
    ["role"],
    buckets=_TIMES_S,
)
COMMIT_SECONDS = Histogram(
    "lastmile_commit_seconds",
    "Time of the commit alone: commit_transaction, or the synchronous offset commit.",
    ["role"],
    buckets=_TIMES_S,
)
INSERT_SECONDS = Histogram(
    "lastmile_sink_insert_seconds",
    "Time of one ClickHouse insert of the sink (a batch of one topic-partition).",
    ["table"],
    buckets=_TIMES_S,
)
CLICKHOUSE_ERRORS = Counter(
    "lastmile_sink_clickhouse_errors",
    "ClickHouse inserts of the sink that failed (retried, or refused and re-checked).",
    ["table"],
)


@contextlib.contextmanager
def lane_timer(histogram: Histogram, role: str) -> Iterator[None]:
    """Observe the block's duration under ``role``, when it ends without raising (a
    failed transaction is retried and counted by the lane's ``errors``)."""
    began = time.perf_counter()
    yield
    histogram.labels(role).observe(time.perf_counter() - began)


def batch_done(role: str, size: int) -> None:
    """A batch of `size` messages was processed and committed."""
    BATCH_SIZE.labels(role).observe(size)


@contextlib.contextmanager
def clickhouse_insert(table: str) -> Iterator[None]:
    """Time an insert into `table`; count it as a ClickHouse error when it raises."""
    began = time.perf_counter()
    try:
        yield
    except BaseException:
        CLICKHOUSE_ERRORS.labels(table).inc()
        raise
    INSERT_SECONDS.labels(table).observe(time.perf_counter() - began)
