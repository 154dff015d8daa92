"""The :class:`Client`: one object for a notebook or a service to reach a lastmile stack."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import httpx
import pandas as pd

from lastmile.errors import ClientError
from lastmile.frames import StoredFrames, TimeLike, as_utc
from lastmile.gateway import gateway_url
from lastmile.models import Models
from streams.config import Settings, load_settings
from streams.models import ControlPlane

__all__ = ["Client"]


class Client(StoredFrames):
    """A lastmile stack from Python: its models, scoring (Kafka or the gateway), what it stored.

    With no arguments it talks to the stack ``lastmile up`` runs on this machine, with
    the same settings every ``lastmile`` command reads (``LASTMILE_*`` variables, then
    ``./lastmile.toml``, then the defaults: the broker on 127.0.0.1:9092, ClickHouse on
    http://127.0.0.1:8123/lastmile, the registry in ``.lastmile/registry``). Give
    ``bootstrap`` (Kafka bootstrap servers), ``clickhouse`` (an HTTP URL with the
    database as its path) or ``registry`` (a directory) to point elsewhere, or whole
    ``settings`` from :func:`streams.config.load_settings`. ``gateway`` sends
    ``client.score`` through the gateway role over HTTP instead of Kafka: ``True`` for the
    settings' own (``lastmile up`` runs it on 127.0.0.1 at ``gateway_port``,
    ``LASTMILE_GATEWAY_PORT``), or its URL. The default is Kafka, which every stack has;
    ``score(..., via="gateway")`` or ``via="kafka"`` chooses for one call.

    - ``client.models``: list, show, get, register, promote, split, shadow, rollback,
      retire, pause, resume, compare (:class:`~lastmile.models.Models`);
    - ``client.score(model, rows)``: score a DataFrame through the scorers (Kafka), or
      the gateway (HTTP) when ``gateway`` is given, one answer per row;
    - ``client.predictions(model, since=..., until=...)``, ``client.metrics(...)``,
      ``client.alerts(...)``: what the sink stored in ClickHouse, as DataFrames;
    - ``client.simulate(...)``: synthetic traffic, with drift on demand.

    Errors are :class:`~lastmile.LastmileError`: a registry or control-plane refusal, a
    :class:`~lastmile.ScoreTimeout` when predictions do not come, a
    :class:`~lastmile.StoreUnavailable` when ClickHouse does not answer, a
    :class:`~lastmile.GatewayUnavailable` when the gateway does not.

    >>> import tempfile
    >>> client = Client(bootstrap="kafka:9092", registry=tempfile.mkdtemp())
    >>> client.settings.kafka_bootstrap_servers, client.settings.embedded_kafka
    ('kafka:9092', False)
    >>> Client(clickhouse="http://ch:8123/prod").settings.clickhouse_params()["database"]
    'prod'
    >>> Client(gateway=True).gateway, Client(gateway="http://scorer:8080").gateway
    ('http://127.0.0.1:8080', 'http://scorer:8080')

    A session on the local stack (``lastmile up``), as ``tests/lastmile`` runs it::

        import pandas as pd
        from river import linear_model, preprocessing
        import lastmile

        client = lastmile.Client()
        model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
        train = pd.DataFrame({"amount": [3.0, 80.0, 5.0, 95.0], "age": [40, 22, 51, 19]})
        for row, y in zip(train.to_dict("records"), [0, 1, 0, 1]):
            model.learn_one(row, y)
        client.models.register(model, name="fraud", reference=train, promote="champion")
        answers = client.score("fraud", train)        # score, label, version per row
        client.score("fraud", train, via="gateway")   # the same answers, over HTTP
        client.predictions("fraud", since=pd.Timedelta(hours=1))
        client.alerts(firing=True)
    """

    def __init__(
        self,
        bootstrap: str | None = None,
        clickhouse: str | None = None,
        registry: str | None = None,
        settings: Settings | None = None,
        *,
        gateway: str | bool | None = None,
        publish: bool = True,
    ) -> None:
        overrides = {
            key: value
            for key, value in (
                ("kafka_bootstrap", bootstrap),
                ("clickhouse_url", clickhouse),
                ("registry", registry),
            )
            if value is not None
        }
        if settings is None:
            settings = load_settings(**overrides)
        elif overrides:
            settings = dataclasses.replace(settings, **overrides)
        self.settings = settings
        self.gateway = gateway_url(gateway, settings)
        self.publish = publish
        self._plane: ControlPlane | None = None
        self._topics_checked = False
        self._sender: Any = None
        self._http: httpx.Client | None = None
        self._models = Models(self)

    def __repr__(self) -> str:
        p = self.settings.clickhouse_params()
        return (
            f"Client(bootstrap={self.settings.kafka_bootstrap_servers!r}, "
            f"clickhouse='{p['host']}:{p['port']}/{p['database']}', "
            f"registry={self.settings.registry_location!r}"
            + (f", gateway={self.gateway!r})" if self.gateway else ")")
        )

    @property
    def models(self) -> Models:
        """The registry and control plane: ``list()``, ``show(name)``, ``get(name)``,
        ``register(model, name=..., reference=df)``, ``promote``, ``split``, ``shadow``,
        ``rollback``, ``retire``, ``pause``, ``resume``, ``compare``, ``load`` (see
        :class:`Models`)."""
        return self._models

    @property
    def control_plane(self) -> ControlPlane:
        """The :class:`~streams.models.ControlPlane` behind ``models`` (one producer, reused)."""
        if self._plane is None:
            self._plane = ControlPlane(self.settings, publish=self.publish)
        return self._plane

    @property
    def clickhouse(self) -> Any:
        """The clickhouse-connect client the frames are read with (connected on first use)."""
        return self._connection()

    def _ensure_topics(self) -> None:
        if not self._topics_checked:
            from streams.kafka.topics import ensure_topics

            ensure_topics(self.settings)
            self._topics_checked = True

    # -- scoring

    def score(
        self,
        model: str,
        rows: Any,
        timeout: float = 30.0,
        *,
        entity_ids: Sequence[str | None] | None = None,
        caller: str | None = None,
        event_time: TimeLike = None,
        via: str | None = None,
    ) -> pd.DataFrame:
        """Score ``rows`` (a DataFrame, a dict, or dicts of features) with ``model``.

        Each row is one request on ``scoring.requests``, scored by the running scorers
        exactly as any producer's would be (the champion, or the variant the split gives
        it), and answered on ``scoring.predictions``. Returns a frame with the rows' index
        and ``request_id, model, version, variant, score, label, latency_ms, error``;
        ``error`` holds the dead letter's reason for a row that could not be scored (a
        missing feature, an unknown model). ``entity_ids`` make a split sticky per entity;
        ``event_time`` (default: now) is when the rows happened, which the monitor's
        windows go by.

        ``via="gateway"`` (the default when the client has a ``gateway``) sends each row
        to the gateway over HTTP instead, which routes and scores it with the same code
        and publishes its answer on ``scoring.predictions`` (caller ``http``, so
        ``caller`` cannot be given) before returning it: the same frame, a refused row's
        reason in ``error``, ``latency_ms`` the round trip the client timed;
        :class:`~lastmile.GatewayUnavailable` when nothing answers at its address.

        Raises :class:`~lastmile.ScoreTimeout` (with ``.frame``) when some rows are not
        answered within ``timeout`` seconds.
        """
        when = None if event_time is None else int(as_utc(event_time).timestamp() * 1000)
        if via not in (None, "kafka", "gateway"):
            raise ClientError(f'via must be "kafka" or "gateway", not {via!r}')
        if (via or ("gateway" if self.gateway else "kafka")) == "gateway":
            if caller is not None:
                raise ClientError("over the gateway every caller is 'http': drop caller=")
            return self._score_over_http(model, rows, timeout, entity_ids, when)
        from lastmile.scoring import score_rows
        from streams.cli.produce import Sender

        self._ensure_topics()
        if self._sender is None:
            self._sender = Sender(self.settings)
        return score_rows(
            self.settings,
            model,
            rows,
            timeout=timeout,
            entity_ids=entity_ids,
            caller=caller,
            event_time_ms=when,
            sender=self._sender,
        )

    def _score_over_http(
        self,
        model: str,
        rows: Any,
        timeout: float,
        entity_ids: Sequence[str | None] | None,
        event_time_ms: int | None,
    ) -> pd.DataFrame:
        from lastmile.gateway import score_over_http

        url = self.gateway or f"http://127.0.0.1:{self.settings.gateway_port}"
        if self._http is None:  # one connection pool, kept: each row is a request
            self._http = httpx.Client()
        return score_over_http(
            self._http,
            url,
            self.settings,
            model,
            rows,
            timeout=timeout,
            entity_ids=entity_ids,
            event_time_ms=event_time_ms,
        )

    # -- traffic

    def simulate(
        self,
        model: str = "fraud",
        count: int = 1000,
        rate: float = 0.0,
        label_delay: float | None = 5.0,
        **options: Any,
    ) -> Any:
        """Send ``count`` simulated requests for ``model`` (and their outcomes
        ``label_delay`` seconds later; None: no outcomes), as ``lastmile simulate`` does;
        returns the :class:`~streams.local.traffic_producer.SimulationSummary`.

        ``rate`` 0 sends as fast as the broker takes them. Other options are
        :func:`streams.local.simulate.simulated_events`'s: ``stream``, ``seed``,
        ``drift_at``, ``drift_kind``, ``drift_type``, ``drift_features``, ``bad_fraction``,
        ``entities``.
        """
        from streams.local.traffic_producer import produce_simulation

        try:
            return produce_simulation(
                self.settings,
                model=model,
                count=count,
                rate=rate,
                label_delay=label_delay,
                **options,
            )
        except ValueError as err:  # an option out of range: said before anything is sent
            raise ClientError(f"simulate: {err}") from None

    # -- lifetime

    def close(self) -> None:
        """Flush and close the producer and the ClickHouse connection."""
        if self._plane is not None:
            self._plane.close()
            self._plane = None
        if self._sender is not None:
            self._sender.flush(30)
            self._sender = None
        if self._http is not None:
            self._http.close()
            self._http = None
        self._close_store()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
