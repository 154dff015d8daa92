"""The learner's records and state: the repartition envelope, one model line, one partition.

Pure data and bookkeeping, no Kafka client (except :func:`read_state`, which reads a
partition's changelog back): :mod:`streams.roles.learner` decides when things happen.

The repartition topic (``learner.input``)
-----------------------------------------
The routing stage re-keys predictions and outcomes by model: each becomes one item in
the partition ``model_partition(model, n)`` of the repartition topic, so that every
item of a model is in one partition, in one order, read by one learner. The items of one
batch for one partition travel as one *bundle* record (``b"B"``, routed-at (u64 ms), the
number of items (u32), then each item's key and value, each u32-length-prefixed); a
bundle is always processed whole.

=======  ==============================  ===============================================
kind     key                             value
=======  ==============================  ===============================================
``P``    ``b"p" + model + b"\\0" + id``  ``b"P"``, routed-at, JSON
                                         ``[version, event_time, features]``
``O``    same as its prediction's        ``b"O"``, routed-at, u32 n, JSON (n bytes)
                                         ``[label, value, event_time]``, u32 m, JSON (m
                                         bytes) of where the original message came from
                                         and its headers, u32 k, its key (k bytes), then
                                         its value: what a dead letter about it needs
``T``    (a record, no key)              ``b"T"``, routed-at: a tick, so a partition's
                                         clock moves when no traffic does
=======  ==============================  ===============================================

The key of an outcome is the key its prediction is stored under, so the join is one
dict lookup. Times that decide expiry are *routed-at* times read from the log, never the
wall clock of the reader: replaying a partition takes the same decisions.

The changelog (``learner.state``, compacted, partition ``p`` for repartition partition
``p``): ``b"p..."`` -> a prediction waiting for its outcome (the ``P`` value), ``b"o..."``
-> an outcome waiting for its prediction (the ``O`` value), ``None`` once joined or
expired; ``b"c/<i>"`` -> chunk ``i`` of the partition's checkpoint
(:func:`monitors.state.encode_snapshot`).
"""

from __future__ import annotations

import base64
import collections
import hashlib
import logging
import math
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import orjson
from river import metrics

from monitors.state import SnapshotError, SnapshotReader, chunk_header
from streams.config import Settings
from streams.kafka.topics import read_to_end
from streams.models import LoadedModel, label_str

log = logging.getLogger("lastmile.learner")

__all__ = [
    "KIND_BUNDLE",
    "KIND_OUTCOME",
    "KIND_PREDICTION",
    "KIND_TICK",
    "ModelLine",
    "PartitionState",
    "SourceMessage",
    "join_key",
    "model_partition",
    "outcome_fields",
    "bundle_items",
    "bundle_size",
    "pack_bundles",
    "pack_outcome",
    "pack_prediction",
    "pack_tick",
    "prediction_fields",
    "read_state",
    "routed_at",
    "state_from_records",
]

KIND_PREDICTION = ord("P")
KIND_OUTCOME = ord("O")
KIND_TICK = ord("T")
KIND_BUNDLE = ord("B")
#: Payload bytes per bundle record: well under Kafka's default 1 MB message size.
BUNDLE_BYTES = 256 * 1024
#: Changelog key prefixes (the first byte of a key).
PENDING = ord("p")
WAITING = ord("o")
CHECKPOINT_PREFIX = b"c/"
STATE_FORMAT = 1


# -- the envelope ---------------------------------------------------------------------------


