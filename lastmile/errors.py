"""The client's errors, under the one root :class:`~schemas.errors.LastmileError`.

Everything the client raises on purpose is a :class:`LastmileError`: the registry's and the
control plane's errors (:mod:`streams.models.errors`) pass through unchanged, and the
client adds its own for what only it does (waiting for predictions, reading ClickHouse).

>>> err = ScoreTimeout("2 of 3 requests unanswered", missing=["r1", "r2"])
>>> err.missing, isinstance(err, ClientError), isinstance(err, TimeoutError)
(['r1', 'r2'], True, True)
>>> issubclass(StoreUnavailable, LastmileError), issubclass(GatewayUnavailable, ClientError)
(True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streams.errors import LastmileError, StreamsError

__all__ = [
    "ClientError",
    "GatewayUnavailable",
    "LastmileError",
    "ScoreTimeout",
    "StoreUnavailable",
]


class ClientError(StreamsError):
    """Something :class:`lastmile.Client` was asked cannot be done; the message says why."""


class ScoreTimeout(ClientError, TimeoutError):
    """Some requests got neither a prediction nor a dead letter in time.

    ``missing`` are their request ids; ``frame`` holds what did arrive (one row per
    input row, the unanswered ones with ``error`` set), so nothing already scored is lost.
    """

    def __init__(self, message: str, *, missing: Sequence[str], frame: Any = None) -> None:
        super().__init__(message)
        self.missing = list(missing)
        self.frame = frame


class StoreUnavailable(ClientError):
    """ClickHouse cannot be reached, or its tables are missing; the message says what to do."""


class GatewayUnavailable(ClientError):
    """The gateway ``Client.score`` was to go through does not answer at all (nothing
    listens at its address, or the connection broke); the message says what to do."""
