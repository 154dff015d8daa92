"""What the sink stored in ClickHouse, as pandas DataFrames: predictions, metrics, alerts.

SQL is constant text; every value a caller gives (model, version, times) is bound
server-side (``{name:Type}``), as in ``dashboard/queries``. Times are UTC: a naive
``datetime`` or string is read as UTC, a ``timedelta`` means that long before now.

>>> import datetime as dt
>>> as_utc("2026-05-01T12:00:00")
datetime.datetime(2026, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)
>>> as_utc(dt.datetime(2026, 5, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))).hour
12
>>> as_utc(dt.timedelta(hours=1), now=dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC)).hour
11
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pandas as pd

from lastmile.errors import ClientError, StoreUnavailable
from streams.config import Settings

__all__ = ["EARLIEST", "LATEST", "StoredFrames", "TimeLike", "as_utc"]

TimeLike = dt.datetime | dt.date | dt.timedelta | str | pd.Timestamp | None
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)

_PREDICTIONS = """
    SELECT request_id, model, version, variant, score, label, features_num, features_cat,
           features_null, event_time, ts AS scored_time, latency_ms, entity_id, caller, metadata
    FROM predictions
    WHERE model = {model:String}
      AND ({version:Int64} < 0 OR version = {version:Int64})
      AND ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}
    ORDER BY ts, request_id
    LIMIT {limit:UInt64}"""

_METRICS = """
    SELECT model, version, segment, metric, feature, value, n, window_start, window_end, ts
    FROM metrics
    WHERE ({model:String} = '' OR model = {model:String})
      AND ({metric:String} = '' OR metric = {metric:String})
      AND ({feature:String} = '' OR feature = {feature:String})
      AND ({version:Int64} < 0 OR version = {version:Int64})
      AND window_start >= {since:DateTime64(3, 'UTC')}
      AND window_start < {until:DateTime64(3, 'UTC')}
    ORDER BY window_start, model, metric, feature, version, segment
    LIMIT {limit:UInt64}"""

_ALERTS = """
    SELECT alert_id, ts, state, model, version, kind, rule, metric, feature,
           value, threshold, severity, message
    FROM alerts
    WHERE ({model:String} = '' OR model = {model:String})
      AND ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}
    ORDER BY ts, alert_id, state = 'resolved'
    LIMIT {limit:UInt64}"""


def as_utc(
    value: TimeLike, default: dt.datetime = EARLIEST, now: dt.datetime | None = None
) -> dt.datetime:
    """A time bound as an aware UTC datetime (``default`` for None)."""
    if value is None:
        return default
    if isinstance(value, dt.timedelta):
        return (now or dt.datetime.now(dt.UTC)) - value
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as err:
        raise ClientError(f"{value!r} is not a time: {err}") from None
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def _features(row: pd.Series) -> dict[str, Any]:
    out: dict[str, Any] = dict(row["features_num"])
    out.update(row["features_cat"])
    out.update(dict.fromkeys(row["features_null"]))
    return out


class StoredFrames:
    """What the sink stored in ClickHouse, as DataFrames: the reading half of
    :class:`lastmile.Client`, which inherits it and sets ``settings``.

    One connection to the settings' ClickHouse, opened on first use.
    """

    settings: Settings
    # Class-level until the first query connects, so a subclass's __init__ need not know.
    _clickhouse: Any = None

    def _where(self) -> str:
        p = self.settings.clickhouse_params()
        return f"{p['host']}:{p['port']}/{p['database']}"

    def _connection(self) -> Any:
        """The clickhouse-connect client, connected on first use."""
        from streams.storage.db import connect

        if self._clickhouse is None:
            self._clickhouse = self._guarded(lambda: connect(self.settings))
        return self._clickhouse

    def _query(self, sql: str, parameters: dict[str, Any]) -> pd.DataFrame:
        """The query's rows as a frame; StoreUnavailable when ClickHouse cannot answer."""
        client = self._connection()
        result = self._guarded(lambda: client.query(sql, parameters=parameters))
        # Built from the rows, not query_df: an empty result keeps its columns.
        frame = pd.DataFrame(result.result_rows, columns=list(result.column_names))
        for column in frame.columns:
            # Every time column is DateTime64(3, 'UTC'); the client returns them naive.
            if pd.api.types.is_datetime64_dtype(frame[column]) and frame[column].dt.tz is None:
                frame[column] = frame[column].dt.tz_localize("UTC")
        return frame

    def _guarded(self, call: Callable[[], Any]) -> Any:
        from clickhouse_connect.driver.exceptions import Error

        try:
            return call()
        except Error as err:
            text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise StoreUnavailable(
                f"ClickHouse at {self._where()} did not answer ({text[:200]}): start the stack "
                "(`lastmile up`), set LASTMILE_CLICKHOUSE_URL, or run `lastmile db migrate`"
            ) from err

    def predictions(
        self,
        model: str,
        since: TimeLike = None,
        until: TimeLike = None,
        *,
        version: int | None = None,
        limit: int = 100_000,
    ) -> pd.DataFrame:
        """The stored predictions of ``model`` scored in [since, until), oldest first.

        Times are datetimes (naive ones UTC), ISO strings, or a ``timedelta`` before now.
        One row per prediction (shadows included, ``variant`` says which), with the
        features the model saw as a dict in ``features``.
        """
        frame = self._query(
            _PREDICTIONS,
            {
                "model": model,
                "version": -1 if version is None else int(version),
                "since": as_utc(since),
                "until": as_utc(until, LATEST),
                "limit": int(limit),
            },
        )
        features = frame.apply(_features, axis=1) if len(frame) else pd.Series(dtype=object)
        frame.insert(6, "features", features)
        return frame.drop(columns=["features_num", "features_cat", "features_null"])

    def metrics(
        self,
        model: str | None = None,
        metric: str | None = None,
        *,
        feature: str | None = None,
        version: int | None = None,
        since: TimeLike = None,
        until: TimeLike = None,
        limit: int = 100_000,
    ) -> pd.DataFrame:
        """Window values of the monitor's and learner's metrics (drift, quality, latency,
        accuracy...), oldest window first; ``version`` 0 and ``feature`` "" are the model
        as a whole (``segment`` "" likewise)."""
        return self._query(
            _METRICS,
            {
                "model": model or "",
                "metric": metric or "",
                "feature": feature or "",
                "version": -1 if version is None else int(version),
                "since": as_utc(since),
                "until": as_utc(until, LATEST),
                "limit": int(limit),
            },
        )

    def alerts(
        self,
        model: str | None = None,
        *,
        since: TimeLike = None,
        until: TimeLike = None,
        firing: bool = False,
        limit: int = 100_000,
    ) -> pd.DataFrame:
        """Alerts firing and resolving, oldest first; ``firing=True`` keeps the alerts whose
        latest event in the range is a firing (``lastmile alerts list --firing``)."""
        from streams.cli.alerts import firing_now

        frame = self._query(
            _ALERTS,
            {
                "model": model or "",
                "since": as_utc(since),
                "until": as_utc(until, LATEST),
                "limit": int(limit),
            },
        )
        if firing:
            frame = pd.DataFrame(firing_now(frame.to_dict("records")), columns=frame.columns)
        return frame.reset_index(drop=True)

    def _close_store(self) -> None:
        if self._clickhouse is not None:
            self._clickhouse.close()
            self._clickhouse = None