def model_partition(model: str, partitions: int) -> int:
    """The repartition partition of a model: BLAKE2b of its name, stable across processes
    and clients (librdkafka's and Java's default partitioners disagree).

    >>> model_partition("fraud", 3) == model_partition("fraud", 3)
    True
    """
    digest = hashlib.blake2b(model.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % max(1, partitions)


def join_key(model: str, request_id: str) -> bytes:
    """The key a request's prediction waits under (and its outcome is routed with)."""
    return b"p" + model.encode() + b"\0" + request_id.encode()


def key_model(key: bytes) -> bytes:
    """The model name (bytes) of a join key."""
    return key[1 : key.index(b"\0")]


def pack_prediction(ts_ms: int, version: int, event_time: int, features: Any) -> bytes:
    """A ``P`` value (see the module doc).

    >>> v = pack_prediction(5, 2, 7, {"x": 1.0})
    >>> routed_at(v), prediction_fields(v)
    (5, [2, 7, {'x': 1.0}])
    """
    return b"P" + ts_ms.to_bytes(8, "big") + orjson.dumps([version, event_time, features])


def pack_outcome(
    ts_ms: int,
    label: str | None,
    value: float | None,
    event_time: int,
    source: tuple[str, int, int, int | None, bytes | None, Any, bytes | None],
) -> bytes:
    """An ``O`` value: the fields the learner needs, then the original outcome message
    (`source`: topic, partition, offset, timestamp, key, headers, value), for a dead
    letter about it.

    >>> v = pack_outcome(5, "1", None, 9, ("o", 1, 7, 3, b"k", None, b"{}"))
    >>> routed_at(v), outcome_fields(v)
    (5, ['1', None, 9])
    >>> m = SourceMessage(v)
    >>> m.topic(), m.offset(), m.timestamp(), m.key(), m.value(), m.headers()
    ('o', 7, (1, 3), b'k', b'{}', [])
    """
    topic, partition, offset, timestamp, key, headers, original = source
    learn = orjson.dumps([label, value, event_time])
    where = orjson.dumps(
        [
            topic,
            partition,
            offset,
            timestamp,
            _headers_json(headers) if headers else None,
            key is None,
            original is None,
        ]
    )
    key = key or b""
    return b"".join(
        (
            b"O",
            ts_ms.to_bytes(8, "big"),
            len(learn).to_bytes(4, "big"),
            learn,
            len(where).to_bytes(4, "big"),
            where,
            len(key).to_bytes(4, "big"),
            key,
            original or b"",
        )
    )


def pack_tick(ts_ms: int) -> bytes:
    """A ``T`` value: a tick at `ts_ms`."""
    return b"T" + ts_ms.to_bytes(8, "big")


def pack_bundles(
    ts_ms: int, items: list[tuple[bytes, bytes, int, int]], limit: int = BUNDLE_BYTES
) -> list[bytes]:
    """``B`` values holding `items` (``(key, P or O value, source partition, source
    offset)``, in order), each about `limit` bytes at most: one Kafka record for many, so
    both stages handle a few large records instead of thousands of small ones. The
    header is ``b"B"``, routed-at (u64) and the number of items (u32). The source of an
    item (the partition and offset of the prediction or outcome it was routed from) lets
    the learning stage drop an item routed twice (:meth:`PartitionState.first_routing`).

    >>> values = pack_bundles(7, [(b"k1", b"v1", 0, 10), (b"k2", b"v2", 1, 4)])
    >>> len(values), routed_at(values[0]), bundle_size(values[0]), list(bundle_items(values[0]))
    (1, 7, 2, [(b'k1', b'v1', 0, 10), (b'k2', b'v2', 1, 4)])
    >>> [bundle_size(v) for v in pack_bundles(7, [(b"k", b"v" * 10, 0, 0)] * 3, limit=40)]
    [1, 1, 1]
    """
    head = b"B" + ts_ms.to_bytes(8, "big")
    out: list[bytes] = []
    parts: list[bytes] = []
    size = count = 0

    def close() -> None:
        out.append(b"".join((head, count.to_bytes(4, "big"), *parts)))

    for key, value, partition, offset in items:
        item = 20 + len(key) + len(value)
        if size and size + item > limit:
            close()
            parts, size, count = [], 0, 0
        parts += (
            len(key).to_bytes(4, "big"),
            key,
            len(value).to_bytes(4, "big"),
            value,
            partition.to_bytes(4, "big"),
            offset.to_bytes(8, "big"),
        )
        size += item
        count += 1
    if size:
        close()
    return out


def bundle_size(value: bytes) -> int:
    """How many items a ``B`` value holds."""
    return int.from_bytes(value[9:13], "big")


def bundle_items(value: bytes) -> Iterator[tuple[bytes, bytes, int, int]]:
    """The ``(key, value, source partition, source offset)`` items of a ``B`` value, in
    order."""
    at, end = 13, len(value)
    while at < end:
        n = int.from_bytes(value[at : at + 4], "big")
        key = value[at + 4 : at + 4 + n]
        at += 4 + n
        n = int.from_bytes(value[at : at + 4], "big")
        item = value[at + 4 : at + 4 + n]
        at += 4 + n
        yield (
            key,
            item,
            int.from_bytes(value[at : at + 4], "big"),
            int.from_bytes(value[at + 4 : at + 12], "big"),
        )
        at += 12


_HEADERS: dict[tuple[tuple[str, bytes | None], ...], orjson.Fragment] = {}


def _headers_json(headers: list[tuple[str, bytes | None]]) -> orjson.Fragment:
    """Headers as JSON ``[[name, base64 value], ...]``, encoded once per distinct list:
    Avro outcomes all carry the same two schema headers."""
    key = tuple(headers)
    try:
        return _HEADERS[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable header value
        return orjson.Fragment(orjson.dumps([[k, _b64(v)] for k, v in headers]))
    fragment = orjson.Fragment(orjson.dumps([[k, _b64(v)] for k, v in headers]))
    if len(_HEADERS) < 1000:
        _HEADERS[key] = fragment
    return fragment


def routed_at(value: bytes) -> int:
    """The routed-at time (epoch ms) of a ``P``, ``O``, ``T`` or ``B`` value."""
    return int.from_bytes(value[1:9], "big")


def prediction_fields(value: bytes) -> list[Any]:
    """``[version, event_time, features]`` of a ``P`` value."""
    return orjson.loads(value[9:])


def outcome_fields(value: bytes) -> list[Any]:
    """``[label, value, event_time]`` of an ``O`` value."""
    n = int.from_bytes(value[9:13], "big")
    return orjson.loads(value[13 : 13 + n])


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


class SourceMessage:
    """The original outcome message of an ``O`` value, shaped like a confluent-kafka
    ``Message`` for :func:`streams.kafka.deadletters.dead_letter`."""

    def __init__(self, value: bytes) -> None:
        at = 13 + int.from_bytes(value[9:13], "big")
        size = int.from_bytes(value[at : at + 4], "big")
        where = orjson.loads(memoryview(value)[at + 4 : at + 4 + size])
        self._topic, self._partition, self._offset, self._ts, headers, no_key, no_value = where
        self._headers = [(k, _unb64(v)) for k, v in headers or []]
        at += 4 + size
        size = int.from_bytes(value[at : at + 4], "big")
        self._key = None if no_key else value[at + 4 : at + 4 + size]
        self._value = None if no_value else value[at + 4 + size :]

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (0, -1) if self._ts is None else (1, self._ts)

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes | None]]:
        return self._headers


