"""The Open Inference Protocol (KServe V2 REST) inference request and response.

A request names one input per feature (shape ``[rows]`` or ``[rows, 1]``), or holds one
2-D input of shape ``[rows, k]`` whose ``parameters.columns`` names the k features; the
first dimension is the batch, one row per scoring request. ``data`` is flat or nested,
in JSON; or raw little-endian bytes after the JSON header (the binary tensor extension
tritonclient uses by default: ``Inference-Header-Content-Length`` and each input's
``parameters.binary_data_size``). ``parameters.entity_id`` makes the split sticky,
``parameters.event_time`` (epoch millis) dates the rows (else: when received); ``id``
becomes the request_id (``<id>-<row>`` for many rows).

>>> call = parse_infer(b'{"id": "r1", "inputs": [{"name": "x", "shape": [2], '
...                    b'"datatype": "FP64", "data": [1, 2.5]}], "parameters": {"entity_id": "e"}}')
>>> call.rows, call.request_id, call.entity_id
([{'x': 1.0}, {'x': 2.5}], 'r1', 'e')
>>> parse_infer(b'{"inputs": [{"name": "m", "shape": [1, 2], "datatype": "FP64", '
...             b'"data": [[3, 4]], "parameters": {"columns": ["a", "b"]}}]}').rows
[{'a': 3.0, 'b': 4.0}]
>>> parse_infer(b'{"inputs": [{"name": "x", "shape": [3], "datatype": "FP64", "data": [1]}]}')
Traceback (most recent call last):
...
streams.roles.gateway.errors.BadRequest: input 'x': shape [3] holds 3 values, data has 1
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
import orjson

from streams.roles.gateway.errors import BadRequest

__all__ = ["OUTPUTS", "Answer", "InferCall", "decode_request", "infer_response", "parse_infer"]

#: What every answer holds, as the protocol's output tensors: name -> datatype.
OUTPUTS = {"score": "FP64", "label": "BYTES", "model_version": "INT64", "variant": "BYTES"}

_NUMPY = {
    "BOOL": "?",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}


class _Tensor(msgspec.Struct):
    name: str
    datatype: str
    shape: list[int]
    data: list[Any] | None = None
    parameters: dict[str, Any] = {}


class _Request(msgspec.Struct):
    inputs: list[_Tensor]
    id: str | None = None
    parameters: dict[str, Any] = {}
    outputs: list[dict[str, Any]] | None = None


_decoder = msgspec.json.Decoder(_Request)


@dataclass
class InferCall:
    """A parsed request: one feature dict per row, and what the caller asked besides."""

    rows: list[dict[str, Any]]
    request_id: str | None = None
    entity_id: str | None = None
    outputs: list[str] | None = None  # the output names asked for; None: all
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Answer:
    """The answering variant's prediction for one row."""

    request_id: str
    score: float | None
    label: str | None
    version: int
    variant: str


def decode_request(decoder: msgspec.json.Decoder[Any], raw: bytes, what: str) -> Any:
    """`raw` decoded by `decoder`; a :class:`BadRequest` naming `what` when it does not fit,
    a dead letter of stage ``decode`` when it is not JSON at all.

    >>> decode_request(msgspec.json.Decoder(list[int]), b"[1, 2]", "a list")
    [1, 2]
    >>> decode_request(msgspec.json.Decoder(list[int]), b'["a"]', "a list")
    Traceback (most recent call last):
    ...
    streams.roles.gateway.errors.BadRequest: not a list: Expected `int`, got `str` - at `$[0]`
    """
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as err:
        raise BadRequest(f"not {what}: {err}") from None
    except msgspec.DecodeError as err:
        raise BadRequest(f"invalid JSON: {err}", stage="decode", error_type="undecodable") from None


def parse_infer(body: bytes, header_length: int | None = None) -> InferCall:
    """The request in `body`; `header_length` is the JSON header's size when the binary
    tensor extension is used. Raises :class:`BadRequest` saying what does not fit."""
    raw = body if header_length is None else body[:header_length]
    request = decode_request(_decoder, raw, "an inference request")
    if not request.inputs:
        raise BadRequest("the request has no inputs")
    binary = memoryview(body)[header_length:] if header_length is not None else None
    columns: dict[str, list[Any]] = {}
    rows_n: int | None = None
    for tensor in request.inputs:
        names, values = _columns(tensor, binary)
        binary = binary[_binary_size(tensor) :] if binary is not None else None
        n = len(values[0]) if values else 0
        if rows_n is not None and n != rows_n:
            raise BadRequest(f"input {tensor.name!r} has {n} rows, the inputs before it {rows_n}")
        rows_n = n
        for name, column in zip(names, values, strict=True):
            if name in columns:
                raise BadRequest(f"feature {name!r} is given twice")
            columns[name] = column
    if not rows_n:
        raise BadRequest("the inputs hold no rows (shape [0, ...])")
    names = list(columns)
    rows = [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]
    params = request.parameters
    entity = params.get("entity_id")
    if entity is not None and not isinstance(entity, str):
        raise BadRequest(f"parameter entity_id must be a string, got {type(entity).__name__}")
    wanted = None
    if request.outputs is not None:
        wanted = [str(o.get("name")) for o in request.outputs]
        unknown = [name for name in wanted if name not in OUTPUTS]
        if unknown:
            raise BadRequest(f"unknown output(s) {unknown}; the outputs are {list(OUTPUTS)}")
    return InferCall(rows, request.id or None, entity, wanted, params)


def _binary_size(tensor: _Tensor) -> int:
    size = tensor.parameters.get("binary_data_size")
    return int(size) if isinstance(size, int) else 0


