"""Every setting of lastmile, in one place.

A setting's value comes from, in rising order of precedence: its default (which
suits the embedded stack on one machine), the file ``lastmile.toml`` (in the
working directory, or wherever ``LASTMILE_CONFIG`` points), and the environment
variable ``LASTMILE_<NAME>``. ``lastmile config`` prints the effective values and
where each came from, with secrets masked.

>>> s = load_settings(env={"LASTMILE_KAFKA_PORT": "19092"}, toml_path=None)
>>> s.kafka_bootstrap_servers
'127.0.0.1:19092'
>>> s.embedded_kafka
True
>>> load_settings(env={"LASTMILE_KAFKA_BOOTSTRAP": "kafka:9092"}).embedded_kafka
False
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from streams.errors import StreamsError

ENV_PREFIX = "LASTMILE_"
SECRET_MARK = "password"


class ConfigError(StreamsError, ValueError):
    """A setting has a value lastmile cannot use; the message names the setting and its source.

    `key` is the setting (or variable, or file) at fault and `value` the raw value, when known.

    >>> err = ConfigError("setting kafka_port from $LASTMILE_KAFKA_PORT: 'x' is not valid",
    ...                   key="kafka_port", value="x")
    >>> err.key, err.value, isinstance(err, ValueError)
    ('kafka_port', 'x', True)
    """

    def __init__(self, message: str, *, key: str | None = None, value: Any = None) -> None:
        super().__init__(message)
        self.key = key
        self.value = value


def _field(default: Any, doc: str, secret: bool = False) -> Any:
    meta = {"doc": doc, "secret": secret}
    if isinstance(default, dict):
        return dataclasses.field(default_factory=lambda: dict(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


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

    # The learner role (durations as seconds or 30s / 10m / 1h / 7d)
    learner_policy: str = _field(
        "challenger", "What a snapshot becomes: auto (champion if better), challenger, manual."
    )
    learner_snapshot_every: int = _field(100_000, "Learned outcomes between two snapshots.")
    learner_snapshot_interval: str = _field("1h", "Or wall time between two snapshots.")
    learner_join_ttl: str = _field("7d", "How long a prediction waits for its outcome.")
    learner_outcome_wait: str = _field(
        "10m", "How long an early outcome waits for its prediction, then a dead letter."
    )
    learner_join_capacity: int = _field(250_000, "Waiting predictions per partition.")
    learner_outcome_capacity: int = _field(100_000, "Waiting outcomes per partition.")
    learner_window: int = _field(1000, "Outcomes per prequential rolling metric.")
    learner_metrics_every: int = _field(1000, "Outcomes between two metric publications.")
    learner_metrics_interval: str = _field("60s", "Or wall time between two publications.")
    learner_checkpoint_interval: str = _field("1s", "Time between two state checkpoints.")
    learner_tick_interval: str = _field("1s", "Idle time before a partition's clock advances.")
    learner_challenger_share: float = _field(
        10.0, "Percent of traffic for a challenger snapshot when the model has no split."
    )
    learner_promote_margin: float = _field(0.0, "How much better auto needs a snapshot to be.")
    learner_reference_rows: int = _field(1000, "Recent rows profiled as a snapshot's reference.")
    learner_evaluate_champion: bool = _field(True, "Also score the frozen champion (prequential).")
    learner_route: bool = _field(True, "Run the routing stage in this worker.")
    learner_group: str = _field("lastmile-learner", "Consumer group of the learner.")
    learner_repartition_topic: str | None = _field(
        None, "Outcomes and predictions keyed by model. Unset: derived from topic_outcomes."
    )
    learner_state_topic: str | None = _field(
        None, "The learner's changelog (compacted). Unset: derived from topic_outcomes."
    )

    # The monitor role (durations as seconds or 30s / 10m / 1h; lists comma-separated)
    monitor_window: str = _field("60s", "Monitor window size, in event time.")
    monitor_step: str | None = _field(
        None, "Monitor window step; unset: tumbling windows (step = window), smaller: sliding."
    )
    monitor_allowed_lateness: str = _field("10s", "How late an event may arrive for its window.")
    monitor_rules: str | None = _field(
        None, "Alert rules YAML file. Unset: monitors/rules.yaml shipped with lastmile."
    )
    monitor_webhooks: str | None = _field(
        None, "Generic JSON webhook URLs for alerts, comma-separated.", secret=True
    )
    monitor_slack_webhooks: str | None = _field(
        None, "Slack incoming-webhook URLs for alerts, comma-separated.", secret=True
    )
    monitor_segments: str | None = _field(
        None, "Categorical features (or 'variant') every statistic is also kept per value of."
    )
    monitor_max_segment_values: int = _field(20, "Values per segment key; the rest: __other__.")
    monitor_join_capacity: int = _field(
        100_000, "Predictions the monitor keeps to join outcomes with (0: no performance)."
    )
    monitor_performance_window: int = _field(1000, "Outcomes per rolling performance metric.")
    monitor_detectors: str = _field(
        "error:adwin", "Change detectors as stream:detector (streams score, error)."
    )
    monitor_snapshot_interval: str = _field(
        "30s", "Wall time between monitor state snapshots when nothing is emitted."
    )
    monitor_state_topic: str | None = _field(
        None, "Compacted topic of the monitor's state. Unset: topic_metrics with 'state'."
    )
    monitor_group: str = _field("lastmile-monitor", "Consumer group of the monitor.")
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

    def consumer_config(self, group_id: str, **overrides: Any) -> dict[str, Any]:
        """Consumer settings: manual commits, and the short timeouts the embedded broker needs.

        The embedded broker completes a group join after about half the session
        timeout, and does not wake a waiting fetch when data arrives (DESIGN.md,
        "Measured"), hence the short session timeout and fetch wait there. Those are
        defaults: ``kafka_client`` wins over them, but not over what delivery rests on
        (:data:`FIXED_CLIENT_SETTINGS`); the caller's ``overrides`` win over all.

        >>> s = load_settings(env={}, toml_path=None, kafka_client={"fetch.wait.max.ms": 50})
        >>> conf = s.consumer_config("g")
        >>> conf["fetch.wait.max.ms"], conf["enable.auto.commit"], conf["group.id"]
        (50, False, 'g')
        """
        tuning: dict[str, Any] = {}
        if self.fast_group_join:
            tuning = {
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 1000,
                "fetch.wait.max.ms": 10,
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

        >>> s = load_settings(env={}, toml_path=None, kafka_client={"linger.ms": 50})
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


def settings_env(settings: Settings) -> dict[str, str]:
    """Every set value as a ``LASTMILE_*`` variable: how a process started by lastmile
    (a worker, a test's subprocess) gets exactly these settings.

    >>> settings_env(load_settings(env={}, toml_path=None, kafka_port=19092))["LASTMILE_KAFKA_PORT"]
    '19092'
    """
    env = {}
    for name in FIELDS:
        value = getattr(settings, name)
        if value is None:
            continue
        env[f"{ENV_PREFIX}{name.upper()}"] = (
            json.dumps(value) if isinstance(value, dict) else str(value)
        )
    return env


def settings_from_context(ctx: Any) -> Settings:
    """The settings of a click command: those the caller passed (``obj=Settings`` or
    ``obj={"settings": Settings}``, as tests and ``lastmile up`` do), else loaded."""
    root = ctx.find_root()
    obj = root.obj
    if isinstance(obj, Settings):
        return obj
    if isinstance(obj, Mapping) and isinstance(obj.get("settings"), Settings):
        return obj["settings"]
    settings = load_settings()
    if obj is None:
        root.obj = {"settings": settings}
    return settings


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _convert(field: dataclasses.Field, raw: Any, source: str) -> Any:
    """Turn a raw value from TOML or the environment into the field's type."""
    annotation = str(field.type)
    name = field.name
    if raw is None:
        return None
    try:
        if annotation.startswith("dict"):
            value = json.loads(raw) if isinstance(raw, str) else raw
            if not isinstance(value, Mapping):
                raise ValueError("expected a JSON object / TOML table")
            return {str(k): str(v) for k, v in value.items()}
        if annotation.startswith("bool"):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            if text in ("", "auto") and annotation.endswith("None"):
                return None
            raise ValueError("expected true or false")
        if annotation.startswith("int"):
            if isinstance(raw, bool):
                raise ValueError("expected an integer")
            value = int(raw)
            if "port" in name and not 0 < value < 65536:
                raise ValueError("a port is between 1 and 65535")
            return value
        if annotation.startswith("float"):
            if isinstance(raw, bool):
                raise ValueError("expected a number")
            return float(raw)
        if annotation.startswith("Path"):
            return Path(os.path.expanduser(str(raw)))
        text = str(raw)
        return text if text or not annotation.endswith("None") else None
    except (ValueError, TypeError, json.JSONDecodeError) as err:
        raise ConfigError(
            f"setting {name} from {source}: {raw!r} is not valid ({err})", key=name, value=raw
        ) from None


FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(Settings)}


