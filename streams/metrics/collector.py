"""The worker's roles as Prometheus metrics, read at scrape time.

What a role already counts for ``/lastmile/status`` (``stats.as_dict()``, ``details()``,
the scorer's and the monitor's tallies, the sink's rows) is read when Prometheus asks,
so the hot path pays nothing for it. One :class:`RolesCollector` is registered in
``prometheus_client``'s default registry per process, and a worker's app
:meth:`~RolesCollector.attach` es its roles to it (a second app in the same process,
as in tests, takes over the role names it runs).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from confluent_kafka import KafkaException, TopicPartition
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.config import Settings
from streams.metrics.lag import LagProbe

__all__ = ["RolesCollector", "attach_roles", "roles_collector"]

# stats.as_dict() keys that are counters, and what they count.
_LANE_COUNTERS = {
    "consumed": ("lastmile_consumed", "Messages a role consumed and committed."),
    "produced": ("lastmile_produced", "Records a role produced (outputs and dead letters)."),
    "batches": ("lastmile_batches", "Batches a role committed."),
    "errors": ("lastmile_errors", "Failures a role retried (deliveries, inserts)."),
}


class RolesCollector(Collector):
    """Reads the attached roles; each role's ``stats`` and, where a role has them, its
    status counters, tallies, sink rows, alert states and consumer lag.

    >>> from prometheus_client import CollectorRegistry, generate_latest
    >>> from types import SimpleNamespace as NS
    >>> registry = CollectorRegistry()
    >>> collector = RolesCollector(registry)
    >>> stats = NS(as_dict=lambda: {"consumed": 5, "batches": 1}, last_error=None)
    >>> collector.attach({"scorer": NS(stats=stats, failed=False, group_id="g")})
    >>> print(generate_latest(registry).decode())  # doctest: +ELLIPSIS
    # HELP lastmile_consumed_total Messages a role consumed and committed.
    # TYPE lastmile_consumed_total counter
    lastmile_consumed_total{role="scorer"} 5.0
    ...
    """

    def __init__(self, registry: Any = None) -> None:
        self._roles: dict[str, Any] = {}
        self._probes: dict[str, LagProbe] = {}
        self._lock = threading.Lock()
        if registry is not None:
            registry.register(self)

    def attach(self, roles: Mapping[str, Any], settings: Settings | None = None) -> None:
        """Collect these roles from now on; with `settings`, their consumer lag too."""
        with self._lock:
            for name, role in roles.items():
                self._roles[name] = role
                old = self._probes.pop(name, None)
                if old is not None:
                    old.close()
                topics = _topics(role)
                if settings is not None and topics and getattr(role, "group_id", None):
                    self._probes[name] = LagProbe(
                        settings, role.group_id, topics, local_high=_fetched_high(role)
                    )

    def detach(self, names: Mapping[str, Any] | list[str]) -> None:
        """Stop collecting these roles (their worker stopped)."""
        with self._lock:
            for name in list(names):
                self._roles.pop(name, None)
                probe = self._probes.pop(name, None)
                if probe is not None:
                    probe.close()

    def describe(self) -> list[Metric]:
        # Nothing up front: the families depend on the roles attached later.
        return []

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            roles = dict(self._roles)
            probes = dict(self._probes)
        counters = {
            key: CounterMetricFamily(name, doc, labels=["role"])
            for key, (name, doc) in _LANE_COUNTERS.items()
        }
        failed = GaugeMetricFamily(
            "lastmile_role_failed",
            "1 when a role's thread died (the worker exits).",
            labels=["role"],
        )
        last_batch = GaugeMetricFamily(
            "lastmile_last_batch_timestamp_seconds",
            "When a role last committed a batch.",
            labels=["role"],
        )
        events = CounterMetricFamily(
            "lastmile_role_events",
            "A role's own status counters (details()['counts'] on /lastmile/status).",
            labels=["role", "event"],
        )
        extra: list[Metric] = []
        scored: list[Metric] | None = None  # one family for every role that scores
        for name, role in roles.items():
            stats = role.stats.as_dict()
            for key, family in counters.items():
                if isinstance(stats.get(key), int):
                    family.add_metric([name], stats[key])
            failed.add_metric([name], float(bool(getattr(role, "failed", False))))
            if stats.get("last_batch_at"):
                last_batch.add_metric([name], float(stats["last_batch_at"]))
            for event, n in _counts(role).items():
                events.add_metric([name, event], n)
            extra += _role_families(name, role, stats)
            tally = getattr(getattr(role, "scorer", None), "tally", None)
            if tally is not None:
                scored = tally.families(name, scored)
        yield from counters.values()
        yield from (failed, last_batch, events)
        yield from extra
        yield from scored or ()
        lag = GaugeMetricFamily(
            "lastmile_consumer_lag",
            "Messages of a partition the role's consumer group has not committed yet.",
            labels=["role", "group", "topic", "partition"],
        )
        for name, probe in probes.items():
            for topic, partition, behind in probe.lag():
                lag.add_metric([name, probe.group_id, topic, str(partition)], behind)
        yield lag


def _topics(role: Any) -> list[str]:
    """The topics a role consumes: a lane's ``topics``, the sink's readers."""
    topics = getattr(role, "topics", None)
    if topics is None:
        topics = list(getattr(role, "readers", None) or ())
    return list(topics)


def _fetched_high(role: Any) -> Callable[[str, int], int]:
    """The high watermark of the role's consumer's last fetch of a partition (-1 when it
    has none): a local read of librdkafka's state, no request, the lane never waits."""

    def high(topic: str, partition: int) -> int:
        # A lane's ``consumer``, the sink's ``_consumer``: set once the role runs.
        consumer = getattr(role, "consumer", None) or getattr(role, "_consumer", None)
        if consumer is None:
            return -1
        try:
            return consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)[1]
        except (KafkaException, RuntimeError):  # RuntimeError: the role closed it meanwhile
            return -1

    return high


