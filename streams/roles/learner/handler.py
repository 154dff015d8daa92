"""The learner lane's batch handler: assignment, the batch, and status."""

from __future__ import annotations

import logging
import socket
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import Message

from schemas import Codec
from streams.config import Settings
from streams.kafka.deadletters import default_worker
from streams.kafka.lane import Output
from streams.models import ControlPlane, LoadedModel, ModelTable, Registry
from streams.roles.learner.checkpoints import Checkpointing
from streams.roles.learner.join import JoinStage
from streams.roles.learner.learning import LearningStep
from streams.roles.learner.model_line import ModelLine
from streams.roles.learner.partition_state import PartitionState
from streams.roles.learner.prequential_metrics import MetricsReporter
from streams.roles.learner.publishing import REGISTERED_BY, SnapshotPublisher
from streams.roles.learner.restore import read_state
from streams.roles.learner.routing import RoutingStage
from streams.roles.learner.settings import LearnerSettings
from streams.roles.learner.snapshot_policy import SnapshotPolicy

log = logging.getLogger("lastmile.learner")


class Learner(
    RoutingStage,
    JoinStage,
    LearningStep,
    MetricsReporter,
    SnapshotPolicy,
    Checkpointing,
    SnapshotPublisher,
):
    """The learner lane's batch handler; usable without Kafka (tests feed it message-like
    objects with ``topic() partition() offset() key() value() headers() timestamp()``).

    The lane calls :meth:`assign` with the repartition partitions it owns (state is read
    back from the changelog), :meth:`process` per batch, then :meth:`committed` once the
    batch's transaction committed (snapshots are published then) or :meth:`assign` again
    after an abort.

    Each stage is a module of its own (routing, join, learning, metrics, snapshot policy,
    checkpoints, publishing); this class composes them because they share one partition
    state and one set of caches, and the lane wants one handler.
    """

    def __init__(
        self,
        settings: Settings,
        options: LearnerSettings | None = None,
        registry: Registry | None = None,
        control: ControlPlane | None = None,
        table: ModelTable | None = None,
        codec: Codec | None = None,
        clock: Callable[[], float] = time.time,
        restore: Callable[[Sequence[int]], dict[int, PartitionState]] | None = None,
    ) -> None:
        self.settings = settings
        self.options = options or settings.learner
        self.registry = registry or Registry.from_settings(settings)
        self.control = control or ControlPlane(
            settings, self.registry, actor=f"{REGISTERED_BY}@{socket.gethostname()}"
        )
        self.table = table if table is not None else ModelTable()
        self.codec = codec or Codec.from_settings(settings)
        self.clock = clock
        self.worker = default_worker()
        self.repartition_topic = self.options.repartition_topic_for(settings)
        self.state_topic = self.options.state_topic_for(settings)
        self.partitions = settings.topic_partitions
        self._restore = restore or (
            lambda parts: read_state(self.settings, self.state_topic, parts)
        )
        self.states: dict[int, PartitionState] = {}
        self.counts: Counter[str] = Counter()
        self.force_checkpoint = False
        self.last_checkpoint = clock()
        # Caches: model -> repartition partition, raw model name -> str, the frozen
        # champions scored, which versions the learner registered, models that cannot learn.
        self.partition_of: dict[str, int] = {}
        self.model_names: dict[bytes, str] = {}
        self.frozen_models: dict[tuple[str, int], LoadedModel | None] = {}
        self.learner_made: dict[tuple[str, int], bool] = {}
        self.unlearnable: set[tuple[str, int]] = set()
        self.join_ttl_ms = int(self.options.join_ttl * 1000)
        self.outcome_wait_ms = int(self.options.outcome_wait * 1000)
        # Per partition: the routed-at time its oldest waiting entry expires.
        self.expiry: dict[int, int] = {}

    # -- assignment and restore -------------------------------------------------------

    def assign(self, partitions: Sequence[int]) -> dict[int, int | None]:
        """Own exactly `partitions` from now on, each restored from its last committed
        checkpoint (in-memory progress past it is dropped and replayed). Returns the
        offset to read each from (None: from the start)."""
        restored = self._restore(list(partitions))
        self.states = {p: restored.get(p) or PartitionState(p) for p in partitions}
        self.expiry = {
            p: s.next_expiry(self.join_ttl_ms, self.outcome_wait_ms) for p, s in self.states.items()
        }
        for s in self.states.values():
            if s.outbox:
                # Snapshots committed but maybe not published before the last stop: an
                # empty batch runs soon and publishes them (found again if they were).
                s.dirty = True
                self.force_checkpoint = True
        for p, s in self.states.items():
            lines = ", ".join(
                f"{m} v{line.head} ({line.learned} learned)" for m, line in s.lines.items()
            )
            log.info(
                "learner: partition %d from offset %s: %d waiting predictions, %d waiting "
                "outcomes%s",
                p,
                s.offset,
                len(s.pending),
                len(s.waiting),
                f"; {lines}" if lines else "",
            )
        return {p: s.offset for p, s in self.states.items()}

    # -- the batch --------------------------------------------------------------------

    def process(self, messages: Sequence[Message]) -> list[Output]:
        """Route the inputs, learn the repartitioned records, and when due add the
        checkpoint with everything learned since the last one."""
        now = self.clock()
        outputs: list[Output] = []
        topic_in = self.repartition_topic
        s = self.settings
        predictions: list[Message] = []
        outcomes: list[Message] = []
        mine: dict[int, list[Message]] = {}
        for m in messages:
            topic = m.topic()
            if topic == topic_in:
                part = m.partition()
                batch = mine.get(part)
                if batch is None:
                    batch = mine[part] = []
                batch.append(m)
            elif topic == s.topic_predictions:
                predictions.append(m)
            elif topic == s.topic_outcomes:
                outcomes.append(m)
        if predictions or outcomes:
            outputs += self.route(predictions, outcomes, int(now * 1000))
        for part, batch in mine.items():
            state = self.states.get(part)
            if state is None:
                # Not ours (an assignment race): the owner reads it from its checkpoint.
                self.counts["not_owned"] += len(batch)
                continue
            self.ingest(state, batch)
        self.request_triggers()
        self.time_triggers(now)
        outputs += self.ticks(now)
        if self.checkpoint_due(now):
            outputs += self.write_checkpoint(now)
        return outputs

    # status -----------------------------------------------------------------------------

    def details(self) -> dict[str, Any]:
        """Counters and, per owned partition, its offset, join sizes and model lines."""
        return {
            "counts": dict(self.counts),
            "partitions": {
                p: {
                    "offset": s.offset,
                    "pending": len(s.pending),
                    "waiting": len(s.waiting),
                    "models": {m: line.summary() for m, line in s.lines.items()},
                }
                for p, s in self.states.items()
            },
        }

    def close(self) -> None:
        """Let go of the control plane's producer."""
        self.control.close()

    def line(self, model: str) -> ModelLine | None:
        """The line of `model`, if this learner owns it."""
        for state in self.states.values():
            if model in state.lines:
                return state.lines[model]
        return None

    def learned(self) -> int:
        """Outcomes learned by the lines this learner owns, since their origins."""
        return sum(line.learned for s in self.states.values() for line in s.lines.values())
