"""The monitor role: predictions, outcomes and dead letters in; metrics and alerts out.

It runs a :class:`~streams.kafka.lane.BatchLane` over ``scoring.predictions``,
``scoring.outcomes`` and ``scoring.dlq``. Each batch is folded into event-time windows
(:mod:`monitors.windows`) of :class:`~monitors.aggregate.PredictionSketch` states, one per
(model, version) and per (model, version, segment); when the watermark closes a window,
:class:`~monitors.report.WindowEvaluator` turns it into drift, quality, latency and
throughput metrics against the version's reference profile (from the registry), the
rolling performance of the outcomes joined since the last window is added, the
:class:`~monitors.rules.RuleEngine` turns metrics into firing/resolved alerts, and both go
out to ``monitor.metrics`` / ``monitor.alerts`` (key: the model) in the lane's Kafka
transaction. Alerts go to the notifier (a log line always, webhooks when configured) once
that transaction has committed.

State and restarts
------------------
Everything the monitor has accumulated (open windows, alert states, performance
trackers, change detectors, the outcome join buffer, and the input offsets it covers)
is pickled into a *snapshot* that is produced to a compacted topic (``monitor.state``,
key ``<group>/<chunk>``) **in the same transaction** as the metrics, the alerts and the
consumed offsets. A snapshot is written with every batch that emits anything, with the
first batch after a (re)assignment, and at least every ``snapshot_interval`` seconds.
So the last committed snapshot is never older than the last emitted output: on start the
role reads the newest snapshot, restores it and seeks the inputs to the snapshot's
offsets (which may be behind the group's committed offsets: batches that emitted nothing
are simply folded again). Nothing emitted is emitted twice, nothing consumed is lost.
An aborted transaction rolls the in-memory state back to the last committed snapshot
the same way. On the embedded broker, which shows what a killed or aborted transaction
had sent, the lane restores the last snapshot that committed (not the cut-short one)
and skips, while it replays, the metrics and alerts left readable (``skip_visible``,
:mod:`streams.kafka.takeover`).

Event time and partitions
-------------------------
Windows are in event time (``event_time``); the watermark is the newest event time
minus the allowed lateness, but held back to the newest event of the slowest predictions
partition that still has unread messages, so a fetch that runs one partition ahead of the
others (a catch-up, a restart) does not make their events late. The dead-letter rate is
counted in scorer time (a prediction's ``scored_time``, a dead letter's ``ts``).

Outcomes
--------
Outcomes are joined to predictions by request id in a bounded buffer (part of the
snapshot). A model's predictions enter the buffer once its first outcome has been seen,
so models without outcomes cost nothing; outcomes that arrive before their prediction
wait in a smaller buffer. Joined outcomes feed rolling accuracy / log loss / AUC (or MAE
/ RMSE) per version and segment, reported when a window closes, and the error stream's
change detector.

The monitor is one logical consumer: its windows cover the traffic of the partitions
it is assigned, and metrics are per model, so run one monitor (a second replica takes
partitions away and both would report partial windows; it is logged).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from confluent_kafka import Consumer, Message, Producer, TopicPartition

from monitors.aggregate import PredictionBatch, PredictionSketch
from monitors.detectors import DETECTORS, DetectorBank, make_detector, prediction_error
from monitors.events import AlertEvent, MetricValue
from monitors.notify import LogSink, Notifier, Sink, SlackSink, WebhookSink
from monitors.performance import PerformanceMonitor
from monitors.profile import CategoricalProfile, NumericProfile, ReferenceProfile
from monitors.quality import dead_letter_rate, quality_metrics
from monitors.report import WindowEvaluator
from monitors.rules import RuleEngine, load_rules, parse_duration
from monitors.sketches import OTHER
from monitors.state import (
    CHUNK_SIZE,
    JoinBuffer,
    RateCounter,
    SnapshotError,
    SnapshotReader,
    decode_snapshot,
    encode_snapshot,
)
from monitors.windows import ClosedWindow, SlidingWindow, TumblingWindow, take
from schemas import Codec, DecodeError
from streams.config import Settings
from streams.kafka.lane import BatchLane, Output
from streams.kafka.takeover import tagged_with
from streams.models.registry import label_str

log = logging.getLogger("lastmile.monitor")

__all__ = [
    "ALL_MODELS",
    "ALL_VERSIONS",
    "Monitor",
    "MonitorLane",
    "MonitorSettings",
    "alert_from_avro",
    "alert_to_avro",
    "metric_from_avro",
    "metric_to_avro",
    "monitor_lane",
    "read_snapshot",
]

#: The version of metrics and alerts about a model as a whole (Avro: null).
ALL_VERSIONS = "*"
#: The model of metrics about all traffic (the dead-letter rate of everything).
ALL_MODELS = "*"
#: Segment key that means the prediction's variant rather than a feature.
VARIANT_SEGMENT = "variant"
MISSING_SEGMENT = "__missing__"
STATE_FORMAT = 1
#: Quality metrics that compare with the reference: meaningless without one.
_REFERENCE_QUALITY = ("out_of_range_rate", "unseen_category_rate")


# -- settings -------------------------------------------------------------------------------


def _csv(text: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (text or "").split(",") if p.strip())


@dataclasses.dataclass(frozen=True)
class MonitorSettings:
    """The monitor's own settings, from ``LASTMILE_MONITOR_*`` variables (durations in
    seconds or ``30s``/``10m``/``1h``; lists comma-separated).

    ===================================  ======================  =============================
    variable                             default                 what it is
    ===================================  ======================  =============================
    LASTMILE_MONITOR_WINDOW              60s                     window size (event time)
    LASTMILE_MONITOR_STEP                = window (tumbling)     smaller: sliding windows
    LASTMILE_MONITOR_ALLOWED_LATENESS    10s                     how late an event may come
    LASTMILE_MONITOR_RULES               monitors/rules.yaml     alert rules file
    LASTMILE_MONITOR_WEBHOOKS            (none)                  JSON webhook URLs
    LASTMILE_MONITOR_SLACK_WEBHOOKS      (none)                  Slack incoming-webhook URLs
    LASTMILE_MONITOR_SEGMENTS            (none)                  categorical features (or
                                                                 ``variant``) to slice by
    LASTMILE_MONITOR_MAX_SEGMENT_VALUES  20                      values per segment key; the
                                                                 rest are ``__other__``
    LASTMILE_MONITOR_JOIN_CAPACITY       100000                  predictions kept for the
                                                                 outcome join (0: no join)
    LASTMILE_MONITOR_PERFORMANCE_WINDOW  1000                    outcomes per rolling metric
    LASTMILE_MONITOR_DETECTORS           error:adwin             ``stream:detector`` pairs;
                                                                 streams score, error
    LASTMILE_MONITOR_SNAPSHOT_INTERVAL   30s                     wall time between snapshots
                                                                 when nothing is emitted
    LASTMILE_MONITOR_STATE_TOPIC         monitor.state           compacted state topic
                                                                 (derived from topic_metrics)
    LASTMILE_MONITOR_GROUP               lastmile-monitor        consumer group
    ===================================  ======================  =============================

    >>> s = MonitorSettings.from_env({"LASTMILE_MONITOR_WINDOW": "5m",
    ...                               "LASTMILE_MONITOR_SEGMENTS": "plan, variant"})
    >>> s.window, s.step, s.segments
    (300.0, 300.0, ('plan', 'variant'))
    """

    window: float = 60.0
    step: float | None = None
    allowed_lateness: float = 10.0
    rules_path: str | None = None
    webhooks: tuple[str, ...] = ()
    slack_webhooks: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()
    max_segment_values: int = 20
    join_capacity: int = 100_000
    performance_window: int = 1000
    detectors: tuple[str, ...] = ("error:adwin",)
    snapshot_interval: float = 30.0
    state_topic: str | None = None
    group_id: str = "lastmile-monitor"

    def __post_init__(self) -> None:
        if self.step is None:
            object.__setattr__(self, "step", self.window)
        for spec in self.detectors:
            stream, _, name = spec.partition(":")
            if stream not in ("score", "error") or name not in DETECTORS:
                raise ValueError(
                    f"monitor detector {spec!r}: use score|error:{'|'.join(sorted(DETECTORS))}"
                )

    @property
    def tumbling(self) -> bool:
        return self.step == self.window

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MonitorSettings:
        """Settings from the environment (or `env`); unset variables keep their defaults."""
        env = os.environ if env is None else env
        prefix = "LASTMILE_MONITOR_"
        values: dict[str, Any] = {}

        def get(name: str) -> str | None:
            raw = env.get(prefix + name)
            return raw if raw is not None and raw.strip() != "" else None

        durations = {
            "WINDOW": "window",
            "STEP": "step",
            "ALLOWED_LATENESS": "allowed_lateness",
            "SNAPSHOT_INTERVAL": "snapshot_interval",
        }
        for var, name in durations.items():
            if (raw := get(var)) is not None:
                try:
                    values[name] = parse_duration(raw)
                except ValueError as err:
                    raise ValueError(f"{prefix}{var}: {err}") from None
        ints = {
            "MAX_SEGMENT_VALUES": "max_segment_values",
            "JOIN_CAPACITY": "join_capacity",
            "PERFORMANCE_WINDOW": "performance_window",
        }
        for var, name in ints.items():
            if (raw := get(var)) is not None:
                try:
                    values[name] = int(raw)
                except ValueError:
                    raise ValueError(f"{prefix}{var}: {raw!r} is not a whole number") from None
        lists = {
            "WEBHOOKS": "webhooks",
            "SLACK_WEBHOOKS": "slack_webhooks",
            "SEGMENTS": "segments",
            "DETECTORS": "detectors",
        }
        for var, name in lists.items():
            raw = env.get(prefix + var)
            if raw is not None:
                values[name] = _csv(raw)
        for var, name in (("RULES", "rules_path"), ("STATE_TOPIC", "state_topic")):
            if (raw := get(var)) is not None:
                values[name] = raw.strip()
        if (raw := get("GROUP")) is not None:
            values["group_id"] = raw.strip()
        return cls(**values)

    @classmethod
    def from_settings(cls, settings: Settings) -> MonitorSettings:
        """The ``monitor_*`` fields of the settings (env, lastmile.toml or defaults)."""
        from streams.config import prefixed_env

        return cls.from_env(prefixed_env(settings, "monitor"))

    def state_topic_for(self, settings: Settings) -> str:
        """The state topic: configured, or ``topic_metrics`` with "metrics" -> "state"."""
        if self.state_topic:
            return self.state_topic
        name = settings.topic_metrics
        return name.replace("metrics", "state", 1) if "metrics" in name else f"{name}.state"

    def sinks(self, extra_webhooks: Sequence[str] = ()) -> list[Sink]:
        """The alert sinks: a log line always, then the webhooks."""
        sinks: list[Sink] = [LogSink()]
        sinks += [WebhookSink(url) for url in (*self.webhooks, *extra_webhooks)]
        sinks += [SlackSink(url) for url in self.slack_webhooks]
        return sinks


# -- Avro mapping ---------------------------------------------------------------------------


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000.0))


def version_to_avro(version: str | int | None) -> int | None:
    """Monitor versions are strings ("3", or "*" for all versions); Avro's are ints or null."""
    if version is None or isinstance(version, int):
        return version
    text = str(version).lstrip("v")
    return int(text) if text.isdigit() else None


