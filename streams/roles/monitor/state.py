"""The monitor's state: empty, as a snapshot (and back), and its fate with each
transaction (committed, rolled back, partitions assigned)."""

from __future__ import annotations

import logging
import math
import pickle
import time
from collections.abc import Mapping
from typing import Any

from monitors.aggregate import PredictionSketch
from monitors.comparison.monitor import ComparisonMonitor
from monitors.detectors import DetectorBank, make_detector
from monitors.events import AlertEvent
from monitors.performance import PerformanceMonitor
from monitors.rules import RuleEngine
from monitors.state import (
    CHUNK_SIZE,
    JoinBuffer,
    RateCounter,
    SnapshotError,
    decode_snapshot,
    encode_snapshot,
)
from monitors.windows import TumblingWindow
from streams.kafka.lane import Output
from streams.roles.monitor.windows import (
    FrontierSlidingWindow,
    FrontierTumblingWindow,
    new_dead_letter_window,
    new_prediction_window,
)

log = logging.getLogger("lastmile.monitor")

__all__ = ["STATE_FORMAT", "MonitorState"]

STATE_FORMAT = 1


class MonitorState:
    """Part of :class:`~streams.roles.monitor.handler.Monitor`: everything it has
    accumulated, the snapshots of it, and the transaction hooks the lane calls.

    A mixin: ``options``, ``rule_list``, ``notifier``, ``state_topic``, ``counts``, ``tally`` and
    :meth:`sketch_for` are the monitor's; the rest it sets in :meth:`reset_state` and
    :meth:`init_snapshots`."""

    def init_snapshots(self) -> None:
        """No snapshot yet: the bookkeeping of committed and pending snapshots."""
        self.snapshot_id = 0
        # The last committed snapshot and the one riding in the open transaction, as
        # bytes: the live objects keep changing, a rollback needs what was committed.
        self._committed_chunks: list[bytes] | None = None
        self._pending_chunks: list[bytes] | None = None
        self.pending_alerts: list[AlertEvent] = []
        self._start_positions: dict[tuple[str, int], int] = {}
        self._last_snapshot = -math.inf
        self._snapshot_slots = 0
        self.force_snapshot = True
        #: The keys of its chunks in the state topic are ``<prefix>/<chunk>``: the group,
        #: or the group and the repartition partition of a partitioned monitor.
        self.snapshot_prefix = self.options.group_id

    def _new_bank(self, stream: str, detector: str) -> DetectorBank:
        return DetectorBank(stream, lambda: make_detector(detector))

    def reset_state(self) -> None:
        """Empty state: what a monitor that has seen nothing holds."""
        o = self.options
        self.window = new_prediction_window(o, self.sketch_for)
        self.dlq_window = new_dead_letter_window(o)
        self.rules = RuleEngine(self.rule_list)
        self.performance = {
            task: PerformanceMonitor(task, o.performance_window)  # type: ignore[arg-type]
            for task in ("classification", "regression")
        }
        self.comparison = ComparisonMonitor(alpha=o.comparison_alpha)
        self.banks: dict[str, DetectorBank] = {}
        for spec in o.detectors:
            stream, _, name = spec.partition(":")
            self.banks[stream] = self._new_bank(stream, name)
        self.join = JoinBuffer(o.join_capacity)
        self.join_models: set[str] = set()
        self.segment_values: dict[tuple[str, str, str], set[str]] = {}
        self.feature_kinds: dict[tuple[str, str], dict[str, str]] = {}
        self.positions: dict[tuple[str, int], int] = {}
        # Newest event time seen per predictions partition (the watermark's frontier).
        self.partition_max: dict[tuple[str, int], float] = {}
        self.emitted = {"metrics": 0, "alerts": 0}

    def state(self) -> dict[str, Any]:
        """Everything to restore: JSON-safe dicts, and River objects as their pickles."""
        o = self.options
        return {
            "format": STATE_FORMAT,
            "window": {"size": o.window, "step": o.step, "state": self.window.to_dict()},
            "dlq_window": self.dlq_window.to_dict(),
            "rules": self.rules.to_dict(),
            "performance": {t: m.to_bytes() for t, m in self.performance.items()},
            "comparison": pickle.dumps(self.comparison),
            "banks": {s: (b.to_bytes(), self._detector_name(s)) for s, b in self.banks.items()},
            "join": self.join.to_dict(),
            "join_models": sorted(self.join_models),
            "segment_values": [[list(k), sorted(v)] for k, v in self.segment_values.items()],
            "feature_kinds": [[list(k), dict(v)] for k, v in self.feature_kinds.items()],
            "positions": [[t, p, off] for (t, p), off in self.positions.items()],
            "partition_max": [[t, p, v] for (t, p), v in self.partition_max.items()],
            "emitted": dict(self.emitted),
        }

    def _detector_name(self, stream: str) -> str:
        for spec in self.options.detectors:
            s, _, name = spec.partition(":")
            if s == stream:
                return name
        return "adwin"

    def load_state(self, d: Mapping[str, Any]) -> None:
        """Restore :meth:`state`. Parts the configuration no longer matches start empty."""
        if d.get("format") != STATE_FORMAT:
            raise SnapshotError(f"monitor state format {d.get('format')!r} is not {STATE_FORMAT}")
        self.reset_state()
        o = self.options
        w = d["window"]
        if (w["size"], w["step"]) == (o.window, o.step):
            cls = FrontierTumblingWindow if o.tumbling else FrontierSlidingWindow
            self.window = cls.from_dict(
                w["state"], self.sketch_for, PredictionSketch.from_dict, keyed=True
            )
            self.window.allowed_lateness = o.allowed_lateness
        else:
            log.warning(
                "monitor: the window changed (%s s every %s s -> %s s every %s s); "
                "the windows open at the last snapshot are dropped",
                w["size"],
                w["step"],
                o.window,
                o.step,
            )
        if d["dlq_window"]["size"] == o.window:
            self.dlq_window = TumblingWindow.from_dict(
                d["dlq_window"], RateCounter, RateCounter.from_dict
            )
        self.rules.load_state(d["rules"])
        for task, blob in d["performance"].items():
            monitor = PerformanceMonitor.from_bytes(blob)
            monitor.window_size = o.performance_window
            self.performance[task] = monitor
        if d.get("comparison") is not None:  # absent from snapshots that predate it
            self.comparison = pickle.loads(d["comparison"])
            self.comparison.set_alpha(o.comparison_alpha)
        for stream, (blob, name) in d["banks"].items():
            if stream in self.banks and name == self._detector_name(stream):
                factory = self.banks[stream].factory
                self.banks[stream] = DetectorBank.from_bytes(blob, factory)
        self.join = JoinBuffer.from_dict(d["join"], capacity=o.join_capacity)
        self.join_models = set(d["join_models"])
        self.segment_values = {tuple(k): set(v) for k, v in d["segment_values"]}  # type: ignore[misc]
        self.feature_kinds = {tuple(k): dict(v) for k, v in d["feature_kinds"]}  # type: ignore[misc]
        self.positions = {(t, int(p)): int(off) for t, p, off in d["positions"]}
        self.partition_max = {(t, int(p)): float(v) for t, p, v in d["partition_max"]}
        self.emitted = dict(d.get("emitted", self.emitted))

    def restore(self, snapshot: tuple[int, dict[str, Any]] | None) -> None:
        """Start from a snapshot read from the state topic (None: from nothing)."""
        if snapshot is None:
            self.reset_state()
            self.snapshot_id = 0
            self._committed_chunks = None
        else:
            self.snapshot_id, state = snapshot
            self.load_state(state)
            self._committed_chunks = encode_snapshot(state, self.snapshot_id)
            # Its chunk count: a smaller next snapshot tombstones the slots beyond it.
            self._snapshot_slots = len(self._committed_chunks)
        self._pending_chunks = None
        self.pending_alerts = []
        self.force_snapshot = True

    def committed(self) -> None:
        """The last batch's transaction committed: its snapshot is the one to return to,
        and its alerts can be told."""
        if self._pending_chunks is not None:
            self._committed_chunks = self._pending_chunks
            self._pending_chunks = None
        alerts, self.pending_alerts = self.pending_alerts, []
        self.notifier.notify_many(alerts)
        self.tally.committed()

    def rolled_back(self) -> dict[tuple[str, int], int]:
        """The last batch's transaction aborted: back to the last committed snapshot.
        Returns the input offsets to seek to."""
        self.pending_alerts = []
        self._pending_chunks = None
        self.tally.discard()
        positions_before = dict(self.positions)
        committed = decode_snapshot(self._committed_chunks) if self._committed_chunks else None
        if committed is None:
            # Nothing committed since the start: the start offsets of every partition.
            self.reset_state()
            self.positions = dict(self._start_positions)
        else:
            self.load_state(committed[1])
        self.force_snapshot = True
        return {k: self.positions.get(k, v) for k, v in positions_before.items()}

    def assigned(self, starts: Mapping[tuple[str, int], int]) -> None:
        """Partitions were assigned at `starts` (their committed or earliest offsets);
        remember those of partitions the state does not cover yet."""
        for key, offset in starts.items():
            self.positions.setdefault(key, offset)
        self._start_positions = {**starts, **self._start_positions}
        self.force_snapshot = True

    # -- contexts ---------------------------------------------------------------------

    def snapshot_outputs(self, due: bool) -> list[Output]:
        """The snapshot's chunks for the state topic when `due` (the batch emits), forced
        or the interval is over; tombstones for the slots a bigger one used."""
        now = time.monotonic()
        interval_over = now - self._last_snapshot >= self.options.snapshot_interval
        if not (due or self.force_snapshot or interval_over):
            self._pending_chunks = None
            return []
        state = self.state()
        self.snapshot_id += 1
        chunks = encode_snapshot(state, self.snapshot_id, CHUNK_SIZE)
        prefix = self.snapshot_prefix
        out = [Output(self.state_topic, chunk, f"{prefix}/{i}") for i, chunk in enumerate(chunks)]
        # Slots a bigger snapshot used before: tombstones, so compaction forgets them.
        out += [
            Output(self.state_topic, None, f"{prefix}/{i}")
            for i in range(len(chunks), self._snapshot_slots)
        ]
        self._snapshot_slots = len(chunks)
        self._pending_chunks = chunks
        self._last_snapshot = now
        self.force_snapshot = False
        self.counts["snapshots"] += 1
        self.counts["snapshot_bytes"] = sum(len(c) for c in chunks)
        return out
