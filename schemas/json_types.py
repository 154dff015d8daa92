"""msgspec types generated from Avro schemas: JSON parsed and validated in one C pass.

A JSON request on ``scoring.requests`` costs ~2 µs to parse with orjson and ~3 µs
more to check against its schema in Python. msgspec does both in ~1.9 µs when
it is given a type to decode into, so :func:`json_decoder` builds that type from
the schema's tree: a ``msgspec.Struct`` per record (unknown fields forbidden,
defaults from the schema), ranges for ``int``/``long``, unions as unions.

It is a fast path only. Whatever it refuses (a time given as an ISO-8601 string,
a lone surrogate, any schema violation) goes to the codec's walker, which coerces
or words the error; a schema it cannot express (bytes, 32-bit floats, unions msgspec
cannot tell apart) gets no decoder at all.

>>> tree = {"type": "record", "name": "R", "fields": [
...     {"name": "id", "type": "string"},
...     {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
...     {"name": "x", "type": {"type": "map", "values": ["null", "long", "double"]}},
...     {"name": "tag", "type": ["null", "string"], "default": None}]}
>>> decode = json_decoder(tree)
>>> decode(b'{"id": "a", "at": 5, "x": {"u": 1.5, "v": 2}}')
{'id': 'a', 'at': 5, 'x': {'u': 1.5, 'v': 2}, 'tag': None}
>>> decode(b'{"id": "a", "at": "2024-05-01T12:00:00Z", "x": {}}') is None  # to the walker
True
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Annotated, Any, Union

import msgspec

from schemas.catalog import INT_MAX, INT_MIN, LONG_MAX, LONG_MIN, TIME_LOGICAL, base_type
from schemas.walker import default_value

# What msgspec raises for input it does not take. (A str holding a lone surrogate cannot
# even be read as UTF-8: UnicodeEncodeError.)
_REFUSED = (msgspec.DecodeError, msgspec.ValidationError, UnicodeError)

_PRIMITIVES: dict[str, Any] = {
    "null": None,
    "boolean": bool,
    "int": Annotated[int, msgspec.Meta(ge=INT_MIN, le=INT_MAX)],
    "long": Annotated[int, msgspec.Meta(ge=LONG_MIN, le=LONG_MAX)],
    "double": float,
    "string": str,
}


class Unsupported(Exception):
    """The schema has a type this module does not express; the walker does it all."""


def json_decoder(tree: Any) -> Callable[[bytes | str], dict | None] | None:
    """A function from JSON text to the record (a dict, fields in schema order, defaults
    filled) for a record schema `tree`, or to None for anything msgspec refuses; None
    when the schema cannot be expressed."""
    try:
        struct = _record_type(tree)
    except Unsupported:
        return None
    decode = msgspec.json.Decoder(struct).decode
    as_dict = msgspec.structs.asdict

    def decode_record(value: bytes | str) -> dict | None:
        try:
            return as_dict(decode(value))
        except _REFUSED:
            return None

    return decode_record


def _record_type(node: dict) -> type:
    fields: list[tuple] = []
    for f in node["fields"]:
        hint = _type_of(f["type"])
        if "default" not in f:
            fields.append((f["name"], hint))
            continue
        default = default_value(f["type"], f["default"])
        if isinstance(default, (dict, list)) and default:
            # msgspec copies empty containers only: a fresh copy per record for the rest
            default = msgspec.field(default_factory=lambda d=default: copy.deepcopy(d))
        fields.append((f["name"], hint, default))
    return msgspec.defstruct(
        node["name"].rsplit(".", 1)[-1],
        fields,
        kw_only=True,
        forbid_unknown_fields=True,
        module=__name__,
    )


def _type_of(node: Any) -> Any:
    kind, logical = base_type(node)
    if isinstance(kind, list):
        try:
            union = Union[tuple(_type_of(b) for b in kind)]  # noqa: UP007 - a runtime tuple
            msgspec.json.Decoder(union)  # msgspec refuses unions it cannot tell apart
        except TypeError as err:
            raise Unsupported(str(err)) from None
        return union
    if isinstance(kind, dict):
        if kind["type"] == "map":
            return dict[str, _type_of(kind["values"])]
        if kind["type"] == "array":
            return list[_type_of(kind["items"])]
        raise Unsupported(kind["type"])  # a nested record (asdict would leave it a Struct)
    if logical is not None and not (kind in ("long", "int") and logical in TIME_LOGICAL):
        raise Unsupported(logical)  # times as ISO-8601 strings: the walker
    if kind in _PRIMITIVES:
        return _PRIMITIVES[kind]
    raise Unsupported(kind)  # bytes, float (a range msgspec does not check), names
