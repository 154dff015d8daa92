"""``import lastmile``: the Python face of a lastmile stack, for notebooks and services.

One :class:`Client` reaches the stack (``lastmile up`` on this machine by default): its
models (``client.models``), scoring through Kafka or the gateway (``client.score``),
what ClickHouse stored (``client.predictions``, ``client.metrics``, ``client.alerts``)
and simulated traffic (``client.simulate``). :func:`register` registers a model in one
call. Every error raised on purpose is a :class:`LastmileError`. The ``lastmile``
commands run the same functions underneath.

>>> import tempfile
>>> from river import linear_model
>>> import lastmile
>>> client = lastmile.Client(registry=tempfile.mkdtemp(), publish=False)
>>> version = lastmile.register(
...     linear_model.LinearRegression(), name="eta", features=["km"], client=client
... )
>>> version.name, version.version, version.feature_names
('eta', 1, ['km'])
>>> try:
...     client.models.get("nope")
... except lastmile.LastmileError as err:
...     print(type(err).__name__)
ModelNotFoundError
"""

from __future__ import annotations

from typing import Any

from lastmile.client import Client
from lastmile.errors import (
    ClientError,
    GatewayUnavailable,
    LastmileError,
    ScoreTimeout,
    StoreUnavailable,
)
from lastmile.models import Models
from streams.models import ModelVersion

__all__ = [
    "Client",
    "ClientError",
    "GatewayUnavailable",
    "LastmileError",
    "Models",
    "ScoreTimeout",
    "StoreUnavailable",
    "register",
]


def register(
    model: Any,
    name: str,
    reference: Any = None,
    features: Any = None,
    *,
    client: Client | None = None,
    **options: Any,
) -> ModelVersion:
    """Register ``model`` as the next version of ``name`` on the local stack (or ``client``'s).

    ``reference`` is a sample of the training features (a DataFrame or rows): the drift
    baseline, and the features and their types when ``features`` is not given. Other
    options are :meth:`Models.register`'s (``flavor``, ``promote``, ``labels``,
    ``metrics``, ``description``...).
    """
    if client is not None:
        return client.models.register(model, name, reference, features, **options)
    with Client() as own:
        return own.models.register(model, name, reference, features, **options)
