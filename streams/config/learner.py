"""The learner's section of the settings: ``[learner]`` in lastmile.toml (or flat
``learner_<key>`` keys), ``LASTMILE_LEARNER_<KEY>`` in the environment.

Durations are seconds or ``30s``/``10m``/``1h``/``7d``; 0 turns a trigger off. The table
``lastmile config`` prints lists every variable, its default and what it does.

>>> from streams.config import load_settings
>>> s = load_settings(env={"LASTMILE_LEARNER_POLICY": "auto",
...                        "LASTMILE_LEARNER_JOIN_TTL": "2d"}, toml_path=None).learner
>>> s.policy, s.join_ttl, s.outcome_wait
('auto', 172800.0, 600.0)
>>> s.state_topic_for(load_settings(env={}, toml_path=None))
'scoring.learner.state'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING

from streams.config.fields import ConfigError, setting

if TYPE_CHECKING:
    from streams.config.settings import Settings

__all__ = ["POLICIES", "LearnerSettings"]

POLICIES = ("auto", "challenger", "manual")


def _derive(name: str, what: str) -> str:
    return name.replace("outcomes", what, 1) if "outcomes" in name else f"{name}.{what}"


@dataclasses.dataclass(frozen=True)
class LearnerSettings:
    """The learner's own settings, typed: durations in seconds."""

    policy: str = setting(
        "challenger", "What a snapshot becomes: auto (champion if better), challenger, manual."
    )
    snapshot_every: int = setting(100_000, "Learned outcomes between two snapshots.")
    snapshot_interval: float = setting(
        3600.0, "Or wall time between two snapshots.", kind="duration"
    )
    join_ttl: float = setting(
        7 * 86400.0, "How long a prediction waits for its outcome.", kind="duration"
    )
    outcome_wait: float = setting(
        600.0,
        "How long an early outcome waits for its prediction, then a dead letter.",
        kind="duration",
    )
    join_capacity: int = setting(250_000, "Waiting predictions per partition (~450 bytes each).")
    outcome_capacity: int = setting(100_000, "Waiting outcomes per partition.")
    window: int = setting(1000, "Outcomes per prequential rolling metric.")
    metrics_every: int = setting(1000, "Outcomes between two metric publications.")
    metrics_interval: float = setting(
        60.0, "Or wall time between two publications.", kind="duration"
    )
    checkpoint_interval: float = setting(
        1.0, "Time between two state checkpoints.", kind="duration"
    )
    tick_interval: float = setting(
        1.0, "Idle time before a partition's clock advances.", kind="duration"
    )
    challenger_share: float = setting(
        10.0, "Percent of traffic for a challenger snapshot when the model has no split."
    )
    promote_alpha: float = setting(
        0.05, "Error rate of auto's paired test that a snapshot beats the champion."
    )
    reference_rows: int = setting(1000, "Recent rows profiled as a snapshot's reference.")
    evaluate_champion: bool = setting(True, "Also score the frozen champion (prequential).")
    route: bool = setting(True, "Run the routing stage in this worker.")
    group_id: str = setting("lastmile-learner", "Consumer group of the learner.", key="group")
    repartition_topic: str | None = setting(
        None, "Outcomes and predictions keyed by model. Unset: derived from topic_outcomes."
    )
    state_topic: str | None = setting(
        None, "The learner's changelog (compacted). Unset: derived from topic_outcomes."
    )

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ConfigError(
                f"learner policy {self.policy!r}: use {' | '.join(POLICIES)}",
                key="learner_policy",
                value=self.policy,
            )
        if self.policy == "auto" and not self.evaluate_champion:
            raise ConfigError(
                "learner policy auto compares with the champion: evaluate it",
                key="learner_evaluate_champion",
                value=False,
            )
        if self.window < 1:
            raise ConfigError(
                "learner window must be >= 1", key="learner_window", value=self.window
            )
        if not 0.0 < self.promote_alpha < 1.0:
            raise ConfigError(
                "learner promote alpha must be in (0, 1)",
                key="learner_promote_alpha",
                value=self.promote_alpha,
            )
        if not 0.0 <= self.challenger_share < 100.0:
            raise ConfigError(
                "learner challenger share must be within [0, 100)",
                key="learner_challenger_share",
                value=self.challenger_share,
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LearnerSettings:
        """The section as ``LASTMILE_LEARNER_*`` variables in `env` set it (the others are
        not read), through :func:`streams.config.load_settings`, the one parser.

        >>> LearnerSettings.from_env({"LASTMILE_LEARNER_GROUP": "g1"}).group_id
        'g1'
        """
        from streams.config.loading import load_section  # loading imports this module

        return load_section("learner", env)

    def repartition_topic_for(self, settings: Settings) -> str:
        """The repartition topic: configured, or ``topic_outcomes`` with "outcomes" ->
        "learner.input"."""
        return self.repartition_topic or _derive(settings.topic_outcomes, "learner.input")

    def state_topic_for(self, settings: Settings) -> str:
        """The changelog topic: configured, or ``topic_outcomes`` with "outcomes" ->
        "learner.state"."""
        return self.state_topic or _derive(settings.topic_outcomes, "learner.state")
