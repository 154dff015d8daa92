"""The sink frames Avro: Kafka values, as they are, into an Avro object container.

>>> frame = AvroFramer({"type": "record", "name": "R", "fields": [{"name": "x", "type": "long"}]})
>>> data = frame.frame(1, [7], [b"\\x04"])
>>> import fastavro, io
>>> list(fastavro.reader(io.BytesIO(data)))
[{'kafka_partition': 1, 'kafka_offset': 7, 'x': 2}]
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

from schemas.wire import encode_long

__all__ = ["SYNC", "AvroFramer", "avro_count"]

# Sync marker of every container the sink writes; any 16 bytes do, and a constant
# one makes the framing a pure function of the batch.
SYNC = b"lastmile.sink.v1"
assert len(SYNC) == 16


_SMALL = [encode_long(i) for i in range(1 << 13)]  # block sizes and small offsets


def avro_count(n: int) -> bytes:
    """encode_long for 0 <= n: the framing encodes an offset per record, so this one
    is written out for the common lengths (a loop costs twice as much).

    >>> checked = (*range(0, 20000, 7), 2**20 - 1, 2**20, 2**27 - 1, 2**27, 2**40)
    >>> all(avro_count(n) == encode_long(n) for n in checked)
    True
    """
    if n < 8192:
        return _SMALL[n]
    z = n << 1  # >= 0x4000: three bytes at least
    if z < 0x200000:
        return bytes((z & 0x7F | 0x80, (z >> 7) & 0x7F | 0x80, z >> 14))
    if z < 0x10000000:
        return bytes((z & 0x7F | 0x80, (z >> 7) & 0x7F | 0x80, (z >> 14) & 0x7F | 0x80, z >> 21))
    return encode_long(n)


def _avro_bytes(b: bytes) -> bytes:
    return encode_long(len(b)) + b


class AvroFramer:
    """Frames Avro bodies of one record schema as an object container file.

    The container's schema is the record with two fields put first,
    ``kafka_partition`` (int) and ``kafka_offset`` (long); since a record's binary
    form is its fields' forms in order, a framed record is just those two varints
    followed by the Kafka value, unchanged. Each record gets an Avro block of its
    own: ClickHouse reads a block's records from that block's bytes, so a malformed
    value fails on its own instead of shifting every record after it.
    """

    def __init__(self, record_schema: Mapping[str, Any]) -> None:
        schema = copy.deepcopy(dict(record_schema))
        schema["fields"] = [
            {"name": "kafka_partition", "type": "int"},
            {"name": "kafka_offset", "type": "long"},
            *schema["fields"],
        ]
        meta = {"avro.schema": json.dumps(schema).encode(), "avro.codec": b"null"}
        self.header = (
            b"Obj\x01"
            + encode_long(len(meta))
            + b"".join(_avro_bytes(k.encode()) + _avro_bytes(v) for k, v in meta.items())
            + b"\x00"
            + SYNC
        )

    def frame(
        self, partition: int, offsets: Sequence[int], bodies: Sequence[bytes], prefix: bytes = b""
    ) -> bytes:
        """``prefix`` (e.g. the INSERT statement), the header, then one block per record."""
        pre = encode_long(partition)
        count = avro_count
        parts = [prefix, self.header]
        append = parts.append
        for offset, body in zip(offsets, bodies, strict=True):
            head = pre + count(offset)
            append(b"\x02" + count(len(head) + len(body)) + head)
            append(body)
            append(SYNC)
        return b"".join(parts)
