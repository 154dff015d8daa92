"""The validating walker: a value checked against an expanded schema, and normalised.

One walker serves every slow path: JSON input msgspec refused (ISO-8601 times become
epoch milliseconds, defaults are filled in), Python records the generated writer
refused (numpy numbers, datetimes and tuples are converted; anything else is worded
exactly), and the finite-double check of old-version Avro data. :func:`conform` returns
the normal record or raises :class:`Invalid` naming the path and the problem;
:func:`validate_error` and :func:`where` turn that into the codec's error text.

>>> tree = {"type": "record", "name": "R", "fields": [
...     {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
...     {"name": "tag", "type": ["null", "string"], "default": None}]}
>>> conform(tree, {"at": "1970-01-01T00:00:01Z"}, "", True, True)
{'at': 1000, 'tag': None}
>>> try:
...     conform(tree, {"at": 1.5}, "", False, True)
... except Invalid as err:
...     print(where("R", err))
R.at must be a time: epoch milliseconds (an integer) or a datetime, got the number 1.5
"""

from __future__ import annotations

import copy
import datetime as _dt
import math
import operator
import struct
from collections.abc import Mapping
from typing import Any

from schemas.catalog import INT_MAX, INT_MIN, LONG_MAX, LONG_MIN, TIME_LOGICAL, base_type
from schemas.errors import DecodeError, shorten
from schemas.times import to_millis

__all__ = [
    "Invalid",
    "conform",
    "default_value",
    "describe",
    "union_class",
    "validate_error",
    "where",
]


class Invalid(Exception):
    """A value that does not fit its schema: ``path`` says where, ``problem`` what is wrong."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path} {problem}" if path else problem)
        self.path = path
        self.problem = problem


def describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {shorten(value, 40)!r}"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"{len(value)} bytes"
    if isinstance(value, Mapping):
        return (
            "an object"
            if not value
            else f"an object with keys {shorten(', '.join(map(str, value)), 40)}"
        )
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)}"
    return f"a {type(value).__name__}"


def _type_label(node: Any) -> str:
    kind, logical = base_type(node)
    if isinstance(kind, list):
        return " or ".join(_type_label(b) for b in kind)
    if isinstance(kind, dict):
        return {"record": "an object", "map": "an object (map)", "array": "a list"}.get(
            kind["type"], kind["type"]
        )
    if logical in TIME_LOGICAL:
        return "a time (epoch milliseconds or ISO-8601)"
    return {
        "long": "an integer",
        "int": "an integer",
        "double": "a number",
        "float": "a number",
        "boolean": "true/false",
        "null": "null",
        "string": "a string",
        "bytes": "bytes",
    }.get(kind, kind)


def _key_path(path: str, key: str) -> str:
    return f"{path}[{key!r}]"


def _is_boolish(value: Any) -> bool:
    """A bool, or numpy's bool (``numpy.bool_``, named ``numpy.bool`` since numpy 2)."""
    if isinstance(value, bool):
        return True
    kind = type(value)
    return kind.__module__ == "numpy" and kind.__name__ in ("bool_", "bool")


def conform(node: Any, value: Any, path: str, from_json: bool, finite: bool) -> Any:
    kind, logical = base_type(node)
    if isinstance(kind, list):
        return _conform_union(kind, value, path, from_json, finite)
    if isinstance(kind, dict):
        t = kind["type"]
        if t in ("record", "error"):
            return _conform_record(kind, value, path, from_json, finite)
        if t == "map":
            if not isinstance(value, Mapping):
                raise Invalid(path, f"must be an object (map), got {describe(value)}")
            plain = _plain_types(kind["values"])
            if float in plain and value:
                # All-number feature maps, checked in C: one set of types, one sum
                # (finite numbers whose sum is finite; else the per-value check below).
                values = value.values()
                if (
                    set(map(type, values)) == {float}
                    and all(map(str.__instancecheck__, value))  # every key a str
                    and (not finite or math.isfinite(sum(values)))
                ):
                    return dict(value)
            out = {}
            for k, v in value.items():
                if not isinstance(k, str):
                    raise Invalid(path, f"has a key that is not a string: {k!r}")
                # Feature maps are the bulk of every request: values of exactly an
                # accepted type pass as they are; anything else (coercions, errors)
                # goes through the full check.
                vt = type(v)
                if (
                    vt in plain
                    and (vt is not float or not finite or math.isfinite(v))
                    and (vt is not str or v.isascii())
                    and (vt is not int or LONG_MIN <= v <= LONG_MAX)
                ):
                    out[k] = v
                else:
                    out[k] = conform(kind["values"], v, _key_path(path, k), from_json, finite)
            return out
        if t == "array":
            if not isinstance(value, (list, tuple)):
                raise Invalid(path, f"must be a list, got {describe(value)}")
            return [
                conform(kind["items"], v, f"{path}[{i}]", from_json, finite)
                for i, v in enumerate(value)
            ]
        if t == "enum":
            if not isinstance(value, str) or value not in kind["symbols"]:
                raise Invalid(
                    path, f"must be one of {', '.join(kind['symbols'])}; got {describe(value)}"
                )
            return value
        if t == "fixed":
            value = _conform_bytes(value, path, from_json)
            if len(value) != kind["size"]:
                raise Invalid(path, f"must be exactly {kind['size']} bytes, got {len(value)}")
            return value
        raise Invalid(path, f"has unsupported schema type {t}")
    return _conform_primitive(kind, logical, value, path, from_json, finite)