def _columns(tensor: _Tensor, binary: memoryview | None) -> tuple[list[str], list[list[Any]]]:
    """The feature names of one input and a column of values for each."""
    shape = tensor.shape
    if not 1 <= len(shape) <= 2 or any(d < 0 for d in shape):
        raise BadRequest(f"input {tensor.name!r}: shape {shape} is not [rows] or [rows, columns]")
    width = shape[1] if len(shape) == 2 else 1
    names = tensor.parameters.get("columns")
    if names is None:
        if width != 1:
            raise BadRequest(
                f"input {tensor.name!r} has {width} columns: name them in its "
                'parameters, {"columns": [...]}'
            )
        names = [tensor.name]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BadRequest(f"input {tensor.name!r}: parameters.columns must be a list of names")
    if len(names) != width:
        raise BadRequest(f"input {tensor.name!r}: {len(names)} column names for {width} columns")
    flat = _values(tensor, binary)
    expected = shape[0] * width
    if len(flat) != expected:
        raise BadRequest(
            f"input {tensor.name!r}: shape {shape} holds {expected} values, data has {len(flat)}"
        )
    if width == 1:
        return names, [flat]
    return names, [flat[j::width] for j in range(width)]


def _values(tensor: _Tensor, binary: memoryview | None) -> list[Any]:
    convert = _CONVERT.get(tensor.datatype)
    if convert is None:
        raise BadRequest(
            f"input {tensor.name!r}: datatype {tensor.datatype!r} is not one of "
            f"{', '.join(_CONVERT)}"
        )
    size = tensor.parameters.get("binary_data_size")
    if size is not None:
        if binary is None or not isinstance(size, int) or size > len(binary):
            raise BadRequest(f"input {tensor.name!r}: binary_data_size {size} overruns the body")
        return _from_binary(tensor, binary[:size])
    if tensor.data is None:
        raise BadRequest(f"input {tensor.name!r} has no data")
    return convert(tensor.name, _flatten(tensor.data))


def _flatten(data: list[Any]) -> list[Any]:
    if not data or type(data[0]) is not list:
        return data
    out: list[Any] = []
    for item in data:
        out.extend(_flatten(item) if type(item) is list else [item])
    return out


def _from_binary(tensor: _Tensor, raw: memoryview) -> list[Any]:
    if tensor.datatype == "BYTES":
        values, at = [], 0
        while at + 4 <= len(raw):
            n = int.from_bytes(raw[at : at + 4], "little")
            values.append(bytes(raw[at + 4 : at + 4 + n]).decode("utf-8", "replace"))
            at += 4 + n
        return values
    dtype = np.dtype(_NUMPY[tensor.datatype])
    if len(raw) % dtype.itemsize:
        raise BadRequest(f"input {tensor.name!r}: {len(raw)} bytes is not a whole number of values")
    array = np.frombuffer(raw, dtype=dtype)
    if dtype.kind == "f":
        if not np.isfinite(array).all():
            raise BadRequest(f"input {tensor.name!r}: NaN and infinity are not allowed")
        return array.astype(np.float64).tolist()
    return array.tolist()


def _number(name: str, values: list[Any]) -> list[Any]:
    if all(type(v) is float for v in values):
        if all(map(math.isfinite, values)):
            return values
        raise BadRequest(f"input {name!r}: NaN and infinity are not allowed")
    out = []
    for v in values:
        if v is None or type(v) is float:
            out.append(v)
        elif type(v) is int:
            out.append(float(v))
        else:
            raise BadRequest(f"input {name!r}: {v!r} is not a number")
    return out


def _typed(kind: type, label: str) -> Callable[[str, list[Any]], list[Any]]:
    def check(name: str, values: list[Any]) -> list[Any]:
        for v in values:
            if v is not None and type(v) is not kind:
                raise BadRequest(f"input {name!r}: {v!r} is not {label}")
        return values

    return check


_CONVERT: dict[str, Callable[[str, list[Any]], list[Any]]] = {
    "BOOL": _typed(bool, "a boolean"),
    **{t: _typed(int, "an integer") for t in _NUMPY if t[0] in "IU"},
    **{t: _number for t in ("FP16", "FP32", "FP64")},
    "BYTES": _typed(str, "a string"),
}


def infer_response(
    model: str, request_id: str, answers: Sequence[Answer], wanted: list[str] | None = None
) -> bytes:
    """The response body: the outputs (all, or those `wanted`) with one value per row.

    >>> body = infer_response("m", "r1", [Answer("r1", 0.9, "1", 2, "champion")])
    >>> out = orjson.loads(body)
    >>> out["model_version"], [(o["name"], o["data"]) for o in out["outputs"]]
    ('2', [('score', [0.9]), ('label', ['1']), ('model_version', [2]), ('variant', ['champion'])])
    """
    n = len(answers)
    data = {
        "score": [a.score for a in answers],
        "label": [a.label or "" for a in answers],
        "model_version": [a.version for a in answers],
        "variant": [a.variant for a in answers],
    }
    outputs = [
        {"name": name, "shape": [n], "datatype": OUTPUTS[name], "data": data[name]}
        for name in (wanted or OUTPUTS)
    ]
    response: dict[str, Any] = {"model_name": model, "id": request_id, "outputs": outputs}
    versions = set(data["model_version"])
    if len(versions) == 1:
        response["model_version"] = str(versions.pop())
    if n > 1:
        response["parameters"] = {"request_ids": [a.request_id for a in answers]}
    return orjson.dumps(response)
