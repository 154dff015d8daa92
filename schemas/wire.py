"""Avro's binary encoding of numbers: zig-zag varints, doubles and floats.

:func:`encode_long` is the plain zig-zag varint of any long, for whoever frames Avro by
hand (an object container file's blocks, say). The rest is what the generated readers
and writers (:mod:`schemas.codegen`) and the map templates (:mod:`schemas.templates`)
put in their namespaces: :func:`read_long` (a varint at a position, unrolled for the
common lengths), :func:`fast_long` and :func:`fast_int` (checked, with the tails of
recent large values cached), and the struct packers. They raise :class:`Bail` on
anything they do not expect, and the caller takes its slow path.

>>> encode_long(0), encode_long(-1), encode_long(64), encode_long(-65)
(b'\\x00', b'\\x01', b'\\x80\\x01', b'\\x81\\x01')
>>> read_long(encode_long(1714564800000), 0)
(1714564800000, 6)
>>> fast_long(1714564800000) == encode_long(1714564800000)
True
"""

from __future__ import annotations

import struct
from typing import Any

from schemas.catalog import INT_MAX, INT_MIN, LONG_MAX, LONG_MIN

__all__ = [
    "Bail",
    "LOW7",
    "PACK_D",
    "PACK_F",
    "SMALL_LONGS",
    "UNPACK_D",
    "UNPACK_F",
    "VARINT_TAILS",
    "encode_long",
    "fast_int",
    "fast_long",
    "read_long",
    "varint_tail",
]


class Bail(Exception):
    """Internal: the fast path met something it does not handle; take the slow path."""


UNPACK_D = struct.Struct("<d").unpack_from
UNPACK_F = struct.Struct("<f").unpack_from
PACK_D = struct.Struct("<d").pack
PACK_F = struct.Struct("<f").pack


def read_long(buf: bytes, pos: int) -> tuple[int, int]:
    """Zig-zag varint at pos -> (value, next pos); raises on truncation or overflow.

    Unrolled for the common lengths (a millisecond timestamp takes 6 bytes).
    """
    b = buf[pos]
    n = b & 0x7F
    if b < 128:
        return (n >> 1) ^ -(n & 1), pos + 1
    b = buf[pos + 1]
    n |= (b & 0x7F) << 7
    if b < 128:
        return (n >> 1) ^ -(n & 1), pos + 2
    b = buf[pos + 2]
    n |= (b & 0x7F) << 14
    if b < 128:
        return (n >> 1) ^ -(n & 1), pos + 3
    b = buf[pos + 3]
    n |= (b & 0x7F) << 21
    if b < 128:
        return (n >> 1) ^ -(n & 1), pos + 4
    b = buf[pos + 4]
    n |= (b & 0x7F) << 28
    if b < 128:
        return (n >> 1) ^ -(n & 1), pos + 5
    b = buf[pos + 5]
    n |= (b & 0x7F) << 35
    if b < 128:
        return (n >> 1) ^ -(n & 1), pos + 6
    pos += 6
    shift = 42
    while b & 0x80:
        if shift > 63:
            raise Bail
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
    if n >> 64:
        raise Bail
    return (n >> 1) ^ -(n & 1), pos


def encode_long(value: int) -> bytes:
    """Avro's zig-zag varint of a long (an int in the 64-bit range; not checked)."""
    n = ((value << 1) ^ (value >> 63)) & 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


SMALL_LONGS = tuple(encode_long(i) for i in range(-64, 64))  # index value + 64


# Varints of longs whose value >> 7 was seen lately: times (epoch millis) within a
# few minutes of each other share all but their first byte, so writing one is a
# lookup and a concatenation instead of a 6-step loop.
LOW7 = tuple(bytes([0x80 | n]) for n in range(128))
VARINT_TAILS: dict[int, bytes] = {}
_MAX_VARINT_TAILS = 4096


def varint_tail(high: int) -> bytes:
    """The varint of `high` (a zig-zag value >> 7), cached: the bytes after the first."""
    if len(VARINT_TAILS) >= _MAX_VARINT_TAILS:
        VARINT_TAILS.clear()
    # the zig-zag of a value whose zig-zag is `high` (even: high/2; odd: -(high+1)/2)
    tail = VARINT_TAILS[high] = encode_long((high >> 1) ^ -(high & 1))
    return tail


def fast_long(value: Any) -> bytes:
    """:func:`encode_long` of an int in the long range, the bytes after the first of a
    large one from :data:`VARINT_TAILS`; :class:`Bail` for anything else."""
    if type(value) is not int or not LONG_MIN <= value <= LONG_MAX:
        raise Bail
    n = ((value << 1) ^ (value >> 63)) & 0xFFFFFFFFFFFFFFFF
    if n < 0x4000:
        return encode_long(value)
    high = n >> 7
    return LOW7[n & 0x7F] + (VARINT_TAILS.get(high) or varint_tail(high))


def fast_int(value: Any) -> bytes:
    """:func:`encode_long` of an int in the (32-bit) int range; :class:`Bail` for anything else."""
    if type(value) is not int or not INT_MIN <= value <= INT_MAX:
        raise Bail
    return encode_long(value)
