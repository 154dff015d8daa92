"""What the monitor role must carry across a restart, and how it is written down.

Pure computation, like the rest of :mod:`monitors`: no Kafka here. The role
(:mod:`streams.roles.monitor`) decides *when* to snapshot and where the bytes go.

- :class:`RateCounter` — a window state counting dead letters against processed events
  (the ``dead_letter_rate`` metric).
- :class:`JoinBuffer` — predictions waiting for their outcome, by request id, bounded;
  and outcomes that arrived before their prediction.
- :func:`encode_snapshot` / :class:`SnapshotReader` — a state dict as a list of chunks
  (each under Kafka's default 1 MB message limit) and back.

Snapshot format: the state dict is pickled (the River objects of the detectors and the
performance metrics only pickle) and compressed with zstandard, then cut into chunks;
each chunk starts with a 20-byte header ``b"LMS1"``, the snapshot id (u64), the chunk's
index and the number of chunks (u32 each). A snapshot is complete when every chunk of the
id carried by chunk 0 is present. Pickle means the bytes must come from a trusted writer:
the monitor's state topic should be writable by the monitor only (as the registry's
artifacts are checked by sha256; here Kafka ACLs are the boundary).

>>> chunks = encode_snapshot({"a": [1.5, 2.5]}, snapshot_id=7, chunk_size=16)
>>> len(chunks) > 1
True
>>> reader = SnapshotReader()
>>> for i, c in enumerate(chunks):
...     reader.add(i, c)
>>> reader.result()
(7, {'a': [1.5, 2.5]})

"""

from __future__ import annotations

import collections
import importlib
import io
import pickle
import struct
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import zstandard

__all__ = [
    "CHUNK_SIZE",
    "JoinBuffer",
    "RateCounter",
    "SnapshotError",
    "SnapshotReader",
    "chunk_header",
    "decode_snapshot",
    "encode_snapshot",
    "register_moved_module",
]

#: Bytes of payload per chunk: half of Kafka's default message.max.bytes (1 MB).
CHUNK_SIZE = 512 * 1024
_MAGIC = b"LMS1"
_HEADER = struct.Struct(">4sQII")

# Pickle names each class by its module, so a snapshot written before a module moved
# names a module that is gone. Whoever moved it says where its classes went, and a restore
# after an upgrade finds them there instead of failing (and starting the state over).
_MOVED_MODULES: dict[str, tuple[str, ...]] = {}


def register_moved_module(old: str, *new: str) -> None:
    """Classes pickled from module `old` are now in one of the modules `new` (tried in order).

    >>> import types, sys
    >>> register_moved_module("monitors.old_counter", "monitors.state")
    >>> fake = types.ModuleType("monitors.old_counter")
    >>> class RateCounter(RateCounter):  # stands in for the class as it was pickled
    ...     pass
    >>> RateCounter.__module__ = fake.__name__
    >>> RateCounter.__qualname__ = "RateCounter"
    >>> fake.RateCounter = RateCounter
    >>> sys.modules[fake.__name__] = fake
    >>> chunks = encode_snapshot({"rate": RateCounter()}, snapshot_id=1)
    >>> del sys.modules[fake.__name__]
    >>> type(decode_snapshot(chunks)[1]["rate"]).__module__
    'monitors.state'
    """
    _MOVED_MODULES[old] = tuple(new)


class _RenamingUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        for candidate in _MOVED_MODULES.get(module, ()):
            found = getattr(importlib.import_module(candidate), name, None)
            if found is not None:
                return found
        return super().find_class(module, name)


class SnapshotError(ValueError):
    """Bytes that are not a complete, readable snapshot."""


