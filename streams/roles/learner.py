"""The learner role: outcomes in, River models that keep learning, snapshots out.

Labels arrive seconds to days after the prediction they belong to. The learner joins each
outcome with the prediction it belongs to (by request id: the features the model saw,
not features sent again later), scores it with the online model *before* learning it
(prequential evaluation), calls ``learn_one``, and from time to time publishes the online
model as a new registry version that scorers pick up through ``models.events``.

It runs as one :class:`~streams.kafka.lane.BatchLane` (``ROLES["learner"]``) with two stages,
both in every worker's lane (``LASTMILE_LEARNER_ROUTE=false`` runs the second only):

1. **Route** (stateless, scales with the input partitions): read ``scoring.predictions``
   and ``scoring.outcomes`` (keyed by request id) and re-key every record of a learnable
   model (a live River champion) by *model*: an item in partition ``blake2b(model) % n``
   of the repartition topic ``learner.input``, the items of one batch for one partition
   in one bundle record (:mod:`streams.roles.learner_state` has the format). Shadow predictions
   are dropped: the answering prediction of the request carries the same features.
   Undecodable input is counted and logged, not dead-lettered: the monitor reads the
   same topics and dead-letters it, and two dead letters of one message would be
   replayed twice.
2. **Learn** (stateful, one owner per repartition partition): each partition is a
   sequence of predictions, outcomes and ticks in offset order. All of a model's items
   are in one partition, and the consumer group gives each partition to one worker, so
   exactly one learner owns a model line at a time, however many workers run; scorers
   stay stateless.

Join state: a changelog, not a Faust table
------------------------------------------
A Faust table would changelog every join entry through Faust's per-event stream path,
which caps a few thousand events/s on these machines (DESIGN.md, "Measured"); the goal
is 20,000 learned outcomes/s per learner. So the join state is a plain dict per
partition, changelogged to a compacted topic ``learner.state`` (partition ``p`` for
repartition partition ``p``) **in the same Kafka transaction** as the batch: predictions
waiting for their outcome (key ``p<model>\\0<request id>``), outcomes waiting for their
prediction (``o...``), and the partition's checkpoint (``c/<chunk>``): the model lines
(River models, prequential windows, counters), the partition's input offset and clock,
and the snapshots to publish. An entry added and joined between two checkpoints never
reaches the changelog. A worker that is assigned a partition reads that partition of
the changelog back (:func:`~streams.roles.learner_state.read_state`) and seeks the
repartition topic to the checkpoint's offset.

- A prediction waits ``join_ttl`` (default 7 days) for its outcome, then is dropped
  (counted). At most ``join_capacity`` wait per partition; the oldest go first.
- An outcome that arrives before its prediction waits ``outcome_wait`` (default 10
  minutes) and is learned when the prediction comes; after that it goes to the dead
  letters (stage ``learn``, error type ``no_prediction``) with its original key, value
  and headers, so ``lastmile dlq replay`` can send it again.
- Time is the partition's clock: the newest routed-at time read from the partition
  (every record carries the time it was routed), never the reader's wall clock. A
  partition whose oldest waiting entry is due while no traffic comes gets a *tick*
  record, so its clock moves.

Exactly-once learning
---------------------
The learned sequence of a model is a function of its repartition partition alone: its
items in offset order (a bundle is processed whole). A checkpoint is written with the
batch (at most every ``checkpoint_interval``, default 1 s, with every batch that takes a
snapshot, and when the lane stops), in the batch's transaction, with the changelog
entries and the outputs (metrics, dead letters) of every batch since the previous
checkpoint. After a crash, an aborted transaction or a rebalance, the learner restores
the last committed checkpoint and replays the partition from the offset it covers: no
outcome is learned twice or skipped, and the model equals, parameter for parameter, the
model of a run that never stopped (``tests/test_learner.py`` checks it with SIGKILL). The
group's committed offsets on the repartition topic are not used (they may run ahead of
the checkpoint); on the input topics they are the routing stage's exactly-once, as in
every lane. The learned order is the routing order: a backlog read from several input
partitions is routed in the order it is fetched, not in event time.

The embedded broker shows what a transaction cut short by a crash or an abort had sent,
and does not commit its offsets. Two rules keep learning exact there too: a checkpoint
is restored only when complete, with the changelog entries before it (what follows the
last complete one is dropped, :func:`~streams.roles.learner_state.read_state`); and every
routed item carries the partition and offset it was routed from, so the learning stage
drops a second routing of an item it already folded in
(:meth:`~streams.roles.learner_state.PartitionState.first_routing`).

Model lines and snapshots
-------------------------
A model's line starts from its champion version when the learner first sees it (a River
model; other flavors do not learn online). Every ``snapshot_every`` learned outcomes
(default 100,000) or ``snapshot_interval`` (default 1 h) the online model is registered as
a new version: parent the version it grew from, metrics (prequential, and the champion's
over the same outcomes) attached, the recent rows as its reference profile,
``registered_by="learner"``; then, by ``policy``:

- ``challenger`` (default): the snapshot becomes the ``challenger`` alias; if the model
  has no traffic split yet, one is set (``challenger_share`` %, default 10).
- ``auto``: promoted to champion when its prequential ``accuracy`` (classifiers; ``mae``
  for regressors) beats the champion's over the last ``window`` outcomes by more than
  ``promote_margin``.
- ``manual``: registered only.

Registration happens after the checkpoint that holds the snapshot commits (an outbox in
the checkpoint): a snapshot of an aborted batch is never published, and one published
just before a crash is found again in the registry (``line/learned`` in its description)
rather than registered twice. When the champion changes to a version the learner did not
make (a new batch model, a rollback to one), the line starts again from it; that moment
comes from ``models.events``, not from the partition, so it is the one decision a replay
may place elsewhere in the stream.

Prequential metrics
-------------------
For each outcome the online model scores the features before learning them, and the
champion (frozen, as served) scores them too. River's rolling metrics over the last
``window`` outcomes (accuracy, log loss, ROC AUC for classifiers; MAE, RMSE for
regressors; :class:`~streams.roles.learner_state.PrequentialWindow` computes them when asked,
equal to :class:`monitors.performance.RollingPerformance`) go to ``monitor.metrics``
every ``metrics_every`` outcomes or ``metrics_interval``: segment ``prequential=online``
with the version the online model grew from, ``prequential=frozen`` with the champion's,
plus ``learned`` (outcomes since the last report).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import pickle
import socket
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    Message,
    Producer,
    TopicPartition,
)

from monitors.events import MetricValue
from monitors.rules import parse_duration
from monitors.state import CHUNK_SIZE, encode_snapshot
from schemas import Codec, DecodeError
from streams.config import Settings
from streams.kafka.deadletters import dead_letter, default_worker, encode_dead_letter
from streams.kafka.lane import BatchLane, Output, rewind_to_batch_start
from streams.models.control import ControlPlane, ModelTable, ModelWatcher, PublishError
from streams.models.registry import LoadedModel, Registry, RegistryError, label_str
from streams.roles.learner_state import (
    KIND_BUNDLE,
    KIND_OUTCOME,
    KIND_PREDICTION,
    ModelLine,
    PartitionState,
    SourceMessage,
    bundle_items,
    bundle_size,
    join_key,
    key_model,
    model_partition,
    pack_bundles,
    pack_outcome,
    pack_prediction,
    pack_tick,
    read_state,
    routed_at,
)
from streams.roles.monitor import metric_to_avro

log = logging.getLogger("lastmile.learner")

__all__ = [
    "POLICIES",
    "SEGMENT_FROZEN",
    "SEGMENT_ONLINE",
    "Learner",
    "LearnerLane",
    "LearnerSettings",
    "ensure_learner_topics",
    "learner_lane",
]

POLICIES = ("auto", "challenger", "manual")
ENV_PREFIX = "LASTMILE_LEARNER_"
#: Segments of the learner's metrics in ``monitor.metrics``.
SEGMENT_ONLINE = "prequential=online"
SEGMENT_FROZEN = "prequential=frozen"
REGISTERED_BY = "learner"
#: Metric that decides ``auto`` promotions, and whether higher is better.
PRIMARY = {"classification": ("accuracy", True), "regression": ("mae", False)}


# -- settings -------------------------------------------------------------------------------


def _derive(name: str, what: str) -> str:
    return name.replace("outcomes", what, 1) if "outcomes" in name else f"{name}.{what}"


@dataclasses.dataclass(frozen=True)
class LearnerSettings:
    """The learner's own settings, from ``LASTMILE_LEARNER_*`` variables (durations in
    seconds or ``30s``/``10m``/``1h``/``7d``; 0 turns a trigger off).

    ===================================  ====================  ===============================
    variable                             default               what it is
    ===================================  ====================  ===============================
    LASTMILE_LEARNER_POLICY              challenger            auto | challenger | manual
    LASTMILE_LEARNER_SNAPSHOT_EVERY      100000                learned outcomes per snapshot
    LASTMILE_LEARNER_SNAPSHOT_INTERVAL   1h                    ... or wall time per snapshot
    LASTMILE_LEARNER_JOIN_TTL            7d                    a prediction waits this long
                                                               for its outcome
    LASTMILE_LEARNER_OUTCOME_WAIT        10m                   an outcome waits this long for
                                                               its prediction, then DLQ
    LASTMILE_LEARNER_JOIN_CAPACITY       250000                waiting predictions/partition
                                                               (~450 bytes each)
    LASTMILE_LEARNER_OUTCOME_CAPACITY    100000                waiting outcomes/partition
    LASTMILE_LEARNER_WINDOW              1000                  outcomes per rolling metric
    LASTMILE_LEARNER_METRICS_EVERY       1000                  outcomes between metrics
    LASTMILE_LEARNER_METRICS_INTERVAL    60s                   ... or wall time
    LASTMILE_LEARNER_CHECKPOINT_INTERVAL 1s                    wall time between checkpoints
    LASTMILE_LEARNER_TICK_INTERVAL       1s                    idle time before a tick
    LASTMILE_LEARNER_CHALLENGER_SHARE    10                    % of traffic for a new
                                                               challenger when no split is set
    LASTMILE_LEARNER_PROMOTE_MARGIN      0                     auto: required improvement
    LASTMILE_LEARNER_REFERENCE_ROWS      1000                  recent rows as a snapshot's
                                                               reference profile
    LASTMILE_LEARNER_EVALUATE_CHAMPION   true                  frozen champion's prequential
    LASTMILE_LEARNER_ROUTE               true                  run the routing stage here
    LASTMILE_LEARNER_GROUP               lastmile-learner      consumer group
    LASTMILE_LEARNER_REPARTITION_TOPIC   scoring.learner.input (from topic_outcomes)
    LASTMILE_LEARNER_STATE_TOPIC         scoring.learner.state (from topic_outcomes)
    ===================================  ====================  ===============================

    >>> s = LearnerSettings.from_env({"LASTMILE_LEARNER_POLICY": "auto",
    ...                               "LASTMILE_LEARNER_JOIN_TTL": "2d"})
    >>> s.policy, s.join_ttl, s.outcome_wait
    ('auto', 172800.0, 600.0)
    """

    policy: str = "challenger"
    snapshot_every: int = 100_000
    snapshot_interval: float = 3600.0
    join_ttl: float = 7 * 86400.0
    outcome_wait: float = 600.0
    join_capacity: int = 250_000
    outcome_capacity: int = 100_000
    window: int = 1000
    metrics_every: int = 1000
    metrics_interval: float = 60.0
    checkpoint_interval: float = 1.0
    tick_interval: float = 1.0
    challenger_share: float = 10.0
    promote_margin: float = 0.0
    reference_rows: int = 1000
    evaluate_champion: bool = True
    route: bool = True
    group_id: str = "lastmile-learner"
    repartition_topic: str | None = None
    state_topic: str | None = None

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"learner policy {self.policy!r}: use {' | '.join(POLICIES)}")
        if self.policy == "auto" and not self.evaluate_champion:
            raise ValueError("learner policy auto compares with the champion: evaluate it")
        if self.window < 1:
            raise ValueError("learner window must be >= 1")
        if not 0.0 <= self.challenger_share < 100.0:
            raise ValueError("learner challenger share must be within [0, 100)")

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Field name -> the ``LASTMILE_LEARNER_*`` variable that sets it.

        >>> LearnerSettings.variables()["group_id"], LearnerSettings.variables()["join_ttl"]
        ('LASTMILE_LEARNER_GROUP', 'LASTMILE_LEARNER_JOIN_TTL')
        """
        return {
            f.name: ENV_PREFIX + ("GROUP" if f.name == "group_id" else f.name.upper())
            for f in dataclasses.fields(cls)
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LearnerSettings:
        """Settings from the environment (or `env`); unset variables keep their defaults."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        names = cls.variables()
        for f in dataclasses.fields(cls):
            var = names[f.name]
            raw = (env.get(var) or "").strip()
            if not raw:
                continue  # unset or empty: the default
            kind = f.type
            try:
                if kind in ("float", float):
                    values[f.name] = parse_duration(raw)
                elif kind in ("int", int):
                    values[f.name] = int(raw)
                elif kind in ("bool", bool):
                    low = raw.lower()
                    if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                        raise ValueError(f"{raw!r} is not true or false")
                    values[f.name] = low in ("1", "true", "yes", "on")
                else:
                    values[f.name] = raw
            except ValueError as err:
                raise ValueError(f"{var}: {err}") from None
        return cls(**values)

    @classmethod
    def from_settings(cls, settings: Settings) -> LearnerSettings:
        """The ``learner_*`` fields of the settings (env, lastmile.toml or defaults)."""
        from streams.config import prefixed_env

        return cls.from_env(prefixed_env(settings, "learner"))

    def repartition_topic_for(self, settings: Settings) -> str:
        """The repartition topic: configured, or ``topic_outcomes`` with "outcomes" ->
        "learner.input"."""
        return self.repartition_topic or _derive(settings.topic_outcomes, "learner.input")

    def state_topic_for(self, settings: Settings) -> str:
        """The changelog topic: configured, or ``topic_outcomes`` with "outcomes" ->
        "learner.state"."""
        return self.state_topic or _derive(settings.topic_outcomes, "learner.state")


# -- topics ---------------------------------------------------------------------------------


class LearnerError(RuntimeError):
    """The learner cannot run as configured; the message says why."""


def ensure_learner_topics(
    settings: Settings, options: LearnerSettings, timeout: float = 15.0
) -> int:
    """Create the repartition and changelog topics when missing; return their partitions.

    Both have ``topic_partitions`` partitions; the changelog is compacted. Their
    partition counts must agree (partition ``p`` of one is the state of ``p`` of the
    other) and must not change while models are learning (a model would move).
    """
    from confluent_kafka.admin import AdminClient, NewTopic

    from streams.kafka.topics import create_missing

    input_topic = options.repartition_topic_for(settings)
    state_topic = options.state_topic_for(settings)
    specs = [
        NewTopic(
            name,
            num_partitions=settings.topic_partitions,
            replication_factor=settings.topic_replication,
            config=config,
        )
        for name, config in ((input_topic, {}), (state_topic, {"cleanup.policy": "compact"}))
    ]
    create_missing(settings, specs, timeout)
    topics = AdminClient(settings.kafka_config()).list_topics(timeout=timeout).topics
    counts = {name: len(topics[name].partitions) for name in (input_topic, state_topic)}
    if counts[input_topic] != counts[state_topic]:
        raise LearnerError(
            f"{input_topic} has {counts[input_topic]} partitions and {state_topic} "
            f"{counts[state_topic]}: they must have as many"
        )
    return counts[input_topic]


# -- the handler ----------------------------------------------------------------------------


class Learner:
    """The learner lane's batch handler; usable without Kafka (tests feed it message-like
    objects with ``topic() partition() offset() key() value() headers() timestamp()``).

    The lane calls :meth:`assign` with the repartition partitions it owns (state is read
    back from the changelog), :meth:`process` per batch, then :meth:`committed` once the
    batch's transaction committed (snapshots are published then) or :meth:`assign` again
    after an abort.
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
        self.options = options or LearnerSettings.from_settings(settings)
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
        self._last_checkpoint = clock()
        self._partition_of: dict[str, int] = {}
        self._models: dict[bytes, str] = {}
        self._frozen: dict[tuple[str, int], LoadedModel | None] = {}
        self._learner_made: dict[tuple[str, int], bool] = {}
        self._unlearnable: set[tuple[str, int]] = set()
        self._ttl_ms = int(self.options.join_ttl * 1000)
        self._wait_ms = int(self.options.outcome_wait * 1000)
        self._expiry: dict[int, int] = {}

    # -- assignment and restore -------------------------------------------------------

    def assign(self, partitions: Sequence[int]) -> dict[int, int | None]:
        """Own exactly `partitions` from now on, each restored from its last committed
        checkpoint (in-memory progress past it is dropped and replayed). Returns the
        offset to read each from (None: from the start)."""
        restored = self._restore(list(partitions))
        self.states = {p: restored.get(p) or PartitionState(p) for p in partitions}
        self._expiry = {
            p: s.next_expiry(self._ttl_ms, self._wait_ms) for p, s in self.states.items()
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
            outputs += self._route(predictions, outcomes, int(now * 1000))
        for part, batch in mine.items():
            state = self.states.get(part)
            if state is None:
                # Not ours (an assignment race): the owner reads it from its checkpoint.
                self.counts["not_owned"] += len(batch)
                continue
            self._ingest(state, batch)
        self._time_triggers(now)
        outputs += self._ticks(now)
        if self._checkpoint_due(now):
            outputs += self._checkpoint(now)
        return outputs

    # routing --------------------------------------------------------------------------

    def _partition(self, model: str) -> int:
        part = self._partition_of.get(model)
        if part is None:
            part = self._partition_of[model] = model_partition(model, self.partitions)
        return part

    def _route(
        self, predictions: Sequence[Message], outcomes: Sequence[Message], now_ms: int
    ) -> list[Output]:
        """Predictions and outcomes of learnable models as bundles, one per repartition
        partition (or a few, when large)."""
        learnable: dict[str, tuple[bytes, int] | None] = {}
        route = self._route_of
        counts = self.counts
        items: dict[int, list[tuple[bytes, bytes, int, int]]] = {}
        routed = 0
        if predictions:
            records = self.codec.decode_many(
                [m.value() for m in predictions],
                [m.headers() for m in predictions],
                "Prediction",
            )
            for m, r in zip(predictions, records, strict=True):
                if isinstance(r, DecodeError):
                    self._undecodable(m, r)
                    continue
                if r["variant"] == "shadow":
                    counts["shadow_skipped"] += 1
                    continue
                model = r["model"]
                where = learnable[model] if model in learnable else route(model, learnable)
                if where is None:
                    counts["unlearnable"] += 1
                    continue
                part = items.get(where[1])
                if part is None:
                    part = items[where[1]] = []
                part.append(
                    (
                        where[0] + r["request_id"].encode(),
                        pack_prediction(now_ms, r["version"], r["event_time"], r["features"]),
                        m.partition(),
                        m.offset(),
                    )
                )
                routed += 1
            counts["routed_predictions"] += routed
        if outcomes:
            n = routed
            headers = [m.headers() for m in outcomes]
            values = [m.value() for m in outcomes]
            records = self.codec.decode_many(values, headers, "Outcome")
            for m, r, h, v in zip(outcomes, records, headers, values, strict=True):
                if isinstance(r, DecodeError):
                    self._undecodable(m, r)
                    continue
                model = r["model"]
                where = learnable[model] if model in learnable else route(model, learnable)
                if where is None:
                    counts["unlearnable"] += 1
                    continue
                ts = m.timestamp()
                source = (
                    m.topic(),
                    m.partition(),
                    m.offset(),
                    ts[1] if ts[0] else None,
                    m.key(),
                    h,
                    v,
                )
                part = items.get(where[1])
                if part is None:
                    part = items[where[1]] = []
                part.append(
                    (
                        where[0] + r["request_id"].encode(),
                        pack_outcome(now_ms, r["label"], r["value"], r["event_time"], source),
                        source[1],
                        source[2],
                    )
                )
                routed += 1
            counts["routed_outcomes"] += routed - n
        topic = self.repartition_topic
        return [
            Output(topic, bundle, None, None, part)
            for part, batch in items.items()
            for bundle in pack_bundles(now_ms, batch)
        ]

    def _route_of(
        self, model: str, cache: dict[str, tuple[bytes, int] | None]
    ) -> tuple[bytes, int] | None:
        """(join key prefix, repartition partition) of a learnable model (a live River
        champion), None for the others; cached for one batch, as champions change."""
        state = self.table.get(model)
        champion = state.champion if state is not None else None
        info = state.versions.get(champion) if state is not None and champion else None
        where = None
        if info and not info.get("retired") and info.get("flavor") == "river":
            where = (join_key(model, ""), self._partition(model))
        cache[model] = where
        return where

    def _undecodable(self, message: Message, error: DecodeError) -> None:
        # The monitor, which reads the same topics, dead-letters undecodable input; a
        # second dead letter for one message would be replayed twice.
        self.counts["undecodable"] += 1
        if self.counts["undecodable"] <= 10:
            log.warning(
                "learner: skipping undecodable %s/%s@%s: %s",
                message.topic(),
                message.partition(),
                message.offset(),
                error.reason,
            )

    # the join ---------------------------------------------------------------------------

    def _ingest(self, state: PartitionState, batch: Sequence[Message]) -> None:
        """Fold one partition's records in, in offset order (a bundle's items in their
        order); learn what joins."""
        state.last_input_wall = time.monotonic()
        state.dirty = True
        joined: list[tuple[bytes, bytes, bytes]] = []
        pending, waiting = state.pending, state.waiting
        unlogged, delta = state.unlogged, state.delta
        part = state.partition
        start = state.offset if state.offset is not None else -1
        seen = routed_again = 0
        first_routing = state.first_routing
        for m in batch:
            offset = m.offset()
            if offset < start:
                seen += 1  # covered by the checkpoint already (fetched before the seek)
                continue
            state.offset = offset + 1
            record = m.value()
            ts = int.from_bytes(record[1:9], "big")
            if ts > state.clock:
                state.clock = ts
                if ts >= self._expiry.get(part, 1 << 62):
                    self._expire(state)
            if record[0] != KIND_BUNDLE:
                continue  # a tick: it only moved the clock
            for key, value, source_partition, source_offset in bundle_items(record):
                if not first_routing(value[0], source_partition, source_offset):
                    routed_again += 1
                    continue
                if value[0] == KIND_OUTCOME:
                    prediction = pending.pop(key, None)
                    if prediction is not None:
                        if key in unlogged:
                            unlogged.discard(key)
                            delta.pop(key, None)
                        else:
                            delta[key] = None
                        joined.append((key, prediction, value))
                        continue
                    if not waiting:
                        self._expiry[part] = min(
                            self._expiry.get(part, 1 << 62), ts + self._wait_ms
                        )
                    state.put(waiting, b"o" + key[1:], value)
                    state.counts["outcomes_waited"] += 1
                    if len(waiting) > self.options.outcome_capacity:
                        self._dead_outcome(state, *waiting.popitem(last=False), "capacity")
                elif value[0] == KIND_PREDICTION:
                    if waiting:
                        wkey = b"o" + key[1:]
                        early = waiting.pop(wkey, None)
                        if early is not None:
                            state.forget(wkey)
                            joined.append((key, value, early))
                            continue
                    if key in pending:
                        state.counts["duplicate_predictions"] += 1
                        continue
                    if not pending:
                        self._expiry[part] = min(self._expiry.get(part, 1 << 62), ts + self._ttl_ms)
                    if key in delta:
                        state.put(pending, key, value)  # re-added since the last checkpoint
                    else:
                        pending[key] = value
                        delta[key] = value
                        unlogged.add(key)
                    if len(pending) > self.options.join_capacity:
                        old, _ = pending.popitem(last=False)
                        state.forget(old)
                        state.counts["predictions_evicted"] += 1
        if seen:
            state.counts["skipped_seen"] += seen
        if routed_again:
            state.counts["routed_again"] += routed_again
        if joined:
            self._learn(state, joined)

    def _expire(self, state: PartitionState) -> None:
        """Drop predictions older than the TTL; dead-letter outcomes that waited too long."""
        now = state.clock
        pending = state.pending
        while pending:
            key, value = next(iter(pending.items()))
            if routed_at(value) + self._ttl_ms > now:
                break
            pending.popitem(last=False)
            state.forget(key)
            state.counts["predictions_expired"] += 1
        waiting = state.waiting
        while waiting:
            key, value = next(iter(waiting.items()))
            if routed_at(value) + self._wait_ms > now:
                break
            waiting.popitem(last=False)
            self._dead_outcome(state, key, value, "ttl")
        self._expiry[state.partition] = state.next_expiry(self._ttl_ms, self._wait_ms)

    def _dead_outcome(self, state: PartitionState, key: bytes, value: bytes, why: str) -> None:
        state.forget(key)
        model = key_model(key).decode()
        rid = key[key.index(b"\0") + 1 :].decode(errors="replace")
        if why == "ttl":
            reason = (
                f"no prediction of model {model!r} for request {rid!r} arrived within "
                f"{_human(self.options.outcome_wait)} of its outcome (learner join); "
                "replay it once the prediction exists"
            )
        else:
            reason = (
                f"the learner holds {self.options.outcome_capacity:,} outcomes waiting for "
                f"their predictions; the oldest, request {rid!r} of model {model!r}, was let go"
            )
        self._dead(state, SourceMessage(value), reason, "no_prediction", model)

    def _dead(
        self, state: PartitionState, source: Any, reason: str, error_type: str, model: str
    ) -> None:
        record = dead_letter(source, "learn", reason, error_type, model, self.worker)
        value, headers = encode_dead_letter(self.codec, record, self.settings.topic_dlq)
        state.outputs.append(Output(self.settings.topic_dlq, value, source.key(), headers))
        state.counts[f"dead_letters.{error_type}"] += 1
        self.counts["dead_letters"] += 1

    # learning ---------------------------------------------------------------------------

    def _model_name(self, key: bytes) -> str:
        raw = key_model(key)
        name = self._models.get(raw)
        if name is None:
            name = self._models[raw] = raw.decode()
        return name

    def _learn(self, state: PartitionState, joined: Sequence[tuple[bytes, bytes, bytes]]) -> None:
        groups: dict[str, list[tuple[bytes, bytes, bytes]]] = {}
        for item in joined:
            model = self._model_name(item[0])
            group = groups.get(model)
            if group is None:
                group = groups[model] = []
            group.append(item)
        for model, items in groups.items():
            line = self._line(state, model)
            if line is None:
                state.counts["outcomes_unlearnable"] += len(items)
                continue
            self._learn_line(state, line, items)

    def _line(self, state: PartitionState, model: str) -> ModelLine | None:
        """The model's line: started from its champion, restarted from a new champion the
        learner did not make, or None when the model has no River champion."""
        line = state.lines.get(model)
        mstate = self.table.get(model)
        champion = mstate.champion if mstate is not None else None
        if champion is not None and not mstate.live(champion):  # type: ignore[union-attr]
            champion = None
        if line is not None:
            if champion is None or champion == line.champion:
                return line
            if champion in line.versions or self._made_by_learner(model, champion):
                log.info("learner: %s champion is now v%d", model, champion)
                self._follow(line, champion)
                state.dirty = True
                return line
            log.info(
                "learner: %s champion v%d was not made by the learner; the line from v%d "
                "(%d learned) ends, a new one starts from v%d",
                model,
                champion,
                line.origin,
                line.learned,
                champion,
            )
            self.counts["rebased"] += 1
            del state.lines[model]
            state.dirty = True
        if champion is None or (model, champion) in self._unlearnable:
            return None
        try:
            loaded = self.registry.load(model, champion)
        except RegistryError as err:
            log.error("learner: cannot load %s v%d: %s", model, champion, err)
            self._unlearnable.add((model, champion))
            return None
        if not loaded.can_learn:
            log.info("learner: %s v%d is not a River model; it does not learn", model, champion)
            self._unlearnable.add((model, champion))
            return None
        o = self.options
        line = ModelLine(model, loaded, o.window, o.reference_rows, self.clock())
        self._follow(line, champion)
        state.lines[model] = line
        state.dirty = True
        log.info("learner: %s learns from v%d (line %s)", model, champion, line.line_id)
        return line

    def _follow(self, line: ModelLine, champion: int) -> None:
        """The frozen evaluator scores `champion` from now on (when it runs at all)."""
        line.reset_frozen(champion)
        if not self.options.evaluate_champion:
            line.perf_frozen = None

    def _made_by_learner(self, model: str, version: int) -> bool:
        key = (model, version)
        made = self._learner_made.get(key)
        if made is None:
            try:
                made = self.registry.get(model, version).registered_by == REGISTERED_BY
            except RegistryError:
                made = False
            self._learner_made[key] = made
        return made

    def _frozen_model(self, line: ModelLine) -> LoadedModel | None:
        version = line.champion
        if version is None or line.perf_frozen is None:
            return None
        key = (line.model, version)
        if key not in self._frozen:
            # One champion per model is scored: let the previous one go.
            for old in [k for k in self._frozen if k[0] == line.model]:
                del self._frozen[old]
            try:
                self._frozen[key] = self.registry.load(line.model, version)
            except RegistryError as err:
                log.error("learner: cannot load champion %s v%d: %s", line.model, version, err)
                self._frozen[key] = None
        return self._frozen[key]

    def _learn_line(
        self, state: PartitionState, line: ModelLine, items: Sequence[tuple[bytes, bytes, bytes]]
    ) -> None:
        """Score each outcome's features before learning them (prequential), in order."""
        o = self.options
        names = line.feature_names
        width = len(names) if names else 0
        loads = orjson.loads
        xs: list[dict[str, Any]] = []
        outs: list[list[Any]] = []
        for _key, pv, ov in items:
            features = loads(pv[9:])[2]  # a bytes slice: cheaper than a memoryview here
            if names and len(features) != width:
                # Extra request fields the model was not registered with: not learned.
                features = {n: features.get(n) for n in names}
            xs.append(features)
            outs.append(loads(ov[13 : 13 + int.from_bytes(ov[9:13], "big")]))
        frozen = self._frozen_model(line)
        frozen_scores = frozen.predict_many(xs, return_errors=True) if frozen else None
        model = line.online
        classifier, binary, positive = line.classifier, line.binary, line.positive
        predict = model.predict_proba_one if classifier else model.predict_one
        learn = model.learn_one
        coerce = line.coerce
        update = line.perf.update
        frozen_update = line.perf_frozen.update if line.perf_frozen is not None else None
        if frozen_scores is None:
            frozen_update = None
        remember = line.reference.append
        # Counters stay local in the loop and are written back at each boundary.
        metrics_every = o.metrics_every or 1 << 62
        snapshot_every = o.snapshot_every or 1 << 62
        to_metrics = metrics_every - line.since_metrics
        to_snapshot = snapshot_every - line.since_snapshot
        first_t, last_t = line.first_t, line.last_t
        learned = total = 0
        for i, x in enumerate(xs):
            label, value, t_out = outs[i]
            try:
                raw = label if classifier or value is None else value
                if raw is None:
                    raw = value
                if raw is None:
                    raise _BadLabel("the outcome has neither a label nor a value")
                try:
                    y = coerce(raw)
                except (TypeError, ValueError) as err:
                    raise _BadLabel(f"label {raw!r}: {err}") from None
                if binary:
                    truth = y == positive
                    update(truth, predict(x).get(positive, 0.0))
                elif classifier:
                    proba = predict(x)
                    guess = max(proba, key=proba.__getitem__) if proba else None
                    update(label_str(y), label_str(guess))
                else:
                    update(y, predict(x))
                learn(x, y)
            except Exception as err:
                self._learn_failed(state, line, items[i][0], items[i][2], err)
                continue
            if frozen_update is not None:
                result = frozen_scores[i]  # type: ignore[index]
                if not isinstance(result, BaseException):
                    if binary:
                        frozen_update(truth, result[0])
                    elif classifier:
                        frozen_update(label_str(y), result[1])
                    else:
                        frozen_update(y, result[0])
            remember(x)
            learned += 1
            total += 1
            # Outcomes of several input partitions interleave: not in event-time order.
            if first_t is None or t_out < first_t:
                first_t = t_out
            if last_t is None or t_out > last_t:
                last_t = t_out
            to_metrics -= 1
            to_snapshot -= 1
            if to_metrics <= 0 or to_snapshot <= 0:
                self._advance(line, learned, to_metrics, to_snapshot, first_t, last_t)
                learned = 0
                if to_metrics <= 0:
                    self._emit_metrics(state, line)
                    to_metrics = metrics_every
                    first_t = last_t = None
                if to_snapshot <= 0:
                    self._snapshot(state, line, "count")
                    to_snapshot = snapshot_every
        self._advance(line, learned, to_metrics, to_snapshot, first_t, last_t)
        self.counts["learned"] += total
        state.counts["learned"] += total

    def _advance(
        self,
        line: ModelLine,
        learned: int,
        to_metrics: int,
        to_snapshot: int,
        first_t: int | None,
        last_t: int | None,
    ) -> None:
        o = self.options
        line.learned += learned
        line.since_metrics = (o.metrics_every or 1 << 62) - to_metrics
        line.since_snapshot = (o.snapshot_every or 1 << 62) - to_snapshot
        line.first_t, line.last_t = first_t, last_t

    def _learn_failed(
        self, state: PartitionState, line: ModelLine, key: bytes, value: bytes, err: Exception
    ) -> None:
        rid = key[key.index(b"\0") + 1 :].decode(errors="replace")
        if isinstance(err, _BadLabel):
            kind, why = "bad_label", str(err)
        else:
            kind, why = "model_exception", f"the model raised {type(err).__name__}: {err}"
        reason = (
            f"model {line.model!r} (line from v{line.origin}) cannot learn the outcome of "
            f"request {rid!r}: {why[:300]}"
        )
        self._dead(state, SourceMessage(value), reason, kind, line.model)

    # metrics and snapshots ----------------------------------------------------------------

    def _emit_metrics(self, state: PartitionState, line: ModelLine) -> None:
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

    def _snapshot(self, state: PartitionState, line: ModelLine, why: str) -> None:
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
            decision = "champion" if self._beats_champion(line, online, frozen) else None
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

    def _beats_champion(
        self, line: ModelLine, online: Mapping[str, float], frozen: Mapping[str, float]
    ) -> bool:
        name, higher = PRIMARY[line.task]
        tracker = line.perf_frozen
        if tracker is None or tracker.window_n < line.window or name not in frozen:
            return False  # not a whole window of the champion's yet: no comparison
        if name not in online:
            return False
        gain = online[name] - frozen[name] if higher else frozen[name] - online[name]
        return gain > self.options.promote_margin

    def _time_triggers(self, now: float) -> None:
        o = self.options
        for state in self.states.values():
            for line in state.lines.values():
                if (
                    o.snapshot_interval
                    and line.since_snapshot
                    and now - line.snapshot_wall >= o.snapshot_interval
                ):
                    self._snapshot(state, line, "interval")
                if (
                    o.metrics_interval
                    and line.since_metrics
                    and now - line.metrics_wall >= o.metrics_interval
                ):
                    self._emit_metrics(state, line)

    # ticks and checkpoints ---------------------------------------------------------------

    def _ticks(self, now: float) -> list[Output]:
        """A tick for each partition whose oldest waiting entry is due but whose clock
        stands still (no traffic): the tick is read back and moves the clock."""
        out: list[Output] = []
        interval = self.options.tick_interval
        if interval <= 0:
            return out
        now_ms = int(now * 1000)
        mono = time.monotonic()
        for p, state in self.states.items():
            if (
                self._expiry.get(p, 1 << 62) <= now_ms
                and mono - state.last_input_wall >= interval
                and mono - state.tick_wall >= interval
            ):
                state.tick_wall = mono
                out.append(
                    Output(self.repartition_topic, pack_tick(now_ms), None, None, p)
                )
                self.counts["ticks"] += 1
        return out

    def wants_flush(self) -> bool:
        """Whether an idle lane should run an empty batch (a checkpoint or a tick is due)."""
        now = self.clock()
        if self._checkpoint_due(now):
            return True
        now_ms = int(now * 1000)
        mono = time.monotonic()
        interval = self.options.tick_interval
        return interval > 0 and any(
            self._expiry.get(p, 1 << 62) <= now_ms
            and mono - s.last_input_wall >= interval
            and mono - s.tick_wall >= interval
            for p, s in self.states.items()
        )

    def has_uncommitted(self) -> bool:
        """Whether something was learned (or changed) since the last checkpoint."""
        return any(s.dirty for s in self.states.values())

    def _checkpoint_due(self, now: float) -> bool:
        if not any(s.dirty for s in self.states.values()):
            return False
        return self.force_checkpoint or now - self._last_checkpoint >= (
            self.options.checkpoint_interval
        )

    def _checkpoint(self, now: float) -> list[Output]:
        """For each changed partition: its outputs since the last checkpoint, the
        changelog entries, and the checkpoint itself (chunked, one key per chunk)."""
        out: list[Output] = []
        topic = self.state_topic
        for p, state in self.states.items():
            if not state.dirty:
                continue
            out += state.outputs
            state.outputs = []
            for key, value in state.delta.items():
                out.append(Output(topic, value, key, None, p))
            state.delta = {}
            state.unlogged = set()
            for entry in state.outbox:
                entry["checkpointed"] = True
            state.checkpoint_id += 1
            chunks = encode_snapshot(state.checkpoint(), state.checkpoint_id, CHUNK_SIZE)
            out += [
                Output(topic, chunk, b"c/%d" % i, None, p)
                for i, chunk in enumerate(chunks)
            ]
            # Slots a bigger checkpoint used: tombstones, so compaction forgets them.
            out += [
                Output(topic, None, b"c/%d" % i, None, p)
                for i in range(len(chunks), state.slots)
            ]
            state.slots = len(chunks)
            state.dirty = False
            self.counts["checkpoints"] += 1
        self._last_checkpoint = now
        self.force_checkpoint = False
        return out

    # after the transaction ----------------------------------------------------------------

    def committed(self) -> None:
        """The batch's transaction committed: publish the snapshots it checkpointed."""
        for state in self.states.values():
            if not any(e["checkpointed"] for e in state.outbox):
                continue
            published: dict[str, int] = {}
            keep = []
            for entry in state.outbox:
                if not entry["checkpointed"]:
                    keep.append(entry)
                    continue
                try:
                    version = self._publish(state, entry, published)
                except Exception:
                    log.exception(
                        "learner: publishing a snapshot of %s failed; retrying after the "
                        "next batch",
                        entry["model"],
                    )
                    keep.append(entry)
                    continue
                published[entry["model"]] = version
            state.outbox = keep
            # The heads moved: the next checkpoint says so.
            state.dirty = True

    def _find_snapshot(self, model: str, entry: Mapping[str, Any]) -> int | None:
        """A version registered from this snapshot before (a crash between registering
        it and checkpointing that), by its line and learned count."""
        tag = _snapshot_tag(entry)
        try:
            numbers = self.registry.version_numbers(model)
        except RegistryError:
            return None
        for number in reversed(numbers):
            if number <= entry["parent"]:
                break
            mv = self.registry.get(model, number)
            if mv.registered_by == REGISTERED_BY and (mv.meta.get("description") or "").startswith(
                tag
            ):
                return number
        return None

    def _publish(
        self, state: PartitionState, entry: dict[str, Any], published: Mapping[str, int]
    ) -> int:
        model = entry["model"]
        line = state.lines.get(model)
        same_line = line is not None and line.line_id == entry["line_id"]
        # Snapshots taken before the previous one was registered grew from it.
        parent = published.get(model, entry["parent"])
        if same_line and line is not None and line.head > parent:
            parent = line.head
        version = self._find_snapshot(model, entry)
        meta = entry["meta"]
        if version is None:
            description = (
                f"{_snapshot_tag(entry)} online learning from v{entry['origin']}, "
                f"{entry['learned']:,} outcomes learned (snapshot by {entry['why']})"
            )
            try:
                mv = self.control.register_and_publish(
                    model,
                    pickle.loads(entry["blob"]),
                    "river",
                    features=meta.get("features") or None,
                    reference_rows=entry["rows"] or None,
                    parent=parent,
                    metrics=entry["metrics"],
                    registered_by=REGISTERED_BY,
                    task=meta.get("task"),
                    labels=meta.get("labels") or None,
                    positive_label=meta.get("positive_label"),
                    description=description,
                )
                version = mv.version
            except PublishError as err:
                # Registered; models.events will hear of it with the next change.
                log.warning("learner: %s", err)
                found = self._find_snapshot(model, entry)
                if found is None:
                    raise
                version = found
            self.counts["published"] += 1
            log.info(
                "learner: %s v%d registered (parent v%d, %d learned)",
                model,
                version,
                parent,
                entry["learned"],
            )
        self._learner_made[(model, version)] = True
        if same_line and line is not None:
            line.head = max(line.head, version)
            line.versions.add(version)
            self._apply_policy(model, version, entry)
        else:
            # A line that ended (a new champion came from outside): kept, not promoted.
            log.info("learner: %s v%d is from an ended line; not promoted", model, version)
        return version

    def _apply_policy(self, model: str, version: int, entry: Mapping[str, Any]) -> None:
        decision = entry["decision"]
        if decision is None:
            return
        try:
            if decision == "champion":
                self.control.promote(model, version)
                self.counts["promoted"] += 1
                log.info("learner: %s v%d promoted to champion (policy auto)", model, version)
            elif decision == "challenger":
                self.control.promote(model, version, "challenger")
                share = self.options.challenger_share
                if share > 0 and not self.control.state(model).split:
                    self.control.split(model, {"champion": 100.0 - share, "challenger": share})
        except PublishError as err:
            log.warning("learner: %s", err)

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


class _BadLabel(ValueError):
    """An outcome without a usable label."""


def _snapshot_tag(entry: Mapping[str, Any]) -> str:
    return f"learner snapshot {entry['line_id']}/{entry['learned']}:"


def _human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


# -- the lane -------------------------------------------------------------------------------


class LearnerLane(BatchLane):
    """The learner's lane: both stages on one consumer; restores the partitions it is
    assigned from the changelog and seeks them to their checkpoints; writes a last
    checkpoint when stopped."""

    def __init__(
        self,
        settings: Settings,
        options: LearnerSettings | None = None,
        learner: Learner | None = None,
        name: str = "learner",
        **lane_options: Any,
    ) -> None:
        self.options = options or LearnerSettings.from_settings(settings)
        self.learner = learner or Learner(settings, self.options)
        self.watcher = ModelWatcher(settings, self.learner.table)
        topics = [self.learner.repartition_topic]
        if self.options.route:
            topics += [settings.topic_predictions, settings.topic_outcomes]
        lane_options.setdefault("group_id", self.options.group_id)
        # Learning is not latency-bound: fewer, larger transactions (each commit waits on
        # the broker) leave more time to learn.
        lane_options.setdefault("max_batch", 20_000)
        super().__init__(
            settings, name, topics, self.learner, on_assign=self._on_assign, **lane_options
        )

    def run(self) -> None:
        """Create the topics, replay ``models.events``, then loop (BatchLane.run)."""
        try:
            from streams.kafka.topics import ensure_topics

            ensure_topics(self.settings)
            self.learner.partitions = ensure_learner_topics(self.settings, self.options)
        except Exception as err:
            self._fail(err)
            return
        # The control plane first: routing and lines follow the models' champions.
        self.watcher.start()
        try:
            while not self.watcher.wait_caught_up(5.0):
                if self._stop.is_set():
                    return
                log.info("learner: waiting for %s to replay", self.settings.topic_model_events)
            super().run()
        finally:
            self.watcher.stop()

    def _on_assign(self, partitions: list[TopicPartition]) -> None:
        consumer = self.consumer
        assert consumer is not None
        topic = self.learner.repartition_topic
        mine = [tp.partition for tp in partitions if tp.topic == topic]
        offsets = self.learner.assign(mine)
        for tp in partitions:
            if tp.topic == topic:
                offset = offsets.get(tp.partition)
                tp.offset = OFFSET_BEGINNING if offset is None else offset
        consumer.assign(partitions)

    def on_idle(self, consumer: Consumer, producer: Producer) -> None:
        """What an idle learner must do: checkpoint what it learned, tick a partition
        whose waiting entries are due."""
        if self.learner.wants_flush():
            self._deliver(consumer, producer, [])
        else:
            producer.poll(0)

    def deliver_batch(
        self, consumer: Consumer, producer: Producer, messages: list[Message]
    ) -> None:
        for chunk in self._chunks(messages):
            if not self._deliver(consumer, producer, chunk):
                break  # the state went back to its checkpoint: read again

    def on_stop(self, consumer: Consumer, producer: Producer) -> None:
        """A last checkpoint of what was learned since the previous one."""
        if self.learner.has_uncommitted():
            self.learner.force_checkpoint = True
            try:
                self._deliver(consumer, producer, [])
            except Exception as err:
                log.warning("learner: the last checkpoint failed (%s); it will replay", err)

    def _chunks(self, messages: list[Message]) -> list[list[Message]]:
        """A batch in transactions of about `max_batch` items: a bundle counts its items.
        The inputs all go in the first: committing the positions of input partitions
        covers them only once routed. Repartition records after the first chunk are
        read from their checkpoint again if the lane stops meanwhile."""
        topic = self.learner.repartition_topic
        inputs = [m for m in messages if m.topic() != topic]
        bundles = [m for m in messages if m.topic() == topic]
        if not bundles:
            return [messages]
        chunks: list[list[Message]] = []
        current, size = inputs, len(inputs)
        for m in bundles:
            value = m.value()
            n = bundle_size(value) if value and value[0] == KIND_BUNDLE else 1
            if current and size + n > self.max_batch:
                chunks.append(current)
                current, size = [], 0
            current.append(m)
            size += n
        chunks.append(current)
        return chunks

    def committed(self) -> None:
        self.learner.committed()

    def rewind(self, consumer: Consumer, messages: list[Message]) -> None:
        """After an aborted transaction: inputs back to the batch's start, learned state
        back to the last committed checkpoint (read again), and its offsets."""
        topic = self.learner.repartition_topic
        rewind_to_batch_start(consumer, [m for m in messages if m.topic() != topic])
        mine = [tp.partition for tp in consumer.assignment() if tp.topic == topic]
        for p, offset in self.learner.assign(mine).items():
            if offset is None:
                offset, _high = consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=30.0
                )
            consumer.seek(TopicPartition(topic, p, offset))

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the loop (it writes a last checkpoint) and the control-plane clients."""
        super().stop(timeout)
        self.watcher.stop()
        self.learner.close()
        self.consumer = None
        self.producer = None

    def details(self) -> dict[str, object]:
        """The learner's counters and model lines, for the status page."""
        return self.learner.details()


def learner_lane(settings: Settings) -> LearnerLane:
    """The learner role's lane (``ROLES["learner"]`` in :mod:`streams.app`)."""
    return LearnerLane(settings)
