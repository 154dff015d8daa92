"""The monitor's batch handler: a batch of predictions, outcomes and dead letters in;
metrics, alerts, dead letters and (when due) a state snapshot out."""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from confluent_kafka import Message

from monitors.aggregate import PredictionSketch
from monitors.events import MetricValue
from monitors.notify import Notifier
from monitors.rules import load_rules
from monitors.state import RateCounter
from monitors.windows import ClosedWindow
from schemas import Codec, DecodeError
from streams.config import Settings
from streams.kafka.lane import Output
from streams.metrics.tallies import MonitorTally
from streams.roles.monitor.context import VersionContext, VersionContexts
from streams.roles.monitor.evaluation import WindowEmission
from streams.roles.monitor.outcomes import OutcomeJoin
from streams.roles.monitor.predictions import PredictionFolding
from streams.roles.monitor.rates import DeadLetterRate
from streams.roles.monitor.settings import MonitorSettings, alert_sinks
from streams.roles.monitor.state import MonitorState
from streams.roles.monitor.windows import fold_in_pane_order

log = logging.getLogger("lastmile.monitor")

__all__ = ["Monitor"]


class Monitor(PredictionFolding, OutcomeJoin, DeadLetterRate, WindowEmission, MonitorState):
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
        self.options = options or settings.monitor
        if registry is None:
            from streams.models import Registry

            registry = Registry.from_settings(settings)
        self.registry = registry
        self.codec = codec or Codec.from_settings(settings)
        self.notifier = notifier if notifier is not None else Notifier(alert_sinks(self.options))
        self.clock = clock
        self.state_topic = self.options.state_topic_for(settings)
        self.rule_list = load_rules(self.options.rules_path)
        self.worker = f"{os.uname().nodename}:{os.getpid()}"
        self.counts: Counter[str] = Counter()
        self.tally = MonitorTally()  # windows, dead letters, drift for /metrics, on commit
        self.contexts = VersionContexts(registry)
        self.reset_state()
        self.init_snapshots()
        # Per batch: outcomes joined while folding predictions, change detections.
        self.joined_now: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        #: Set by the lane: the predictions partitions with unread messages (or unknown).
        self.lagging: Callable[[], list[tuple[str, int]]] | None = None
        self.detections: list[MetricValue] = []

    # -- contexts ---------------------------------------------------------------------

    def context(
        self, model: str, version: str, sample: Sequence[Mapping[str, Any]] = ()
    ) -> VersionContext:
        """The version's context, loading its reference profile from the registry once."""
        return self.contexts.get(model, version, self.feature_kinds, sample)

    def sketch_for(self, key: tuple[str, ...]) -> PredictionSketch:
        """A fresh sketch for a window key ``(model, version[, segment])``."""
        return self.context(key[0], key[1]).new_sketch()

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
        closed = self.fold_predictions(records)
        self.join_outcomes(self._decode(outcomes, "Outcome", outputs))
        letters = self._decode(dead, "DeadLetter", None)
        closed_rates = self.fold_rates(records, letters)

        metrics, self.detections = self.detections, []
        metrics += self.evaluate_windows(closed)
        metrics += self.evaluate_rates(closed_rates)

        alerts = self.rules.evaluate_many(metrics)
        self.tally.batch(closed, (r for _m, r in letters), metrics)
        now_ms = int(self.clock() * 1000)
        outputs += self.encode_outputs(metrics, alerts, now_ms)
        self.pending_alerts = alerts
        self.emitted["metrics"] += len(metrics)
        self.emitted["alerts"] += len(alerts)
        outputs += self.snapshot_outputs(due=bool(outputs))
        return outputs

    def fold_rates(
        self,
        records: Sequence[tuple[Message, dict[str, Any]]],
        letters: Sequence[tuple[Message, dict[str, Any]]],
    ) -> list[ClosedWindow[RateCounter]]:
        """Fold the batch into the dead-letter rate's window; the windows it closes."""
        rate_items = self.rate_items(records, letters)
        return fold_in_pane_order(self.dlq_window, rate_items) if rate_items else []

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

    def close(self) -> None:
        self.notifier.close()
