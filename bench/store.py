"""Benchmark: the HTTP store against chDB in-process, both through clickhouse-connect.

The question it answers: what does framing chDB behind ClickHouse's HTTP interface
cost? Both paths run the same client code (clickhouse-connect builds the same Native
blocks), so the difference is the transport and the store: HTTP to the store process
versus clickhouse-connect's in-process chDB backend (``get_client(dsn="chdb:///path")``,
which ingests inserts through a temp file and ``INSERT ... FROM INFILE``).

It inserts 10k-row batches into a 10-column table (String, Float64, UInt64,
DateTime64), alternating the two paths so machine noise hits both alike, then times
a few aggregate queries over what was inserted. Medians throughout; the goal is
HTTP within 1.5x of direct for 10k-row inserts.

    python bench/store.py            # about 10 s on 2 cores
    python bench/store.py --reps 30 --compress zstd gzip
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import clickhouse_connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streams.storage.store import EmbeddedStore  # noqa: E402

TABLE = """
CREATE TABLE IF NOT EXISTS bench_events (
    request_id String,
    model String,
    variant String,
    version UInt64,
    seq UInt64,
    score Float64,
    latency_ms Float64,
    feature_a Float64,
    ts DateTime64(3),
    scored_at DateTime64(6)
) ENGINE = MergeTree ORDER BY (model, ts)
"""
COLUMNS = [
    "request_id",
    "model",
    "variant",
    "version",
    "seq",
    "score",
    "latency_ms",
    "feature_a",
    "ts",
    "scored_at",
]
QUERIES = {
    "count": "SELECT count() FROM bench_events",
    "avg by model": (
        "SELECT model, variant, count(), avg(score), quantile(0.99)(latency_ms) "
        "FROM bench_events GROUP BY model, variant ORDER BY model, variant"
    ),
    "per-minute window": (
        "SELECT toStartOfMinute(ts) AS m, model, avg(score), max(latency_ms) "
        "FROM bench_events WHERE model = {model:String} GROUP BY m, model ORDER BY m"
    ),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_batch(rows: int, start: int) -> list[list[object]]:
    """Column-oriented data: the shape roles insert (one list per column)."""
    rnd = random.Random(start)
    now = dt.datetime(2026, 1, 1)
    models = ["churn", "fraud", "ltv", "ranker"]
    return [
        [f"req-{start + i:012d}" for i in range(rows)],
        [models[i % 4] for i in range(rows)],
        ["champion" if i % 10 else "challenger" for i in range(rows)],
        [3] * rows,
        list(range(start, start + rows)),
        [rnd.random() for _ in range(rows)],
        [rnd.random() * 20 for _ in range(rows)],
        [rnd.gauss(0, 1) for _ in range(rows)],
        [now + dt.timedelta(milliseconds=(start + i) * 7) for i in range(rows)],
        [now + dt.timedelta(microseconds=(start + i) * 7003) for i in range(rows)],
    ]


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_inserts(
    clients: dict[str, Any], batches: list[list[list[object]]], rows: int, reps: int
) -> dict[str, float]:
    """Median seconds per insert for each client, alternating who goes first."""
    for client in clients.values():
        client.command("TRUNCATE TABLE bench_events")
        client.insert("bench_events", batches[0], column_names=COLUMNS, column_oriented=True)
    times: dict[str, list[float]] = {name: [] for name in clients}
    for rep in range(reps):
        batch = batches[rep % len(batches)]
        order = list(clients.items()) if rep % 2 == 0 else list(clients.items())[::-1]
        for name, client in order:
            times[name].append(
                timed(
                    lambda c=client, b=batch: c.insert(
                        "bench_events", b, column_names=COLUMNS, column_oriented=True
                    )
                )
            )
    for name, client in clients.items():
        count = client.command("SELECT count() FROM bench_events")
        assert count == rows * (reps + 1), (name, count)
    medians = {}
    for name, samples in times.items():
        medians[name] = statistics.median(samples)
        print(
            f"  {name:6s}  median {medians[name] * 1000:7.1f} ms   "
            f"{rows / medians[name]:>10,.0f} rows/s   "
            f"(min {min(samples) * 1000:.1f}, max {max(samples) * 1000:.1f} ms)"
        )
    ratio = medians["http"] / medians["direct"]
    verdict = "within" if ratio <= 1.5 else "OUTSIDE"
    print(f"  ratio http/direct = {ratio:.2f}x ({verdict} the 1.5x goal)")
    return medians


def bench_queries(clients: dict[str, Any], reps: int) -> None:
    """Median latency of a few aggregates and a 10k-row query_df on each client."""
    count = clients["http"].command("SELECT count() FROM bench_events")
    print(f" over {count:,} rows, median of {reps}")
    cases: dict[str, tuple[str, Any]] = {
        label: ("query", (sql, {"model": "fraud"} if "{model" in sql else None))
        for label, sql in QUERIES.items()
    }
    cases["query_df 10k rows"] = ("query_df", ("SELECT * FROM bench_events LIMIT 10000", None))
    for label, (method, (sql, params)) in cases.items():
        medians = {}
        for name, client in clients.items():
            call = getattr(client, method)
            call(sql, parameters=params)  # warm-up
            medians[name] = statistics.median(
                timed(lambda f=call, q=sql, p=params: f(q, parameters=p)) for _ in range(reps)
            )
        print(
            f"  {label:18s} http {medians['http'] * 1000:6.2f} ms   "
            f"direct {medians['direct'] * 1000:6.2f} ms   "
            f"ratio {medians['http'] / medians['direct']:.2f}x"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Insert rows/s and query latency: the HTTP store vs in-process chDB, "
        "both through clickhouse-connect (about 10 s on 2 cores)."
    )
    parser.add_argument("--rows", type=int, default=10_000, help="rows per insert (10000)")
    parser.add_argument("--reps", type=int, default=40, help="inserts per path and mode (40)")
    parser.add_argument("--query-reps", type=int, default=25, help="runs per query (25)")
    parser.add_argument(
        "--compress",
        nargs="+",
        default=["none", "lz4"],
        choices=["none", "lz4", "zstd", "gzip"],
        help="compress= modes of the HTTP client to measure (default: none lz4; "
        "lz4 is what clickhouse-connect uses unless told otherwise)",
    )
    args = parser.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="lastmile-bench-store-"))
    store = EmbeddedStore(root / "http", free_port(), log_path=root / "store.log")
    try:
        t0 = time.perf_counter()
        store.start()
        print(f"store up in {time.perf_counter() - t0:.2f} s at {store.url} (pid {store.pid})")
        direct = clickhouse_connect.get_client(dsn=f"chdb://{root / 'direct'}")
        print(f"direct client: {type(direct).__module__}.{type(direct).__name__}")
        direct.command(TABLE)
        batches = [make_batch(args.rows, i * args.rows) for i in range(4)]
        clients: dict[str, Any] = {}
        for mode in args.compress:
            http = clickhouse_connect.get_client(
                host=store.host,
                port=store.port,
                compress=False if mode == "none" else mode,
                autogenerate_session_id=False,
            )
            http.command(TABLE)
            clients = {"http": http, "direct": direct}
            print(f"\ninserts of {args.rows:,} rows x {args.reps} (HTTP compress={mode})")
            bench_inserts(clients, batches, args.rows, args.reps)
        print(f"\nqueries (HTTP compress={args.compress[-1]})", end="")
        bench_queries(clients, args.query_reps)
        for client in clients.values():
            client.close()
    finally:
        store.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
