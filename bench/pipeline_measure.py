"""What bench/pipeline.py reads off a running stack: CPU per process (/proc), consumer
lag per role (each worker's ``/metrics``), and from ClickHouse the predictions' and
outcomes' rows, their latencies and how late the monitor's windows closed.

Every function takes the stack's ports or processes, or a phase's one ClickHouse client,
and returns plain dicts, so the report is JSON as it is.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import httpx

from bench.procstat import cpu_seconds

__all__ = [
    "CpuMeter",
    "landed",
    "prediction_figures",
    "role_lags",
    "role_ports",
    "total_lags",
    "window_figures",
]


class CpuMeter:
    """CPU of named processes over an interval: % of one core, and CPU seconds used.

    ``bench`` is this process (the traffic producer), so its own share is visible.
    """

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = {**pids, "bench": os.getpid()}
        self.began = time.monotonic()
        self.start = {name: cpu_seconds(pid, gone=0.0) for name, pid in self.pids.items()}

    def used(self) -> tuple[float, dict[str, float]]:
        """(elapsed wall seconds, CPU seconds of each process) since the meter started."""
        elapsed = max(time.monotonic() - self.began, 1e-9)
        used = {n: cpu_seconds(p, gone=0.0) - self.start[n] for n, p in self.pids.items()}
        return elapsed, used

    def percent(self) -> dict[str, float]:
        elapsed, used = self.used()
        return {name: round(100.0 * s / elapsed, 2) for name, s in used.items()}


def role_ports(settings: Any, roles: list[str]) -> dict[str, int]:
    """Each role's worker web port, as ``streams.local.stack.role_services`` gives them."""
    return {role: settings.web_port + offset for offset, role in enumerate(roles)}


def role_lags(ports: dict[str, int], timeout: float = 3.0) -> dict[str, dict[str, int] | None]:
    """Messages each role's consumer group has not committed, per topic (summed over its
    partitions), as the worker's ``lastmile_consumer_lag`` gauge reports it (the worker
    caches the answer 2 s; see streams/metrics/lag.py). None: the role has no consumer
    group or did not answer."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, dict[str, int] | None] = {}
    for role, port in ports.items():
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=timeout).text
        except httpx.HTTPError:
            out[role] = None
            continue
        # Several lanes of one group would report the same partition: max, then sum.
        behind: dict[tuple[str, str, str], float] = {}
        for family in text_string_to_metric_families(text):
            if family.name != "lastmile_consumer_lag":
                continue
            for s in family.samples:
                key = (s.labels["group"], s.labels["topic"], s.labels["partition"])
                behind[key] = max(behind.get(key, 0.0), s.value)
        topics: dict[str, int] = {}
        for (_group, topic, _partition), lag in behind.items():
            topics[topic] = topics.get(topic, 0) + int(lag)
        out[role] = topics or None
    return out


def total_lags(lags: dict[str, dict[str, int] | None]) -> dict[str, int | None]:
    """Each role's lag over all its topics (None where it has none)."""
    return {role: None if t is None else sum(t.values()) for role, t in lags.items()}


def _nan_if_empty(n: int, value: float) -> float:
    return float(value) if n else math.nan


def prediction_figures(client: Any, since_ms: int) -> dict[str, float | int]:
    """The predictions of requests with ``event_time >= since_ms``: rows, requests they
    answer, and latencies in ms.

    - ``scored``: the request's broker timestamp -> the scorer's prediction (the
      prediction's ``latency_ms``, which the scorer counts from the request message's
      broker timestamp, streams/records.py ``prediction_values``);
    - ``request -> row``: the request's broker timestamp (``ts - latency_ms``) -> the
      row's ``inserted_at`` in ClickHouse.
    """
    lag = "dateDiff('millisecond', ts, inserted_at) + latency_ms"
    row = client.query(
        f"SELECT count(), uniqExact(request_id), quantiles(0.5, 0.99)({lag}), max({lag}), "
        "quantiles(0.5, 0.99)(latency_ms), max(latency_ms) "
        "FROM predictions WHERE event_time >= fromUnixTimestamp64Milli({since:Int64})",
        parameters={"since": since_ms},
    ).result_rows[0]
    rows, requests, to_row, worst, scored, scored_max = row
    return {
        "rows": int(rows),
        "requests_landed": int(requests),
        "request_to_row_p50_ms": _nan_if_empty(rows, to_row[0]),
        "request_to_row_p99_ms": _nan_if_empty(rows, to_row[1]),
        "request_to_row_max_ms": _nan_if_empty(rows, worst),
        "scored_p50_ms": _nan_if_empty(rows, scored[0]),
        "scored_p99_ms": _nan_if_empty(rows, scored[1]),
        "scored_max_ms": _nan_if_empty(rows, scored_max),
    }


def landed(client: Any, since_ms: int) -> tuple[int, int]:
    """(requests with a prediction row, outcomes with a row), event times from ``since_ms``
    (an outcome's event time is its ``ts``)."""
    since = "fromUnixTimestamp64Milli({since:Int64})"
    requests, outcomes = client.query(
        f"SELECT (SELECT uniqExact(request_id) FROM predictions WHERE event_time >= {since}), "
        f"(SELECT uniqExact(request_id) FROM outcomes WHERE ts >= {since})",
        parameters={"since": since_ms},
    ).result_rows[0]
    return int(requests), int(outcomes)


def window_figures(client: Any, monitor: Any, since_ms: int, until_ms: int) -> dict[str, Any]:
    """How late the monitor closed the windows due while the traffic ran: those whose
    ``window_end + allowed_lateness`` falls between ``since_ms`` and ``until_ms`` (event
    time, which the simulator keeps at wall time). A window due after the traffic stopped
    waits for later events, which the next phase brings: it is not counted, nor is one
    due before (in the idle time between phases).

    Only the event-time windows (``window_end - window_start`` is the monitor's window):
    the rolling performance metrics and the change detectors' events carry windows of
    their own. A window closes when the monitor's watermark passes its end plus the
    allowed lateness; the delay is the first metric row's ``ts`` (when the monitor computed it)
    minus that instant; ``to_row`` is that row's ``inserted_at`` minus its ``ts``.
    """
    due = "toUnixTimestamp64Milli(window_end) + {late:Int64}"
    rows = client.query(
        f"SELECT model, window_end, min(toUnixTimestamp64Milli(ts)) - ({due}), "
        "min(dateDiff('millisecond', ts, inserted_at)) "
        f"FROM metrics WHERE {due} >= {{since:Int64}} AND {due} <= {{until:Int64}} "
        "AND dateDiff('millisecond', window_start, window_end) = {size:Int64} "
        "GROUP BY model, window_end ORDER BY window_end",
        parameters={
            "since": since_ms,
            "until": until_ms,
            "late": int(monitor.allowed_lateness * 1000),
            "size": int(monitor.window * 1000),
        },
    ).result_rows
    delays = sorted(float(r[2]) for r in rows)
    to_row = sorted(float(r[3]) for r in rows)

    def q(values: list[float], p: float) -> float:
        return values[min(len(values) - 1, int(p * len(values)))] if values else math.nan

    return {
        "window_s": monitor.window,
        "allowed_lateness_s": monitor.allowed_lateness,
        "windows_closed": len(rows),
        "window_close_delay_p50_ms": q(delays, 0.5),
        "window_close_delay_max_ms": delays[-1] if delays else math.nan,
        "window_to_row_max_ms": to_row[-1] if to_row else math.nan,
    }