class RateCounter:
    """Dead letters and processed events in one window: a window state.

    ``update`` takes True for a dead letter, False for a processed event;
    ``update_many`` a mapping ``{"dead": bool array}`` (what windows slice).

    >>> c = RateCounter()
    >>> c.update(True); c.update_many({"dead": np.array([False, False, True])})
    >>> c.dead, c.processed, c.n, round(c.rate, 3)
    (2, 2, 4, 0.5)
    >>> RateCounter.from_dict(c.to_dict()).merge(c).n
    8

    """

    __slots__ = ("dead", "processed")

    def __init__(self) -> None:
        self.dead = 0
        self.processed = 0

    @property
    def n(self) -> int:
        return self.dead + self.processed

    @property
    def rate(self) -> float:
        return self.dead / self.n if self.n else float("nan")

    def update(self, x: Any) -> None:
        if x:
            self.dead += 1
        else:
            self.processed += 1

    def update_many(self, batch: Mapping[str, Any]) -> None:
        dead = np.asarray(batch["dead"], dtype=bool)
        k = int(dead.sum())
        self.dead += k
        self.processed += dead.size - k

    def merge(self, other: RateCounter) -> RateCounter:
        self.dead += other.dead
        self.processed += other.processed
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"dead": self.dead, "processed": self.processed}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RateCounter:
        c = cls()
        c.dead, c.processed = int(d["dead"]), int(d["processed"])
        return c


class JoinBuffer:
    """Predictions awaiting their outcome, by request id; the oldest go first when full.

    A request scored by a champion and a shadow has two entries under one id. An entry
    is any picklable tuple; the role stores (model, version, segments, score, label,
    event time). `capacity` bounds the number of request ids held, so memory (and the
    snapshot) stay bounded whatever the label delay; `evicted` counts what was dropped
    unjoined. Outcomes that arrive first wait in a second, smaller buffer
    (:meth:`hold_outcome`), since two topics are read in no fixed order.

    >>> j = JoinBuffer(capacity=2)
    >>> j.add("r1", ("m", "1")); j.add("r1", ("m", "2")); j.add("r2", ("m", "1"))
    >>> j.add("r3", ("m", "1"))   # r1 is evicted
    >>> j.pop("r1"), j.pop("r2"), j.evicted, len(j)
    ([], [('m', '1')], 1, 1)
    >>> j.hold_outcome("r9", {"label": "1"}); j.take_outcome("r9")
    {'label': '1'}

    """

    def __init__(self, capacity: int = 100_000, outcome_capacity: int | None = None) -> None:
        self.capacity = capacity
        self.outcome_capacity = (
            outcome_capacity if outcome_capacity is not None else max(1, capacity // 4)
        )
        self.evicted = 0
        self.outcomes_evicted = 0
        self._entries: collections.OrderedDict[str, list[Any]] = collections.OrderedDict()
        self._outcomes: collections.OrderedDict[str, Any] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def waiting_outcomes(self) -> int:
        return len(self._outcomes)

    def add(self, request_id: str, entry: Any) -> None:
        if self.capacity <= 0:
            return
        entries = self._entries.get(request_id)
        if entries is not None:
            entries.append(entry)
            return
        self._entries[request_id] = [entry]
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
            self.evicted += 1

    def pop(self, request_id: str) -> list[Any]:
        """The entries of `request_id`, removed: an outcome joins once."""
        return self._entries.pop(request_id, [])

    def hold_outcome(self, request_id: str, outcome: Any) -> None:
        self._outcomes[request_id] = outcome
        while len(self._outcomes) > self.outcome_capacity:
            self._outcomes.popitem(last=False)
            self.outcomes_evicted += 1

    def take_outcome(self, request_id: str) -> Any | None:
        return self._outcomes.pop(request_id, None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity,
            "outcome_capacity": self.outcome_capacity,
            "evicted": self.evicted,
            "outcomes_evicted": self.outcomes_evicted,
            "entries": [(rid, list(e)) for rid, e in self._entries.items()],
            "outcomes": list(self._outcomes.items()),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], capacity: int | None = None) -> JoinBuffer:
        """Restore; a new `capacity` (configuration changed) trims the oldest entries."""
        j = cls(d["capacity"] if capacity is None else capacity, d["outcome_capacity"])
        j.evicted, j.outcomes_evicted = int(d["evicted"]), int(d["outcomes_evicted"])
        for rid, entries in d["entries"]:
            j._entries[rid] = list(entries)
        for rid, outcome in d["outcomes"]:
            j._outcomes[rid] = outcome
        while len(j._entries) > max(j.capacity, 0):
            j._entries.popitem(last=False)
            j.evicted += 1
        return j


