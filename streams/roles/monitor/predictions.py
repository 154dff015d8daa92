"""Folding predictions in: per-version batches into the windows (whole version and
segments), score change detection, the watermark's frontier, and remembering
predictions for the outcome join."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from confluent_kafka import Message

from monitors.aggregate import PredictionBatch, PredictionSketch
from monitors.sketches import OTHER
from monitors.windows import ClosedWindow
from streams.roles.monitor.windows import fold_in_pane_order

__all__ = ["MISSING_SEGMENT", "VARIANT_SEGMENT", "PredictionFolding"]

#: Segment key that means the prediction's variant rather than a feature.
VARIANT_SEGMENT = "variant"
MISSING_SEGMENT = "__missing__"


class PredictionFolding:
    """Part of :class:`~streams.roles.monitor.handler.Monitor`: how a batch's
    predictions enter the windows (it uses the monitor's options, state and contexts).

    A mixin: ``options``, ``window``, ``banks``, ``join``, ``join_models``,
    ``segment_values``, ``partition_max``, ``lagging``, ``counts``, ``detections``,
    ``joined_now`` and :meth:`context` are the monitor's."""

    def fold_predictions(
        self, decoded: Sequence[tuple[Message, dict[str, Any]]]
    ) -> list[ClosedWindow[PredictionSketch]]:
        """Fold decoded predictions into the window (per version and per segment), feed
        the score detector, and return the windows the watermark closes."""
        groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for _m, r in decoded:
            groups[(r["model"], str(r["version"]))].append(r)
        items: list[tuple[Any, np.ndarray, Any]] = []
        score_bank = self.banks.get("score")
        for (model, version), recs in groups.items():
            ctx = self.context(model, version, recs)
            batch = PredictionBatch.from_records(recs, ctx.profile)
            batch.latency = np.array([r["latency_ms"] for r in recs], dtype=np.float64) / 1000.0
            times = np.array([r["event_time"] for r in recs], dtype=np.float64) / 1000.0
            items.append(((model, version), times, batch))
            seg_labels: list[tuple[str, ...]] = [()] * len(recs)
            if self.options.segments:
                seg_labels = [
                    tuple(self._segment(model, version, name, r) for name in self.options.segments)
                    for r in recs
                ]
                for j in range(len(self.options.segments)):
                    rows: dict[str, list[int]] = defaultdict(list)
                    for i, labels in enumerate(seg_labels):
                        rows[labels[j]].append(i)
                    for label, idx in rows.items():
                        sel = np.asarray(idx, dtype=np.int64)
                        items.append(((model, version, label), times[sel], batch.take(sel)))
            if model in self.join_models:
                self._remember(model, version, recs, seg_labels, times)
            if score_bank is not None:
                for r, t in zip(recs, times.tolist(), strict=True):
                    if r.get("score") is not None:
                        hit = score_bank.update((model, version), float(r["score"]), ts=t)
                        if hit is not None:
                            self.detections.append(hit)
        self.counts["predictions"] += len(decoded)
        for m, r in decoded:
            key = (m.topic(), m.partition())
            t = r["event_time"] / 1000.0
            if t > self.partition_max.get(key, -math.inf):
                self.partition_max[key] = t
        self.window.frontier = self._frontier()  # type: ignore[attr-defined]
        closed = fold_in_pane_order(self.window, items) if items else []
        if self.partition_max:
            # The frontier moves when a slow partition catches up, with or without new
            # events in this batch: close what it now allows.
            closed += self.window.advance(max(self.partition_max.values()))
        return closed

    def _frontier(self) -> float:
        """How far the watermark may go: the newest event time of the slowest predictions
        partition that still has unread messages (none: no limit)."""
        if self.lagging is None:
            return math.inf
        return min((self.partition_max.get(k, -math.inf) for k in self.lagging()), default=math.inf)

    def _remember(
        self,
        model: str,
        version: str,
        recs: Sequence[Mapping[str, Any]],
        seg_labels: Sequence[tuple[str, ...]],
        times: np.ndarray,
    ) -> None:
        for r, segs, t in zip(recs, seg_labels, times.tolist(), strict=True):
            # The variant last: a 6-field entry of an older snapshot still unpacks.
            entry = (model, version, segs, r.get("score"), r.get("label"), t, r.get("variant"))
            waiting = self.join.take_outcome(r["request_id"])
            if waiting is not None:
                self.joined_now.append((entry, waiting))
            else:
                self.join.add(r["request_id"], entry)

    def _segment(self, model: str, version: str, name: str, record: Mapping[str, Any]) -> str:
        if name == VARIANT_SEGMENT:
            value = record.get("variant")
        else:
            value = (record.get("features") or {}).get(name)
        text = MISSING_SEGMENT if value is None else str(value)
        seen = self.segment_values.setdefault((model, version, name), set())
        if text not in seen:
            # Bounded cardinality: a segment key with a thousand values is not a segment.
            if len(seen) >= self.options.max_segment_values:
                text = OTHER
            seen.add(text)
        return f"{name}={text}"
