"""The partitioned monitor's lane: many monitor workers in one group, each owning the
models of its partitions of ``monitor.input`` (``LASTMILE_MONITOR_PARTITIONED=true``).

Two stages on one consumer, as the learner runs (:mod:`streams.roles.learner`):

1. **Route**: the predictions, outcomes and dead letters this worker is assigned go,
   as they were read, to partition ``model_partition(model)`` of the repartition topic
   (:mod:`.routing`, :mod:`.bundles`), in the batch's transaction with the input
   offsets. Every batch stamps every partition with the frontier of the predictions
   partitions it read.
2. **Own**: each assigned repartition partition has a :class:`~.owner.PartitionOwner`,
   a monitor of its own models, restored from its snapshot (``<group>/p<n>`` in the
   state topic) when assigned and seeked to the offset the snapshot covers; its metrics,
   alerts, dead letters and snapshot go out in the same transaction.

Restarts: an owner's snapshot holds its position in ``monitor.input`` and, per source
partition, the offsets it folded, so a second routing of a message (a router's aborted
or killed transaction, readable on the embedded broker) is dropped as one monitor drops
a message it already folded; every owner batch that emits anything carries its snapshot.
A worker taking a partition over skips the metrics and alerts a killed worker left
readable there (:mod:`.leftovers`).

A model's windows, join buffer, performance, detectors and alert states live in one
owner, and every owner's watermark follows the slowest predictions partition not yet
routed to its end, whichever router reads it: N workers report what one monitor reports
on the same stream (``tests/streams/roles/test_monitor_partitioned.py`` compares them;
``test_monitor_partitioned_restart.py`` with a worker that dies, or is killed, mid-stream).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition

from monitors.notify import Notifier
from monitors.rules import load_rules
from schemas import Codec
from streams.config import BACKGROUND_FETCH_WAIT_MS, Settings
from streams.kafka.lane import BatchLane, Output, rewind_to_batch_start
from streams.kafka.partitioning import model_partition
from streams.roles.monitor.leftovers import identities_since
from streams.roles.monitor.owner import PartitionOwner
from streams.roles.monitor.owners_view import OwnersView
from streams.roles.monitor.rates import ALL_MODELS
from streams.roles.monitor.routing import MonitorRouter
from streams.roles.monitor.settings import MonitorSettings, alert_sinks
from streams.roles.monitor.snapshots import ensure_state_topic, read_snapshot

log = logging.getLogger("lastmile.monitor")

__all__ = ["PartitionedMonitorLane"]


class PartitionedMonitorLane(BatchLane):
    """One worker of a partitioned monitor group: routes what it reads, owns what it is
    assigned of the repartition topic.

    `make_owner` builds an empty :class:`PartitionOwner` (tests give their registry and
    notifier); by default every owner shares one registry, codec and notifier."""

    def __init__(
        self,
        settings: Settings,
        options: MonitorSettings | None = None,
        make_owner: Callable[[], PartitionOwner] | None = None,
        **lane_options: Any,
    ) -> None:
        self.options = options or settings.monitor
        self.codec = Codec.from_settings(settings)
        self._notifier: Notifier | None = None
        self._registry: Any = None
        self.make_owner = make_owner or self._default_owner
        self.repartition_topic = self.options.repartition_topic_for(settings)
        self.state_topic = self.options.state_topic_for(settings)
        self.owners: dict[int, PartitionOwner] = {}
        self.router: MonitorRouter | None = None
        self.counts: Counter[str] = Counter()
        #: The owners as one monitor, for the Prometheus collector (``role.monitor``).
        self.monitor = OwnersView(lambda: self.owners, load_rules(self.options.rules_path))
        self.sources: list[tuple[str, int]] = []
        self._ends: dict[tuple[str, int], int] = {}
        topics = [
            self.repartition_topic,
            settings.topic_predictions,
            settings.topic_outcomes,
            settings.topic_dlq,
        ]
        lane_options.setdefault("group_id", self.options.group_id)
        # As one monitor: after a crash the replay skips what the killed worker left
        # visible, but never in its own topics (the routing is deduplicated by the owners).
        lane_options.setdefault("skip_visible", True)
        lane_options.setdefault("fetch_wait_ms", BACKGROUND_FETCH_WAIT_MS)
        super().__init__(
            settings, "monitor", topics, self, on_assign=self._on_assign, **lane_options
        )
        self.private_topics = frozenset({self.state_topic, self.repartition_topic})

    def _default_owner(self) -> PartitionOwner:
        if self._notifier is None:
            self._notifier = Notifier(alert_sinks(self.options))
        from streams.models import Registry

        if self._registry is None:
            self._registry = Registry.from_settings(self.settings)
        return PartitionOwner(
            self.settings,
            self.options,
            registry=self._registry,
            codec=self.codec,
            notifier=self._notifier,
        )

    # -- clients and assignment ----------------------------------------------------------

    def _clients(self) -> tuple[Consumer, Producer]:
        """The topics first (the repartition topic has ``topic_partitions`` partitions),
        then the clients; each owner's state is read when its partition is assigned."""
        from confluent_kafka.admin import AdminClient, NewTopic

        from streams.kafka.topics import create_missing

        s = self.settings
        ensure_state_topic(s, self.state_topic)
        spec = NewTopic(
            self.repartition_topic,
            num_partitions=s.topic_partitions,
            replication_factor=s.topic_replication,
        )
        create_missing(s, [spec])
        topics = AdminClient(s.kafka_config()).list_topics(timeout=15.0).topics
        partitions = len(topics[self.repartition_topic].partitions)
        self.router = MonitorRouter(
            s, self.repartition_topic, partitions, self.codec, self._sources
        )
        return super()._clients()

    def _sources(self) -> list[tuple[str, int]]:
        """The predictions partitions this worker routes."""
        consumer = self.consumer
        if consumer is None:
            return []
        topic = self.settings.topic_predictions
        return [(tp.topic, tp.partition) for tp in consumer.assignment() if tp.topic == topic]

    def _source_ends(self, consumer: Consumer) -> dict[tuple[str, int], int]:
        """The high watermark of every predictions partition, asked of the broker (most
        are other routers' partitions: this consumer's cache knows only its own); the
        last one known when the broker does not answer."""
        for topic, p in self.sources:
            try:
                _low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=5.0, cached=False
                )
            except KafkaException as err:
                self.counts["end_unknown"] += 1
                log.debug("monitor: no end for %s/%d (%s)", topic, p, err)
                continue
            self._ends[(topic, p)] = high
        return dict(self._ends)

    def _on_assign(self, partitions: list[TopicPartition]) -> None:
        consumer = self.consumer
        assert consumer is not None and self.router is not None
        topic = self.repartition_topic
        mine = {tp.partition for tp in partitions if tp.topic == topic}
        for p in [p for p in self.owners if p not in mine]:
            del self.owners[p]  # its state is in its last committed snapshot
        predictions = self.settings.topic_predictions
        meta = consumer.list_topics(predictions, timeout=10.0).topics.get(predictions)
        self.sources = sources = [(predictions, p) for p in sorted(meta.partitions)] if meta else []
        all_models = model_partition(ALL_MODELS, self.router.partitions)
        for p in sorted(mine - set(self.owners)):
            owner = self.make_owner()
            owner.own(p, topic, counts_all_models=p == all_models)
            owner.tally = self.monitor.tally_of(p)
            snapshot = read_snapshot(
                self.settings,
                self.state_topic,
                owner.snapshot_prefix,
                ignore_tags=self.unfinished_tags(),
            )
            owner.restore(snapshot)
            if owner.snapshot_ms is not None:
                owner.skip = identities_since(
                    self.settings,
                    (self.settings.topic_metrics, self.settings.topic_alerts),
                    owner.snapshot_ms,
                    self._keeps(p),
                )
            low, _high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30.0)
            owner.assigned({(topic, p): low})
            self.owners[p] = owner
            log.info(
                "monitor: owning %s/%d from offset %d (%s)",
                topic,
                p,
                owner.positions[(topic, p)],
                "no snapshot" if snapshot is None else f"snapshot {snapshot[0]}",
            )
        for owner in self.owners.values():
            owner.source_partitions = sources
        for tp in partitions:
            if tp.topic == topic:
                tp.offset = self.owners[tp.partition].positions[(topic, tp.partition)]
        consumer.assign(partitions)

    def _keeps(self, partition: int) -> Callable[[bytes | None], bool]:
        """Whether a metric or alert (keyed by its model) is of `partition`'s models."""
        assert self.router is not None
        n = self.router.partitions

        def keep(key: bytes | None) -> bool:
            return key is not None and model_partition(key.decode(), n) == partition

        return keep

    # -- the batch -------------------------------------------------------------------------

    def process(self, messages: Sequence[Message]) -> list[Output]:
        """Route the inputs, then let each owner fold its partition's bundles."""
        assert self.router is not None
        topic = self.repartition_topic
        inputs: list[Message] = []
        bundles: defaultdict[int, list[Message]] = defaultdict(list)
        for m in messages:
            if m.topic() == topic:
                bundles[m.partition()].append(m)
            else:
                inputs.append(m)
        outputs = self.router.route(inputs) if inputs else []
        ends = self._source_ends(self.consumer) if bundles and self.consumer else {}
        for p, batch in bundles.items():
            owner = self.owners.get(p)
            if owner is None:
                self.counts["bundles_not_owned"] += 1  # revoked meanwhile: read again there
                continue
            owner.source_ends = ends
            outputs += owner.process(batch)
        return outputs

    def committed(self) -> None:
        for owner in self.owners.values():
            owner.committed()

    def rewind(self, consumer: Consumer, messages: list[Message]) -> None:
        """After an aborted transaction: the inputs back to the batch's start, every owner
        back to its last committed snapshot and its partition to the snapshot's offset."""
        topic = self.repartition_topic
        inputs = [m for m in messages if m.topic() != topic]
        rewind_to_batch_start(consumer, inputs)
        if self.router is not None:
            self.router.rewound({(m.topic(), m.partition()) for m in inputs})
        for p, owner in self.owners.items():
            offset = owner.rolled_back().get((topic, p), owner.positions.get((topic, p)))
            if offset is not None:
                consumer.seek(TopicPartition(topic, p, offset))

    def details(self) -> dict[str, object]:
        """The routing and owning counters, summed over the owners, for the status page."""
        counts: Counter[str] = Counter(self.counts)
        if self.router is not None:
            counts.update(self.router.counts)
        for owner in self.owners.values():
            counts.update({k: v for k, v in owner.counts.items() if k != "snapshot_bytes"})
        return {"counts": dict(counts), "owned": sorted(self.owners)}

    def stop(self, timeout: float = 30.0) -> None:
        super().stop(timeout)
        notifiers = {id(o.notifier): o.notifier for o in self.owners.values()}
        for notifier in notifiers.values():
            notifier.close()
        self.consumer = None
        self.producer = None