def version_from_avro(version: int | None) -> str:
    return ALL_VERSIONS if version is None else str(version)


def metric_to_avro(metric: MetricValue, ts_ms: int) -> dict[str, Any]:
    """A MonitorMetric record: window times to epoch ms, version to int, `ts` stamped."""
    return {
        "model": metric.model,
        "version": version_to_avro(metric.version),
        "segment": metric.segment,
        "metric": metric.metric,
        "feature": metric.feature,
        "value": float(metric.value),
        "n": int(metric.n),
        "window_start": _ms(metric.window_start),
        "window_end": _ms(metric.window_end),
        "ts": int(ts_ms),
    }


def metric_from_avro(record: Mapping[str, Any]) -> MetricValue:
    """The inverse of :func:`metric_to_avro` (`ts` is dropped)."""
    return MetricValue(
        model=record["model"],
        version=version_from_avro(record.get("version")),
        window_start=record["window_start"] / 1000.0,
        window_end=record["window_end"] / 1000.0,
        metric=record["metric"],
        feature=record.get("feature"),
        value=record["value"],
        segment=record.get("segment"),
        n=record.get("n", 0),
    )


def alert_to_avro(alert: AlertEvent) -> dict[str, Any]:
    """An Alert record. The schema has no segment: it is in `message` and `alert_id`."""
    return {
        "alert_id": alert.alert_id,
        "model": alert.model,
        "version": version_to_avro(alert.version),
        "kind": alert.kind,
        "metric": alert.metric,
        "feature": alert.feature,
        "state": alert.state,
        "value": float(alert.value),
        "threshold": float(alert.threshold),
        "severity": alert.severity,
        "rule": alert.rule,
        "ts": _ms(alert.ts),
        "message": alert.message,
    }


