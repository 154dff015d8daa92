"""Every setting of lastmile, in one place: the flat settings, then one section a role.

A setting's value comes from, in rising order of precedence: its default (which
suits the embedded stack on one machine), the file ``lastmile.toml`` (in the
working directory, or wherever ``LASTMILE_CONFIG`` points), and the environment
variable ``LASTMILE_<NAME>``; :mod:`streams.config.loading` reads them, once.

>>> s = Settings(kafka_port=19092)
>>> s.kafka_bootstrap_servers, s.embedded_kafka, s.learner.policy
('127.0.0.1:19092', True, 'challenger')
>>> KEYS["learner_group"].env, KEYS["learner_group"].get(s)
('LASTMILE_LEARNER_GROUP', 'lastmile-learner')
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from streams.config.fields import ENV_PREFIX, ConfigError, format_value, setting
from streams.config.learner import LearnerSettings
from streams.config.monitor import MonitorSettings

__all__ = [
    "FIELDS",
    "FIXED_CLIENT_SETTINGS",
    "KEYS",
    "SECTIONS",
    "Key",
    "Settings",
    "mask_url",
    "settings_env",
]

# The flat field list below reads as it always has, so a field added on another branch
# merges as written.
_field = setting

#: ``fetch.wait.max.ms`` on the embedded broker for a consumer whose latency matters (the
#: scorer): the broker does not wake a waiting fetch, and sleeps the whole wait even when
#: data is there (DESIGN.md, "Measured"; tansu 0.6 ``service/fetch.rs``).
FETCH_WAIT_MS = 10
#: ... and for one that is not latency-bound (monitor, sink, learner, operator): each fetch
#: that finds new data lists every batch the partition ever held (tansu's memory store
#: keeps them all), so its cost grows with the partition's history; fetching 10 times a
#: second instead of 100 halved the broker's CPU at 200 requests/s (bench/pipeline.py).
BACKGROUND_FETCH_WAIT_MS = 100

# librdkafka settings lastmile's delivery rules rest on: `kafka_client` may not change them.
FIXED_CLIENT_SETTINGS = {
    "group.id": "each role names its consumer group",
    "enable.auto.commit": "offsets are committed only after the outputs are durable",
    "auto.offset.reset": "a new consumer group reads from the start: nothing is skipped",
    "enable.idempotence": "a retried send is never written twice",
    "acks": "every replica has an output before its input's offset is committed",
    "isolation.level": "readers see only committed transactions",
    "transactional.id": "each lane holds its own (streams.kafka.lane.TransactionalSlot)",
}


@dataclasses.dataclass(frozen=True)
class Settings:
    """The effective configuration. Build it with :func:`load_settings`."""

    data_dir: Path = _field(
        Path(".lastmile"),
        "Where the embedded stack keeps its state: ClickHouse data, registry, logs.",
    )

    # Kafka
    kafka_bootstrap: str | None = _field(
        None, "Bootstrap servers of a real Kafka cluster. Unset: lastmile runs the embedded broker."
    )
    kafka_port: int = _field(9092, "Port of the embedded broker on 127.0.0.1.")
    kafka_security_protocol: str | None = _field(
        None, "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (passed to every Kafka client)."
    )
    kafka_sasl_mechanism: str | None = _field(None, "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, ...")
    kafka_sasl_username: str | None = _field(None, "SASL user name.")
    kafka_sasl_password: str | None = _field(None, "SASL password.", secret=True)
    kafka_ssl_ca_location: str | None = _field(None, "CA certificate file for SSL.")
    kafka_ssl_certificate_location: str | None = _field(None, "Client certificate file for SSL.")
    kafka_ssl_key_location: str | None = _field(None, "Client key file for SSL.")
    kafka_client: dict[str, str] = _field(
        {},
        "Extra librdkafka settings for every client, as a JSON object or a TOML table; "
        "they win over lastmile's tuning (linger, fetch wait, session timeouts), not over "
        "the settings delivery rests on (acks, enable.auto.commit, ...: an error).",
    )
    kafka_fast_group_join: bool | None = _field(
        None,
        "Short session/heartbeat timeouts so consumer groups join in ~3 s. "
        "Unset: on for the embedded broker, off for real Kafka.",
    )
    kafka_idle_pause: bool | None = _field(
        None,
        "Consumers that read nothing for 2 s stop fetching and ask for the partitions' "
        "ends every 0.25 s instead (the first record after idleness waits up to that). "
        "Unset: on for the embedded broker, whose fetches do not wait for data; "
        "off for real Kafka.",
    )
    topic_partitions: int = _field(3, "Partitions of the topics lastmile creates.")
    topic_replication: int = _field(1, "Replication factor of the topics lastmile creates.")

    # Topics
    topic_requests: str = _field("scoring.requests", "Scoring requests in.")
    topic_predictions: str = _field("scoring.predictions", "Predictions out.")
    topic_outcomes: str = _field("scoring.outcomes", "Observed labels, later.")
    topic_model_events: str = _field("models.events", "The model registry's control plane.")
    topic_metrics: str = _field("monitor.metrics", "One window's value of one metric.")
    topic_alerts: str = _field("monitor.alerts", "Alerts firing and resolving.")
    topic_dlq: str = _field("scoring.dlq", "Dead letters: what could not be processed, and why.")

    # ClickHouse
    clickhouse_url: str | None = _field(
        None,
        "ClickHouse HTTP URL, e.g. http://user:pass@host:8123/lastmile. "
        "Unset: lastmile runs the embedded store.",
        secret=True,
    )
    clickhouse_port: int = _field(8123, "Port of the embedded ClickHouse store on 127.0.0.1.")
    clickhouse_user: str | None = _field(None, "ClickHouse user (overrides the URL's).")
    clickhouse_password: str | None = _field(
        None, "ClickHouse password (overrides the URL's).", secret=True
    )
    clickhouse_database: str | None = _field(
        None, "ClickHouse database (overrides the URL's path). Default: lastmile."
    )

    # Registry and schemas
    registry: str | None = _field(None, "Model registry directory. Default: <data_dir>/registry.")
    schema_registry_url: str | None = _field(
        None, "Confluent Schema Registry URL. Unset: schema fingerprint in a message header."
    )

    # Ports of the rest of the stack
    web_port: int = _field(6066, "Faust web port of the first worker.")
    dashboard_host: str = _field("127.0.0.1", "Address the dashboard binds to.")
    dashboard_port: int = _field(8501, "Port of the Streamlit dashboard.")
    dashboard_password: str | None = _field(
        None, "Password asked by the dashboard. Unset: no password.", secret=True
    )

    # The demo (`lastmile up --demo`)
    demo_rate: float = _field(200.0, "Requests/s the demo's simulated traffic sends.")
    demo_drift_after: float = _field(
        180.0, "Seconds of demo traffic before its drift (inputs and labels) begins."
    )
    demo_label_delay: float = _field(10.0, "Seconds after a demo request its outcome is sent.")

    log_level: str = _field("INFO", "Log level of every lastmile process.")

    # ClickHouse and the sink
    retention_days: int = _field(30, "Days of data ClickHouse keeps (TTL); 0 keeps everything.")
    sink_batch_rows: int = _field(50_000, "Most messages one sink insert takes from a partition.")
    sink_batch_seconds: float = _field(1.0, "Longest a consumed message waits for its insert.")
    sink_buffer_rows: int = _field(
        200_000, "Buffered messages at which the sink pauses consuming (memory bound)."
    )
    sink_buffer_bytes: int = _field(128 << 20, "Buffered bytes at which the sink pauses.")
    sink_insert_threads: int = _field(4, "Concurrent inserts (one ClickHouse client each).")
    sink_max_backoff_s: float = _field(5.0, "Longest wait between two tries of a failed insert.")
    sink_status_every_s: float = _field(10.0, "How often the sink writes its row of sink_status.")
    sink_group_id: str = _field("lastmile-sink", "Consumer group of the sink.")

    # The scorer role
    scorer_exactly_once: bool = _field(
        True,
        "Predictions and consumed offsets in one Kafka transaction. Off: at least once "
        "(less latency; a crash may publish a prediction twice).",
    )

    # The sections: [learner] and [monitor] in lastmile.toml, LASTMILE_LEARNER_* and
    # LASTMILE_MONITOR_* in the environment (streams/config/learner.py, monitor.py).
    learner: LearnerSettings = dataclasses.field(
        default_factory=LearnerSettings, metadata={"section": "learner"}
    )
    monitor: MonitorSettings = dataclasses.field(
        default_factory=MonitorSettings, metadata={"section": "monitor"}
    )

    # The gateway role
    gateway_port: int = _field(8080, "Port of the gateway's HTTP server (Open Inference Protocol).")

    # The operator role: alerts that act (streams/roles/operator/)
    topic_actions: str = _field("monitor.actions", "What the operator did about each alert.")
    actions_mode: str = _field(
        "enforce", "enforce: act on alert rules with an action; dry-run: record what it would do."
    )
    actions_cooldown: str = _field("10m", "Least time between two actions on one model.")
    actions_max_per_hour: int = _field(3, "Most actions on one model in any hour.")
    operator_group: str = _field("lastmile-operator", "Consumer group of the operator.")
    registry_allow_code: bool = _field(
        True, "Register and load flavors whose loading runs code (pickles, MLflow pyfunc)."
    )

    def __post_init__(self) -> None:
        for key in self.kafka_client:
            why = FIXED_CLIENT_SETTINGS.get(key)
            if why is not None:
                raise ConfigError(
                    f"setting kafka_client: {key!r} is set by lastmile itself ({why}); remove it",
                    key="kafka_client",
                    value=key,
                )

    # -- derived values ---------------------------------------------------------------

    @property
    def embedded_kafka(self) -> bool:
        return not self.kafka_bootstrap

    @property
    def embedded_clickhouse(self) -> bool:
        return not self.clickhouse_url

    @property
    def kafka_bootstrap_servers(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"

    @property
    def registry_location(self) -> str:
        return self.registry or str(self.data_dir / "registry")

    @property
    def topics(self) -> dict[str, str]:
        """Every topic lastmile uses, by role name."""
        return {
            "requests": self.topic_requests,
            "predictions": self.topic_predictions,
            "outcomes": self.topic_outcomes,
            "model_events": self.topic_model_events,
            "metrics": self.topic_metrics,
            "alerts": self.topic_alerts,
            "dlq": self.topic_dlq,
            "actions": self.topic_actions,
        }

    def kafka_config(self) -> dict[str, str | int | bool]:
        """librdkafka settings of a client lastmile does not tune (the admin clients): the
        connection and its security, then ``kafka_client``. Consumers and producers put
        lastmile's tuning between the two (:meth:`consumer_config`, :meth:`producer_config`)."""
        return {**self._kafka_connection(), **self.kafka_client}

    def _kafka_connection(self) -> dict[str, str | int | bool]:
        conf: dict[str, str | int | bool] = {"bootstrap.servers": self.kafka_bootstrap_servers}
        for name in (
            "security_protocol",
            "sasl_mechanism",
            "sasl_username",
            "sasl_password",
            "ssl_ca_location",
            "ssl_certificate_location",
            "ssl_key_location",
        ):
            value = getattr(self, f"kafka_{name}")
            if value:
                key = name.replace("_", ".")
                conf["sasl.mechanisms" if key == "sasl.mechanism" else key] = value
        return conf

    @property
    def fast_group_join(self) -> bool:
        if self.kafka_fast_group_join is None:
            return self.embedded_kafka
        return self.kafka_fast_group_join

    @property
    def idle_pause(self) -> bool:
        """Whether consumers pause while idle (:mod:`streams.kafka.idle`)."""
        if self.kafka_idle_pause is None:
            return self.embedded_kafka
        return self.kafka_idle_pause

    def consumer_config(
        self, group_id: str, fetch_wait_ms: int = FETCH_WAIT_MS, **overrides: Any
    ) -> dict[str, Any]:
        """Consumer settings: manual commits, and the short timeouts the embedded broker needs.

        The embedded broker completes a group join after about half the session
        timeout, and does not wake a waiting fetch when data arrives (DESIGN.md,
        "Measured"), hence the short session timeout and fetch wait (`fetch_wait_ms`:
        :data:`FETCH_WAIT_MS`, or :data:`BACKGROUND_FETCH_WAIT_MS` for a consumer whose
        latency matters less than the broker's CPU) there. Those are defaults:
        ``kafka_client`` wins over them, but not over what delivery rests on
        (:data:`FIXED_CLIENT_SETTINGS`); the caller's ``overrides`` win over all.

        >>> s = Settings(kafka_client={"fetch.wait.max.ms": 50})
        >>> conf = s.consumer_config("g")
        >>> conf["fetch.wait.max.ms"], conf["enable.auto.commit"], conf["group.id"]
        (50, False, 'g')
        >>> embedded = Settings()
        >>> [embedded.consumer_config("g", wait)["fetch.wait.max.ms"]
        ...  for wait in (FETCH_WAIT_MS, BACKGROUND_FETCH_WAIT_MS)]
        [10, 100]
        >>> "fetch.wait.max.ms" in Settings(kafka_bootstrap="kafka:9092").consumer_config("g")
        False
        """
        tuning: dict[str, Any] = {}
        if self.fast_group_join:
            tuning = {
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 1000,
                "fetch.wait.max.ms": fetch_wait_ms,
            }
        return {
            **self._kafka_connection(),
            **tuning,
            **self.kafka_client,
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **overrides,
        }

    def producer_config(self, linger_ms: int = 20, **overrides: Any) -> dict[str, Any]:
        """Producer settings: idempotent, acks=all, and a linger (``linger_ms`` unless
        ``kafka_client`` sets ``linger.ms``) so the embedded broker gets few large
        batches rather than many tiny ones (DESIGN.md, "Measured").

        >>> s = Settings(kafka_client={"linger.ms": 50})
        >>> conf = s.producer_config(linger_ms=2)
        >>> conf["linger.ms"], conf["acks"], conf["enable.idempotence"]
        (50, 'all', True)
        """
        return {
            **self._kafka_connection(),
            "linger.ms": linger_ms,
            **self.kafka_client,
            "enable.idempotence": True,
            "acks": "all",
            **overrides,
        }

    def clickhouse_params(self) -> dict[str, Any]:
        """Keyword arguments for ``clickhouse_connect.get_client``."""
        url = self.clickhouse_url or f"http://127.0.0.1:{self.clickhouse_port}/lastmile"
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"clickhouse_url {mask_url(url)!r} is not an http(s)://host[:port][/database] URL",
                key="clickhouse_url",
                value=mask_url(url),
            )
        database = self.clickhouse_database or parts.path.strip("/") or "lastmile"
        return {
            "host": parts.hostname,
            "port": parts.port or (8443 if parts.scheme == "https" else 8123),
            "secure": parts.scheme == "https",
            "username": self.clickhouse_user or unquote(parts.username or "") or "default",
            "password": self.clickhouse_password or unquote(parts.password or ""),
            "database": database,
        }

    @property
    def clickhouse_http_url(self) -> str:
        """Base URL of the ClickHouse HTTP interface, without credentials or database."""
        p = self.clickhouse_params()
        return f"{'https' if p['secure'] else 'http'}://{p['host']}:{p['port']}"


