"""The outcome join: outcomes meet their predictions by request id, and feed rolling
performance per version and segment, the champion/challenger comparison per variant, and
the error stream's change detector."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import Message

from monitors.detectors import prediction_error
from monitors.events import MetricValue
from streams.models import label_str

log = logging.getLogger("lastmile.monitor")

__all__ = ["OutcomeJoin"]


class OutcomeJoin:
    """Part of :class:`~streams.roles.monitor.handler.Monitor`: joins a batch's outcomes
    (the join buffer and performance trackers are the monitor's state).

    A mixin: ``options``, ``join``, ``join_models``, ``performance``, ``comparison``,
    ``banks``, ``counts``, ``detections``, ``joined_now`` and :meth:`context` are the
    monitor's."""

    def join_outcomes(self, decoded: Sequence[tuple[Message, dict[str, Any]]]) -> None:
        """Join outcomes to their predictions (or hold them until the prediction comes)."""
        pairs, self.joined_now = self.joined_now, []
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
                self.detections.append(hit)
        self.comparison.end_batch()

    def _update_performance(
        self, entry: tuple[Any, ...], outcome: Mapping[str, Any]
    ) -> MetricValue | None:
        model, version, segs, score, label, t_pred, *rest = entry
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
        if rest and (ctx.labels <= 2 or task == "regression"):
            self.comparison.update(
                model, rest[0], version, task, outcome["request_id"], y_true, y_pred, proba
            )
        bank = self.banks.get("error")
        if bank is None:
            return None
        if y_pred is None and proba is not None:
            y_pred = proba >= 0.5
        if y_pred is None:
            return None
        return bank.update((model, version), prediction_error(y_true, y_pred), ts=t_out)


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