def load_settings(
    env: Mapping[str, str] | None = None,
    toml_path: Path | str | None | bool = True,
    **overrides: Any,
) -> Settings:
    """Build the effective settings.

    ``toml_path=True`` looks for ``$LASTMILE_CONFIG`` or ``./lastmile.toml``;
    ``None`` or ``False`` reads no file. Keyword ``overrides`` win over everything
    (tests and the embedded stack use them).
    """
    settings, _ = load_settings_with_sources(env, toml_path, **overrides)
    return settings


def load_settings_with_sources(
    env: Mapping[str, str] | None = None,
    toml_path: Path | str | None | bool = True,
    **overrides: Any,
) -> tuple[Settings, dict[str, str]]:
    """Like :func:`load_settings`, and also say where each value came from."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources = {name: "default" for name in FIELDS}

    if toml_path is True:
        toml_path = env.get(f"{ENV_PREFIX}CONFIG") or "lastmile.toml"
        required = f"{ENV_PREFIX}CONFIG" in env
    else:
        required = bool(toml_path)
    if toml_path:
        path = Path(toml_path)
        if path.exists():
            try:
                table = tomllib.loads(path.read_text())
            except (OSError, tomllib.TOMLDecodeError) as err:
                raise ConfigError(f"cannot read {path}: {err}", key=str(path)) from None
            table = table.get("lastmile", table)
            for key, raw in table.items():
                if key not in FIELDS:
                    raise ConfigError(f"{path}: unknown setting {key!r}", key=key, value=raw)
                values[key] = _convert(FIELDS[key], raw, str(path))
                sources[key] = str(path)
        elif required:
            raise ConfigError(
                f"LASTMILE_CONFIG points at {path}, which does not exist",
                key="LASTMILE_CONFIG",
                value=str(path),
            )

    for name, field in FIELDS.items():
        key = f"{ENV_PREFIX}{name.upper()}"
        if key in env:
            values[name] = _convert(field, env[key], f"${key}")
            sources[name] = f"${key}"

    for name, raw in overrides.items():
        if name not in FIELDS:
            raise ConfigError(f"unknown setting {name!r}", key=name, value=raw)
        values[name] = raw
        sources[name] = "argument"
    return Settings(**values), sources


def describe(settings: Settings, sources: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """Rows of (setting, value with secrets masked, source, doc) for ``lastmile config``."""
    rows = []
    for name, field in FIELDS.items():
        value = getattr(settings, name)
        if value is None:
            shown = ""
        elif field.metadata["secret"] and name.endswith("url"):
            shown = mask_url(str(value))
        elif field.metadata["secret"] and "webhooks" in name:
            shown = ",".join(mask_url(u.strip()) for u in str(value).split(","))
        elif field.metadata["secret"]:
            shown = "***"
        elif isinstance(value, dict):
            shown = json.dumps(
                {k: ("***" if SECRET_MARK in k or "secret" in k else v) for k, v in value.items()}
            )
        else:
            shown = str(value)
        rows.append(
            {
                "setting": name,
                "env": f"{ENV_PREFIX}{name.upper()}",
                "value": shown,
                "source": (sources or {}).get(name, ""),
                "doc": field.metadata["doc"],
            }
        )
    return rows
