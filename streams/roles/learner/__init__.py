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
   in one bundle record (:mod:`streams.roles.learner.envelope` has the format). Shadow predictions
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
the changelog back (:func:`~streams.roles.learner.restore.read_state`) and seeks the
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
model of a run that never stopped (``tests/streams/roles/test_learner.py`` checks it with
SIGKILL). The group's committed offsets on the repartition topic are not used (they may run ahead of
the checkpoint); on the input topics they are the routing stage's exactly-once, as in
every lane. The learned order is the routing order: a backlog read from several input
partitions is routed in the order it is fetched, not in event time.

The embedded broker shows what a transaction cut short by a crash or an abort had sent,
and does not commit its offsets. Two rules keep learning exact there too: a checkpoint
is restored only when complete, with the changelog entries before it (what follows the
last complete one is dropped, :func:`~streams.roles.learner.restore.read_state`); and every
routed item carries the partition and offset it was routed from, so the learning stage
drops a second routing of an item it already folded in
(:meth:`~streams.roles.learner.partition_state.PartitionState.first_routing`).

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
- ``auto``: promoted to champion when a paired comparison on the last ``window`` outcomes
  that both scored (hits for classifiers, absolute errors for regressors; an always-valid
  confidence sequence, :mod:`streams.roles.learner.evidence`) decides it is better at
  ``promote_alpha``.
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
regressors; :class:`~streams.roles.learner.prequential_window.PrequentialWindow`
computes them when asked, equal to :class:`monitors.performance.RollingPerformance`) go
to ``monitor.metrics`` every ``metrics_every`` outcomes or ``metrics_interval``: segment
``prequential=online`` with the version the online model grew from, ``prequential=frozen``
with the champion's, plus ``learned`` (outcomes since the last report).
"""

from monitors.state import register_moved_module
from streams.roles.learner.handler import Learner
from streams.roles.learner.lane import LearnerLane, learner_lane
from streams.roles.learner.prequential_metrics import SEGMENT_FROZEN, SEGMENT_ONLINE
from streams.roles.learner.settings import POLICIES, LearnerSettings
from streams.roles.learner.topics import LearnerError, ensure_learner_topics

# Checkpoints written before the learner became this package name its state classes by
# their old modules (pickle): they restore from here after an upgrade.
register_moved_module(
    "streams.learner_state",
    "streams.roles.learner.model_line",
    "streams.roles.learner.prequential_window",
    "streams.roles.learner.partition_state",
)

__all__ = [
    "POLICIES",
    "SEGMENT_FROZEN",
    "SEGMENT_ONLINE",
    "Learner",
    "LearnerError",
    "LearnerLane",
    "LearnerSettings",
    "ensure_learner_topics",
    "learner_lane",
]
