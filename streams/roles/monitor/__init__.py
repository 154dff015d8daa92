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

By default the monitor is one logical consumer: its windows cover the traffic of the
partitions it is assigned, and metrics are per model, so run one monitor (a second
replica takes partitions away and both would report partial windows; it is logged).
To run many, set ``partitioned`` (``LASTMILE_MONITOR_PARTITIONED=true``) in every monitor
of the group: inputs are re-keyed by model into ``monitor.input`` and each worker owns the
models of its partitions there (:mod:`.partitioned`, :mod:`.routing`, :mod:`.bundles`,
:mod:`.owner`, :mod:`.leftovers`), with the metrics and alerts one monitor would give,
and the same restart and SIGKILL guarantees.

The package holds one idea per module: :mod:`.settings`, :mod:`.context` (per-version
reference profiles), :mod:`.windows`, :mod:`.predictions`, :mod:`.outcomes`,
:mod:`.rates` (dead-letter rate), :mod:`.evaluation` (metrics and alerts out),
:mod:`.state` (snapshot and restore), :mod:`.snapshots` (the state topic),
:mod:`.handler` (the batch) and :mod:`.lane` (Kafka).
"""

from streams.records import ALL_VERSIONS
from streams.roles.monitor.context import VersionContext
from streams.roles.monitor.handler import Monitor
from streams.roles.monitor.lane import MonitorLane, monitor_lane
from streams.roles.monitor.owner import PartitionOwner
from streams.roles.monitor.partitioned import PartitionedMonitorLane
from streams.roles.monitor.predictions import MISSING_SEGMENT, VARIANT_SEGMENT
from streams.roles.monitor.rates import ALL_MODELS
from streams.roles.monitor.settings import MonitorSettings
from streams.roles.monitor.snapshots import ensure_state_topic, read_snapshot
from streams.roles.monitor.state import STATE_FORMAT
from streams.roles.monitor.windows import FrontierSlidingWindow, FrontierTumblingWindow

__all__ = [
    "ALL_MODELS",
    "ALL_VERSIONS",
    "MISSING_SEGMENT",
    "STATE_FORMAT",
    "VARIANT_SEGMENT",
    "FrontierSlidingWindow",
    "FrontierTumblingWindow",
    "Monitor",
    "MonitorLane",
    "MonitorSettings",
    "PartitionOwner",
    "PartitionedMonitorLane",
    "VersionContext",
    "ensure_state_topic",
    "monitor_lane",
    "read_snapshot",
]
