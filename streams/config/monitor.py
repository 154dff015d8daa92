"""The monitor's section of the settings: ``[monitor]`` in lastmile.toml (or flat
``monitor_<key>`` keys), ``LASTMILE_MONITOR_<KEY>`` in the environment.

Durations are seconds or ``30s``/``10m``/``1h``; lists are comma-separated (TOML arrays
too), and an empty list is a choice (``LASTMILE_MONITOR_DETECTORS=`` runs none).

>>> from streams.config import load_settings
>>> s = load_settings(env={"LASTMILE_MONITOR_WINDOW": "5m",
...                        "LASTMILE_MONITOR_SEGMENTS": "plan, variant"}, toml_path=None).monitor
>>> s.window, s.step, s.segments, s.tumbling
(300.0, 300.0, ('plan', 'variant'), True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING

from streams.config.fields import ConfigError, setting

if TYPE_CHECKING:
    from streams.config.settings import Settings

__all__ = ["MonitorSettings"]

DEFAULT_DETECTORS = ("error:adwin",)
DETECTOR_STREAMS = ("score", "error")


@dataclasses.dataclass(frozen=True)
class MonitorSettings:
    """The monitor's own settings, typed: durations in seconds, lists as tuples."""

    window: float = setting(60.0, "Monitor window size, in event time.", kind="duration")
    step: float | None = setting(
        None,
        "Monitor window step; unset: tumbling windows (step = window), smaller: sliding.",
        kind="duration",
    )
    allowed_lateness: float = setting(
        10.0, "How late an event may arrive for its window.", kind="duration"
    )
    rules_path: str | None = setting(
        None,
        "Alert rules YAML file. Unset: monitors/rules.yaml shipped with lastmile.",
        key="rules",
    )
    webhooks: tuple[str, ...] = setting(
        (), "Generic JSON webhook URLs for alerts, comma-separated.", secret=True, kind="list"
    )
    slack_webhooks: tuple[str, ...] = setting(
        (), "Slack incoming-webhook URLs for alerts, comma-separated.", secret=True, kind="list"
    )
    segments: tuple[str, ...] = setting(
        (),
        "Categorical features (or 'variant') every statistic is also kept per value of.",
        kind="list",
    )
    max_segment_values: int = setting(20, "Values per segment key; the rest: __other__.")
    join_capacity: int = setting(
        100_000, "Predictions the monitor keeps to join outcomes with (0: no performance)."
    )
    performance_window: int = setting(1000, "Outcomes per rolling performance metric.")
    comparison_alpha: float = setting(
        0.05, "Error rate of the champion/challenger decision, however often it is read."
    )
    detectors: tuple[str, ...] = setting(
        DEFAULT_DETECTORS,
        "Change detectors as stream:detector (streams score, error).",
        kind="list",
    )
    state_topic: str | None = setting(
        None, "Compacted topic of the monitor's state. Unset: topic_metrics with 'state'."
    )
    group_id: str = setting("lastmile-monitor", "Consumer group of the monitor.", key="group")
    snapshot_interval: float = setting(
        30.0, "Wall time between monitor state snapshots when nothing is emitted.", kind="duration"
    )
    partitioned: bool = setting(
        False,
        "Run as one of many monitors in the group: inputs re-keyed by model, each worker "
        "owning the models of its partitions of the repartition topic.",
    )
    repartition_topic: str | None = setting(
        None, "Partitioned: the inputs keyed by model. Unset: topic_metrics with 'input'."
    )

    def __post_init__(self) -> None:
        if not 0.0 < self.comparison_alpha < 1.0:
            raise ConfigError(
                f"monitor comparison alpha must be in (0, 1), not {self.comparison_alpha}",
                key="monitor_comparison_alpha",
                value=self.comparison_alpha,
            )
        if self.step is None:
            object.__setattr__(self, "step", self.window)
        if self.detectors == DEFAULT_DETECTORS:
            return
        # River's drift package takes seconds to import and every command reads the settings:
        # only a choice other than the default is checked against the detectors there are.
        from monitors.detectors import DETECTORS

        for spec in self.detectors:
            stream, _, name = spec.partition(":")
            if stream not in DETECTOR_STREAMS or name not in DETECTORS:
                raise ConfigError(
                    f"monitor detector {spec!r}: use score|error:{'|'.join(sorted(DETECTORS))}",
                    key="monitor_detectors",
                    value=spec,
                )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MonitorSettings:
        """The section as ``LASTMILE_MONITOR_*`` variables in `env` set it (the others are
        not read), through :func:`streams.config.load_settings`, the one parser.

        >>> MonitorSettings.from_env({"LASTMILE_MONITOR_STEP": "15s"}).step
        15.0
        """
        from streams.config.loading import load_section  # loading imports this module

        return load_section("monitor", env)

    @property
    def tumbling(self) -> bool:
        return self.step == self.window

    def repartition_topic_for(self, settings: Settings) -> str:
        """The repartition topic: configured, or ``topic_metrics`` with "metrics" -> "input"."""
        if self.repartition_topic:
            return self.repartition_topic
        name = settings.topic_metrics
        return name.replace("metrics", "input", 1) if "metrics" in name else f"{name}.input"

    def state_topic_for(self, settings: Settings) -> str:
        """The state topic: configured, or ``topic_metrics`` with "metrics" -> "state"."""
        if self.state_topic:
            return self.state_topic
        name = settings.topic_metrics
        return name.replace("metrics", "state", 1) if "metrics" in name else f"{name}.state"