def alert_from_avro(record: Mapping[str, Any]) -> AlertEvent:
    """An AlertEvent from an Alert record (segment unknown: the schema does not carry it)."""
    return AlertEvent(
        model=record["model"],
        version=version_from_avro(record.get("version")),
        kind=record["kind"],
        metric=record["metric"],
        feature=record.get("feature"),
        value=record["value"],
        threshold=record["threshold"],
        severity=record["severity"],
        state=record["state"],
        rule=record.get("rule", ""),
        ts=record["ts"] / 1000.0,
    )


# -- per-version context --------------------------------------------------------------------


def _surrogate_profile(kinds: Mapping[str, str]) -> ReferenceProfile:
    """A profile that only names the features (and their kinds), for a version without
    reference: windows then still count missing values, latency and throughput."""
    features: dict[str, NumericProfile | CategoricalProfile] = {}
    for name, kind in kinds.items():
        if kind == "numeric":
            features[name] = NumericProfile(
                edges=[0.0, 1.0],
                counts=[0, 0, 0],
                n=0,
                missing=0,
                min=0.0,
                max=1.0,
                mean=0.0,
                std=0.0,
                sample=[],
            )
        else:
            features[name] = CategoricalProfile(counts={OTHER: 0}, n=0, missing=0)
    return ReferenceProfile(features=features, score=None, n=0)


