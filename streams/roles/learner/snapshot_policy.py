"""When the learner takes a snapshot, and what it decides for it (policy auto, challenger,
manual)."""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Any

from streams.roles.learner.evidence import snapshot_evidence
from streams.roles.learner.model_line import ModelLine
from streams.roles.learner.part import LearnerPart
from streams.roles.learner.partition_state import PartitionState

if TYPE_CHECKING:
    from streams.roles.learner.partition_state import PartitionState


def requested_at(model_state: Any) -> int:
    """When the model last asked for a snapshot, in epoch ms (0: never)."""
    return int(getattr(model_state, "snapshot_request", None) or 0)


def line_answered(line: ModelLine) -> int:
    """The request a line answered last (lines checkpointed before requests existed: 0)."""
    return int(getattr(line, "snapshot_answered", 0) or 0)


class SnapshotPolicy(LearnerPart):
    """Takes snapshots by count or interval and decides their promotion.

    A :class:`~streams.roles.learner.part.LearnerPart`."""

    def take_snapshot(self, state: PartitionState, line: ModelLine, why: str) -> None:
        """Put the online model, as it is now, in the outbox: it is registered once the
        checkpoint holding it commits."""
        online = line.perf.get()
        frozen = line.perf_frozen.get() if line.perf_frozen is not None else {}
        metrics: dict[str, Any] = {k: round(v, 6) for k, v in online.items()}
        metrics.update({f"champion_{k}": round(v, 6) for k, v in frozen.items()})
        metrics.update(learned=line.learned, window=line.perf.window_n)
        if line.champion is not None:
            metrics["champion_version"] = line.champion
        decision = None
        if self.options.policy == "auto":
            decision = "champion" if self._beats_champion(line, metrics) else None
        elif self.options.policy == "challenger":
            decision = "challenger"
        state.outbox.append(
            {
                "model": line.model,
                "line_id": line.line_id,
                "origin": line.origin,
                "parent": line.head,
                "learned": line.learned,
                "blob": pickle.dumps(line.online, protocol=pickle.HIGHEST_PROTOCOL),
                "metrics": metrics,
                "rows": list(line.reference),
                "meta": dict(line.meta),
                "decision": decision,
                "why": why,
                "checkpointed": False,
            }
        )
        line.since_snapshot = 0
        line.snapshot_wall = self.clock()
        self.force_checkpoint = True
        self.counts["snapshots"] += 1

    def _beats_champion(self, line: ModelLine, metrics: dict[str, Any]) -> bool:
        """The snapshot is better, decided by the paired comparison on the outcomes both
        scored (not a fixed margin on two window means, which noise alone would cross)."""
        evidence = snapshot_evidence(line.perf, line.perf_frozen, self.options.promote_alpha)
        for key, value in evidence.items():
            if isinstance(value, int | float):
                metrics[f"evidence_{key}"] = value
        return evidence["decision"] == "challenger_better"

    def request_triggers(self) -> None:
        """Snapshot each line whose model asks for one (``lastmile models snapshot``, or the
        operator's ``snapshot`` action) since the line last answered.

        The request is a timestamp in the model's state, not an event: the compacted
        ``models.events`` keeps only the latest state, and a line remembers (in its
        checkpoint) the request it answered, so a restart answers each request once.
        """
        table = self.table
        for state in self.states.values():
            for line in state.lines.values():
                asked = requested_at(table.get(line.model))
                if asked <= line_answered(line):
                    continue
                line.snapshot_answered = asked
                state.dirty = True
                if line.since_snapshot:
                    self.take_snapshot(state, line, "requested")
                else:
                    self.counts["snapshot_requests_nothing_new"] += 1

    def time_triggers(self, now: float) -> None:
        o = self.options
        for state in self.states.values():
            for line in state.lines.values():
                if (
                    o.snapshot_interval
                    and line.since_snapshot
                    and now - line.snapshot_wall >= o.snapshot_interval
                ):
                    self.take_snapshot(state, line, "interval")
                if (
                    o.metrics_interval
                    and line.since_metrics
                    and now - line.metrics_wall >= o.metrics_interval
                ):
                    self.emit_metrics(state, line)