_PLAIN_TYPES: dict[int, tuple[Any, frozenset]] = {}
_PRIMITIVE_PYTHON = {
    "null": type(None),
    "boolean": bool,
    "long": int,
    "double": float,
    "string": str,
}


def _plain_types(node: Any) -> frozenset:
    """Python types a value of ``node`` may have to be accepted unchanged: only for a
    primitive or a union of primitives with no logical type (empty otherwise)."""
    cached = _PLAIN_TYPES.get(id(node))
    if cached is not None and cached[0] is node:
        return cached[1]
    branches = node if isinstance(node, list) else [node]
    types = set()
    for branch in branches:
        kind, logical = base_type(branch)
        if logical is not None or not isinstance(kind, str) or kind not in _PRIMITIVE_PYTHON:
            types = set()
            break
        types.add(_PRIMITIVE_PYTHON[kind])
    result = frozenset(types)
    _PLAIN_TYPES[id(node)] = (node, result)
    return result


def _conform_bytes(value: Any, path: str, from_json: bool) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if from_json and isinstance(value, str):
        try:
            return value.encode("latin-1")  # Avro's JSON encoding of bytes
        except UnicodeEncodeError:
            raise Invalid(path, "must be bytes (as a string of code points 0-255)") from None
    raise Invalid(path, f"must be bytes, got {describe(value)}")


def _conform_primitive(
    kind: str, logical: str | None, value: Any, path: str, from_json: bool, finite: bool
) -> Any:
    if kind == "null":
        if value is not None:
            raise Invalid(path, f"must be null, got {describe(value)}")
        return None
    if kind == "boolean":
        if not _is_boolish(value):
            raise Invalid(path, f"must be true or false, got {describe(value)}")
        return bool(value)
    if kind in ("int", "long"):
        is_time = logical in TIME_LOGICAL
        if is_time:
            expected = (
                "a time: epoch milliseconds (an integer) or an ISO-8601 string with a time zone"
                if from_json
                else "a time: epoch milliseconds (an integer) or a datetime"
            )
        else:
            expected = "an integer"
        if is_time and (isinstance(value, _dt.datetime) or (from_json and isinstance(value, str))):
            try:
                value = to_millis(value)
            except (ValueError, OverflowError) as err:
                raise Invalid(path, f"is not a valid time: {err}") from None
        elif _is_boolish(value) or isinstance(value, (float, str, bytes)):
            raise Invalid(path, f"must be {expected}, got {describe(value)}")
        elif not isinstance(value, int):
            try:
                value = operator.index(value)  # numpy integers
            except TypeError:
                raise Invalid(path, f"must be {expected}, got {describe(value)}") from None
        low, high = (INT_MIN, INT_MAX) if kind == "int" else (LONG_MIN, LONG_MAX)
        if not low <= value <= high:
            raise Invalid(path, f"is out of range for a {kind} ({value})")
        return int(value)
    if kind in ("double", "float"):
        if _is_boolish(value) or not isinstance(value, (int, float)):
            try:
                if _is_boolish(value) or isinstance(value, (str, bytes)):
                    raise TypeError
                value = float(value)  # numpy floats and other reals
            except (TypeError, ValueError):
                raise Invalid(path, f"must be a number, got {describe(value)}") from None
        try:
            value = float(value)
        except OverflowError:
            raise Invalid(path, "is too large for a double") from None
        if finite and not math.isfinite(value):
            shown = "NaN" if value != value else "infinite"
            raise Invalid(
                path,
                f"is {shown}: NaN and infinity are not allowed (they poison models and statistics)",
            )
        if kind == "float":
            try:
                struct.pack("<f", value)
            except (OverflowError, struct.error):
                raise Invalid(path, "is out of range for a float") from None
        return value
    if kind == "string":
        if not isinstance(value, str):
            raise Invalid(path, f"must be a string, got {describe(value)}")
        try:
            value.encode()
        except UnicodeEncodeError:
            raise Invalid(path, "is not valid Unicode (it holds a lone surrogate)") from None
        return str(value)
    if kind == "bytes":
        return _conform_bytes(value, path, from_json)
    raise Invalid(path, f"has unsupported schema type {kind}")


