"""The operator's own settings, read from :class:`~streams.config.Settings`: the mode, the
guards, the rules file it shares with the monitor, and how old an alert may be."""

from __future__ import annotations

import dataclasses

from monitors.rules import parse_duration
from streams.config import ConfigError, Settings

__all__ = ["MODES", "OperatorSettings"]

#: ``enforce`` acts; ``dry-run`` records what it would do and changes nothing.
MODES = ("enforce", "dry-run")


@dataclasses.dataclass(frozen=True)
class OperatorSettings:
    """The operator's settings, durations in seconds.

    >>> from streams.config import load_settings
    >>> s = OperatorSettings.from_settings(load_settings(env={}, toml_path=None))
    >>> s.mode, s.cooldown, s.max_per_hour, s.stale_after
    ('enforce', 600.0, 3, 70.0)
    >>> OperatorSettings.from_settings(load_settings(env={"LASTMILE_ACTIONS_MODE": "maybe"},
    ...                                              toml_path=None))
    Traceback (most recent call last):
    ...
    streams.config.fields.ConfigError: LASTMILE_ACTIONS_MODE: must be enforce or dry-run, ...
    """

    mode: str = "enforce"
    cooldown: float = 600.0
    max_per_hour: int = 3
    #: An alert older than this (its window plus the monitor's allowed lateness) is not
    #: acted on: what it saw may no longer be true.
    stale_after: float = 70.0
    #: The window size, to give an action its window's start.
    window: float = 60.0
    rules_path: str | None = None
    group_id: str = "lastmile-operator"

    @property
    def dry_run(self) -> bool:
        return self.mode == "dry-run"

    @classmethod
    def from_settings(cls, settings: Settings) -> OperatorSettings:
        mode = str(settings.actions_mode).strip().lower()
        if mode not in MODES:
            raise ConfigError(
                f"LASTMILE_ACTIONS_MODE: must be enforce or dry-run, not {settings.actions_mode!r}",
                key="actions_mode",
                value=settings.actions_mode,
            )
        try:
            cooldown = parse_duration(settings.actions_cooldown)
        except ValueError as err:
            raise ConfigError(
                f"LASTMILE_ACTIONS_COOLDOWN: {err}",
                key="actions_cooldown",
                value=settings.actions_cooldown,
            ) from None
        if settings.actions_max_per_hour < 1:
            raise ConfigError(
                "LASTMILE_ACTIONS_MAX_PER_HOUR: must be at least 1",
                key="actions_max_per_hour",
                value=settings.actions_max_per_hour,
            )
        monitor = settings.monitor  # its durations are parsed already
        return cls(
            mode=mode,
            cooldown=cooldown,
            max_per_hour=settings.actions_max_per_hour,
            stale_after=monitor.window + monitor.allowed_lateness,
            window=monitor.window,
            rules_path=monitor.rules_path or None,
            group_id=settings.operator_group,
        )
