"""Prometheus metrics of every role, served on each worker's ``/metrics``.

Three kinds, so the hot path pays for nothing it already counts:

* read at scrape time (:mod:`.collector`): each role's status counters and stats
  (consumed, produced, batches, errors, the sink's rows and buffer, the monitor's
  alert states) and the consumer lag of each role's group (:mod:`.lag`);
* observed once a batch or an insert (:mod:`.observed`): batch sizes, handler,
  transaction and commit times, ClickHouse insert times and errors;
* tallied a batch at a time (:mod:`.tallies`, :mod:`.histogram`): predictions and
  scoring latency per model, version and variant; windows closed, dead letters by
  stage and reason, and drift, counted by the monitor when its batch commits.

Everything is in ``prometheus_client``'s default registry: :func:`render` is what any
HTTP front (the worker's Faust web server, the gateway) returns. A later role adds
its own metrics the same way: a ``prometheus_client`` metric in the default registry,
or a ``families()`` of its own read by the collector.

>>> body, content_type = render()
>>> content_type.startswith("text/plain") and isinstance(body, bytes)
True
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, REGISTRY, generate_latest

from streams.metrics.collector import RolesCollector, attach_roles, roles_collector
from streams.metrics.histogram import LATENCY_BUCKETS_S, BatchHistogram
from streams.metrics.lag import LagProbe
from streams.metrics.observed import (
    BATCH_SECONDS,
    COMMIT_SECONDS,
    TRANSACTION_SECONDS,
    batch_done,
    clickhouse_insert,
    lane_timer,
)
from streams.metrics.tallies import MonitorTally, ScorerTally

__all__ = [
    "BATCH_SECONDS",
    "COMMIT_SECONDS",
    "LATENCY_BUCKETS_S",
    "TRANSACTION_SECONDS",
    "BatchHistogram",
    "LagProbe",
    "MonitorTally",
    "RolesCollector",
    "ScorerTally",
    "attach_roles",
    "batch_done",
    "clickhouse_insert",
    "lane_timer",
    "render",
    "roles_collector",
]


def render() -> tuple[bytes, str]:
    """The default registry in the Prometheus text format, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_PLAIN_0_0_4