def encode_snapshot(
    state: Mapping[str, Any], snapshot_id: int, chunk_size: int = CHUNK_SIZE, level: int = 3
) -> list[bytes]:
    """The chunks of one snapshot of `state` (a picklable mapping)."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    blob = zstandard.ZstdCompressor(level=level).compress(
        pickle.dumps(dict(state), protocol=pickle.HIGHEST_PROTOCOL)
    )
    pieces = [blob[i : i + chunk_size] for i in range(0, len(blob), chunk_size)] or [b""]
    count = len(pieces)
    return [_HEADER.pack(_MAGIC, snapshot_id, i, count) + p for i, p in enumerate(pieces)]


def chunk_header(chunk: bytes) -> tuple[int, int, int]:
    """(snapshot id, index, count) of a chunk; :class:`SnapshotError` if it is not one."""
    if len(chunk) < _HEADER.size:
        raise SnapshotError("not a monitor snapshot chunk: too short")
    magic, sid, index, count = _HEADER.unpack_from(chunk)
    if magic != _MAGIC or count < 1 or index >= count:
        raise SnapshotError("not a monitor snapshot chunk: bad header")
    return sid, index, count


class SnapshotReader:
    """Collects chunk records (slot index -> latest value, as a compacted topic keeps them)
    and assembles the newest complete snapshot.

    Feed every record of the snapshot's keys in log order with :meth:`add` (``None`` is
    a tombstone); :meth:`result` is ``(snapshot_id, state)`` or None when there is no
    complete snapshot. A snapshot is complete when its last chunk is read with all the
    others before it; a newer one cut short (on the embedded broker a transaction a
    crash interrupted stays readable) leaves the last complete one in force.

    >>> reader = SnapshotReader()
    >>> for i, chunk in enumerate(encode_snapshot({"n": 1}, 1)):
    ...     reader.add(i, chunk)
    >>> reader.add(0, encode_snapshot({"n": 2, "pad": "x" * 100}, 2, chunk_size=20)[0])
    >>> reader.result()
    (1, {'n': 1})
    """

    def __init__(self) -> None:
        self._slots: dict[int, bytes] = {}
        self._complete: list[bytes] | None = None

    def add(self, index: int, value: bytes | None) -> None:
        if value is None:
            self._slots.pop(index, None)
            return
        self._slots[index] = value
        try:
            sid, position, count = chunk_header(value)
        except SnapshotError:
            return
        if position == count - 1:
            chunks = [self._slots.get(i) for i in range(count)]
            if all(c is not None and chunk_header(c)[0] == sid for c in chunks):
                self._complete = chunks  # type: ignore[assignment]

    def result(self) -> tuple[int, dict[str, Any]] | None:
        if self._complete is not None:
            return _assemble(self._complete)
        first = self._slots.get(0)
        if first is None:
            return None
        sid, _, count = chunk_header(first)
        parts = []
        for i in range(count):
            chunk = self._slots.get(i)
            if chunk is None:
                raise SnapshotError(f"snapshot {sid}: chunk {i} of {count} is missing")
            csid, cindex, ccount = chunk_header(chunk)
            if (csid, cindex, ccount) != (sid, i, count):
                raise SnapshotError(f"snapshot {sid}: chunk {i} belongs to snapshot {csid}")
            parts.append(chunk)
        return _assemble(parts)


def _assemble(chunks: list[bytes]) -> tuple[int, dict[str, Any]]:
    sid = chunk_header(chunks[0])[0]
    try:
        raw = zstandard.ZstdDecompressor().decompress(b"".join(c[_HEADER.size :] for c in chunks))
        state = _RenamingUnpickler(io.BytesIO(raw)).load()
    except Exception as err:  # a corrupt snapshot can raise anything pickle or zstd raise
        raise SnapshotError(f"snapshot {sid} cannot be read: {err}") from err
    if not isinstance(state, dict):
        raise SnapshotError(f"snapshot {sid} is not a state mapping")
    return sid, state


def decode_snapshot(chunks: Iterable[bytes]) -> tuple[int, dict[str, Any]] | None:
    """``(snapshot_id, state)`` from a snapshot's chunks in any order."""
    reader = SnapshotReader()
    for chunk in chunks:
        reader.add(chunk_header(chunk)[1], chunk)
    return reader.result()
