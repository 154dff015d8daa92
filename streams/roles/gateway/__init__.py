"""The gateway role: synchronous inference over HTTP, logged to Kafka like any request.

``lastmile worker --roles gateway`` serves, on ``gateway_port`` (8080), KServe's Open
Inference Protocol (V2 REST) and its V1 ``:predict``, plus ``/metrics``. A request is
routed, checked and scored by the scorer's own code (:mod:`streams.roles.scorer`), and
every answer is on ``scoring.predictions`` (caller ``http``) before it is returned.

- :mod:`~streams.roles.gateway.app`: the routes (raw ASGI)
- :mod:`~streams.roles.gateway.v2`, :mod:`~streams.roles.gateway.v1`: the two protocols
- :mod:`~streams.roles.gateway.service`: rows to scoring requests, the scorer, the answers
- :mod:`~streams.roles.gateway.publish`: the producer an answer waits for
- :mod:`~streams.roles.gateway.metrics`: the Prometheus series
- :mod:`~streams.roles.gateway.role`: the role, the server on its own thread
- :mod:`~streams.roles.gateway.errors`: refusals and their HTTP status

>>> from streams.roles.gateway import parse_infer
>>> parse_infer(b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [2]}]}').rows
[{'x': 2.0}]
"""

from streams.roles.gateway.app import GatewayApp
from streams.roles.gateway.errors import BadRequest, GatewayError, NotFound, Unavailable
from streams.roles.gateway.role import GatewayRole, GatewayStats, gateway_role
from streams.roles.gateway.service import CALLER, TRACEPARENT, HttpRow, Inference
from streams.roles.gateway.v1 import parse_predict, predict_response
from streams.roles.gateway.v2 import OUTPUTS, Answer, InferCall, infer_response, parse_infer

__all__ = [
    "CALLER",
    "OUTPUTS",
    "TRACEPARENT",
    "Answer",
    "BadRequest",
    "GatewayApp",
    "GatewayError",
    "GatewayRole",
    "GatewayStats",
    "HttpRow",
    "InferCall",
    "Inference",
    "NotFound",
    "Unavailable",
    "gateway_role",
    "infer_response",
    "parse_infer",
    "parse_predict",
    "predict_response",
]