@dataclasses.dataclass(frozen=True)
class Key:
    """One setting as users name it: ``learner_policy`` (a TOML key, or ``policy`` in the
    ``[learner]`` table), set by ``$LASTMILE_LEARNER_POLICY``, held by ``settings.learner``."""

    name: str
    field: dataclasses.Field
    section: str | None = None

    @property
    def env(self) -> str:
        return f"{ENV_PREFIX}{self.name.upper()}"

    def get(self, settings: Settings) -> Any:
        holder = getattr(settings, self.section) if self.section else settings
        return getattr(holder, self.field.name)


#: Section name -> its dataclass (``learner`` -> :class:`LearnerSettings`).
SECTIONS: dict[str, type] = {
    f.name: f.default_factory for f in dataclasses.fields(Settings) if f.metadata.get("section")
}


def _keys() -> dict[str, Key]:
    keys = {}
    for f in dataclasses.fields(Settings):
        if f.name not in SECTIONS:
            keys[f.name] = Key(f.name, f)
            continue
        for inner in dataclasses.fields(SECTIONS[f.name]):
            name = f"{f.name}_{inner.metadata['key'] or inner.name}"
            keys[name] = Key(name, inner, f.name)
    return keys


#: Every setting by its flat name, flat settings first, then each section's.
KEYS: dict[str, Key] = _keys()
FIELDS: dict[str, dataclasses.Field] = {name: key.field for name, key in KEYS.items()}


def settings_env(settings: Settings) -> dict[str, str]:
    """Every set value as a ``LASTMILE_*`` variable: how a process started by lastmile
    (a worker, a test's subprocess) gets exactly these settings.

    >>> env = settings_env(Settings(kafka_port=19092))
    >>> env["LASTMILE_KAFKA_PORT"], env["LASTMILE_LEARNER_JOIN_TTL"]
    ('19092', '7d')
    """
    env = {}
    for key in KEYS.values():
        value = key.get(settings)
        if value is not None:
            env[key.env] = format_value(key.field, value)
    return env


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
