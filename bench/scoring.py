"""Benchmark the scorer: lastmile's batch lane against a per-event Faust agent and Quix Streams.

Everything runs on the embedded broker (Tansu), started here on a free port in a
temporary directory. The job is the same for all three: JSON scoring requests with 10
numeric features in (pre-produced to an input topic of 3 partitions), a River
``StandardScaler | LogisticRegression`` (trained briefly on synthetic data), one
prediction out per request.

1. lastmile: ``python -m streams.cli.main worker --roles scorer`` as a separate process
   (its peak RSS is read from /proc/<pid>/status, VmHWM). Predictions are Avro,
   produced and committed in one Kafka transaction per batch.
2. Faust: a plain agent, ``async for`` over the stream, ``predict_proba_one`` and
   ``await topic.send(...)`` per event (run on fewer events, ``--faust-count``).
3. Quix Streams 3.x: ``app.dataframe(topic).apply(score).to_topic(out)``.

The lastmile scorer is exactly once by default (a Kafka transaction per batch); Faust and
Quix are at least once by default. So two more runs compare like with like: the scorer
at least once (``LASTMILE_SCORER_EXACTLY_ONCE=false``, its latency too), and Quix
exactly once (``processing_guarantee="exactly-once"``). ``--skip same-guarantee`` leaves
them out. And the practical ceiling: a hand-written confluent-kafka batch loop with
orjson and River's ``predict_proba_many``, at least once, none of lastmile's checks
(``--skip ceiling`` leaves it out).

Each worker runs as a child process; its outputs are counted from the outside by a
consumer assigned to the output topic. Throughput is timed from the first output to the
last (the outputs already in the first poll do not count towards the rate); the total
includes process start-up and the consumer-group join.

Latency: requests offered at ``--latency-rate`` events/s for ``--latency-seconds``;
end-to-end is the consumer's receive time (``poll``, one message at a time) minus the
request's ``event_time`` (set when it is produced). The broker's own floor (a plain
producer to a plain consumer, no worker) is measured in the same run, with the same
client settings (producer linger 20 ms, consumer fetch.wait.max.ms 10; see DESIGN.md,
"Measured on these machines"). Through the scorer the prediction's ``scored_time``
splits the path in two: request -> scored (first hop, the lane's consume wait, decode)
and scored -> received (rest of the batch, transaction commit, second hop).

Last, an in-process profile of ``Scorer.process`` over pre-fetched messages: the time
per stage (decode, route, validate, predict, build, encode) and of the lane's Kafka
side (consume, produce, send offsets, commit), the garbage collector's pauses (and the
same pass after ``gc.freeze()``, as the lane runs after its first batch; the stages
and the lane are timed frozen too), plus cProfile's top functions.

The machine is shared and noisy (2 cores, see DESIGN.md): the load average is printed
at the start and the end; compare figures from one run, not across runs.

Prints figures beside the goals; asserts nothing. With defaults it takes 2-4 minutes.

    python bench/scoring.py
    python bench/scoring.py --count 50000 --skip faust,profile
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# This file is the command line and the order of the runs; the parts are beside it:
#   scoring_job.py          the requests, the model and the baselines' answer
#   scoring_kafka.py        topics, pre-producing the requests, the readers
#   scoring_children.py     the child processes
#   scoring_throughput.py   a worker's run, counted and timed (Run, Bench)
#   scoring_competitors.py  the Faust, Quix and hand-written jobs (run as `_child`)
#   scoring_latency.py      the latency runs, through the scorer and the broker alone
#   scoring_profile.py      the in-process profile of Scorer.process
#   scoring_report.py       a run's line and the summary beside the goals
# What the other benches reuse (bench/flavors.py, bench/serve.py) is imported here too.
from bench.scoring_children import free_port  # noqa: E402
from bench.scoring_competitors import CHILDREN  # noqa: E402
from bench.scoring_job import FEATURES, MODEL, make_requests, train_model  # noqa: E402
from bench.scoring_kafka import PARTITIONS  # noqa: E402
from bench.scoring_profile import profile_scorer  # noqa: E402
from bench.scoring_report import fmt_rate, goal, report_run, summarize  # noqa: E402
from bench.scoring_throughput import Bench, Run  # noqa: E402
from streams.config import load_settings  # noqa: E402

__all__ = [
    "FEATURES",
    "MODEL",
    "Bench",
    "Run",
    "fmt_rate",
    "free_port",
    "goal",
    "main",
    "make_requests",
    "report_run",
    "train_model",
]

SKIPPABLE = ("faust", "quix", "latency", "same-guarantee", "ceiling", "profile")


def run(args: argparse.Namespace) -> int:
    from streams.local.broker import EmbeddedBroker

    tmp = Path(tempfile.mkdtemp(prefix="lastmile-bench-scoring-"))
    (tmp / "logs").mkdir()
    port = free_port()
    settings = load_settings(env={}, toml_path=None, kafka_port=port, data_dir=tmp / "data")
    bench = Bench(args, settings, tmp)
    failed = True
    runs: dict[str, Run] = {}
    latency: dict[str, dict[str, Any]] = {}
    rss: dict[str, float] = {}
    print(
        f"lastmile scoring benchmark: {args.count:,} requests, {len(FEATURES)} numeric "
        f"features, River StandardScaler | LogisticRegression, {PARTITIONS} partitions"
    )
    print(
        f"embedded broker on 127.0.0.1:{port}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}; work dir {tmp}"
    )
    try:
        with EmbeddedBroker(tmp / "broker", port):
            bench.setup_model()
            same = "same-guarantee" not in args.skip
            ceiling = "ceiling" not in args.skip
            total = 4 + 2 * same + ceiling
            print(
                f"\n[1/{total}] lastmile scorer, exactly once (python -m streams.cli.main worker "
                f"--roles scorer), {args.count:,} requests"
            )
            runs["lastmile"] = bench.run_lastmile()
            report_run(runs["lastmile"])
            latency.update(bench.latency.measure(runs["lastmile"], bench.settings, floor=True))
            bench.stop_scorer()
            runs["lastmile"].peak_rss_mb = bench.scorer_rss.get("VmHWM")
            rss = dict(bench.scorer_rss)
            if "faust" not in args.skip:
                print(f"\n[2/{total}] Faust agent, per event, {args.faust_count:,} requests")
                runs["faust"] = bench.run_child("faust", args.faust_count, 300)
                report_run(runs["faust"])
            if "quix" not in args.skip:
                print(f"\n[3/{total}] Quix Streams, {args.quix_count:,} requests")
                runs["quix"] = bench.run_child("quix", args.quix_count, 1000)
                report_run(runs["quix"])
            if same:
                print(
                    f"\n[4/{total}] lastmile scorer, at least once "
                    f"(LASTMILE_SCORER_EXACTLY_ONCE=false), {args.count:,} requests"
                )
                alo = bench.at_least_once()
                runs["lastmile-alo"] = bench.run_lastmile("lastmile-alo", alo)
                report_run(runs["lastmile-alo"])
                latency.update(bench.latency.measure(runs["lastmile-alo"], alo))
                bench.stop_scorer()
                if "quix" not in args.skip:
                    print(f"\n[5/{total}] Quix Streams, exactly once, {args.quix_count:,} requests")
                    runs["quix-eos"] = bench.run_child(
                        "quix", args.quix_count, 1000, guarantee="exactly-once"
                    )
                    report_run(runs["quix-eos"])
            if ceiling:
                print(
                    f"\n[{total - 1}/{total}] the practical ceiling: a hand-written "
                    f"confluent-kafka batch loop (orjson, predict_proba_many, at least once), "
                    f"{args.ceiling_count:,} requests"
                )
                runs["ceiling"] = bench.run_child("ceiling", args.ceiling_count, 1000)
                report_run(runs["ceiling"])
            if "profile" not in args.skip:
                print(
                    f"\n[{total}/{total}] profile of Scorer.process in this process, "
                    f"{args.profile_count:,} requests"
                )
                profile_scorer(settings, args.profile_count, args.request_format)
        failed = False
    finally:
        bench.children.stop_all()
        summarize(args, runs, latency, rss)
        if failed:
            print(f"\n(stopped before the end: logs kept in {tmp / 'logs'})")
        elif not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--count",
        type=int,
        default=400_000,
        help="requests for the lastmile scorer (default 400,000: at ~100,000 "
        "events/s, 200,000 finish too soon to be timed)",
    )
    p.add_argument(
        "--faust-count",
        type=int,
        default=20_000,
        help="requests for the per-event Faust agent, a few thousand events/s (default 20,000)",
    )
    p.add_argument(
        "--quix-count", type=int, default=None, help="requests for Quix Streams (default: --count)"
    )
    p.add_argument(
        "--ceiling-count",
        type=int,
        default=None,
        help="requests for the hand-written batch loop (default: twice --count, "
        "as it is fast enough to finish --count too soon to be timed)",
    )
    p.add_argument(
        "--request-format",
        choices=("json", "avro"),
        default="json",
        help="how requests to the lastmile scorer are encoded: JSON (default) or "
        "lastmile Avro with schema headers; Faust and Quix always get JSON",
    )
    p.add_argument(
        "--skip", default="", help=f"comma-separated parts to skip: {', '.join(SKIPPABLE)}"
    )
    p.add_argument(
        "--latency-rate",
        type=float,
        default=1000.0,
        help="events/s offered in the latency runs (default 1,000)",
    )
    p.add_argument(
        "--latency-seconds",
        type=float,
        default=15.0,
        help="seconds each latency run offers events (default 15)",
    )
    p.add_argument(
        "--latency-warmup",
        type=float,
        default=1.0,
        help="seconds of each latency run left out of the percentiles (default 1)",
    )
    p.add_argument(
        "--linger-ms",
        type=int,
        default=20,
        help="producer linger.ms of the latency runs' producer (default 20)",
    )
    p.add_argument(
        "--fetch-wait-ms",
        type=int,
        default=10,
        help="fetch.wait.max.ms of the latency runs' consumer (default 10)",
    )
    p.add_argument(
        "--profile-count",
        type=int,
        default=50_000,
        help="requests replayed in the in-process profile (default 50,000)",
    )
    p.add_argument(
        "--startup-timeout",
        type=float,
        default=60.0,
        help="seconds a worker may take to its first output (default 60)",
    )
    p.add_argument(
        "--stall-timeout",
        type=float,
        default=20.0,
        help="seconds without output before a run is called stuck (default 20)",
    )
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs) afterwards")
    args = p.parse_args(argv)
    args.skip = {part.strip() for part in args.skip.split(",") if part.strip()}
    unknown = args.skip - set(SKIPPABLE)
    if unknown:
        p.error(
            f"--skip: unknown part(s) {', '.join(sorted(unknown))}; known: {', '.join(SKIPPABLE)}"
        )
    if args.quix_count is None:
        args.quix_count = args.count
    if args.ceiling_count is None:
        args.ceiling_count = 2 * args.count
    for name in ("count", "faust_count", "quix_count", "ceiling_count", "profile_count"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_child"]:
        kind, config = argv[1], json.loads(argv[2])
        CHILDREN[kind](config)
        return 0
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    def terminate(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally blocks: children stop

    signal.signal(signal.SIGTERM, terminate)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