def _counts(role: Any) -> dict[str, int]:
    """A role's status counters: ``details()['counts']``, or the monitor's own."""
    details = getattr(role, "details", None)
    counts = _read(details).get("counts") if details is not None else None
    if counts is None and getattr(role, "monitor", None) is not None:
        counts = dict(role.monitor.counts)
        counts.pop("snapshot_bytes", None)  # a size, not a count
    return {k: v for k, v in (counts or {}).items() if isinstance(v, int)}


def _role_families(name: str, role: Any, stats: Mapping[str, Any]) -> list[Metric]:
    """What one kind of role adds: the monitor's tally and alerts, the sink's rows (the
    scorer's tally is merged over the roles that score, by :meth:`RolesCollector.collect`)."""
    out: list[Metric] = []
    monitor = getattr(role, "monitor", None)
    if monitor is not None:
        if getattr(monitor, "tally", None) is not None:
            out += monitor.tally.families()
        out.append(_alerts_firing(monitor))
    if isinstance(stats.get("rows_written"), dict):
        out += _sink_families(stats)
    return out


def _alerts_firing(monitor: Any) -> Metric:
    firing = GaugeMetricFamily(
        "lastmile_alerts_firing",
        "Alerts firing now, per rule and model version (one per feature or segment).",
        labels=["rule", "model", "version"],
    )
    counts: dict[tuple[str, str, str], int] = {}
    for key in _firing(monitor):
        rule, model, version = key[0], key[1], key[2]
        counts[(rule, model, version)] = counts.get((rule, model, version), 0) + 1
    # A rule that fires for nothing is 0, not absent: "firing == 0" is a query too.
    for rule in monitor.rule_list:
        if not any(k[0] == rule.name for k in counts):
            firing.add_metric([rule.name, "", ""], 0)
    for key, n in counts.items():
        firing.add_metric(list(key), n)
    return firing


def _firing(monitor: Any) -> list[tuple]:
    return _read(lambda: list(monitor.rules.firing()), [])


def _read(read: Any, empty: Any = None) -> Any:
    """``read()`` of a role's state, which its own thread changes meanwhile: a dict
    that changed size during the read raises RuntimeError, and the next try (a
    microsecond later) reads it."""
    for _ in range(5):
        try:
            return read()
        except RuntimeError:
            continue
    return {} if empty is None else empty


def _sink_families(stats: Mapping[str, Any]) -> list[Metric]:
    rows = CounterMetricFamily(
        "lastmile_sink_rows", "Rows the sink stored in ClickHouse, per table.", labels=["table"]
    )
    for table, n in stats["rows_written"].items():
        rows.add_metric([table], n)
    gauges = [
        ("lastmile_sink_buffered_rows", "Rows the sink holds, not yet written.", "buffered_rows"),
        ("lastmile_sink_paused", "1 while the sink pauses consuming (backpressure).", "paused"),
        ("lastmile_sink_clickhouse_up", "1 when the sink's last ClickHouse call worked.", None),
    ]
    out: list[Metric] = [rows]
    for metric, doc, key in gauges:
        value = stats.get(key) if key else stats.get("clickhouse_ok")
        if value is not None:
            out.append(GaugeMetricFamily(metric, doc, value=float(value)))
    dead = stats.get("dead_letters")
    if isinstance(dead, int):
        out.append(
            CounterMetricFamily(
                "lastmile_sink_dead_letters", "Messages the sink dead-lettered.", value=dead
            )
        )
    return out


_DEFAULT: RolesCollector | None = None
_DEFAULT_LOCK = threading.Lock()


def roles_collector() -> RolesCollector:
    """The process's collector, registered in the default registry on first use."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = RolesCollector(REGISTRY)
        return _DEFAULT


def attach_roles(roles: Mapping[str, Any], settings: Settings | None = None) -> RolesCollector:
    """Attach a worker's roles to the process's collector (``streams.app`` does)."""
    collector = roles_collector()
    collector.attach(roles, settings)
    return collector
