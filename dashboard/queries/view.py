"""What a page shows (:class:`View`): the sidebar's session-state keys, the refresh
interval and tick, and the view the sidebar describes right now."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Mapping
from typing import Any

import streamlit as st

from dashboard.queries.connection import Db
from dashboard.queries.time_range import DEFAULT_RANGE, UTC, bucket_step, resolve_range
from streams.config import Settings, load_settings

# Refresh choices (label -> seconds; None: no automatic refresh).
REFRESH_CHOICES: dict[str, int | None] = {
    "off": None,
    "5 s": 5,
    "10 s": 10,
    "30 s": 30,
    "1 min": 60,
    "5 min": 300,
}
DEFAULT_REFRESH = "30 s"
# Without automatic refresh, results are still refetched this often (or on "Refresh now").
MANUAL_TICK_S = 3600

ALL_MODELS = ""
ALL_VERSIONS = -1

# Session-state keys shared by the sidebar (charts.sidebar) and the pages.
K_MODEL = "lm_model"
K_VERSION = "lm_version"
K_RANGE = "lm_range"
K_FROM = "lm_from"
K_TO = "lm_to"
K_REFRESH = "lm_refresh"
K_NONCE = "lm_nonce"
K_FOCUS = "lm_focus"
K_FEATURE = "lm_feature"


# The sink writes within about a second (sink_batch_seconds); what is younger may be missing.
SETTLE_S = 3


@dataclasses.dataclass(frozen=True)
class View:
    """What a page shows: model/version, time range and chart step, and the refresh tick.

    ``since``/``until`` are minute-aligned UTC times (the rollups are per minute, so
    a range read from them counts exactly what the raw table holds for it).
    """

    db: Db
    registry: str
    requests_topic: str
    model: str = ALL_MODELS
    version: int = ALL_VERSIONS
    since: dt.datetime = dt.datetime(1970, 1, 1, tzinfo=UTC)
    until: dt.datetime = dt.datetime(1970, 1, 1, tzinfo=UTC)
    step: int = 60
    tick: int = 0

    @property
    def seconds(self) -> float:
        """How long the range has lasted so far (a range ending in the future is not over)."""
        end = min(self.until, dt.datetime.now(UTC))
        return max((end - self.since).total_seconds(), 1.0)

    @property
    def last_minute(self) -> tuple[dt.datetime, dt.datetime]:
        """The range's last 60 seconds that have happened: "now" on a live range.

        A live range ends in the future, so its last minute ends now, less
        :data:`SETTLE_S` for the rows the sink has not written yet (a rate over a
        minute whose last seconds are still missing would read low).
        """
        now = dt.datetime.now(UTC)
        end = self.until if self.until <= now else now - dt.timedelta(seconds=SETTLE_S)
        return max(end - dt.timedelta(seconds=60), self.since), end

    def params(self, **extra: Any) -> dict[str, Any]:
        """The bound parameters every scoped query shares."""
        return {
            "model": self.model,
            "version": self.version,
            "since": self.since,
            "until": self.until,
            "step": self.step,
            **extra,
        }

    def with_model(self, model: str, version: int = ALL_VERSIONS) -> View:
        return dataclasses.replace(self, model=model, version=version)


def refresh_seconds(state: Mapping[str, Any] | None = None) -> int | None:
    """The chosen refresh interval in seconds, None when refreshing is off."""
    state = st.session_state if state is None else state
    return REFRESH_CHOICES.get(state.get(K_REFRESH, DEFAULT_REFRESH), 30)


def current_tick(state: Mapping[str, Any] | None = None, now: float | None = None) -> int:
    """Changes once per refresh interval (and when "Refresh now" bumps the nonce)."""
    state = st.session_state if state is None else state
    interval = refresh_seconds(state) or MANUAL_TICK_S
    now = time.time() if now is None else now
    return int(now // interval) * 1000 + int(state.get(K_NONCE, 0)) % 1000


def settings() -> Settings:
    """The settings, read on every run: cheap, and tests change the environment."""
    return load_settings()


def current_view(state: Mapping[str, Any] | None = None) -> View:
    """The view the sidebar describes, resolved now (relative ranges move with time)."""
    state = st.session_state if state is None else state
    s = settings()
    since, until = resolve_range(
        state.get(K_RANGE, DEFAULT_RANGE), state.get(K_FROM), state.get(K_TO)
    )
    version = state.get(K_VERSION, ALL_VERSIONS)
    return View(
        db=Db.from_settings(s),
        registry=s.registry_location,
        requests_topic=s.topic_requests,
        model=state.get(K_MODEL, ALL_MODELS) or ALL_MODELS,
        version=ALL_VERSIONS if version is None else int(version),
        since=since,
        until=until,
        step=bucket_step((until - since).total_seconds()),
        tick=current_tick(state),
    )
