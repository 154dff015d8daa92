"""The learner's settings (``LASTMILE_LEARNER_*``) and the topic names derived from them."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from monitors.rules import parse_duration
from streams.config import ConfigError, Settings, load_settings

POLICIES = ("auto", "challenger", "manual")
ENV_PREFIX = "LASTMILE_LEARNER_"
#: The learner's fields of :class:`~streams.config.Settings` are named ``learner_<field>``.
SETTING_PREFIX = "learner_"


def _derive(name: str, what: str) -> str:
    return name.replace("outcomes", what, 1) if "outcomes" in name else f"{name}.{what}"


@dataclasses.dataclass(frozen=True)
class LearnerSettings:
    """The learner's own settings, from ``LASTMILE_LEARNER_*`` variables (durations in
    seconds or ``30s``/``10m``/``1h``/``7d``; 0 turns a trigger off).

    ===================================  ====================  ===============================
    variable                             default               what it is
    ===================================  ====================  ===============================
    LASTMILE_LEARNER_POLICY              challenger            auto | challenger | manual
    LASTMILE_LEARNER_SNAPSHOT_EVERY      100000                learned outcomes per snapshot
    LASTMILE_LEARNER_SNAPSHOT_INTERVAL   1h                    ... or wall time per snapshot
    LASTMILE_LEARNER_JOIN_TTL            7d                    a prediction waits this long
                                                               for its outcome
    LASTMILE_LEARNER_OUTCOME_WAIT        10m                   an outcome waits this long for
                                                               its prediction, then DLQ
    LASTMILE_LEARNER_JOIN_CAPACITY       250000                waiting predictions/partition
                                                               (~450 bytes each)
    LASTMILE_LEARNER_OUTCOME_CAPACITY    100000                waiting outcomes/partition
    LASTMILE_LEARNER_WINDOW              1000                  outcomes per rolling metric
    LASTMILE_LEARNER_METRICS_EVERY       1000                  outcomes between metrics
    LASTMILE_LEARNER_METRICS_INTERVAL    60s                   ... or wall time
    LASTMILE_LEARNER_CHECKPOINT_INTERVAL 1s                    wall time between checkpoints
    LASTMILE_LEARNER_TICK_INTERVAL       1s                    idle time before a tick
    LASTMILE_LEARNER_CHALLENGER_SHARE    10                    % of traffic for a new
                                                               challenger when no split is set
    LASTMILE_LEARNER_PROMOTE_MARGIN      0                     auto: required improvement
    LASTMILE_LEARNER_REFERENCE_ROWS      1000                  recent rows as a snapshot's
                                                               reference profile
    LASTMILE_LEARNER_EVALUATE_CHAMPION   true                  frozen champion's prequential
    LASTMILE_LEARNER_ROUTE               true                  run the routing stage here
    LASTMILE_LEARNER_GROUP               lastmile-learner      consumer group
    LASTMILE_LEARNER_REPARTITION_TOPIC   scoring.learner.input (from topic_outcomes)
    LASTMILE_LEARNER_STATE_TOPIC         scoring.learner.state (from topic_outcomes)
    ===================================  ====================  ===============================

    >>> s = LearnerSettings.from_env({"LASTMILE_LEARNER_POLICY": "auto",
    ...                               "LASTMILE_LEARNER_JOIN_TTL": "2d"})
    >>> s.policy, s.join_ttl, s.outcome_wait
    ('auto', 172800.0, 600.0)
    """

    policy: str = "challenger"
    snapshot_every: int = 100_000
    snapshot_interval: float = 3600.0
    join_ttl: float = 7 * 86400.0
    outcome_wait: float = 600.0
    join_capacity: int = 250_000
    outcome_capacity: int = 100_000
    window: int = 1000
    metrics_every: int = 1000
    metrics_interval: float = 60.0
    checkpoint_interval: float = 1.0
    tick_interval: float = 1.0
    challenger_share: float = 10.0
    promote_margin: float = 0.0
    reference_rows: int = 1000
    evaluate_champion: bool = True
    route: bool = True
    group_id: str = "lastmile-learner"
    repartition_topic: str | None = None
    state_topic: str | None = None

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"learner policy {self.policy!r}: use {' | '.join(POLICIES)}")
        if self.policy == "auto" and not self.evaluate_champion:
            raise ValueError("learner policy auto compares with the champion: evaluate it")
        if self.window < 1:
            raise ValueError("learner window must be >= 1")
        if not 0.0 <= self.challenger_share < 100.0:
            raise ValueError("learner challenger share must be within [0, 100)")

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Field name -> the ``LASTMILE_LEARNER_*`` variable that sets it.

        >>> LearnerSettings.variables()["group_id"], LearnerSettings.variables()["join_ttl"]
        ('LASTMILE_LEARNER_GROUP', 'LASTMILE_LEARNER_JOIN_TTL')
        """
        return {
            f.name: ENV_PREFIX + ("GROUP" if f.name == "group_id" else f.name.upper())
            for f in dataclasses.fields(cls)
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LearnerSettings:
        """Settings from the environment (or `env`); unset or empty variables keep their
        defaults. The variables are parsed by :func:`streams.config.load_settings`, the one
        parser of settings, then read as :meth:`from_settings` reads them."""
        env = os.environ if env is None else env
        mine = {k: v for k, v in env.items() if k.startswith(ENV_PREFIX) and v.strip()}
        return cls.from_settings(load_settings(env=mine, toml_path=None))

    @classmethod
    def from_settings(cls, settings: Settings) -> LearnerSettings:
        """The ``learner_*`` fields of the parsed settings (env, lastmile.toml or defaults):
        typed already, only durations (``30s``, ``7d``) are turned into seconds here.

        >>> s = LearnerSettings.from_settings(load_settings(env={}, toml_path=None))
        >>> s == LearnerSettings()
        True
        """
        values: dict[str, Any] = {}
        names = cls.variables()
        for f in dataclasses.fields(cls):
            key = SETTING_PREFIX + ("group" if f.name == "group_id" else f.name)
            raw = getattr(settings, key)
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                continue  # unset or empty: the default
            if f.type in ("float", float):
                try:
                    values[f.name] = parse_duration(raw)
                except ValueError as err:
                    raise ConfigError(f"{names[f.name]}: {err}", key=key, value=raw) from None
            elif isinstance(raw, str):
                values[f.name] = raw.strip()
            else:
                values[f.name] = raw
        return cls(**values)

    def repartition_topic_for(self, settings: Settings) -> str:
        """The repartition topic: configured, or ``topic_outcomes`` with "outcomes" ->
        "learner.input"."""
        return self.repartition_topic or _derive(settings.topic_outcomes, "learner.input")

    def state_topic_for(self, settings: Settings) -> str:
        """The changelog topic: configured, or ``topic_outcomes`` with "outcomes" ->
        "learner.state"."""
        return self.state_topic or _derive(settings.topic_outcomes, "learner.state")
