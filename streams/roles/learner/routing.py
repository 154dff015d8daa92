"""The routing stage: predictions and outcomes re-keyed by model into the repartition topic."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence

from confluent_kafka import Message

from schemas import DecodeError
from streams.kafka.lane import Output
from streams.kafka.partitioning import model_partition
from streams.models import CATCH_UP_S, created_ms
from streams.roles.learner.envelope import (
    join_key,
    pack_bundles,
    pack_outcome,
    pack_prediction,
)
from streams.roles.learner.part import LearnerPart

log = logging.getLogger("lastmile.learner")


class RoutingStage(LearnerPart):
    """Routes the inputs of learnable models to their repartition partitions.

    A :class:`~streams.roles.learner.part.LearnerPart`; besides its attributes it reads:"""

    partitions: int
    partition_of: dict[str, int]

    def _partition(self, model: str) -> int:
        part = self.partition_of.get(model)
        if part is None:
            part = self.partition_of[model] = model_partition(model, self.partitions)
        return part

    def route(
        self, predictions: Sequence[Message], outcomes: Sequence[Message], now_ms: int
    ) -> list[Output]:
        """Predictions and outcomes of learnable models as bundles, one per repartition
        partition (or a few, when large)."""
        learnable: dict[str, tuple[bytes, int] | None] = {}
        counts = self.counts
        items: defaultdict[int, list[tuple[bytes, bytes, int, int]]] = defaultdict(list)
        for m, r, where in self._learnable(predictions, "Prediction", learnable):
            items[where[1]].append(
                (
                    where[0] + r["request_id"].encode(),
                    pack_prediction(now_ms, r["version"], r["event_time"], r["features"]),
                    m.partition(),
                    m.offset(),
                )
            )
            counts["routed_predictions"] += 1
        for m, r, where in self._learnable(outcomes, "Outcome", learnable):
            ts = m.timestamp()
            source = (
                m.topic(),
                m.partition(),
                m.offset(),
                ts[1] if ts[0] else None,
                m.key(),
                m.headers(),
                m.value(),
            )
            items[where[1]].append(
                (
                    where[0] + r["request_id"].encode(),
                    pack_outcome(now_ms, r["label"], r["value"], r["event_time"], source),
                    source[1],
                    source[2],
                )
            )
            counts["routed_outcomes"] += 1
        topic = self.repartition_topic
        return [
            Output(topic, bundle, None, None, part)
            for part, batch in items.items()
            for bundle in pack_bundles(now_ms, batch)
        ]

    def _learnable(
        self,
        messages: Sequence[Message],
        schema: str,
        learnable: dict[str, tuple[bytes, int] | None],
    ) -> Iterator[tuple[Message, dict, tuple[bytes, int]]]:
        """(message, record, where it goes) of each message of a learnable model; the
        others are counted (shadow predictions, unlearnable models) or dead-lettered."""
        if not messages:
            return
        counts = self.counts
        records = self.codec.decode_many(
            [m.value() for m in messages], [m.headers() for m in messages], schema
        )
        for m, r in zip(messages, records, strict=True):
            if isinstance(r, DecodeError):
                self._undecodable(m, r)
                continue
            if r.get("variant") == "shadow":
                counts["shadow_skipped"] += 1
                continue
            model = r["model"]
            where = learnable[model] if model in learnable else self._route_of(model, learnable)
            if where is None and self.table.catch_up(CATCH_UP_S, created_ms(m)):
                # Its model may have been registered or promoted just before: the first
                # such message of a batch asks the broker, after the batch was read, so
                # the others find that confirmation and ask nothing.
                where = self._route_of(model, learnable)
            if where is None:
                counts["unlearnable"] += 1
                continue
            yield m, r, where

    def _route_of(
        self, model: str, cache: dict[str, tuple[bytes, int] | None]
    ) -> tuple[bytes, int] | None:
        """(join key prefix, repartition partition) of a learnable model (a live River
        champion), None for the others; cached for one batch, as champions change."""
        state = self.table.get(model)
        champion = state.champion if state is not None else None
        info = state.versions.get(champion) if state is not None and champion else None
        where = None
        if info and not info.get("retired") and info.get("flavor") == "river":
            where = (join_key(model, ""), self._partition(model))
        cache[model] = where
        return where

    def _undecodable(self, message: Message, error: DecodeError) -> None:
        # The monitor, which reads the same topics, dead-letters undecodable input; a
        # second dead letter for one message would be replayed twice.
        self.counts["undecodable"] += 1
        if self.counts["undecodable"] <= 10:
            log.warning(
                "learner: skipping undecodable %s/%s@%s: %s",
                message.topic(),
                message.partition(),
                message.offset(),
                error.reason,
            )