def union_class(node: Any) -> str:
    kind, _ = base_type(node)
    if isinstance(kind, dict):
        return {
            "record": "dict",
            "error": "dict",
            "map": "dict",
            "array": "list",
            "enum": "str",
            "fixed": "bytes",
        }[kind["type"]]
    return {
        "null": "none",
        "boolean": "bool",
        "int": "num",
        "long": "num",
        "float": "num",
        "double": "num",
        "string": "str",
        "bytes": "bytes",
    }.get(kind, kind)


def _value_class(value: Any) -> str:
    if value is None:
        return "none"
    if _is_boolish(value):
        return "bool"
    if isinstance(value, (int, float)):
        return "num"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytes"
    if isinstance(value, Mapping):
        return "dict"
    if isinstance(value, (list, tuple)):
        return "list"
    return "other"


_BRANCH_CLASSES: dict[int, tuple[list, list[str]]] = {}


def _branch_classes(branches: list) -> list[str]:
    # Schema trees live as long as the codec, so their id is a stable cache key; the
    # list itself is kept beside the classes so the id cannot be reused.
    cached = _BRANCH_CLASSES.get(id(branches))
    if cached is None or cached[0] is not branches:
        cached = (branches, [union_class(b) for b in branches])
        _BRANCH_CLASSES[id(branches)] = cached
    return cached[1]


def _conform_union(branches: list, value: Any, path: str, from_json: bool, finite: bool) -> Any:
    # The happy path tries only the branches of the value's own class (a float tries
    # double before long), so a valid value costs no exception; anything else takes
    # the slow path below, which words the error.
    cls = _value_class(value)
    classes = _branch_classes(branches)
    candidates = [b for b, c in zip(branches, classes, strict=True) if c == cls]
    if cls == "num" and isinstance(value, float) and len(candidates) > 1:
        candidates.sort(key=lambda b: base_type(b)[0] not in ("double", "float"))
    for branch in candidates:
        try:
            return conform(branch, value, path, from_json, finite)
        except Invalid:
            pass
    errors = []
    for branch in branches:
        try:
            return conform(branch, value, path, from_json, finite)
        except Invalid as err:
            errors.append((branch, err))
    # Say what the closest branch disliked, else list the choices.
    cls = _value_class(value)
    matching = [
        (b, e)
        for b, e in errors
        if union_class(b) == cls or (from_json and cls == "str" and base_type(b)[1] in TIME_LOGICAL)
    ]
    if cls == "num" and len(matching) > 1:
        wanted = ("double", "float") if isinstance(value, float) else ("int", "long")
        matching = [(b, e) for b, e in matching if base_type(b)[0] in wanted][:1] or matching
    if len(matching) == 1:
        raise matching[0][1]
    labels = list(dict.fromkeys(_type_label(b) for b in branches))
    text = labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " or " + labels[-1]
    raise Invalid(path, f"must be {text}, got {describe(value)}")


def _conform_record(node: dict, value: Any, path: str, from_json: bool, finite: bool) -> dict:
    if not isinstance(value, Mapping):
        raise Invalid(path, f"must be an object, got {describe(value)}")
    names = [f["name"] for f in node["fields"]]
    unknown = [k for k in value if k not in names]
    if unknown:
        short = node["name"].rsplit(".", 1)[-1]
        raise Invalid(path, f"has unknown field {unknown[0]!r} ({short} has: {', '.join(names)})")
    out = {}
    for f in node["fields"]:
        name = f["name"]
        if name in value:
            v = value[name]
            vt = type(v)
            # As in maps: a value of exactly an accepted plain type needs no full check.
            if (
                vt in _plain_types(f["type"])
                and (vt is not float or not finite or math.isfinite(v))
                and (vt is not str or v.isascii())
                and (vt is not int or LONG_MIN <= v <= LONG_MAX)
            ):
                out[name] = v
                continue
            sub = f"{path}.{name}" if path else name
            out[name] = conform(f["type"], v, sub, from_json, finite)
        elif "default" in f:
            out[name] = default_value(f["type"], f["default"])
        else:
            raise Invalid(path, f"is missing required field {name!r}")
    return out


def default_value(node: Any, default: Any) -> Any:
    """The Python value of a field's default (a union's default belongs to its first branch)."""
    if default is None or type(default) in (str, bool):
        return default  # immutable: no copy needed (the common case, on every message)
    if default == {} or default == []:
        return type(default)()
    kind, _ = base_type(node)
    if isinstance(kind, list):
        kind, _ = base_type(kind[0])
    if kind == "bytes" or (isinstance(kind, dict) and kind["type"] == "fixed"):
        return default.encode("latin-1") if isinstance(default, str) else default
    if kind in ("double", "float") and isinstance(default, int) and not isinstance(default, bool):
        return float(default)
    return copy.deepcopy(default)


def where(name: str, err: Invalid) -> str:
    return f"{name}.{err.path} {err.problem}" if err.path else f"{name} {err.problem}"


def validate_error(name: str, err: Invalid) -> DecodeError:
    return DecodeError(where(name, err), stage="validate", schema=name)