# -- prequential metrics ----------------------------------------------------------------------


class PrequentialWindow:
    """The last `size` (truth, prediction) pairs of one evaluator, and River's rolling
    metrics over them, computed when asked.

    :class:`monitors.performance.RollingPerformance` updates four River rolling metrics per
    outcome (~5 µs, twice per outcome here: a quarter of the learner's budget at 20,000
    outcomes/s). The values depend only on the window, so this keeps the window and
    computes the same definitions on demand: ``utils.Rolling(metrics.Accuracy)``,
    ``utils.Rolling(metrics.LogLoss)`` (probabilities clamped to [1e-15, 1 - 1e-15]),
    ``metrics.RollingROCAUC`` (left out while the window holds one class only), and
    ``utils.Rolling(metrics.MAE)`` / ``utils.Rolling(metrics.RMSE)`` for regressors.
    ``tests/test_learner.py`` checks the values against ``RollingPerformance``.

    Binary classifiers: ``update(truth, p)`` with truth a bool (the positive class) and p
    its probability (accuracy thresholds it at 0.5). Multi-class: ``update(label,
    predicted label)``, accuracy only. Regressors: ``update(y, y_hat)``.

    >>> w = PrequentialWindow("classification", 4)
    >>> for y, p in [(True, 0.9), (False, 0.2), (True, 0.4), (False, 0.1)]:
    ...     w.update(y, p)
    >>> {k: round(v, 3) for k, v in w.get().items()}
    {'accuracy': 0.75, 'log_loss': 0.338, 'roc_auc': 1.0}
    """

    def __init__(self, task: str, size: int, binary: bool = True) -> None:
        self.task = task
        self.size = size
        self.binary = binary
        self.truth: collections.deque[Any] = collections.deque(maxlen=size)
        self.pred: collections.deque[Any] = collections.deque(maxlen=size)

    def update(self, truth: Any, pred: Any) -> None:
        """Add one outcome (the oldest leaves a full window)."""
        self.truth.append(truth)
        self.pred.append(pred)

    @property
    def window_n(self) -> int:
        """How many outcomes the window holds."""
        return len(self.truth)

    def get(self) -> dict[str, float]:
        """The metrics over the window; {} while it is empty."""
        n = len(self.truth)
        if n == 0:
            return {}
        if self.task == "regression":
            err = np.fromiter(self.truth, float, n) - np.fromiter(self.pred, float, n)
            return {
                "mae": float(np.abs(err).mean()),
                "rmse": math.sqrt(float((err * err).mean())),
            }
        if not self.binary:
            hits = sum(1 for a, b in zip(self.truth, self.pred, strict=True) if a == b)
            return {"accuracy": hits / n}
        y = np.fromiter(self.truth, bool, n)
        p = np.fromiter(self.pred, float, n)
        out = {"accuracy": float(((p >= 0.5) == y).mean())}
        q = np.clip(p, 1e-15, 1 - 1e-15)
        out["log_loss"] = float(np.where(y, -np.log(q), -np.log1p(-q)).mean())
        positives = int(y.sum())
        if 0 < positives < n:
            auc = metrics.RollingROCAUC(window_size=self.size)
            for a, b in zip(self.truth, self.pred, strict=True):
                auc.update(a, b)
            out["roc_auc"] = float(auc.get())
        return out


