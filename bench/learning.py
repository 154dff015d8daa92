"""Benchmark the learner: outcomes learned per second, from topic to learned.

Runs on the embedded broker (Tansu), started here on a free port in a temporary
directory. The model is River's ``StandardScaler | LogisticRegression`` over 10 numeric
features (the ``hyperplane`` stream), registered and promoted to champion. Predictions
(Avro, as the scorer writes them) and outcomes (``--label-delay`` simulated seconds after
their request, at 1,000 requests per simulated second) are produced first, to
``scoring.predictions`` / ``scoring.outcomes`` with 3 partitions; once with JSON outcomes
(as users often send them) and once with Avro ones (``--outcomes``).

Then a :class:`~streams.roles.learner.LearnerLane` runs in this process, both stages (route,
then learn) with the default settings except snapshots (``--snapshot-every``, off by
default), and the figure is learned outcomes per second from the lane's first batch (the
consumer-group join is over) to the last outcome learned: consume both input topics,
decode, re-key by model to the repartition topic, read it back, join, score before
learning (online and frozen champion), ``learn_one``, changelog and checkpoints, all in
Kafka transactions. The total from the lane's start (group join included) is printed too.

For reference, the same outcomes through ``learn_one`` alone (features and labels already
in memory), and ``predict_proba_one`` + ``learn_one`` (what prequential evaluation adds).

The process runs with the garbage-collector thresholds of ``lastmile worker``. The
machine is shared and noisy (2 cores, see DESIGN.md; the broker runs on them too): the
load average is printed at the start and the end, and the CPU time the lane's thread
used per outcome (from /proc), which other tenants disturb much less than the rate.
Prints figures beside the goal; asserts nothing.

    python bench/learning.py
    python bench/learning.py --count 200000 --label-delay 30
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from confluent_kafka import Producer  # noqa: E402

from bench.procstat import cpu_seconds  # noqa: E402
from schemas import Codec  # noqa: E402
from streams.config import Settings, load_settings  # noqa: E402

GOAL = 20_000
MODEL = "bench"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description="Learned outcomes/s through the learner lane (topic to learned), and the "
        "learn_one-only rate, on the embedded broker.",
    )
    parser.add_argument("--count", type=int, default=100_000, help="outcomes (and predictions)")
    parser.add_argument(
        "--label-delay",
        type=float,
        default=2.0,
        help="simulated seconds between a request and its outcome (1,000 requests/s)",
    )
    parser.add_argument(
        "--snapshot-every", type=int, default=0, help="register a version every N outcomes"
    )
    parser.add_argument(
        "--max-batch", type=int, default=None, help="items per transaction (the lane's default)"
    )
    parser.add_argument(
        "--no-frozen", action="store_true", help="do not evaluate the frozen champion"
    )
    parser.add_argument(
        "--outcomes",
        default="json,avro",
        help="outcome formats to run, comma separated: json (what users often send; the "
        "codec validates it in ~6 us), avro (~2 us)",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait")
    return parser.parse_args(argv)


def produce(settings: Settings, count: int, label_delay: float, fmt: str) -> tuple[list, float]:
    """Predictions and outcomes in send order; returns the (features, label) pairs a
    learner learns (for the reference rates) and the seconds producing took."""
    from streams.local.simulate import simulated_events

    codec = Codec()
    producer = Producer(settings.producer_config())
    pairs: dict[str, Any] = {}
    learned: list[tuple[dict, str]] = []
    t0 = time.perf_counter()
    for e in simulated_events(
        model=MODEL,
        stream="hyperplane",
        count=count,
        label_delay=label_delay,
        rate=1000,
        seed=1,
    ):
        assert e.record is not None
        headers = None
        if e.kind == "request":
            r = e.record
            record = {
                "request_id": r["request_id"],
                "model": MODEL,
                "version": 1,
                "variant": "champion",
                "score": 0.5,
                "label": "1",
                "features": r["features"],
                "event_time": r["event_time"],
                "scored_time": r["event_time"],
                "latency_ms": 1.0,
            }
            value, headers = codec.encode("Prediction", record)
            topic, key = settings.topic_predictions, r["request_id"].encode()
            pairs[r["request_id"]] = r["features"]
        else:
            value, key = e.value, e.key
            if fmt == "avro":
                value, headers = codec.encode("Outcome", e.record)
            topic = settings.topic_outcomes
            learned.append((pairs.pop(e.request_id), e.record["label"]))  # type: ignore[index]
        while True:
            try:
                producer.produce(topic, value, key, headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("not every record was delivered")
    return learned, time.perf_counter() - t0


def run_lane(settings: Settings, args: argparse.Namespace, expected: int) -> dict[str, Any]:
    """Run a learner lane until it learned `expected` outcomes; its figures."""
    from streams.roles.learner import LearnerLane, LearnerSettings

    options = LearnerSettings(
        policy="manual",
        snapshot_every=args.snapshot_every,
        snapshot_interval=0,
        evaluate_champion=not args.no_frozen,
    )
    lane_options = {"max_batch": args.max_batch} if args.max_batch else {}
    lane = LearnerLane(settings, options, **lane_options)
    started = time.perf_counter()
    lane.start()
    assert lane._thread is not None
    tid = lane._thread.native_id
    # The clock starts with the lane's first batch (the group join is over): from there
    # every outcome is read from its topic, routed, read back, joined and learned.
    first_at = None
    thread_cpu = process_cpu = 0.0
    deadline = started + args.timeout
    try:
        while time.perf_counter() < deadline and not lane.failed:
            if first_at is None and lane.stats.batches:
                first_at = time.perf_counter()
                thread_cpu, process_cpu = cpu_seconds(tid=tid), cpu_seconds()
            if lane.learner.learned() >= expected:
                break
            time.sleep(0.005)
        done = time.perf_counter()
        thread_cpu, process_cpu = cpu_seconds(tid=tid) - thread_cpu, cpu_seconds() - process_cpu
        total = lane.learner.learned()
    finally:
        lane.stop()
    span = done - (first_at or started)
    return {
        "failed": lane.stats.last_error if lane.failed else None,
        "total": total,
        "from_start": done - started,
        "rate": total / span if span > 0 else float("nan"),
        "span": span,
        "thread_cpu": thread_cpu,
        "process_cpu": process_cpu,
        "batches": lane.stats.batches,
        "counts": dict(lane.learner.counts),
    }


def reference_rates(model: Any, learned: list[tuple[dict, str]]) -> tuple[float, float]:
    """``learn_one`` alone, and ``predict_proba_one`` + ``learn_one``, per second, on the
    same (features, label) pairs in memory."""
    import copy

    a, b = copy.deepcopy(model), copy.deepcopy(model)
    rows = [(x, y == "1") for x, y in learned]
    t0 = time.perf_counter()
    for x, y in rows:
        a.learn_one(x, y)
    learn_only = len(rows) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for x, y in rows:
        b.predict_proba_one(x)
        b.learn_one(x, y)
    with_predict = len(rows) / (time.perf_counter() - t0)
    return learn_only, with_predict


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when every run learned everything."""
    args = parse_args(argv)
    formats = [f.strip() for f in args.outcomes.split(",") if f.strip()]
    if not formats or set(formats) - {"json", "avro"}:
        print("--outcomes: json, avro or both")
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # As `lastmile worker` runs its roles (streams/cli/main.py): the young generation is
    # collected less often; the lane freezes what start-up loaded after its first batch.
    gc.set_threshold(50_000, 20, 100)
    from streams.kafka.topics import ensure_topics
    from streams.local.broker import EmbeddedBroker
    from streams.local.demo_models import train_demo_model
    from streams.local.processes import free_port
    from streams.models import ControlPlane

    print(f"load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores")
    work = Path(tempfile.mkdtemp(prefix="lastmile-bench-learning-"))
    model, rows, _ = train_demo_model("hyperplane", 2000)
    status = 0
    try:
        with EmbeddedBroker(work / "broker", free_port()) as broker:
            for fmt in formats:
                defaults = load_settings(env={}, toml_path=None)
                topics = {f"topic_{r}": f"{n}.{fmt}" for r, n in defaults.topics.items()}
                settings = load_settings(
                    env={},
                    toml_path=None,
                    kafka_port=broker.port,
                    data_dir=work / fmt,
                    **topics,
                )
                ensure_topics(settings)
                with ControlPlane(settings) as control:
                    version = control.register_and_publish(
                        MODEL, model, "river", reference_rows=rows, labels=[False, True]
                    ).version
                    control.promote(MODEL, version)
                learned, produce_s = produce(settings, args.count, args.label_delay, fmt)
                print(
                    f"[{fmt} outcomes] produced {args.count:,} predictions (Avro) and "
                    f"{len(learned):,} outcomes ({fmt}) in {produce_s:.1f} s"
                )
                r = run_lane(settings, args, len(learned))
                if r["failed"] or r["total"] < len(learned):
                    print(
                        f"[{fmt} outcomes] FAILED: {r['failed'] or 'timed out'}; {r['total']:,}"
                        f" of {len(learned):,} learned"
                    )
                    status = 1
                    continue
                mark = "meets" if r["rate"] >= GOAL else "BELOW"
                print(
                    f"[{fmt} outcomes] lane: {r['rate']:,.0f} learned outcomes/s from its first "
                    f"batch to the last outcome learned ({mark} the goal of {GOAL:,}/s); "
                    f"{r['total']:,} in "
                    f"{r['from_start']:.1f} s from the lane's start (group join included), "
                    f"{r['batches']} batches"
                )
                per = r["thread_cpu"] / r["total"] * 1e6
                print(
                    f"[{fmt} outcomes] the lane's thread used {r['thread_cpu']:.1f} s of CPU in "
                    f"those {r['span']:.1f} s ({per:.0f} us per outcome: "
                    f"{1e6 / per:,.0f}/s with a core to itself); the whole process (librdkafka's "
                    f"threads too) {r['process_cpu']:.1f} s"
                )
                print(f"[{fmt} outcomes] counts: {r['counts']}")
            learn_only, with_predict = reference_rates(model, learned)
            print(
                f"reference: learn_one alone {learn_only:,.0f}/s; "
                f"predict_proba_one + learn_one {with_predict:,.0f}/s"
            )
            print(f"load average {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
