"""Every query the dashboard runs, and what a page needs to run them.

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

import contextlib
import dataclasses
import datetime as dt
import math
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import orjson
import pandas as pd
import streamlit as st

from streams.config import Settings, load_settings

UTC = dt.UTC

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
# Eviction only: a tick older than the longest interval is never asked for again.
CACHE_TTL_S = 600
CACHE_ENTRIES = 512

RANGE_CHOICES: dict[str, dt.timedelta | None] = {
    "Last 15 minutes": dt.timedelta(minutes=15),
    "Last hour": dt.timedelta(hours=1),
    "Last 6 hours": dt.timedelta(hours=6),
    "Last 24 hours": dt.timedelta(days=1),
    "Last 7 days": dt.timedelta(days=7),
    "Last 30 days": dt.timedelta(days=30),
    "Custom": None,
}
DEFAULT_RANGE = "Last hour"
# Chart buckets: the smallest of these that keeps a range under MAX_BUCKETS points.
BUCKET_STEPS_S = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
MAX_BUCKETS = 180

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

LEARNER_MARK = "learner"
# Drift statistics the monitor emits (monitors/report.py), with the direction of
# "worse" and the threshold to draw. The monitor's own decision is `drift` (0/1);
# the distance thresholds are its policy's (monitors/drift.py), PSI's the usual 0.2.
# Both spellings of the tests' names are listed (report.py writes ks_p_value and
# chi_square*, the design notes say ks_pvalue and chi2*): whichever arrives is shown.
DRIFT_STATISTICS: dict[str, tuple[str, str, float | None]] = {
    # name: (label, "above" | "below", threshold)
    "drift": ("drift decision (0/1)", "above", 0.5),
    "wasserstein": ("Wasserstein (normalised)", "above", 0.1),
    "jensen_shannon": ("Jensen-Shannon distance", "above", 0.1),
    "psi": ("PSI", "above", 0.2),
    "ks": ("KS statistic", "above", None),
    "ks_p_value": ("KS p-value", "below", 0.05),
    "ks_pvalue": ("KS p-value", "below", 0.05),
    "chi_square": ("chi-square statistic", "above", None),
    "chi2": ("chi-square statistic", "above", None),
    "chi_square_p_value": ("chi-square p-value", "below", 0.05),
    "chi2_pvalue": ("chi-square p-value", "below", 0.05),
}
PERFORMANCE_METRICS: dict[str, str] = {
    "accuracy": "accuracy",
    "roc_auc": "ROC AUC",
    "log_loss": "log loss",
    "mae": "MAE",
    "rmse": "RMSE",
}
LABEL_DELAY_METRIC = "label_delay_p50"
# Above this many predictions in the range, the outcome join reads a hash sample.
JOIN_SAMPLE_ROWS = 1_000_000


class StoreUnavailable(RuntimeError):
    """ClickHouse cannot be reached, or its database is not migrated; says what to do."""


# ---------------------------------------------------------------------------- views


@dataclasses.dataclass(frozen=True)
class Db:
    """Where ClickHouse is: the connection parameters, hashable so it keys the cache."""

    host: str
    port: int
    secure: bool
    username: str
    password: str
    database: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Db:
        p = settings.clickhouse_params()
        return cls(
            p["host"],
            int(p["port"]),
            bool(p["secure"]),
            p["username"],
            p["password"],
            p["database"],
        )

    @property
    def label(self) -> str:
        """host:port/database, for people (no credentials)."""
        return f"{self.host}:{self.port}/{self.database}" + (" (TLS)" if self.secure else "")


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


def floor_minute(t: dt.datetime) -> dt.datetime:
    return t.replace(second=0, microsecond=0)


def ceil_minute(t: dt.datetime) -> dt.datetime:
    down = floor_minute(t)
    return down if down == t else down + dt.timedelta(minutes=1)


def bucket_step(seconds: float) -> int:
    """A round chart step that keeps the range under MAX_BUCKETS points."""
    for step in BUCKET_STEPS_S:
        if seconds / step <= MAX_BUCKETS:
            return step
    return BUCKET_STEPS_S[-1]


def resolve_range(
    choice: str,
    custom_from: dt.datetime | None,
    custom_to: dt.datetime | None,
    now: dt.datetime | None = None,
) -> tuple[dt.datetime, dt.datetime]:
    """The minute-aligned UTC range for a sidebar choice.

    >>> now = dt.datetime(2024, 5, 1, 12, 30, 20, tzinfo=UTC)
    >>> [t.strftime("%H:%M") for t in resolve_range("Last hour", None, None, now)]
    ['11:31', '12:31']
    """
    now = now or dt.datetime.now(UTC)
    span = RANGE_CHOICES.get(choice, RANGE_CHOICES[DEFAULT_RANGE])
    if span is None:
        start = as_utc(custom_from) if custom_from else now - dt.timedelta(hours=1)
        end = as_utc(custom_to) if custom_to else now
        if end <= start:
            end = start + dt.timedelta(minutes=1)
        return floor_minute(start), ceil_minute(end)
    end = ceil_minute(now)
    return end - span, end


def as_utc(t: dt.datetime) -> dt.datetime:
    """Naive times are UTC (what the widgets and ClickHouse give back)."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def parse_time(text: str | None) -> dt.datetime | None:
    """An ISO time from a query parameter (``2024-05-01T12:00:00Z``), or None."""
    if not text:
        return None
    try:
        return as_utc(dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00")))
    except ValueError:
        return None


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


# -------------------------------------------------------------------------- clients

_pool_lock = threading.Lock()
_idle: dict[Db, list[Any]] = {}
_POOL_SIZE = 8
# The last uncached executions (name, seconds, rows): what bench/dashboard.py reports.
QUERY_LOG: list[tuple[str, float, int]] = []
_QUERY_LOG_SIZE = 2000


@contextlib.contextmanager
def borrow(db: Db) -> Iterator[Any]:
    """A client used by this thread alone until it is handed back.

    clickhouse-connect clients are not for concurrent use, and Streamlit runs every
    session (and fragment) in threads of its own; a small pool keeps the connection
    set-up (a probe query) off the page's path without ever sharing one client.
    """
    with _pool_lock:
        idle = _idle.setdefault(db, [])
        client = idle.pop() if idle else None
    if client is None:
        client = _connect(db)
    ok = False
    try:
        yield client
        ok = True
    finally:
        if ok:
            with _pool_lock:
                if len(_idle[db]) < _POOL_SIZE:
                    _idle[db].append(client)
                    client = None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()


def _connect(db: Db) -> Any:
    import clickhouse_connect

    try:
        return clickhouse_connect.get_client(
            host=db.host,
            port=db.port,
            secure=db.secure,
            username=db.username,
            password=db.password,
            database=db.database,
            # Sessions would serialise a pool's clients and outlive a server restart.
            autogenerate_session_id=False,
            connect_timeout=5,
            send_receive_timeout=60,
            query_retries=1,
        )
    except Exception as err:  # clickhouse-connect raises many types; each means unavailable
        raise _unavailable(db, err) from err


def _unavailable(db: Db, err: BaseException) -> StoreUnavailable:
    text = str(err)
    if "UNKNOWN_DATABASE" in text or "Code: 81" in text:
        return StoreUnavailable(
            f"database `{db.database}` does not exist on {db.label}: "
            "run `lastmile db migrate` (or start the stack with `lastmile up`)"
        )
    if "UNKNOWN_TABLE" in text or "Code: 60" in text:
        return StoreUnavailable(f"the tables are missing in {db.label}: run `lastmile db migrate`")
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    return StoreUnavailable(
        f"cannot reach ClickHouse at {db.label} ({first[:200]}); "
        "start it with `lastmile up` or set LASTMILE_CLICKHOUSE_URL"
    )


def _record(name: str, seconds: float, rows: int) -> None:
    QUERY_LOG.append((name, seconds, rows))
    del QUERY_LOG[:-_QUERY_LOG_SIZE]


def _frame(db: Db, name: str, sql: str, params: Mapping[str, Any]) -> pd.DataFrame:
    started = time.perf_counter()
    try:
        with borrow(db) as client:
            result = client.query(sql, parameters=dict(params))
    except StoreUnavailable:
        raise
    except Exception as err:  # clickhouse-connect raises many types; sorted below
        text = str(err)
        if any(m in text for m in ("UNKNOWN_DATABASE", "UNKNOWN_TABLE", "Code: 81", "Code: 60")):
            raise _unavailable(db, err) from err
        if "Connection" in type(err).__name__ or "OperationalError" in type(err).__name__:
            raise _unavailable(db, err) from err
        raise
    frame = pd.DataFrame(result.result_rows, columns=list(result.column_names))
    _record(name, time.perf_counter() - started, len(frame))
    return frame


def _cached(func: Any) -> Any:
    return st.cache_data(ttl=CACHE_TTL_S, max_entries=CACHE_ENTRIES, show_spinner=False)(func)


# Filters every scoped query repeats; constant text, the values are bound.
_MODEL = "({model:String} = '' OR model = {model:String})"
_VERSION = "({version:Int64} < 0 OR version = {version:Int64})"
_MINUTES = "minute >= {since:DateTime64(3, 'UTC')} AND minute < {until:DateTime64(3, 'UTC')}"
_TS = "ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}"
_BUCKET = "toStartOfInterval({col}, toIntervalSecond({{step:UInt32}}))"


# ------------------------------------------------------------------- models, sidebar


@_cached
def models(db: Db, registry: str, tick: int) -> dict[str, list[int]]:
    """Every model and its versions: what ClickHouse saw scored or registered, and the
    registry on disk (a model registered but not yet scored is pickable too)."""
    frame = _frame(
        db,
        "models",
        """
        SELECT model, arraySort(groupUniqArray(version)) AS versions
        FROM (
            SELECT DISTINCT model, version FROM predictions_1m
            UNION ALL
            SELECT model, version FROM model_versions FINAL
        )
        GROUP BY model ORDER BY model""",
        {},
    )
    out: dict[str, list[int]] = {r.model: [int(v) for v in r.versions] for r in frame.itertuples()}
    for name, versions in _registry_models(registry).items():
        out[name] = sorted(set(out.get(name, [])) | set(versions))
    return dict(sorted(out.items()))


def _registry_models(registry: str) -> dict[str, list[int]]:
    from streams.models import Registry

    try:
        reg = Registry(registry)
        return {name: reg.version_numbers(name) for name in reg.models()}
    except Exception:
        # The dashboard may run where the registry is not mounted: ClickHouse still knows.
        return {}


@_cached
def has_predictions(db: Db, tick: int) -> bool:
    """Whether anything was ever scored: no means the empty state, not an empty range."""
    frame = _frame(
        db, "has_predictions", "SELECT count() AS n FROM (SELECT 1 FROM predictions_1m LIMIT 1)", {}
    )
    return bool(frame.iloc[0, 0])


# ------------------------------------------------------------------------- overview


@_cached
def traffic_totals(view: View) -> dict[str, float]:
    """Predictions, requests and latency quantiles (ms) of the range, from the rollup.

    Requests are the predictions of the answering variants (a shadow scores the same
    request again) plus the requests that were dead-lettered instead of scored.
    """
    totals = _frame(
        view.db,
        "traffic_totals",
        f"""
        SELECT sum(n) AS predictions,
               sumIf(n, variant != 'shadow') AS answered,
               quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_q) AS latency_ms
        FROM predictions_1m
        WHERE {_MINUTES} AND {_MODEL} AND {_VERSION}""",
        view.params(),
    )
    dead = _frame(
        view.db,
        "dead_letter_totals",
        f"""
        SELECT count() AS dead_letters,
               countIf(source_topic = {{requests_topic:String}}) AS dead_requests
        FROM dead_letters FINAL
        WHERE {_TS} AND {_MODEL}""",
        view.params(requests_topic=view.requests_topic),
    )
    row = totals.iloc[0] if len(totals) else None
    q = list(row["latency_ms"]) if row is not None and row["latency_ms"] is not None else []
    q = [float(x) for x in q] + [math.nan] * (3 - len(q))
    predictions = int(row["predictions"] or 0) if row is not None else 0
    answered = int(row["answered"] or 0) if row is not None else 0
    dead_letters = int(dead.iloc[0]["dead_letters"]) if len(dead) else 0
    dead_requests = int(dead.iloc[0]["dead_requests"]) if len(dead) else 0
    if predictions == 0:
        q = [math.nan] * 3
    return {
        "predictions": predictions,
        "requests": answered + dead_requests,
        "dead_letters": dead_letters,
        "latency_p50_ms": q[0],
        "latency_p95_ms": q[1],
        "latency_p99_ms": q[2],
    }


@_cached
def traffic_series(view: View) -> pd.DataFrame:
    """Predictions per chart bucket and model/version/variant."""
    return _frame(
        view.db,
        "traffic_series",
        f"""
        SELECT {_BUCKET.format(col="minute")} AS t, model, version, variant, sum(n) AS n
        FROM predictions_1m
        WHERE {_MINUTES} AND {_MODEL} AND {_VERSION}
        GROUP BY t, model, version, variant ORDER BY t""",
        view.params(),
    )


@_cached
def latency_series(view: View) -> pd.DataFrame:
    """Latency quantiles (ms) per chart bucket, merged from the per-minute t-digests."""
    frame = _frame(
        view.db,
        "latency_series",
        f"""
        SELECT {_BUCKET.format(col="minute")} AS t,
               quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_q) AS q
        FROM predictions_1m
        WHERE {_MINUTES} AND {_MODEL} AND {_VERSION}
        GROUP BY t ORDER BY t""",
        view.params(),
    )
    rows = []
    for r in frame.itertuples():
        for name, value in zip(("p50", "p95", "p99"), r.q, strict=False):
            rows.append({"t": r.t, "quantile": name, "latency_ms": float(value)})
    return pd.DataFrame(rows, columns=["t", "quantile", "latency_ms"])


@_cached
def traffic_share(view: View) -> pd.DataFrame:
    """Each model version's predictions in the range and its share of its model's traffic."""
    frame = _frame(
        view.db,
        "traffic_share",
        f"""
        SELECT model, version, variant, sum(n) AS predictions
        FROM predictions_1m
        WHERE {_MINUTES} AND {_MODEL} AND {_VERSION}
        GROUP BY model, version, variant ORDER BY model, version, variant""",
        view.params(),
    )
    if frame.empty:
        return frame.assign(share=pd.Series(dtype=float))
    answered = frame[frame["variant"] != "shadow"].groupby("model")["predictions"].sum()
    frame["share"] = [
        (r.predictions / answered.get(r.model, 0)) if answered.get(r.model, 0) else math.nan
        for r in frame.itertuples()
    ]
    return frame


@_cached
def active_alerts(view: View) -> pd.DataFrame:
    """Alerts whose latest event is a firing, whatever the time range (still firing now)."""
    frame = _frame(
        view.db,
        "active_alerts",
        f"""
        SELECT alert_id,
               any(model) AS alert_model,
               argMax(version, (ts, state = 'resolved')) AS alert_version,
               argMax(kind, (ts, state = 'resolved')) AS alert_kind,
               argMax(rule, (ts, state = 'resolved')) AS alert_rule,
               argMax(metric, (ts, state = 'resolved')) AS alert_metric,
               argMax(feature, (ts, state = 'resolved')) AS alert_feature,
               argMax(severity, (ts, state = 'resolved')) AS alert_severity,
               argMax(value, (ts, state = 'resolved')) AS alert_value,
               argMax(threshold, (ts, state = 'resolved')) AS alert_threshold,
               argMax(state, (ts, state = 'resolved')) AS last_state,
               maxIf(ts, state = 'firing') AS firing_since
        FROM alerts
        WHERE {_MODEL}
        GROUP BY alert_id
        HAVING last_state = 'firing'
        ORDER BY firing_since DESC""",
        view.params(),
    )
    # Aliases differ from the columns: ClickHouse would read WHERE model as the alias.
    return frame.rename(columns=lambda c: c.removeprefix("alert_"))


@_cached
def sink_status(view: View) -> dict[str, Any] | None:
    """The sink workers' latest self-report (streams/roles/sink/writer.py writes it every 10 s)."""
    frame = _frame(
        view.db,
        "sink_status",
        """
        SELECT count() AS workers, sum(lag) AS lag, max(ts) AS last_report,
               sum(buffered_rows) AS buffered_rows, max(paused) AS paused,
               sum(errors) AS errors, argMax(last_error, ts) AS last_error
        FROM sink_status FINAL""",
        {},
    )
    if frame.empty or int(frame.iloc[0]["workers"]) == 0:
        return None
    row = frame.iloc[0].to_dict()
    row["last_report"] = as_utc(pd.Timestamp(row["last_report"]).to_pydatetime())
    return row


# ---------------------------------------------------------------------------- drift


@_cached
def drift_statistics(view: View) -> list[str]:
    """The drift statistics the monitor reported for the model in the range."""
    frame = _frame(
        view.db,
        "drift_statistics",
        f"""
        SELECT DISTINCT metric FROM metrics
        WHERE model = {{model:String}} AND has({{names:Array(String)}}, metric)
          AND window_start >= {{since:DateTime64(3, 'UTC')}}
          AND window_start < {{until:DateTime64(3, 'UTC')}} AND {_VERSION}""",
        view.params(names=list(DRIFT_STATISTICS)),
    )
    present = set(frame["metric"]) if len(frame) else set()
    return [name for name in DRIFT_STATISTICS if name in present]


@_cached
def drift_matrix(view: View, statistic: str) -> pd.DataFrame:
    """One statistic per feature and chart bucket: worst, best and mean over the
    bucket's windows (and versions, when all are shown)."""
    return _frame(
        view.db,
        "drift_matrix",
        f"""
        SELECT {_BUCKET.format(col="window_start")} AS t, feature,
               max(value) AS hi, min(value) AS lo, avg(value) AS mean,
               count() AS windows, sum(n) AS n
        FROM metrics
        WHERE model = {{model:String}} AND metric = {{metric:String}} AND segment = ''
          AND window_start >= {{since:DateTime64(3, 'UTC')}}
          AND window_start < {{until:DateTime64(3, 'UTC')}} AND {_VERSION}
        GROUP BY t, feature ORDER BY feature, t""",
        view.params(metric=statistic),
    )


@_cached
def drift_windows(view: View) -> pd.DataFrame:
    """The monitor's windows of the model in the range, newest first."""
    return _frame(
        view.db,
        "drift_windows",
        f"""
        SELECT window_start, max(window_end) AS window_end, sum(n) AS n
        FROM metrics
        WHERE model = {{model:String}} AND metric = 'count' AND segment = ''
          AND window_start >= {{since:DateTime64(3, 'UTC')}}
          AND window_start < {{until:DateTime64(3, 'UTC')}} AND {_VERSION}
        GROUP BY window_start ORDER BY window_start DESC LIMIT 2000""",
        view.params(),
    )


@_cached
def numeric_histogram(
    view: View, feature: str, edges: tuple[float, ...], start: dt.datetime, end: dt.datetime
) -> pd.DataFrame:
    """Counts of a numeric feature in [start, end) over the reference's bins.

    Bin 0 is underflow, 1..B the B = len(edges) - 1 bins (the last closed on the
    right), B + 1 overflow: the monitor's binning (monitors/sketches.bin_indices).
    Windows are in event time; the scored-time bound (ts, the sorting key) only
    prunes, with an hour of slack for events scored late.
    """
    frame = _frame(
        view.db,
        "numeric_histogram",
        f"""
        SELECT if(x = {{last:Float64}}, {{nbins:UInt32}},
                  arrayCount(e -> e <= x, {{edges:Array(Float64)}})) AS bin,
               count() AS n
        FROM (
            SELECT features_num[{{feature:String}}] AS x FROM predictions
            WHERE model = {{model:String}} AND {_VERSION}
              AND ts >= {{start:DateTime64(3, 'UTC')}}
              AND ts < {{end:DateTime64(3, 'UTC')}} + INTERVAL 1 HOUR
              AND event_time >= {{start:DateTime64(3, 'UTC')}}
              AND event_time < {{end:DateTime64(3, 'UTC')}}
              AND mapContains(features_num, {{feature:String}})
        )
        GROUP BY bin ORDER BY bin""",
        view.params(
            feature=feature,
            edges=list(edges),
            last=edges[-1],
            nbins=len(edges) - 1,
            start=start,
            end=end,
        ),
    )
    return frame


@_cached
def category_counts(view: View, feature: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    """Counts of a categorical feature's values in [start, end), the 50 most common."""
    return _frame(
        view.db,
        "category_counts",
        f"""
        SELECT features_cat[{{feature:String}}] AS category, count() AS n
        FROM predictions
        WHERE model = {{model:String}} AND {_VERSION}
          AND ts >= {{start:DateTime64(3, 'UTC')}}
          AND ts < {{end:DateTime64(3, 'UTC')}} + INTERVAL 1 HOUR
          AND event_time >= {{start:DateTime64(3, 'UTC')}}
          AND event_time < {{end:DateTime64(3, 'UTC')}}
          AND mapContains(features_cat, {{feature:String}})
        GROUP BY category ORDER BY n DESC LIMIT 50""",
        view.params(feature=feature, start=start, end=end),
    )


@_cached
def score_histograms(view: View) -> pd.DataFrame:
    """The score's 20-bin histogram per chart bucket (bin i: [i/20, (i+1)/20))."""
    frame = _frame(
        view.db,
        "score_histograms",
        f"""
        SELECT {_BUCKET.format(col="minute")} AS t, sumMap(score_hist) AS hist
        FROM predictions_1m
        WHERE {_MINUTES} AND model = {{model:String}} AND {_VERSION}
        GROUP BY t ORDER BY t""",
        view.params(),
    )
    rows = []
    for r in frame.itertuples():
        total = sum(r.hist.values()) or 1
        for b in range(20):
            count = int(r.hist.get(b, 0))
            rows.append(
                {
                    "t": r.t,
                    "bin": b,
                    "score_from": b / 20,
                    "score_to": (b + 1) / 20,
                    "n": count,
                    "share": count / total,
                }
            )
    return pd.DataFrame(rows, columns=["t", "bin", "score_from", "score_to", "n", "share"])


# ---------------------------------------------------------------------- performance


@_cached
def performance_metrics(view: View) -> pd.DataFrame:
    """Rolling performance and label delay per version, per chart bucket (mean)."""
    return _frame(
        view.db,
        "performance_metrics",
        f"""
        SELECT {_BUCKET.format(col="window_end")} AS t, version, metric,
               avg(value) AS value, max(n) AS n
        FROM metrics
        WHERE model = {{model:String}} AND has({{names:Array(String)}}, metric)
          AND segment = ''
          AND window_end > {{since:DateTime64(3, 'UTC')}}
          AND window_end <= {{until:DateTime64(3, 'UTC')}}
          AND ({{version:Int64}} < 0 OR version = {{version:Int64}} OR version = 0)
        GROUP BY t, version, metric ORDER BY t""",
        view.params(names=[*PERFORMANCE_METRICS, LABEL_DELAY_METRIC]),
    )


@_cached
def outcome_join(view: View) -> pd.DataFrame:
    """Per version and variant: predictions in the range, how many have their label
    by now, and the accuracy / MAE / label delay on those, from the raw rows.

    Written against the base tables rather than the ``prediction_outcomes`` view,
    which has no model parameter. Three things keep it inside a page's budget on a
    big table:

    * the join key is ``cityHash64(request_id)``, not the string (half the time);
    * outcomes are bounded by time: a label's event time comes after its prediction
      (an hour of slack for clocks and labels stamped with the request's own time), so
      a short range never hashes the model's whole history of outcomes;
    * above ``JOIN_SAMPLE_ROWS`` predictions, a deterministic 1-in-k sample of the
      requests (by the same hash, on both sides: a sampled request keeps its label);
      ``sample`` says k, and the counts are scaled back up by it.
    """
    rows = _frame(
        view.db,
        "outcome_join_size",
        f"""
        SELECT sum(n) FROM predictions_1m
        WHERE {_MINUTES} AND model = {{model:String}} AND {_VERSION}""",
        view.params(),
    ).iloc[0, 0]
    sample = max(1, math.ceil(int(rows or 0) / JOIN_SAMPLE_ROWS))
    frame = _frame(
        view.db,
        "outcome_join",
        f"""
        SELECT p.version AS version, p.variant AS variant,
               count() AS predictions,
               countIf(o.matched = 1) AS labelled,
               avgIf(toFloat64(p.label = o.outcome_label),
                     o.matched = 1 AND o.outcome_label IS NOT NULL) AS accuracy,
               avgIf(abs(p.score - o.outcome_value),
                     o.matched = 1 AND o.outcome_value IS NOT NULL) AS mae,
               quantileIf(0.5)(dateDiff('millisecond', p.event_time, o.outcome_ts) / 1000.0,
                               o.matched = 1) AS label_delay_s
        FROM (
            SELECT cityHash64(request_id) AS key, version, variant, score, label, event_time
            FROM predictions
            WHERE model = {{model:String}} AND {_VERSION} AND {_TS}
              AND key % {{sample:UInt64}} = 0
        ) AS p
        LEFT ANY JOIN (
            SELECT cityHash64(request_id) AS key, label AS outcome_label,
                   value AS outcome_value, ts AS outcome_ts, toUInt8(1) AS matched
            FROM outcomes
            WHERE model = {{model:String}}
              AND ts >= {{since:DateTime64(3, 'UTC')}} - INTERVAL 1 HOUR
              AND key % {{sample:UInt64}} = 0
        ) AS o ON p.key = o.key
        GROUP BY version, variant ORDER BY version, variant""",
        view.params(sample=sample),
    )
    frame["predictions"] *= sample
    frame["labelled"] *= sample
    frame["sample"] = sample
    return frame


# --------------------------------------------------------------------------- models


VERSION_COLUMNS = [
    "version",
    "parent",
    "created_at",
    "registered_by",
    "flavor",
    "aliases",
    "is_shadow",
    "retired",
    "split",
    "metrics",
    "task",
    "source",
]


@_cached
def model_versions(view: View, model: str) -> pd.DataFrame:
    """A model's versions with aliases, split, shadow and lineage: from ClickHouse's
    ``model_versions`` (what models.events said), else from the registry on disk."""
    frame = _frame(
        view.db,
        "model_versions",
        """
        SELECT version, parent, created_at,
               JSONExtractString(meta_json, 'registered_by') AS registered_by,
               flavor, aliases, is_shadow, retired, split,
               JSONExtractRaw(meta_json, 'metrics') AS metrics,
               JSONExtractString(meta_json, 'task') AS task
        FROM model_versions FINAL
        WHERE model = {model:String}
        ORDER BY version""",
        {"model": model},
    )
    if not frame.empty:
        frame["source"] = "clickhouse"
        frame["metrics"] = [_json_object(m) for m in frame["metrics"]]
        frame["aliases"] = [sorted(a) for a in frame["aliases"]]
        frame["parent"] = [None if pd.isna(p) else int(p) for p in frame["parent"]]
        return frame[VERSION_COLUMNS]
    return registry_versions(view.registry, model, view.tick)


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


@_cached
def registry_versions(registry: str, model: str, tick: int) -> pd.DataFrame:
    """The same table as :func:`model_versions`, read from the registry directory."""
    from streams.models import ControlPlane, Registry, RegistryError

    try:
        reg = Registry(registry)
        state = ControlPlane(None, registry=reg, publish=False).state(model)
        versions = reg.versions(model)
    except (RegistryError, OSError):
        return pd.DataFrame(columns=VERSION_COLUMNS)
    rows = []
    for mv in versions:
        info = state.versions.get(mv.version, {})
        rows.append(
            {
                "version": mv.version,
                "parent": mv.parent,
                "created_at": pd.Timestamp(mv.created_at).tz_localize(None)
                if pd.Timestamp(mv.created_at).tzinfo
                else pd.Timestamp(mv.created_at),
                "registered_by": mv.registered_by,
                "flavor": mv.flavor,
                "aliases": sorted(a for a, v in state.aliases.items() if v == mv.version),
                "is_shadow": state.shadow == mv.version,
                "retired": bool(info.get("retired", False)),
                "split": dict(state.split),
                "metrics": dict(mv.metrics or {}),
                "task": mv.task,
                "source": "registry",
            }
        )
    return pd.DataFrame(rows, columns=VERSION_COLUMNS)


@_cached
def reference_profile(registry: str, model: str, version: int, tick: int) -> dict | None:
    """The version's reference profile (drift baseline) from its meta.json, or None."""
    from streams.models import Registry, RegistryError

    try:
        return Registry(registry).get(model, version).reference_profile
    except (RegistryError, OSError, ValueError):
        return None


def is_learner(registered_by: str | None) -> bool:
    """Online snapshots are the versions the learner registered (``registered_by``
    names it, e.g. ``learner`` or ``learner@host``)."""
    return LEARNER_MARK in (registered_by or "").lower()


# ---------------------------------------------------------------------------- alerts


@_cached
def alerts(view: View) -> pd.DataFrame:
    """Alert events (firing and resolved) in the range, newest first."""
    return _frame(
        view.db,
        "alerts",
        f"""
        SELECT alert_id, ts, state, model, version, kind, rule, metric, feature,
               value, threshold, severity, message
        FROM alerts
        WHERE {_TS} AND {_MODEL} AND ({{version:Int64}} < 0 OR version = {{version:Int64}}
                                      OR version = 0)
        ORDER BY ts DESC LIMIT 5000""",
        view.params(),
    )


# ---------------------------------------------------------------------- dead letters


@_cached
def dead_letter_counts(view: View) -> pd.DataFrame:
    """Dead letters in the range by stage and error type (replays collapsed: FINAL)."""
    return _frame(
        view.db,
        "dead_letter_counts",
        f"""
        SELECT stage, error_type, count() AS n
        FROM dead_letters FINAL
        WHERE {_TS} AND {_MODEL}
        GROUP BY stage, error_type ORDER BY n DESC""",
        view.params(),
    )


@_cached
def dead_letter_reasons(view: View) -> pd.DataFrame:
    """The most common reasons, digits folded so "offset 41" and "offset 42" group."""
    return _frame(
        view.db,
        "dead_letter_reasons",
        f"""
        SELECT stage, error_type,
               replaceRegexpAll(left(error, 160), '[0-9]+', 'N') AS reason,
               count() AS n, max(ts) AS last_seen
        FROM dead_letters FINAL
        WHERE {_TS} AND {_MODEL}
        GROUP BY stage, error_type, reason ORDER BY n DESC LIMIT 25""",
        view.params(),
    )


@_cached
def dead_letter_series(view: View) -> pd.DataFrame:
    return _frame(
        view.db,
        "dead_letter_series",
        f"""
        SELECT {_BUCKET.format(col="ts")} AS t, stage, count() AS n
        FROM dead_letters FINAL
        WHERE {_TS} AND {_MODEL}
        GROUP BY t, stage ORDER BY t""",
        view.params(),
    )


@_cached
def dead_letter_examples(view: View, limit: int = 50) -> pd.DataFrame:
    """The latest dead letters, the original value cut to 300 characters of valid UTF-8."""
    return _frame(
        view.db,
        "dead_letter_examples",
        f"""
        SELECT ts, stage, error_type, error, model, source_topic, source_partition,
               source_offset, worker, toValidUTF8(ifNull(original_key, '')) AS original_key,
               toValidUTF8(left(ifNull(original_value, ''), 300)) AS original_value
        FROM dead_letters FINAL
        WHERE {_TS} AND {_MODEL}
        ORDER BY ts DESC LIMIT {{limit:UInt32}}""",
        view.params(limit=limit),
    )
