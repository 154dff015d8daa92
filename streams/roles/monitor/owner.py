"""The partitioned monitor's owning stage: a :class:`Monitor` for one partition of
``monitor.input``, folding the messages the routers sent there."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from confluent_kafka import Message

from monitors.state import RateCounter
from monitors.windows import ClosedWindow
from streams.kafka.lane import Output
from streams.kafka.takeover import identity_of
from streams.roles.monitor.bundles import Bundle
from streams.roles.monitor.handler import Monitor
from streams.roles.monitor.rates import ALL_MODELS
from streams.roles.monitor.windows import FrontierRateWindow, new_dead_letter_window

__all__ = ["PartitionOwner"]


class PartitionOwner(Monitor):
    """One repartition partition's monitor: the models routed there, its own snapshot
    (``<group>/p<partition>/<chunk>`` in the state topic), its own position.

    It folds the routed messages as one monitor folds what it reads (its positions per
    source partition drop a message routed twice), with the watermark one monitor would
    have: its frontier is the newest event time of every predictions partition as the
    routers stamp it, held to the slowest one not routed to its end yet; a predictions
    partition with messages no router has stamped yet lags too (one monitor holds its
    watermark for a partition it has not fetched yet). The dead-letter rate of all
    models is counted by the owner of that name's partition, from the rows every router
    sends it.

    Set by the lane before use: :attr:`partition`, :attr:`repartition_topic`,
    :attr:`source_partitions` (every partition of the predictions topic), and before each
    batch :attr:`source_ends` (their high watermarks)."""

    partition: int = 0
    repartition_topic: str = ""
    counts_all_models = False
    source_partitions: Sequence[tuple[str, int]] = ()
    source_ends: Mapping[tuple[str, int], int] = {}

    def own(self, partition: int, repartition_topic: str, counts_all_models: bool) -> None:
        """Make this the owner of `partition` (before restoring its snapshot)."""
        self.partition = partition
        self.repartition_topic = repartition_topic
        self.counts_all_models = counts_all_models
        self.snapshot_prefix = f"{self.options.group_id}/p{partition}"
        self.lagging = self._lagging_sources
        #: Identities of metrics and alerts a killed worker left readable, not to emit
        #: again (:mod:`.leftovers`); set by the lane once the snapshot is restored, kept
        #: when a rollback restores it again.
        self.skip: set[bytes] = set()

    def reset_state(self) -> None:
        super().reset_state()
        # Per predictions partition, from the routers' stamps: the offset routed up to.
        self.source_routed: dict[tuple[str, int], int] = {}
        # The newest scorer time any router saw: the dead-letter rate's watermark.
        self.rate_time = -math.inf
        # Per predictions partition, the newest scorer time routed: the rate's frontier.
        self.scored_max: dict[tuple[str, int], float] = {}
        self.dlq_window = new_dead_letter_window(self.options, held=True)
        # Per source partition, the next offset of an all-models rate row not counted yet.
        self.rate_positions: dict[tuple[str, int], int] = {}
        self._routed_rates: list[tuple[np.ndarray, np.ndarray]] = []
        #: When the snapshot restored was taken (None: none restored).
        self.snapshot_ms: int | None = None

    def state(self) -> dict[str, Any]:
        d = super().state()
        d["partitioned"] = {
            # When it was taken: what is newer of its models was never committed.
            "taken_ms": int(self.clock() * 1000),
            "source_routed": [[t, p, off] for (t, p), off in self.source_routed.items()],
            "rate_time": self.rate_time,
            "rate_positions": [[t, p, off] for (t, p), off in self.rate_positions.items()],
            "scored_max": [[t, p, v] for (t, p), v in self.scored_max.items()],
        }
        return d

    def load_state(self, d: Mapping[str, Any]) -> None:
        super().load_state(d)
        part = d.get("partitioned") or {}
        self.snapshot_ms = part.get("taken_ms")
        self.source_routed = {(t, int(p)): int(o) for t, p, o in part.get("source_routed", [])}
        self.rate_time = float(part.get("rate_time", -math.inf))
        self.rate_positions = {(t, int(p)): int(o) for t, p, o in part.get("rate_positions", [])}
        self.scored_max = {(t, int(p)): float(v) for t, p, v in part.get("scored_max", [])}
        if not isinstance(self.dlq_window, FrontierRateWindow):
            restored = self.dlq_window.to_dict()
            self.dlq_window = FrontierRateWindow.from_dict(
                restored, RateCounter, RateCounter.from_dict
            )

    def _lagging_sources(self) -> list[tuple[str, int]]:
        """The predictions partitions not routed to their end (:attr:`source_ends`, asked
        of the broker by the lane for this batch); unknown ends: those never routed."""
        ends = self.source_ends
        return [
            k
            for k in self.source_partitions
            if self.source_routed.get(k, 0) < ends.get(k, 0 if k in self.source_routed else 1)
        ]

    def process(self, messages: Sequence[Message]) -> list[Output]:
        """Fold a batch of this partition's bundles (in offset order)."""
        routed: list[Any] = []
        self._routed_rates = []
        key = (self.repartition_topic, self.partition)
        for m in messages:
            offset = m.offset()
            if offset < self.positions.get(key, -1):
                self.counts["skipped_seen"] += 1
                continue
            self.positions[key] = offset + 1
            bundle = Bundle.decode(m.value())
            routed.extend(bundle.messages())
            self._stamp(bundle)
        outputs = super().process(routed)
        if self.skip:
            outputs = [o for o in outputs if not self._left_readable(o)]
        return outputs

    def _left_readable(self, output: Output) -> bool:
        identity = identity_of(output.headers)
        if identity is None or identity not in self.skip:
            return False
        self.skip.discard(identity)
        self.counts["skipped_left_readable"] += 1
        return True

    def _stamp(self, bundle: Bundle) -> None:
        """Take in what a router says of its partitions and of the time (newest kept)."""
        for s in bundle.frontier:
            where = (s.topic, s.partition)
            # The newest kept: a router taking over may not have routed as far yet.
            self.source_routed[where] = max(s.routed, self.source_routed.get(where, 0))
            if s.newest is not None and s.newest > self.partition_max.get(where, -math.inf):
                self.partition_max[where] = s.newest
            if s.scored is not None and s.scored > self.scored_max.get(where, -math.inf):
                self.scored_max[where] = s.scored
        if bundle.rate_time is not None:
            self.rate_time = max(self.rate_time, bundle.rate_time)
        for rows in bundle.rates:
            where = (rows.topic, rows.partition)
            offsets = np.asarray(rows.offsets, dtype=np.int64)
            fresh = offsets >= self.rate_positions.get(where, -1)
            if not fresh.any():
                continue
            self.rate_positions[where] = int(offsets[fresh].max()) + 1
            times = np.asarray(rows.times, dtype=np.float64)[fresh]
            self._routed_rates.append((times, np.asarray(rows.dead, dtype=bool)[fresh]))

    def rate_items(
        self,
        predictions: Sequence[tuple[Message, dict[str, Any]]],
        dead: Sequence[tuple[Message, dict[str, Any]]],
    ) -> list[tuple[Any, np.ndarray, Any]]:
        """The rows of its models; those of all models only from the routers' rows (and
        only in the partition of that name): its own traffic is a share of all."""
        items = [i for i in super().rate_items(predictions, dead) if i[0] != (ALL_MODELS,)]
        if self.counts_all_models:
            items += [((ALL_MODELS,), t, {"dead": f}) for t, f in self._routed_rates]
        return items

    def fold_rates(
        self,
        records: Sequence[tuple[Message, dict[str, Any]]],
        letters: Sequence[tuple[Message, dict[str, Any]]],
    ) -> list[ClosedWindow[RateCounter]]:
        """Held back to the slowest lagging predictions partition (in scorer time), then
        the watermark to the newest scorer time of all traffic, where one monitor's
        would be."""
        assert isinstance(self.dlq_window, FrontierRateWindow)
        self.dlq_window.frontier = min(
            (self.scored_max.get(k, -math.inf) for k in self._lagging_sources()),
            default=math.inf,
        )
        closed = super().fold_rates(records, letters)
        if math.isfinite(self.rate_time):
            closed += self.dlq_window.advance(self.rate_time)
        return closed
