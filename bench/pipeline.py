"""Benchmark the whole embedded stack as ``lastmile up`` runs it (issue #17, item 1).

The broker, the ClickHouse store and one worker process per role start through
``streams.local.stack.Stack`` (the same code ``lastmile up`` runs) in a throwaway data
directory on free ports; the demo models are registered as ``lastmile up --demo`` does;
traffic is the simulator's (``streams.local.traffic_producer.produce_simulation``).

Printed, from one run (nothing is asserted here; tests/bench/test_pipeline.py checks
the report's shape):

1. **Idle**: CPU of each process, in % of one core, with no traffic (utime + stime
   from ``/proc/PID/stat``).
2. **Per rate** (default 200, 1,000 and 5,000 requests/s): CPU of each process while
   the traffic runs, the requests sent, the rows in ClickHouse's ``predictions`` table
   and the p50/p99 of request -> row (``inserted_at - event_time``) and of the scorer's
   own ``latency_ms``.

Not measured yet (see the issue): monitor window closing times, consumer lag per
role, the highest sustained rate and CPU-ms per 1,000 requests, the scorer alone.

    python bench/pipeline.py                  # 30 s idle, 60 s per rate
    python bench/pipeline.py --quick          # 5 s idle, one 10 s phase at 200/s
    python bench/pipeline.py --json out.json  # also write the report as JSON
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.procstat import cpu_seconds  # noqa: E402
from streams.local.processes import free_ports  # noqa: E402


class CpuMeter:
    """CPU of named processes over an interval, in % of one core."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids
        self.began = time.monotonic()
        self.start = {name: cpu_seconds(pid, gone=0.0) for name, pid in pids.items()}

    def percent(self) -> dict[str, float]:
        elapsed = max(time.monotonic() - self.began, 1e-9)
        used = {n: cpu_seconds(p, gone=0.0) - self.start[n] for n, p in self.pids.items()}
        return {name: round(100.0 * s / elapsed, 2) for name, s in used.items()}


def bench_environment(data_dir: Path) -> dict[str, str]:
    """LASTMILE_* for a private stack: its own data directory and free ports."""
    base = free_ports(12)
    return {
        "LASTMILE_DATA_DIR": str(data_dir),
        "LASTMILE_KAFKA_PORT": str(base),
        "LASTMILE_CLICKHOUSE_PORT": str(base + 1),
        "LASTMILE_GATEWAY_PORT": str(base + 2),
        "LASTMILE_WEB_PORT": str(base + 3),
    }


def start_stack(quiet: bool) -> tuple[Any, Any]:
    """The embedded stack with every role and the demo models; (settings, stack)."""
    from streams.app import ROLES
    from streams.cli.simulate import demo_models_command
    from streams.config import load_settings
    from streams.local.stack import Stack

    settings = load_settings(toml_path=None)
    demo_models_command.main(
        ["--no-publish", "--broken-challenger"], standalone_mode=False, obj=settings
    )
    stack = Stack(settings, roles=list(ROLES), on_event=(lambda _m: None) if quiet else print)
    stack.start()
    return settings, stack


def stack_pids(stack: Any) -> dict[str, int | None]:
    return {s.process.name: s.process.pid for s in stack.services}


def prediction_lags(settings: Any, since_ms: int) -> dict[str, float]:
    """Rows in ``predictions`` since ``since_ms`` and their lag quantiles, in ms."""
    from streams.storage.db import connect

    client = connect(settings)
    row = client.query(
        "SELECT count(), "
        "quantiles(0.5, 0.99)(dateDiff('millisecond', event_time, inserted_at)), "
        "quantiles(0.5, 0.99)(latency_ms), "
        "max(dateDiff('millisecond', event_time, inserted_at)) "
        "FROM predictions WHERE event_time >= fromUnixTimestamp64Milli({since:Int64})",
        parameters={"since": since_ms},
    ).result_rows[0]
    rows, to_row, scored, worst = row
    return {
        "rows": int(rows),
        "request_to_row_p50_ms": float(to_row[0]) if rows else float("nan"),
        "request_to_row_p99_ms": float(to_row[1]) if rows else float("nan"),
        "request_to_row_max_ms": float(worst) if rows else float("nan"),
        "scorer_latency_p50_ms": float(scored[0]) if rows else float("nan"),
        "scorer_latency_p99_ms": float(scored[1]) if rows else float("nan"),
    }