# -- one model line -------------------------------------------------------------------------


class ModelLine:
    """The online model of one model and what is known about it: the versions it grew
    from, its prequential trackers, its counters and a sample of recent rows (the
    reference profile of its next snapshot).

    ``origin`` is the version the line started from, ``head`` the newest version
    registered from it (the parent of the next snapshot), ``champion`` the champion
    version the frozen evaluator scores. ``line_id`` names the line in the registry, so a
    snapshot registered before a crash is found again rather than registered twice.
    """

    def __init__(
        self,
        model: str,
        loaded: LoadedModel,
        window: int,
        reference_rows: int,
        clock: float,
    ) -> None:
        self.model = model
        self.line_id = uuid.uuid4().hex[:12]
        self.origin = int(loaded.version or 0)
        self.head = self.origin
        self.champion: int | None = self.origin
        self.versions = {self.origin}
        self.online = loaded.model
        self.meta = {
            k: loaded.meta.get(k)
            for k in ("flavor", "task", "labels", "positive_label", "features")
        }
        self.learned = 0
        self.since_snapshot = 0
        self.since_metrics = 0
        self.snapshot_wall = clock
        self.metrics_wall = clock
        self.window = window
        labels = self.meta.get("labels") or []
        self.binary = self.task == "classification" and len(labels) <= 2
        self.perf = PrequentialWindow(self.task, window, self.binary)
        self.perf_frozen: PrequentialWindow | None = PrequentialWindow(
            self.task, window, self.binary
        )
        self.first_t: int | None = None
        self.last_t: int | None = None
        self.reference: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=max(0, reference_rows)
        )
        self._init_transient()

    # Transient helpers (label coercion, the positive class): rebuilt after unpickling.

    def _init_transient(self) -> None:
        self._loaded = LoadedModel(self.online, {**self.meta, "version": self.head})
        self._labels: dict[Any, Any] = {}
        self.classifier = self.task == "classification"
        # A classifier learns the labels it was registered with; anything else (a typo,
        # "maybe") would silently become a class, so it is refused (a dead letter).
        self._known = (
            {label_str(v) for v in self.meta.get("labels") or []} if self.classifier else set()
        )
        positive = self.meta.get("positive_label")
        self.positive = self.coerce(positive if positive is not None else "1")
        names = [f["name"] for f in self.meta.get("features") or []]
        self.feature_names = names or None

    def __getstate__(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in self.__dict__.items()
            if k not in ("_loaded", "_labels", "_known", "classifier", "positive", "feature_names")
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_transient()

    @property
    def task(self) -> str:
        """``classification`` or ``regression``."""
        return self.meta.get("task") or "classification"

    def coerce(self, label: Any) -> Any:
        """An outcome's label as the model learns it, cached per raw value."""
        try:
            return self._labels[label]
        except KeyError:
            pass
        except TypeError:  # unhashable: not a label
            raise ValueError(f"label {label!r} is not a string or a number") from None
        y = self._loaded.coerce_label(label)
        if self._known and label_str(y) not in self._known:
            raise ValueError(
                f"label {label!r} is not one of the model's labels "
                f"({', '.join(sorted(self._known))})"
            )
        if len(self._labels) < 10_000:
            self._labels[label] = y
        return y

    def reset_frozen(self, version: int | None) -> None:
        """The champion changed: its evaluator starts over."""
        self.champion = version
        self.perf_frozen = (
            PrequentialWindow(self.task, self.window, self.binary) if version is not None else None
        )

    def summary(self) -> dict[str, Any]:
        """The line on the status page."""
        return {
            "origin": self.origin,
            "head": self.head,
            "champion": self.champion,
            "learned": self.learned,
            "prequential": {k: round(v, 4) for k, v in self.perf.get().items()},
        }


# -- one partition ------------------------------------------------------------------------


class PartitionState:
    """Everything the learner holds for one repartition partition.

    ``pending`` maps join keys to ``P`` values (predictions waiting for their outcome),
    ``waiting`` maps ``b"o"`` keys to ``O`` values (outcomes waiting for their
    prediction); both in arrival order, the oldest first, which is the order they
    expire in. ``delta`` is what the changelog lacks since the last checkpoint
    (``None``: a tombstone), ``unlogged`` the keys added since then: an entry added and
    removed between two checkpoints never reaches the changelog.
    """

    def __init__(self, partition: int) -> None:
        self.partition = partition
        self.offset: int | None = None
        self.clock = 0
        self.lines: dict[str, ModelLine] = {}
        self.pending: collections.OrderedDict[bytes, bytes] = collections.OrderedDict()
        self.waiting: collections.OrderedDict[bytes, bytes] = collections.OrderedDict()
        self.delta: dict[bytes, bytes | None] = {}
        self.unlogged: set[bytes] = set()
        self.outbox: list[dict[str, Any]] = []
        # The newest source offset routed here, per (item kind, source partition).
        self.routed: dict[tuple[int, int], int] = {}
        self.outputs: list[Any] = []
        self.counts: collections.Counter[str] = collections.Counter()
        self.dirty = False
        self.checkpoint_id = 0
        self.slots = 0
        self.last_input_wall = time.monotonic()
        self.tick_wall = 0.0

    # changelog bookkeeping

    def put(self, table: collections.OrderedDict[bytes, bytes], key: bytes, value: bytes) -> None:
        """Add `key` to `table` (pending or waiting) and to the changelog delta; a key
        already there moves to the end, as reading the changelog back would put it."""
        delta = self.delta
        # Whether the changelog has a value for `key`: a tombstone in the delta says it
        # had one, a value in the delta says so unless it came after the last checkpoint,
        # and outside the delta an entry of `table` is one the last checkpoint wrote.
        logged = (delta[key] is None or key not in self.unlogged) if key in delta else key in table
        table.pop(key, None)
        table[key] = value
        delta.pop(key, None)
        delta[key] = value
        if logged:
            self.unlogged.discard(key)
        else:
            self.unlogged.add(key)

    def forget(self, key: bytes) -> None:
        """`key` left pending/waiting: tombstone it, unless the changelog never had it."""
        if key in self.unlogged:
            self.unlogged.discard(key)
            self.delta.pop(key, None)
        else:
            self.delta[key] = None

    def first_routing(self, kind: int, partition: int, offset: int) -> bool:
        """Whether an item routed from `offset` of source `partition` is new here, not a
        second routing of one already folded in (a router killed or aborted mid-batch
        on the embedded broker leaves its bundles readable, and the batch is routed
        again). A source partition's items arrive in offset order.

        >>> state = PartitionState(0)
        >>> [state.first_routing(ord("O"), 2, o) for o in (5, 6, 5, 6, 7)]
        [True, True, False, False, True]
        """
        where = (kind, partition)
        if offset <= self.routed.get(where, -1):
            return False
        self.routed[where] = offset
        return True

    def next_expiry(self, join_ttl_ms: int, outcome_wait_ms: int) -> int:
        """Routed-at time at which the oldest entry expires (a large number: none)."""
        out = 1 << 62
        for _k, v in self.pending.items():
            out = routed_at(v) + join_ttl_ms
            break
        for _k, v in self.waiting.items():
            out = min(out, routed_at(v) + outcome_wait_ms)
            break
        return out

    def checkpoint(self) -> dict[str, Any]:
        """The checkpoint (the changelog holds pending and waiting entries)."""
        return {
            "format": STATE_FORMAT,
            "partition": self.partition,
            "offset": self.offset,
            "clock": self.clock,
            "lines": self.lines,
            "outbox": self.outbox,
            "routed": self.routed,
            "counts": dict(self.counts),
        }

    def load(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`checkpoint` (pending and waiting entries come from the changelog)."""
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"learner checkpoint format {state.get('format')!r} is not 1")
        self.offset = state["offset"]
        self.clock = int(state["clock"])
        self.lines = dict(state["lines"])
        self.outbox = list(state["outbox"])
        self.routed = dict(state.get("routed") or {})
        self.counts = collections.Counter(state.get("counts") or {})


def read_state(
    settings: Settings,
    topic: str,
    partitions: Iterable[int],
    timeout: float = 120.0,
) -> dict[int, PartitionState]:
    """The committed state of `partitions`, read back from the changelog `topic`.

    Every partition is read from its start to its end under ``read_committed``, and
    only up to its last complete checkpoint (what a transaction cut short left readable
    on the embedded broker is dropped), so the checkpoint and the pending entries read
    are those of one batch. A partition without a checkpoint starts empty (``offset``
    None: from the start of its input).
    """
    wanted = sorted(set(partitions))
    states = {p: PartitionState(p) for p in wanted}
    replays = {p: _Replay(states[p]) for p in wanted}
    if wanted:
        group = f"lastmile-learner-restore-{uuid.uuid4().hex[:8]}"
        for msg in read_to_end(settings, topic, group, timeout, partitions=wanted):
            replays[msg.partition()].add(msg.key(), msg.value())
    for replay in replays.values():
        replay.finish()
    return states


def state_from_records(
    partition: int, records: Iterable[tuple[bytes | None, bytes | None]]
) -> PartitionState:
    """A partition's state from its changelog records ``(key, value)`` in log order (what
    :func:`read_state` does with what it reads; tests feed it directly)."""
    state = PartitionState(partition)
    replay = _Replay(state)
    for key, value in records:
        replay.add(key, value)
    replay.finish()
    return state


def _is_slot_tombstone(key: bytes | None, value: Any) -> bool:
    return value is None and bool(key) and key.startswith(CHECKPOINT_PREFIX)


class _Replay:
    """Applies changelog records in log order, a checkpoint's worth at a time: the
    entries of a batch and its checkpoint are applied once the checkpoint's last chunk is
    read. What follows the last complete checkpoint is dropped: on the embedded broker a
    transaction cut short by a crash or an abort stays readable, and its entries belong
    to a checkpoint that never was."""

    def __init__(self, state: PartitionState) -> None:
        self.state = state
        self.reader = SnapshotReader()
        self.staged: list[tuple[bytes | None, Any]] = []

    def add(self, key: bytes | None, value: Any) -> None:
        self.staged.append((key, value))
        if value is not None and key and key.startswith(CHECKPOINT_PREFIX):
            try:
                _sid, index, count = chunk_header(value)
            except SnapshotError:
                return
            if index == count - 1:
                for k, v in self.staged:
                    _apply(self.state, self.reader, k, v)
                self.staged = []

    def finish(self) -> None:
        staged = self.staged
        # Tombstones of slots the last checkpoint no longer uses follow its last chunk.
        whole = 0
        while whole < len(staged) and _is_slot_tombstone(*staged[whole]):
            whole += 1
        for key, value in staged[:whole]:
            _apply(self.state, self.reader, key, value)
        if len(staged) > whole:
            log.warning(
                "learner: partition %d: %d changelog records after the last complete "
                "checkpoint (a batch cut short) are ignored",
                self.state.partition,
                len(staged) - whole,
            )
        _finish(self.state, self.reader)


def _apply(state: PartitionState, reader: SnapshotReader, key: bytes | None, value: Any) -> None:
    if not key:
        return
    head = key[0]
    if head == PENDING:
        table = state.pending
    elif head == WAITING:
        table = state.waiting
    elif key.startswith(CHECKPOINT_PREFIX) and key[2:].isdigit():
        index = int(key[2:])
        reader.add(index, value)
        if index == 0:
            state.slots = chunk_header(value)[2] if value is not None else 0
        return
    else:
        return
    if value is None:
        table.pop(key, None)
    else:
        table.pop(key, None)
        table[key] = value


def _finish(state: PartitionState, reader: SnapshotReader) -> None:
    result = reader.result()
    if result is None:
        if state.pending or state.waiting:
            # Entries are only ever written with a checkpoint: without one they are
            # left-overs of a state topic another learner version wrote. Start clean.
            log.warning(
                "learner: partition %d has changelog entries but no checkpoint; ignoring them",
                state.partition,
            )
            state.pending.clear()
            state.waiting.clear()
        return
    snapshot_id, checkpoint = result
    state.load(checkpoint)
    state.checkpoint_id = snapshot_id
