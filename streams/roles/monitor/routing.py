"""The partitioned monitor's routing stage: predictions, outcomes and dead letters
re-keyed by model into ``monitor.input``, with the frontier every owner needs."""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from confluent_kafka import Message

from schemas import Codec, DecodeError
from streams.config import Settings
from streams.kafka.lane import Output
from streams.kafka.partitioning import model_partition
from streams.roles.monitor.bundles import Bundle, FrontierStamp, Item, RateRows, split_items
from streams.roles.monitor.rates import ALL_MODELS

log = logging.getLogger("lastmile.monitor")

__all__ = ["MonitorRouter"]

# The input topics and the schema each is decoded with.
SCHEMAS = ("Prediction", "Outcome", "DeadLetter")


class MonitorRouter:
    """Routes a batch of input messages to the repartition partitions of their models.

    Stateless but for what it saw of its predictions partitions (the newest event time
    of each, for the frontier): after a restart it knows less, and owners keep the
    newest they were told. A message without a model (a dead letter of an unreadable
    request, an undecodable input) goes to the partition of
    :data:`~streams.roles.monitor.rates.ALL_MODELS`, whose owner decodes (and
    dead-letters) it as one monitor would.
    """

    def __init__(
        self,
        settings: Settings,
        repartition_topic: str,
        partitions: int,
        codec: Codec,
        assigned: Callable[[], list[tuple[str, int]]],
    ) -> None:
        self.settings = settings
        self.topic = repartition_topic
        self.partitions = partitions
        self.codec = codec
        #: The predictions partitions this worker reads now.
        self.assigned = assigned
        self.all_models = model_partition(ALL_MODELS, partitions)
        # Per predictions partition: the newest event time and the next offset routed.
        self.newest: dict[tuple[str, int], float] = {}
        self.routed: dict[tuple[str, int], int] = {}
        self.scored: dict[tuple[str, int], float] = {}
        self.rate_time = -math.inf
        self.counts: Counter[str] = Counter()
        self.partition_of: dict[str, int] = {}

    def _partition(self, model: str | None) -> int:
        if model is None:
            return self.all_models
        part = self.partition_of.get(model)
        if part is None:
            part = self.partition_of[model] = model_partition(model, self.partitions)
        return part

    def route(self, messages: Sequence[Message]) -> list[Output]:
        """One bundle (or a few) per repartition partition, every partition included."""
        s = self.settings
        schema_of = {
            s.topic_predictions: SCHEMAS[0],
            s.topic_outcomes: SCHEMAS[1],
            s.topic_dlq: SCHEMAS[2],
        }
        by_topic: defaultdict[str, list[Message]] = defaultdict(list)
        for m in messages:
            by_topic[m.topic()].append(m)
        items: defaultdict[int, list[Item]] = defaultdict(list)
        rates: dict[tuple[str, int], RateRows] = {}
        for topic, batch in by_topic.items():
            schema = schema_of[topic]
            decoded = self.codec.decode_many(
                [m.value() for m in batch], [m.headers() for m in batch], schema
            )
            for m, record in zip(batch, decoded, strict=True):
                model = None if isinstance(record, DecodeError) else record.get("model")
                ts = m.timestamp()
                items[self._partition(model)].append(
                    (
                        m.topic(),
                        m.partition(),
                        m.offset(),
                        ts[1] if ts[0] else None,
                        m.key(),
                        m.value(),
                        m.headers(),
                    )
                )
                self.counts[f"routed.{schema}"] += 1
                if schema == "Prediction":
                    self.routed[(m.topic(), m.partition())] = m.offset() + 1
                if isinstance(record, DecodeError):
                    continue
                self._observe(m, schema, record, rates)
        return self._bundles(items, list(rates.values()))

    def _observe(
        self,
        m: Message,
        schema: str,
        record: dict[str, Any],
        rates: dict[tuple[str, int], RateRows],
    ) -> None:
        """The frontier and the all-models rate rows, as one monitor would count them
        (:meth:`~streams.roles.monitor.rates.DeadLetterRate.rate_items`)."""
        key = (m.topic(), m.partition())
        if schema == "Prediction":
            t = record["event_time"] / 1000.0
            if t > self.newest.get(key, -math.inf):
                self.newest[key] = t
            scored = record["scored_time"] / 1000.0
            if scored > self.scored.get(key, -math.inf):
                self.scored[key] = scored
            if record.get("variant") == "shadow":
                return
            when, dead = record["scored_time"] / 1000.0, False
        elif schema == "DeadLetter":
            when, dead = record["ts"] / 1000.0, True
        else:
            return
        rows = rates.get(key)
        if rows is None:
            rows = rates[key] = RateRows(*key)
        rows.offsets.append(m.offset())
        rows.times.append(when)
        rows.dead.append(dead)
        self.rate_time = max(self.rate_time, when)

    def rewound(self, partitions: Iterable[tuple[str, int]]) -> None:
        """The inputs of `partitions` are read again from an earlier offset (an aborted
        transaction): forget how far they were routed, or the next stamps would claim
        messages the owners may not have yet (on Kafka they never see the aborted ones)."""
        for key in partitions:
            self.routed.pop(key, None)
            self.newest.pop(key, None)
            self.scored.pop(key, None)

    def frontier(self) -> list[FrontierStamp]:
        """What this router knows of each predictions partition it reads and routed from."""
        return [
            FrontierStamp(
                t, p, self.newest.get((t, p)), self.routed[(t, p)], self.scored.get((t, p))
            )
            for t, p in sorted(self.assigned())
            if (t, p) in self.routed
        ]

    def _bundles(self, items: dict[int, list[Item]], rates: list[RateRows]) -> list[Output]:
        stamp = self.frontier()
        rate_time = self.rate_time if math.isfinite(self.rate_time) else None
        out: list[Output] = []
        for part in range(self.partitions):
            runs = split_items(items.get(part, []))
            for i, run in enumerate(runs):
                bundle = Bundle(run)
                if i == len(runs) - 1:
                    bundle.frontier = stamp
                    bundle.rate_time = rate_time
                    if part == self.all_models:
                        bundle.rates = rates
                out.append(Output(self.topic, bundle.encode(), None, None, part))
        self.counts["bundles"] += len(out)
        return out
