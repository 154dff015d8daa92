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
from streams.config import ConfigError, Settings, load_settings

__all__ = ["MonitorSettings", "csv_list"]

ENV_PREFIX = "LASTMILE_MONITOR_"
#: The monitor's fields of :class:`~streams.config.Settings` are named ``monitor_<...>``.
SETTING_PREFIX = "monitor_"
#: Settings field -> :class:`MonitorSettings` field, by how the value is read.
DURATIONS = {
    "monitor_window": "window",
    "monitor_step": "step",
    "monitor_allowed_lateness": "allowed_lateness",
    "monitor_snapshot_interval": "snapshot_interval",
}
LISTS = {
    "monitor_webhooks": "webhooks",
    "monitor_slack_webhooks": "slack_webhooks",
    "monitor_segments": "segments",
    "monitor_detectors": "detectors",
}
SCALARS = {
    "monitor_max_segment_values": "max_segment_values",
    "monitor_join_capacity": "join_capacity",
    "monitor_performance_window": "performance_window",
    "monitor_comparison_alpha": "comparison_alpha",
    "monitor_rules": "rules_path",
    "monitor_state_topic": "state_topic",
    "monitor_group": "group_id",
}


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
    LASTMILE_MONITOR_COMPARISON_ALPHA    0.05                    error rate of the champion/
                                                                 challenger decision
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
    comparison_alpha: float = 0.05
    detectors: tuple[str, ...] = ("error:adwin",)
    snapshot_interval: float = 30.0
    state_topic: str | None = None
    group_id: str = "lastmile-monitor"

    def __post_init__(self) -> None:
        if not 0.0 < self.comparison_alpha < 1.0:
            raise ValueError(
                f"monitor comparison alpha must be in (0, 1), not {self.comparison_alpha}"
            )
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
        """Settings from the environment (or `env`); unset variables keep their defaults,
        empty ones too except the lists (an empty list is a choice). The variables are
        parsed by :func:`streams.config.load_settings`, the one parser of settings, then
        read as :meth:`from_settings` reads them."""
        env = os.environ if env is None else env
        lists = {ENV_PREFIX + setting[len(SETTING_PREFIX) :].upper() for setting in LISTS}
        mine = {
            k: v for k, v in env.items() if k.startswith(ENV_PREFIX) and (v.strip() or k in lists)
        }
        return cls.from_settings(load_settings(env=mine, toml_path=None))

    @classmethod
    def from_settings(cls, settings: Settings) -> MonitorSettings:
        """The ``monitor_*`` fields of the parsed settings (env, lastmile.toml or defaults):
        typed already, only durations become seconds and lists are split at commas here.

        >>> s = MonitorSettings.from_settings(load_settings(env={}, toml_path=None))
        >>> s == MonitorSettings()
        True
        """
        values: dict[str, Any] = {}
        for key, name in DURATIONS.items():
            raw = getattr(settings, key)
            if raw is not None and str(raw).strip() != "":
                var = ENV_PREFIX + key[len(SETTING_PREFIX) :].upper()
                try:
                    values[name] = parse_duration(raw)
                except ValueError as err:
                    raise ConfigError(f"{var}: {err}", key=key, value=raw) from None
        for key, name in LISTS.items():
            raw = getattr(settings, key)
            if raw is not None:
                values[name] = csv_list(raw)
        for key, name in SCALARS.items():
            raw = getattr(settings, key)
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                continue  # unset or empty: the default
            values[name] = raw.strip() if isinstance(raw, str) else raw
        return cls(**values)

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
