"""Benchmark the whole embedded stack as ``lastmile up`` runs it (issue #17, item 1).

The broker, the ClickHouse store and one worker process per role start through
``streams.local.stack.Stack`` (the same code ``lastmile up`` runs) in a throwaway data
directory on free ports; the demo models are registered as ``lastmile up --demo`` does;
traffic is the simulator's (``streams.local.traffic_producer.produce_simulation``): the
fraud model's requests, each with its outcome 1 s later, produced by this process.

Printed, from one run (nothing is asserted here; tests/bench/test_pipeline.py checks
the report's figures):

1. **Idle**: CPU of each process, in % of one core, with no traffic (utime + stime
   from ``/proc/PID/stat``), after a warm-up of 300 requests (a fresh stack's first
   requests pay for topic creation, group joins and model loading).
2. **Per rate** (default 200, 1,000 and 5,000 requests/s, 60 s each):
   - CPU of each process, % of a core and CPU-ms per 1,000 requests, also less its
     idle CPU (``bench`` is the producer, this process: on 2 shared cores it competes
     with the stack);
   - scoring latency p50/p99: the request message's broker timestamp -> the scorer's
     prediction (the prediction's ``latency_ms``, counted by the scorer from that
     timestamp);
   - request -> row in ClickHouse p50/p99/max: the same broker timestamp -> the
     prediction row's ``inserted_at``; and how many requests and outcomes landed;
   - monitor windows: how late each window due during the traffic (its end plus the
     allowed lateness) was closed (its first ``metrics`` row's ``ts``); a window closes
     when later events move the watermark, so one due after the traffic stopped closes
     in the next phase and is not counted;
   - consumer lag per role (its group, summed over partitions, from each worker's
     ``lastmile_consumer_lag``) when the traffic stops and once the rows have landed.
3. **Highest sustained rate**: phases of ``--search-seconds`` doubling from
   ``--search-start`` while sustained, then bisecting to within 20 %, within
   ``--max-search-seconds``. Sustained: the producer kept the rate, no role was more
   than ``--max-lag-seconds`` of traffic behind at the end (the monitor may hold a
   window and its lateness more, the learner one batch), and every request's
   prediction and every outcome was in ClickHouse within ``--settle`` s (so the
   monitor and the learner kept up too: their lag is in the bound). With the CPU-ms
   each process spent per 1,000 requests at that rate.
4. **The scorer alone**: ``bench/scoring.py`` (lastmile's scorer only, comparisons
   skipped) as a subprocess after the stack stopped: its events/s and latencies.

The monitor's window is the stack's (60 s, 10 s lateness, as ``lastmile up``): a 60 s
phase sees about one window due. ``--monitor-window``/``--allowed-lateness`` shorten them.
The machine is shared (2 cores): compare figures of one run, not across runs.

    python bench/pipeline.py                  # ~20 min: 30 s idle, 3 x 60 s, search
    python bench/pipeline.py --quick          # ~2 min: short phases, 2 s windows
    python bench/pipeline.py --json out.json  # also write every figure as JSON
    python bench/pipeline.py --rates 1000 --max-search-seconds 0 --skip-scorer
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

from bench.pipeline_load import (  # noqa: E402
    above_idle,
    run_phase,
    search,
    settle_down,
    stack_pids,
    warm_up,
)
from bench.pipeline_measure import CpuMeter, role_ports  # noqa: E402
from bench.pipeline_print import print_report  # noqa: E402
from bench.pipeline_scorer import scorer_alone  # noqa: E402
from streams.local.processes import free_ports  # noqa: E402


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


def run(args: argparse.Namespace, quiet: bool) -> dict:
    """The whole report, from one stack, then the scorer alone."""
    from streams.app import ROLES

    settings, stack = start_stack(quiet)
    ports = role_ports(settings, list(ROLES))
    load = [os.getloadavg()[0]]
    try:
        warmed = warm_up(settings, ports, timeout=30.0)
        time.sleep(min(args.idle, 2.0))  # the warm-up's last batches and commits
        meter = CpuMeter(stack_pids(stack))
        time.sleep(args.idle)
        idle_cpu = meter.percent()
        phases = []
        for rate in args.rate_list:
            phase = run_phase(
                settings, stack, ports, rate, args.seconds, args.settle, args.max_lag_seconds
            )
            phase["quiet_after_s"] = settle_down(phase, ports, args.settle)
            phases.append(phase)
        found = search(
            settings,
            stack,
            ports,
            args.search_start,
            args.search_seconds,
            args.settle,
            args.max_lag_seconds,
            args.max_search_seconds,
        )
    finally:
        stack.stop()
    load.append(os.getloadavg()[0])
    for phase in [*phases, found["at_sustained_rate"]]:
        if phase is not None:
            phase["cpu_ms_per_1k_above_idle"] = above_idle(phase, idle_cpu)
    alone = None
    if not args.skip_scorer:
        alone = scorer_alone(args.scorer_count, 1000.0, args.scorer_latency_seconds)
    return {
        "load_average": load,
        "warm_up_s": warmed,
        "idle_seconds": args.idle,
        "idle_cpu_percent": idle_cpu,
        "idle_cpu_total": round(sum(idle_cpu.values()), 2),
        "phases": phases,
        "search": found,
        "scorer_alone": alone,
    }


# Defaults of a full run and of --quick; an option given on the command line wins.
FULL = {
    "idle": 30.0,
    "rates": "200,1000,5000",
    "seconds": 60.0,
    "settle": 15.0,
    "max_lag_seconds": 5.0,
    "search_start": 1000.0,
    "search_seconds": 60.0,
    "max_search_seconds": 600.0,
    "scorer_count": 200_000,
    "scorer_latency_seconds": 10.0,
    "monitor_window": None,
    "allowed_lateness": None,
}
QUICK = FULL | {
    "idle": 5.0,
    "rates": "200",
    "seconds": 10.0,
    "settle": 10.0,
    "search_start": 400.0,
    "search_seconds": 5.0,
    "max_search_seconds": 30.0,
    "scorer_count": 50_000,
    "scorer_latency_seconds": 3.0,
    "monitor_window": 2.0,
    "allowed_lateness": 1.0,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="Short everything (--quick below); ~2 min.")
    add("--idle", type=float, help="Idle seconds (30; quick 5).")
    add("--rates", help="Fixed phases' requests/s, comma-separated (200,1000,5000; quick 200).")
    add("--seconds", type=float, help="Seconds of each fixed phase (60; quick 10).")
    add(
        "--settle",
        "--drain",
        type=float,
        help="Seconds after a phase's traffic for its rows to land (15; quick 10).",
    )
    add(
        "--max-lag-seconds",
        type=float,
        help="Sustained: no role more than this many seconds of requests behind (5).",
    )
    add("--search-start", type=float, help="The search's first rate, requests/s (1000; quick 400).")
    add("--search-seconds", type=float, help="Seconds of each search phase (60; quick 5).")
    add(
        "--max-search-seconds",
        type=float,
        help="Budget of the search, seconds (600; quick 30); 0: no search.",
    )
    add("--scorer-count", type=int, help="Requests for bench/scoring.py (200,000; quick 50,000).")
    add("--scorer-latency-seconds", type=float, help="Its latency run, seconds (10; quick 3).")
    add("--skip-scorer", action="store_true", help="Do not run bench/scoring.py.")
    add("--monitor-window", type=float, help="Monitor window, s (the stack's 60; quick 2).")
    add("--allowed-lateness", type=float, help="Its allowed lateness, s (the stack's 10; quick 1).")
    add("--json", type=Path, default=None, help="Also write every figure here, as JSON.")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.rate_list = [float(r) for r in args.rates.split(",") if r]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lastmile-pipeline-") as tmp:
        os.environ.update(bench_environment(Path(tmp)))
        if args.monitor_window is not None:
            os.environ["LASTMILE_MONITOR_WINDOW"] = f"{args.monitor_window:g}s"
        if args.allowed_lateness is not None:
            os.environ["LASTMILE_MONITOR_ALLOWED_LATENESS"] = f"{args.allowed_lateness:g}s"
        report = run(args, quiet=args.json is not None)
    report["options"] = {k: v for k, v in vars(args).items() if k != "json"}
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
