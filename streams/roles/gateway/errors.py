"""The gateway's errors: each carries the HTTP status it answers with and the dead letter's
stage and type, so a bad request is both a 4xx to its caller and a dead letter with its reason.

>>> err = BadRequest("input 'x' has 3 values, its shape [2] holds 2")
>>> err.status, err.stage, err.error_type, isinstance(err, GatewayError)
(400, 'validate', 'schema_violation', True)
>>> NotFound("unknown model 'm'").status
404
"""

from __future__ import annotations

from streams.errors import StreamsError

__all__ = ["BadRequest", "GatewayError", "NotFound", "Unavailable"]


class GatewayError(StreamsError):
    """A request the gateway cannot answer: ``status`` is the HTTP answer, ``stage`` and
    ``error_type`` the dead letter's (see :mod:`streams.kafka.deadletters`)."""

    status = 400
    stage = "validate"
    error_type = "schema_violation"
    written = False  # True once its dead letters are on the dead-letter topic

    def __init__(
        self, reason: str, *, stage: str | None = None, error_type: str | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        if stage is not None:
            self.stage = stage
        if error_type is not None:
            self.error_type = error_type


class BadRequest(GatewayError):
    """The body is not a request of the protocol, or its tensors do not fit together."""


class NotFound(GatewayError):
    """No such model, or no such version of it."""

    status = 404
    stage = "route"
    error_type = "unknown_model"


class Unavailable(GatewayError):
    """The gateway cannot answer now (models not replayed yet, Kafka not taking records):
    the caller may retry."""

    status = 503
    stage = "gateway"
    error_type = "unavailable"
