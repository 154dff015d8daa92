"""Every query the dashboard runs, and what a page needs to run them: the face of the
package, one module per page or concept (connection, time ranges, the view, overview,
drift, performance, versions, alerts, dead letters).

Rules the functions here keep:

* SQL is constant text; every value (model, version, times, feature names, bin
  edges) goes through clickhouse-connect's server-side binding ``{name:Type}``.
  Nothing a user picks is ever spliced into SQL.
* Every query function is wrapped in ``st.cache_data`` and takes a :class:`View`,
  whose ``tick`` changes once per refresh interval: all sessions on the same
  interval share one result per tick, so ClickHouse sees one query per interval
  however many people watch. The decorator's ``ttl`` only evicts ticks gone by.
* Traffic, latency and score distributions come from the per-minute rollup
  ``predictions_1m``; the big ``predictions`` table is only read for a feature's
  histogram in one window and for the outcome join, both bounded by
  (model, version, time), its sorting key.
"""

from __future__ import annotations

from dashboard.queries.alert_events import active_alerts, alert_actions, alerts, with_actions
from dashboard.queries.cache import CACHE_ENTRIES, CACHE_TTL_S
from dashboard.queries.catalog import has_predictions, models
from dashboard.queries.connection import QUERY_LOG, Db, StoreUnavailable, borrow
from dashboard.queries.dead_letters import (
    dead_letter_counts,
    dead_letter_examples,
    dead_letter_reasons,
    dead_letter_series,
)
from dashboard.queries.drift import (
    DRIFT_STATISTICS,
    category_counts,
    drift_matrix,
    drift_statistics,
    drift_windows,
    numeric_histogram,
    score_histograms,
)
from dashboard.queries.overview import (
    latency_series,
    sink_status,
    traffic_now,
    traffic_series,
    traffic_share,
    traffic_totals,
)
from dashboard.queries.performance import (
    JOIN_SAMPLE_ROWS,
    LABEL_DELAY_METRIC,
    PERFORMANCE_METRICS,
    outcome_join,
    performance_metrics,
)
from dashboard.queries.time_range import (
    BUCKET_STEPS_S,
    DEFAULT_RANGE,
    MAX_BUCKETS,
    RANGE_CHOICES,
    UTC,
    as_utc,
    bucket_step,
    ceil_minute,
    floor_minute,
    parse_time,
    resolve_range,
)
from dashboard.queries.versions import (
    LEARNER_MARK,
    VERSION_COLUMNS,
    is_learner,
    model_actions,
    model_versions,
    reference_profile,
    registry_versions,
)
from dashboard.queries.view import (
    ALL_MODELS,
    ALL_VERSIONS,
    DEFAULT_REFRESH,
    K_FEATURE,
    K_FOCUS,
    K_FROM,
    K_MODEL,
    K_NONCE,
    K_RANGE,
    K_REFRESH,
    K_TO,
    K_VERSION,
    MANUAL_TICK_S,
    REFRESH_CHOICES,
    View,
    current_tick,
    current_view,
    refresh_seconds,
    settings,
)

__all__ = [
    "ALL_MODELS",
    "ALL_VERSIONS",
    "BUCKET_STEPS_S",
    "CACHE_ENTRIES",
    "CACHE_TTL_S",
    "DEFAULT_RANGE",
    "DEFAULT_REFRESH",
    "DRIFT_STATISTICS",
    "Db",
    "JOIN_SAMPLE_ROWS",
    "K_FEATURE",
    "K_FOCUS",
    "K_FROM",
    "K_MODEL",
    "K_NONCE",
    "K_RANGE",
    "K_REFRESH",
    "K_TO",
    "K_VERSION",
    "LABEL_DELAY_METRIC",
    "LEARNER_MARK",
    "MANUAL_TICK_S",
    "MAX_BUCKETS",
    "PERFORMANCE_METRICS",
    "QUERY_LOG",
    "RANGE_CHOICES",
    "REFRESH_CHOICES",
    "StoreUnavailable",
    "UTC",
    "VERSION_COLUMNS",
    "View",
    "active_alerts",
    "alert_actions",
    "alerts",
    "as_utc",
    "borrow",
    "bucket_step",
    "category_counts",
    "ceil_minute",
    "current_tick",
    "current_view",
    "dead_letter_counts",
    "dead_letter_examples",
    "dead_letter_reasons",
    "dead_letter_series",
    "drift_matrix",
    "drift_statistics",
    "drift_windows",
    "floor_minute",
    "has_predictions",
    "is_learner",
    "latency_series",
    "model_actions",
    "model_versions",
    "models",
    "numeric_histogram",
    "outcome_join",
    "parse_time",
    "performance_metrics",
    "reference_profile",
    "refresh_seconds",
    "registry_versions",
    "resolve_range",
    "score_histograms",
    "settings",
    "sink_status",
    "traffic_now",
    "traffic_series",
    "traffic_share",
    "traffic_totals",
    "with_actions",
]
