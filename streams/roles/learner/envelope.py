"""The repartition envelope: how routed predictions, outcomes and ticks travel to the
learning stage.

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
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import orjson

from streams.kafka.held_message import HeldMessage
from streams.kafka.partitioning import model_partition as model_partition  # re-exported

KIND_PREDICTION = ord("P")
KIND_OUTCOME = ord("O")
KIND_TICK = ord("T")
KIND_BUNDLE = ord("B")
#: Payload bytes per bundle record: well under Kafka's default 1 MB message size.
BUNDLE_BYTES = 256 * 1024


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
    >>> m = source_message(v)
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


def source_message(value: bytes) -> HeldMessage:
    """The original outcome message of an ``O`` value, for
    :func:`streams.kafka.deadletters.dead_letter`."""
    at = 13 + int.from_bytes(value[9:13], "big")
    size = int.from_bytes(value[at : at + 4], "big")
    where = orjson.loads(memoryview(value)[at + 4 : at + 4 + size])
    topic, partition, offset, ts, headers, no_key, no_value = where
    at += 4 + size
    size = int.from_bytes(value[at : at + 4], "big")
    return HeldMessage(
        topic,
        partition,
        offset,
        None if no_key else value[at + 4 : at + 4 + size],
        None if no_value else value[at + 4 + size :],
        [(k, _unb64(v)) for k, v in headers or []],
        ts,
    )