def run_rate(settings: Any, stack: Any, rate: float, seconds: float, drain: float) -> dict:
    """Traffic at ``rate`` for ``seconds``; CPU per process; rows and lags after ``drain``."""
    from streams.local.traffic_producer import produce_simulation

    since_ms = int(time.time() * 1000)
    meter = CpuMeter(stack_pids(stack))
    summary = produce_simulation(
        settings, model="fraud", rate=rate, count=int(rate * seconds), label_delay=1.0
    )
    cpu = meter.percent()
    time.sleep(drain)  # the sink writes in batches: give the last one time to land
    return {"rate": rate, "sent": summary.sent, "cpu_percent": cpu} | prediction_lags(
        settings, since_ms
    )


def run(idle: float, rates: list[float], seconds: float, drain: float, quiet: bool) -> dict:
    """The whole report, from one stack."""
    settings, stack = start_stack(quiet)
    try:
        time.sleep(min(idle, 5.0))  # let the groups settle before the idle reading
        meter = CpuMeter(stack_pids(stack))
        time.sleep(idle)
        idle_cpu = meter.percent()
        phases = [run_rate(settings, stack, rate, seconds, drain) for rate in rates]
    finally:
        stack.stop()
    return {
        "idle_seconds": idle,
        "idle_cpu_percent": idle_cpu,
        "idle_cpu_total": round(sum(idle_cpu.values()), 2),
        "phases": phases,
    }


def print_report(report: dict) -> None:
    print(f"idle ({report['idle_seconds']:g} s), % of one core:")
    for name, pct in report["idle_cpu_percent"].items():
        print(f"  {name:<12} {pct:7.2f}")
    print(f"  {'total':<12} {report['idle_cpu_total']:7.2f}")
    for p in report["phases"]:
        print(f"rate {p['rate']:g}/s: sent {p['sent']} (requests and outcomes), rows {p['rows']}")
        print(
            f"  request -> row p50 {p['request_to_row_p50_ms']:.0f} ms, "
            f"p99 {p['request_to_row_p99_ms']:.0f} ms, max {p['request_to_row_max_ms']:.0f} ms; "
            f"scorer latency p50 {p['scorer_latency_p50_ms']:.1f} ms, "
            f"p99 {p['scorer_latency_p99_ms']:.1f} ms"
        )
        cpu = ", ".join(f"{n} {v:.1f}" for n, v in p["cpu_percent"].items())
        print(f"  CPU % of a core: {cpu}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--idle", type=float, default=30.0, help="Idle seconds (default 30).")
    parser.add_argument(
        "--rates",
        default="200,1000,5000",
        help="Requests/s, comma-separated (default 200,1000,5000).",
    )
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="Seconds per rate (default 60)."
    )
    parser.add_argument("--drain", type=float, default=5.0, help="Seconds to wait for rows.")
    parser.add_argument("--quick", action="store_true", help="5 s idle, one 10 s phase at 200/s.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the report here.")
    args = parser.parse_args(argv)
    if args.quick:
        args.idle, args.rates, args.seconds = 5.0, "200", 10.0
    rates = [float(r) for r in args.rates.split(",") if r]
    with tempfile.TemporaryDirectory(prefix="lastmile-pipeline-") as tmp:
        os.environ.update(bench_environment(Path(tmp)))
        report = run(args.idle, rates, args.seconds, args.drain, quiet=args.json is not None)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