def _kind_of(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "numeric"
    return "categorical"


@dataclasses.dataclass
class VersionContext:
    """What the monitor knows of one model version: its reference, or why it has none."""

    model: str
    version: str
    profile: ReferenceProfile
    evaluator: WindowEvaluator | None
    task: str | None = None
    positive_label: str | None = None
    labels: int = 0

    @property
    def has_reference(self) -> bool:
        return self.evaluator is not None

    def new_sketch(self) -> PredictionSketch:
        return PredictionSketch(self.profile)

    def evaluate(self, closed: ClosedWindow[PredictionSketch]) -> list[MetricValue]:
        """Drift and quality metrics, or quality only (without reference-bound rates)."""
        if self.evaluator is not None:
            return self.evaluator.evaluate(closed)
        segment = closed.key[2] if len(closed.key) > 2 else None
        return [
            MetricValue(
                self.model,
                self.version,
                closed.start,
                closed.end,
                m.metric,
                m.feature,
                m.value,
                segment,
                m.n,
            )
            for m in quality_metrics(closed.state, self.profile, closed.start, closed.end)
            if m.metric not in _REFERENCE_QUALITY
        ]


# -- the handler ----------------------------------------------------------------------------


class _Clamped:
    """Mixin for windows: the watermark never passes `frontier`.

    The monitor reads several partitions whose event times advance unevenly (a fetch
    brings thousands of messages of one partition): the watermark follows the slowest
    partition that still has data, so the others' events are never judged late.
    """

    frontier: float = math.inf

    def advance(self, event_time: float) -> list[ClosedWindow[Any]]:
        return super().advance(min(event_time, self.frontier))  # type: ignore[misc]


class FrontierSlidingWindow(_Clamped, SlidingWindow[PredictionSketch]):
    """A sliding window whose watermark is held back to :attr:`frontier`."""


class FrontierTumblingWindow(_Clamped, TumblingWindow[PredictionSketch]):
    """A tumbling window whose watermark is held back to :attr:`frontier`."""


def _fold(
    window: SlidingWindow[Any], items: Sequence[tuple[Any, np.ndarray, Any]]
) -> list[ClosedWindow[Any]]:
    """Feed ``(key, times, batch)`` items into `window` pane by pane, oldest pane first.

    One window object holds every key and its watermark is shared: feeding a whole key
    at once would let that key's newest events close windows that another key's older
    events of the same batch still belong to. Pane order is what one-event-at-a-time
    processing in time order would do, at numpy speed.
    """
    runs: list[tuple[int, int, Any, np.ndarray, Any]] = []
    for order, (key, times, batch) in enumerate(items):
        if times.size == 0:
            continue
        panes = np.floor(times / window.step).astype(np.int64)
        lo, hi = int(panes.min()), int(panes.max())
        if lo == hi:
            runs.append((lo, order, key, times, batch))
            continue
        idx = np.argsort(panes, kind="stable")
        cuts = np.flatnonzero(np.diff(panes[idx])) + 1
        for chunk in np.split(idx, cuts):
            runs.append((int(panes[chunk[0]]), order, key, times[chunk], take(batch, chunk)))
    closed: list[ClosedWindow[Any]] = []
    for _pane, _order, key, times, batch in sorted(runs, key=lambda r: (r[0], r[1])):
        closed.extend(window.update_many(key, times, batch))
    return closed


class Monitor:
    """The monitor lane's batch handler; also usable without Kafka (tests feed it
    message-like objects with ``topic() partition() offset() value() headers() key()
    timestamp() error()``).

    After each batch the lane commits or aborts its transaction and calls
    :meth:`committed` or :meth:`rolled_back`; alerts reach the notifier only on commit.
    """

    def __init__(
        self,
        settings: Settings,
        options: MonitorSettings | None = None,
        registry: Any = None,
        codec: Codec | None = None,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.options = options or MonitorSettings.from_settings(settings)
        if registry is None:
            from streams.models.registry import Registry

            registry = Registry.from_settings(settings)
        self.registry = registry
        self.codec = codec or Codec.from_settings(settings)
        self.notifier = notifier if notifier is not None else Notifier(self.options.sinks())
        self.clock = clock
        self.state_topic = self.options.state_topic_for(settings)
        self.rule_list = load_rules(self.options.rules_path)
        self.worker = f"{os.uname().nodename}:{os.getpid()}"
        self.counts: Counter[str] = Counter()
        self._contexts: dict[tuple[str, str], VersionContext] = {}
        self._warned: set[tuple[str, str]] = set()
        self._reset()
        self.snapshot_id = 0
        # The last committed snapshot and the one riding in the open transaction, as
        # bytes: the live objects keep changing, a rollback needs what was committed.
        self._committed_chunks: list[bytes] | None = None
        self._pending_chunks: list[bytes] | None = None
        self._pending_alerts: list[AlertEvent] = []
        self._start_positions: dict[tuple[str, int], int] = {}
        # Per batch: outcomes joined while folding predictions, change detections.
        self._joined_now: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        #: Set by the lane: the predictions partitions with unread messages (or unknown).
        self.lagging: Callable[[], list[tuple[str, int]]] | None = None
        self._detections: list[MetricValue] = []
        self._last_snapshot = -math.inf
        self._snapshot_slots = 0
        self.force_snapshot = True

    # -- state ------------------------------------------------------------------------

    def _new_window(self) -> SlidingWindow[PredictionSketch]:
        o = self.options
        factory = self._sketch_for
        if o.tumbling:
            return FrontierTumblingWindow(o.window, factory, o.allowed_lateness, keyed=True)
        assert o.step is not None
        return FrontierSlidingWindow(o.window, o.step, factory, o.allowed_lateness, keyed=True)

    def _new_dlq_window(self) -> TumblingWindow[RateCounter]:
        # Dead letters and predictions meet in scorer time, read from two topics that
        # advance at their own pace: a window's worth of lateness keeps both.
        o = self.options
        return TumblingWindow(o.window, RateCounter, max(o.allowed_lateness, o.window))

    def _new_bank(self, stream: str, detector: str) -> DetectorBank:
        return DetectorBank(stream, lambda: make_detector(detector))

    def _reset(self) -> None:
        """Empty state: what a monitor that has seen nothing holds."""
        o = self.options
        self.window = self._new_window()
        self.dlq_window = self._new_dlq_window()
        self.rules = RuleEngine(self.rule_list)
        self.performance = {
            task: PerformanceMonitor(task, o.performance_window)  # type: ignore[arg-type]
            for task in ("classification", "regression")
        }
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
        self._reset()
        o = self.options
        w = d["window"]
        if (w["size"], w["step"]) == (o.window, o.step):
            cls = FrontierTumblingWindow if o.tumbling else FrontierSlidingWindow
            self.window = cls.from_dict(
                w["state"], self._sketch_for, PredictionSketch.from_dict, keyed=True
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
            self._reset()
            self.snapshot_id = 0
            self._committed_chunks = None
        else:
            self.snapshot_id, state = snapshot
            self.load_state(state)
            self._committed_chunks = encode_snapshot(state, self.snapshot_id)
            # Its chunk count: a smaller next snapshot tombstones the slots beyond it.
            self._snapshot_slots = len(self._committed_chunks)
        self._pending_chunks = None
        self._pending_alerts = []
        self.force_snapshot = True

    # -- transaction hooks -------------------------------------------------------------

    def committed(self) -> None:
        """The last batch's transaction committed: its snapshot is the one to return to,
        and its alerts can be told."""
        if self._pending_chunks is not None:
            self._committed_chunks = self._pending_chunks
            self._pending_chunks = None
        alerts, self._pending_alerts = self._pending_alerts, []
        self.notifier.notify_many(alerts)

    def rolled_back(self) -> dict[tuple[str, int], int]:
        """The last batch's transaction aborted: back to the last committed snapshot.
        Returns the input offsets to seek to."""
        self._pending_alerts = []
        self._pending_chunks = None
        positions_before = dict(self.positions)
        committed = decode_snapshot(self._committed_chunks) if self._committed_chunks else None
        if committed is None:
            # Nothing committed since the start: the start offsets of every partition.
            self._reset()
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

    def context(
        self, model: str, version: str, sample: Sequence[Mapping[str, Any]] = ()
    ) -> VersionContext:
        """The version's context, loading its reference profile from the registry once."""
        key = (model, version)
        ctx = self._contexts.get(key)
        if ctx is not None:
            return ctx
        meta: Mapping[str, Any] = {}
        reference: ReferenceProfile | None = None
        why = ""
        try:
            meta = self.registry.get(model, version).meta
        except Exception as err:
            why = f"not in the registry ({err})"
        else:
            raw = meta.get("reference_profile")
            if not raw:
                why = "registered without reference rows"
            else:
                try:
                    reference = ReferenceProfile.from_dict(raw)
                except Exception as err:
                    why = (
                        f"its reference profile is not a monitors.profile.ReferenceProfile "
                        f"(kind {raw.get('kind')!r}: {type(err).__name__}: {err})"
                    )
        if reference is not None:
            ctx = VersionContext(model, version, reference, WindowEvaluator(reference))
        else:
            kinds = self.feature_kinds.get(key)
            if kinds is None:
                # Kinds from the values first: a registry feature list given as bare
                # names says "number" for every feature, strings included.
                kinds = {}
                for record in sample:
                    for name, value in (record.get("features") or {}).items():
                        kind = _kind_of(value)
                        if kind is not None:
                            kinds.setdefault(name, kind)
                for spec in meta.get("features") or []:
                    kind = "numeric" if spec.get("type") == "number" else "categorical"
                    kinds.setdefault(spec["name"], kind)
                self.feature_kinds[key] = kinds
            ctx = VersionContext(model, version, _surrogate_profile(kinds), None)
            if key not in self._warned:
                self._warned.add(key)
                log.warning(
                    "monitor: %s v%s has no reference profile (%s); drift is not computed "
                    "for it, quality, latency and throughput are",
                    model,
                    version,
                    why,
                )
        ctx.task = meta.get("task")
        ctx.positive_label = meta.get("positive_label")
        ctx.labels = len(meta.get("labels") or [])
        self._contexts[key] = ctx
        return ctx

    def _sketch_for(self, key: tuple[str, ...]) -> PredictionSketch:
        return self.context(key[0], key[1]).new_sketch()

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

    # -- the batch ----------------------------------------------------------------------

    def process(self, messages: Sequence[Message]) -> list[Output]:
        """Fold a batch in; return metrics, alerts, dead letters and (when due) a snapshot."""
        s = self.settings
        predictions: list[Message] = []
        outcomes: list[Message] = []
        dead: list[Message] = []
        outputs: list[Output] = []
        for m in messages:
            key = (m.topic(), m.partition())
            offset = m.offset()
            if offset < self.positions.get(key, -1):
                # Already folded in (the snapshot covers it): never count twice.
                self.counts["skipped_seen"] += 1
                continue
            self.positions[key] = offset + 1
            topic = key[0]
            if topic == s.topic_predictions:
                predictions.append(m)
            elif topic == s.topic_outcomes:
                outcomes.append(m)
            elif topic == s.topic_dlq:
                dead.append(m)

        records = self._decode(predictions, "Prediction", outputs)
        # Outcomes after predictions: in one batch, a prediction may meet its outcome.
        closed = self._fold_predictions(records)
        self._join_outcomes(self._decode(outcomes, "Outcome", outputs))
        rate_items = self._rate_items(records, self._decode(dead, "DeadLetter", None))
        closed_rates = _fold(self.dlq_window, rate_items) if rate_items else []

        metrics, self._detections = self._detections, []
        metrics += self._evaluate(closed)
        metrics += self._evaluate_rates(closed_rates)

        alerts = self.rules.evaluate_many(metrics)
        now_ms = int(self.clock() * 1000)
        outputs += self._encode(metrics, alerts, now_ms)
        self._pending_alerts = alerts
        self.emitted["metrics"] += len(metrics)
        self.emitted["alerts"] += len(alerts)
        outputs += self._snapshot_outputs(due=bool(outputs))
        return outputs

    def _decode(
        self, messages: Sequence[Message], schema: str, outputs: list[Output] | None
    ) -> list[tuple[Message, dict[str, Any]]]:
        if not messages:
            return []
        decoded = self.codec.decode_many(
            [m.value() for m in messages], [m.headers() for m in messages], schema
        )
        good: list[tuple[Message, dict[str, Any]]] = []
        for m, record in zip(messages, decoded, strict=True):
            if isinstance(record, DecodeError):
                self.counts[f"undecodable.{schema}"] += 1
                if outputs is None:
                    # A dead letter about a dead letter would loop: count and log.
                    log.warning(
                        "monitor: unreadable dead letter at %s/%s@%s: %s",
                        m.topic(),
                        m.partition(),
                        m.offset(),
                        record.reason,
                    )
                else:
                    outputs.append(self._dead_letter(m, record))
                continue
            good.append((m, record))
        return good

    def _dead_letter(self, message: Message, error: DecodeError) -> Output:
        from streams.kafka.deadletters import dead_letter_from_error, encode_dead_letter

        record = dead_letter_from_error(message, error, worker=self.worker)
        value, headers = encode_dead_letter(self.codec, record, self.settings.topic_dlq)
        return Output(self.settings.topic_dlq, value, message.key(), headers)

    # predictions -------------------------------------------------------------------------

    def _fold_predictions(
        self, decoded: Sequence[tuple[Message, dict[str, Any]]]
    ) -> list[ClosedWindow[PredictionSketch]]:
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
                            self._detections.append(hit)
        self.counts["predictions"] += len(decoded)
        for m, r in decoded:
            key = (m.topic(), m.partition())
            t = r["event_time"] / 1000.0
            if t > self.partition_max.get(key, -math.inf):
                self.partition_max[key] = t
        self.window.frontier = self._frontier()  # type: ignore[attr-defined]
        closed = _fold(self.window, items) if items else []
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
            entry = (model, version, segs, r.get("score"), r.get("label"), t)
            waiting = self.join.take_outcome(r["request_id"])
            if waiting is not None:
                self._joined_now.append((entry, waiting))
            else:
                self.join.add(r["request_id"], entry)

    # dead-letter rate --------------------------------------------------------------------

    def _rate_items(
        self,
        predictions: Sequence[tuple[Message, dict[str, Any]]],
        dead: Sequence[tuple[Message, dict[str, Any]]],
    ) -> list[tuple[Any, np.ndarray, Any]]:
        """Rows of the dead-letter rate window: processed requests (non-shadow predictions,
        at their scored time) and dead letters (at their dead-lettering time), per model
        and for all models."""
        models: list[str | None] = []
        times: list[float] = []
        flags: list[bool] = []
        for _m, r in predictions:
            if r.get("variant") != "shadow":
                models.append(r["model"])
                times.append(r["scored_time"] / 1000.0)
                flags.append(False)
        for _m, r in dead:
            models.append(r.get("model"))
            times.append(r["ts"] / 1000.0)
            flags.append(True)
        self.counts["dead_letters"] += len(dead)
        if not times:
            return []
        t = np.asarray(times, dtype=np.float64)
        f = np.asarray(flags, dtype=bool)
        items: list[tuple[Any, np.ndarray, Any]] = [((ALL_MODELS,), t, {"dead": f})]
        by_model: dict[str, list[int]] = defaultdict(list)
        for i, model in enumerate(models):
            if model is not None:
                by_model[model].append(i)
        for model, idx in by_model.items():
            sel = np.asarray(idx, dtype=np.int64)
            items.append(((model,), t[sel], {"dead": f[sel]}))
        return items

    def _evaluate_rates(self, closed: Sequence[ClosedWindow[RateCounter]]) -> list[MetricValue]:
        out = []
        for c in closed:
            state = c.state
            model = c.key[0]
            out.append(
                MetricValue(
                    model,
                    ALL_VERSIONS,
                    c.start,
                    c.end,
                    "dead_letter_rate",
                    None,
                    dead_letter_rate(state.dead, state.processed),
                    None,
                    state.n,
                )
            )
            out.append(
                MetricValue(
                    model,
                    ALL_VERSIONS,
                    c.start,
                    c.end,
                    "dead_letters",
                    None,
                    float(state.dead),
                    None,
                    state.n,
                )
            )
        return out

    # outcomes ---------------------------------------------------------------------------

    def _join_outcomes(self, decoded: Sequence[tuple[Message, dict[str, Any]]]) -> None:
        """Join outcomes to their predictions (or hold them until the prediction comes)."""
        pairs, self._joined_now = self._joined_now, []
        if self.options.join_capacity > 0:
            for _m, outcome in decoded:
                self.counts["outcomes"] += 1
                model = outcome["model"]
                if model not in self.join_models:
                    # Keep predictions for the join only for models that get outcomes:
                    # the buffer is part of every snapshot.
                    self.join_models.add(model)
                    log.info("monitor: outcomes seen for %s; joining its predictions", model)
                entries = self.join.pop(outcome["request_id"])
                if entries:
                    pairs += [(e, outcome) for e in entries]
                else:
                    self.join.hold_outcome(outcome["request_id"], outcome)
        for entry, outcome in pairs:
            hit = self._update_performance(entry, outcome)
            if hit is not None:
                self._detections.append(hit)

    def _update_performance(
        self, entry: tuple[Any, ...], outcome: Mapping[str, Any]
    ) -> MetricValue | None:
        model, version, segs, score, label, t_pred = entry
        ctx = self.context(model, version)
        t_out = outcome["event_time"] / 1000.0
        observed_label, observed_value = outcome.get("label"), outcome.get("value")
        task = ctx.task or ("regression" if observed_label is None else "classification")
        proba: float | None = None
        if task == "regression":
            value = observed_value if observed_value is not None else _float(observed_label)
            if value is None or score is None:
                self.counts["outcomes_unusable"] += 1
                return None
            y_true: Any = float(value)
            y_pred: Any = float(score)
        else:
            truth = observed_label if observed_label is not None else observed_value
            if truth is None:
                self.counts["outcomes_unusable"] += 1
                return None
            truth = label_str(truth)
            positive = ctx.positive_label or "1"
            if ctx.labels <= 2:
                y_true = truth == positive
                y_pred = None if label is None else label == positive
                proba = None if score is None else float(score)
            else:
                y_true, y_pred = truth, label
        monitor = self.performance[task]
        for key in ((model, version), *((model, version, s) for s in segs)):
            monitor.update(
                key, y_true, y_pred, proba=proba, prediction_time=t_pred, outcome_time=t_out
            )
        self.counts["joined"] += 1
        bank = self.banks.get("error")
        if bank is None:
            return None
        if y_pred is None and proba is not None:
            y_pred = proba >= 0.5
        if y_pred is None:
            return None
        return bank.update((model, version), prediction_error(y_true, y_pred), ts=t_out)

    # closed windows ---------------------------------------------------------------------

    def _evaluate(self, closed: Sequence[ClosedWindow[PredictionSketch]]) -> list[MetricValue]:
        out: list[MetricValue] = []
        last: tuple[float, float] | None = None
        for c in closed:
            if last is not None and (c.start, c.end) != last:
                out += self._collect_performance(*last)
            last = (c.start, c.end)
            if len(c.key) > 2:
                # Within segment "plan=gold", plan is constant by construction: its drift
                # says nothing, and it would count in the segment's drift share.
                c.state.features.pop(str(c.key[2]).partition("=")[0], None)
            try:
                out += self.context(c.key[0], c.key[1]).evaluate(c)
            except Exception:
                # One broken window must not stop the monitor (or replay forever).
                self.counts["evaluate_errors"] += 1
                log.exception("monitor: cannot evaluate window %s [%s, %s)", c.key, c.start, c.end)
        if last is not None:
            out += self._collect_performance(*last)
        return out

    def _collect_performance(self, start: float, end: float) -> list[MetricValue]:
        return [m for p in self.performance.values() for m in p.collect(start, end)]

    def _encode(
        self, metrics: Sequence[MetricValue], alerts: Sequence[AlertEvent], now_ms: int
    ) -> list[Output]:
        s = self.settings
        out: list[Output] = []
        if metrics:
            encoded = self.codec.encode_many(
                "MonitorMetric", [metric_to_avro(m, now_ms) for m in metrics], s.topic_metrics
            )
            out += [
                Output(s.topic_metrics, value, m.model, headers)
                for m, (value, headers) in zip(metrics, encoded, strict=True)
            ]
        for a in alerts:
            value, headers = self.codec.encode("Alert", alert_to_avro(a), s.topic_alerts)
            out.append(Output(s.topic_alerts, value, a.model, headers))
        return out

    # snapshots --------------------------------------------------------------------------

    def _snapshot_outputs(self, due: bool) -> list[Output]:
        now = time.monotonic()
        interval_over = now - self._last_snapshot >= self.options.snapshot_interval
        if not (due or self.force_snapshot or interval_over):
            self._pending_chunks = None
            return []
        state = self.state()
        self.snapshot_id += 1
        chunks = encode_snapshot(state, self.snapshot_id, CHUNK_SIZE)
        group = self.options.group_id
        out = [Output(self.state_topic, chunk, f"{group}/{i}") for i, chunk in enumerate(chunks)]
        # Slots a bigger snapshot used before: tombstones, so compaction forgets them.
        out += [
            Output(self.state_topic, None, f"{group}/{i}")
            for i in range(len(chunks), self._snapshot_slots)
        ]
        self._snapshot_slots = len(chunks)
        self._pending_chunks = chunks
        self._last_snapshot = now
        self.force_snapshot = False
        self.counts["snapshots"] += 1
        self.counts["snapshot_bytes"] = sum(len(c) for c in chunks)
        return out

    def close(self) -> None:
        self.notifier.close()


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# -- reading the state topic ----------------------------------------------------------------


def ensure_state_topic(settings: Settings, topic: str, timeout: float = 15.0) -> None:
    """Create the compacted state topic (one partition) when it does not exist."""
    from streams.kafka.topics import compacted_topic, create_missing

    create_missing(settings, [compacted_topic(settings, topic)], timeout)


def read_snapshot(
    settings: Settings,
    topic: str,
    group: str,
    timeout: float = 60.0,
    ignore_tags: Iterable[str] = (),
) -> tuple[int, dict[str, Any]] | None:
    """The newest complete snapshot of `group` in the state topic, or None.

    Reads every partition from the start to its end under ``read_committed``; a newer
    snapshot cut short (readable on the embedded broker after a crash) leaves the last
    complete one in force. Chunks of the transactions `ignore_tags` names (left readable
    by a killed predecessor, never committed: :mod:`streams.kafka.takeover`) are skipped.
    """
    from streams.kafka.topics import read_to_end

    prefix = f"{group}/".encode()
    reader = SnapshotReader()
    ignored = {tag.encode() for tag in ignore_tags}
    for msg in read_to_end(settings, topic, f"{group}-restore", timeout):
        if ignored and tagged_with(msg.headers(), ignored):
            continue
        key = msg.key() or b""
        if key.startswith(prefix) and key[len(prefix) :].isdigit():
            reader.add(int(key[len(prefix) :]), msg.value())
    return reader.result()


# -- the lane -------------------------------------------------------------------------------


class MonitorLane(BatchLane):
    """The monitor's lane: restores its state before consuming, seeks to the snapshot's
    offsets on assignment, and tells the handler whether each transaction committed."""

    def __init__(
        self,
        settings: Settings,
        options: MonitorSettings | None = None,
        monitor: Monitor | None = None,
        **lane_options: Any,
    ) -> None:
        self.options = options or MonitorSettings.from_settings(settings)
        self.monitor = monitor or Monitor(settings, self.options)
        topics = [settings.topic_predictions, settings.topic_outcomes, settings.topic_dlq]
        lane_options.setdefault("group_id", self.options.group_id)
        # Its outputs follow from its state and inputs: after a crash the replay skips
        # what the killed worker left visible (streams/kafka/takeover.py).
        lane_options.setdefault("skip_visible", True)
        super().__init__(
            settings, "monitor", topics, self.monitor, on_assign=self._on_assign, **lane_options
        )
        self.private_topics = frozenset({self.monitor.state_topic})
        self.monitor.lagging = self._lagging

    def _lagging(self) -> list[tuple[str, int]]:
        """Assigned predictions partitions with unread messages, or not fetched yet."""
        consumer = self.consumer
        if consumer is None:
            return []
        topic = self.settings.topic_predictions
        mine = [tp for tp in consumer.assignment() if tp.topic == topic]
        out = []
        for tp in consumer.position(mine):
            _low, high = consumer.get_watermark_offsets(tp, cached=True)
            if high < 0 or tp.offset < 0 or tp.offset < high:
                out.append((tp.topic, tp.partition))
        return out

    def _clients(self) -> tuple[Consumer, Producer]:
        """The clients, then the state: only once ``init_transactions`` has fenced a
        killed predecessor is its open transaction over, and the state topic readable
        to its end (the embedded broker never times such a transaction out).

        A snapshot that cannot be restored stops the role rather than starting empty:
        empty state from the committed offsets would report partial windows."""
        consumer, producer = super()._clients()
        topic = self.monitor.state_topic
        ensure_state_topic(self.settings, topic)
        snapshot = read_snapshot(
            self.settings, topic, self.options.group_id, ignore_tags=self.unfinished_tags()
        )
        self.monitor.restore(snapshot)
        if snapshot is None:
            log.info("monitor: no state in %s; starting from the committed offsets", topic)
        else:
            log.info(
                "monitor: restored snapshot %d from %s (%d input partitions)",
                snapshot[0],
                topic,
                len(self.monitor.positions),
            )
        return consumer, producer

    def _on_assign(self, partitions: list[TopicPartition]) -> None:
        consumer = self.consumer
        assert consumer is not None
        unknown = [
            TopicPartition(tp.topic, tp.partition)
            for tp in partitions
            if (tp.topic, tp.partition) not in self.monitor.positions
        ]
        starts: dict[tuple[str, int], int] = {}
        if unknown:
            for tp in consumer.committed(unknown, timeout=30.0):
                offset = tp.offset
                if offset < 0:
                    # No commit yet: auto.offset.reset=earliest, i.e. the low watermark.
                    offset, _high = consumer.get_watermark_offsets(
                        TopicPartition(tp.topic, tp.partition), timeout=30.0
                    )
                starts[(tp.topic, tp.partition)] = offset
        self.monitor.assigned(starts)
        for tp in partitions:
            tp.offset = self.monitor.positions[(tp.topic, tp.partition)]
        consumer.assign(partitions)
        ours = {tp.topic for tp in partitions}
        for topic in ours:
            meta = consumer.list_topics(topic, timeout=10.0).topics.get(topic)
            total = len(meta.partitions) if meta is not None else 0
            mine = sum(1 for tp in partitions if tp.topic == topic)
            if mine < total:
                log.warning(
                    "monitor: assigned %d of %d partitions of %s; another monitor in group "
                    "%s has the rest and windows cover part of the traffic (run one monitor)",
                    mine,
                    total,
                    topic,
                    self.group_id,
                )

    def committed(self) -> None:
        self.monitor.committed()

    def rewind(self, consumer: Consumer, messages: list[Message]) -> None:
        """After an aborted transaction: the state goes back to the last committed
        snapshot, and the inputs to its offsets (not just to this batch's start)."""
        positions = self.monitor.rolled_back()
        assigned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        for (topic, partition), offset in positions.items():
            if (topic, partition) in assigned:
                consumer.seek(TopicPartition(topic, partition, offset))

    def stop(self, timeout: float = 30.0) -> None:
        super().stop(timeout)
        self.monitor.close()
        # The clients outlive the thread through these references: drop them, so
        # librdkafka stops talking to a broker that may be gone.
        self.consumer = None
        self.producer = None


def monitor_lane(settings: Settings) -> MonitorLane:
    """The monitor role's lane (``ROLES["monitor"]`` in :mod:`streams.app`)."""
    return MonitorLane(settings)
