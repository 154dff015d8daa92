"""The learner's prequential metrics, as ``monitor.metrics`` records."""

from __future__ import annotations

import math

from monitors.events import MetricValue
from streams.kafka.lane import Output
from streams.records import metric_to_avro
from streams.roles.learner.model_line import ModelLine
from streams.roles.learner.part import LearnerPart
from streams.roles.learner.partition_state import PartitionState

#: Segments of the learner's metrics in ``monitor.metrics``.
SEGMENT_ONLINE = "prequential=online"
SEGMENT_FROZEN = "prequential=frozen"


class MetricsReporter(LearnerPart):
    """Reports a line's prequential metrics into its partition's next checkpoint.

    A :class:`~streams.roles.learner.part.LearnerPart`."""

    def emit_metrics(self, state: PartitionState, line: ModelLine) -> None:
        """The line's prequential metrics (online, and the frozen champion's) as
        MonitorMetric records, into the partition's next checkpoint."""
        if line.since_metrics == 0 or line.first_t is None:
            return
        start = line.first_t / 1000.0
        end = ((line.last_t or line.first_t) + 1) / 1000.0
        values: list[MetricValue] = [
            MetricValue(
                line.model,
                str(line.head),
                start,
                end,
                "learned",
                None,
                float(line.since_metrics),
                SEGMENT_ONLINE,
                line.since_metrics,
            )
        ]
        for segment, version, tracker in (
            (SEGMENT_ONLINE, line.head, line.perf),
            (SEGMENT_FROZEN, line.champion, line.perf_frozen),
        ):
            if tracker is None or version is None:
                continue
            for name, value in tracker.get().items():
                if math.isfinite(value):
                    values.append(
                        MetricValue(
                            line.model,
                            str(version),
                            start,
                            end,
                            name,
                            None,
                            value,
                            segment,
                            tracker.window_n,
                        )
                    )
        now_ms = int(self.clock() * 1000)
        topic = self.settings.topic_metrics
        encoded = self.codec.encode_many(
            "MonitorMetric", [metric_to_avro(m, now_ms) for m in values], topic
        )
        state.outputs += [Output(topic, value, line.model, headers) for value, headers in encoded]
        line.since_metrics = 0
        line.first_t = line.last_t = None
        line.metrics_wall = self.clock()
        self.counts["metrics"] += len(values)
