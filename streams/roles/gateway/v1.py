"""KServe's V1 protocol: ``POST /v1/models/{name}:predict`` with ``{"instances": [...]}``.

Each instance is one row, an object of feature values. Beside ``instances`` a body may
carry ``id`` (the request_id, ``<id>-<row>`` for many rows), ``entity_id`` (the sticky
split) and ``event_time`` (epoch millis; else when received), lastmile's additions; the
answer is one object per instance.

>>> call = parse_predict(b'{"instances": [{"x": 1.5}, {"x": 2}], "entity_id": "e7"}')
>>> call.rows, call.entity_id, call.parameters
([{'x': 1.5}, {'x': 2}], 'e7', {})
>>> parse_predict(b'{"instances": [{"x": 1}], "event_time": 1700000000000}').parameters
{'event_time': 1700000000000}
>>> parse_predict(b'{"instances": [[1, 2]]}')  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
streams.roles.gateway.errors.BadRequest: not a V1 predict request: Expected `object`, got `array`...
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import orjson

from streams.roles.gateway.errors import BadRequest
from streams.roles.gateway.v2 import Answer, InferCall, decode_request

__all__ = ["parse_predict", "predict_response"]

_Scalar = str | int | float | bool | None


class _Predict(msgspec.Struct):
    instances: list[dict[str, _Scalar]]
    id: str | None = None
    entity_id: str | None = None
    event_time: int | None = None


_decoder = msgspec.json.Decoder(_Predict)


def parse_predict(body: bytes) -> InferCall:
    """The rows of a V1 request; raises :class:`BadRequest` saying what does not fit."""
    request = decode_request(_decoder, body, "a V1 predict request")
    if not request.instances:
        raise BadRequest("instances is empty: nothing to predict")
    # Where the V2 protocol carries it, so both are read by the same code.
    params = {} if request.event_time is None else {"event_time": request.event_time}
    return InferCall(request.instances, request.id or None, request.entity_id, None, params)


def predict_response(answers: Sequence[Answer]) -> bytes:
    """``{"predictions": [...]}``, one object per instance.

    >>> predict_response([Answer("r1", 0.25, "0", 3, "challenger")])
    b'{"predictions":[{"score":0.25,"label":"0","model_version":3,"variant":"challenger","request_id":"r1"}]}'
    """
    predictions: list[dict[str, Any]] = [
        {
            "score": a.score,
            "label": a.label,
            "model_version": a.version,
            "variant": a.variant,
            "request_id": a.request_id,
        }
        for a in answers
    ]
    return orjson.dumps({"predictions": predictions})
