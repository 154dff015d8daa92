"""The monitor's own settings: ``LASTMILE_MONITOR_*`` variables (or the ``monitor_*``
fields of lastmile.toml) and the alert sinks they name."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

from monitors.detectors import DETECTORS
from monitors.notify import LogSink, Sink, SlackSink, WebhookSink
from monitors.rules import parse_duration
from streams.config import Settings

__all__ = ["MonitorSettings", "csv_list"]


def csv_list(text: str | None) -> tuple[str, ...]:
    """The non-empty, stripped items of a comma-separated list."""
    return tuple(p.strip() for p in (text or "").split(",") if p.strip())


@dataclasses.dataclass(frozen=True)
class MonitorSettings:
    """The monitor's own settings, from ``LASTMILE_MONITOR_*`` variables (durations in
    seconds or ``30s``/``10m``/``1h``; lists comma-separated).

    ===================================  ======================  =============================
    variable                             default                 what it is
    ===================================  ======================  =============================
    LASTMILE_MONITOR_WINDOW              60s                     window size (event time)
    LASTMILE_MONITOR_STEP                = window (tumbling)     smaller: sliding windows
    LASTMILE_MONITOR_ALLOWED_LATENESS    10s                     how late an event may come
    LASTMILE_MONITOR_RULES               monitors/rules.yaml     alert rules file
    LASTMILE_MONITOR_WEBHOOKS            (none)                  JSON webhook URLs
    LASTMILE_MONITOR_SLACK_WEBHOOKS      (none)                  Slack incoming-webhook URLs
    LASTMILE_MONITOR_SEGMENTS            (none)                  categorical features (or
                                                                 ``variant``) to slice by
    LASTMILE_MONITOR_MAX_SEGMENT_VALUES  20                      values per segment key; the
                                                                 rest are ``__other__``
    LASTMILE_MONITOR_JOIN_CAPACITY       100000                  predictions kept for the
                                                                 outcome join (0: no join)
    LASTMILE_MONITOR_PERFORMANCE_WINDOW  1000                    outcomes per rolling metric
    LASTMILE_MONITOR_DETECTORS           error:adwin             ``stream:detector`` pairs;
                                                                 streams score, error
    LASTMILE_MONITOR_SNAPSHOT_INTERVAL   30s                     wall time between snapshots
                                                                 when nothing is emitted
    LASTMILE_MONITOR_STATE_TOPIC         monitor.state           compacted state topic
                                                                 (derived from topic_metrics)
    LASTMILE_MONITOR_GROUP               lastmile-monitor        consumer group
    ===================================  ======================  =============================

    >>> s = MonitorSettings.from_env({"LASTMILE_MONITOR_WINDOW": "5m",
    ...                               "LASTMILE_MONITOR_SEGMENTS": "plan, variant"})
    >>> s.window, s.step, s.segments
    (300.0, 300.0, ('plan', 'variant'))
    """

    window: float = 60.0
    step: float | None = None
    allowed_lateness: float = 10.0
    rules_path: str | None = None
    webhooks: tuple[str, ...] = ()
    slack_webhooks: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()
    max_segment_values: int = 20
    join_capacity: int = 100_000
    performance_window: int = 1000
    detectors: tuple[str, ...] = ("error:adwin",)
    snapshot_interval: float = 30.0
    state_topic: str | None = None
    group_id: str = "lastmile-monitor"

    def __post_init__(self) -> None:
        if self.step is None:
            object.__setattr__(self, "step", self.window)
        for spec in self.detectors:
            stream, _, name = spec.partition(":")
            if stream not in ("score", "error") or name not in DETECTORS:
                raise ValueError(
                    f"monitor detector {spec!r}: use score|error:{'|'.join(sorted(DETECTORS))}"
                )

    @property
    def tumbling(self) -> bool:
        return self.step == self.window

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MonitorSettings:
        """Settings from the environment (or `env`); unset variables keep their defaults."""
        env = os.environ if env is None else env
        prefix = "LASTMILE_MONITOR_"
        values: dict[str, Any] = {}

        def get(name: str) -> str | None:
            raw = env.get(prefix + name)
            return raw if raw is not None and raw.strip() != "" else None

        durations = {
            "WINDOW": "window",
            "STEP": "step",
            "ALLOWED_LATENESS": "allowed_lateness",
            "SNAPSHOT_INTERVAL": "snapshot_interval",
        }
        for var, name in durations.items():
            if (raw := get(var)) is not None:
                try:
                    values[name] = parse_duration(raw)
                except ValueError as err:
                    raise ValueError(f"{prefix}{var}: {err}") from None
        ints = {
            "MAX_SEGMENT_VALUES": "max_segment_values",
            "JOIN_CAPACITY": "join_capacity",
            "PERFORMANCE_WINDOW": "performance_window",
        }
        for var, name in ints.items():
            if (raw := get(var)) is not None:
                try:
                    values[name] = int(raw)
                except ValueError:
                    raise ValueError(f"{prefix}{var}: {raw!r} is not a whole number") from None
        lists = {
            "WEBHOOKS": "webhooks",
            "SLACK_WEBHOOKS": "slack_webhooks",
            "SEGMENTS": "segments",
            "DETECTORS": "detectors",
        }
        for var, name in lists.items():
            raw = env.get(prefix + var)
            if raw is not None:
                values[name] = csv_list(raw)
        for var, name in (("RULES", "rules_path"), ("STATE_TOPIC", "state_topic")):
            if (raw := get(var)) is not None:
                values[name] = raw.strip()
        if (raw := get("GROUP")) is not None:
            values["group_id"] = raw.strip()
        return cls(**values)

    @classmethod
    def from_settings(cls, settings: Settings) -> MonitorSettings:
        """The ``monitor_*`` fields of the settings (env, lastmile.toml or defaults)."""
        from streams.config import prefixed_env

        return cls.from_env(prefixed_env(settings, "monitor"))

    def state_topic_for(self, settings: Settings) -> str:
        """The state topic: configured, or ``topic_metrics`` with "metrics" -> "state"."""
        if self.state_topic:
            return self.state_topic
        name = settings.topic_metrics
        return name.replace("metrics", "state", 1) if "metrics" in name else f"{name}.state"

    def sinks(self, extra_webhooks: Sequence[str] = ()) -> list[Sink]:
        """The alert sinks: a log line always, then the webhooks."""
        sinks: list[Sink] = [LogSink()]
        sinks += [WebhookSink(url) for url in (*self.webhooks, *extra_webhooks)]
        sinks += [SlackSink(url) for url in self.slack_webhooks]
        return sinks
