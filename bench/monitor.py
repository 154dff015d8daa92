"""Benchmark the monitor's pure pipeline: windows and sketches in, drift statistics out.

Events carry 20 numeric features (plus a score and a latency). They go through a
tumbling event-time window of PredictionSketch states in batches; every closed window is
evaluated: five drift statistics per feature (PSI, KS, Wasserstein, Jensen-Shannon,
chi-square), the score's, and the quality metrics. Two input paths are timed: columns
already decoded (``PredictionBatch``), and prediction records (dicts) converted to
columns first, as a role fed by a JSON/Avro decoder would do.

A third figure feeds records one at a time (``update``), for comparison. Prints figures;
asserts nothing about time.

    python bench/monitor.py --events 500000 --batch 1000

"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitors.aggregate import PredictionBatch, PredictionSketch  # noqa: E402
from monitors.profile import ReferenceProfile  # noqa: E402
from monitors.report import WindowEvaluator  # noqa: E402
from monitors.windows import SlidingWindow  # noqa: E402


def make_reference(features: int, rows: int, rng: np.random.Generator) -> ReferenceProfile:
    columns = {f"f{i}": rng.normal(i, 1 + i % 3, size=rows) for i in range(features)}
    scores = rng.beta(2, 5, size=rows)
    return ReferenceProfile.fit_columns(columns, scores=scores)


def make_batches(
    features: int, events: int, batch: int, rate: float, rng: np.random.Generator
) -> list[tuple[np.ndarray, PredictionBatch]]:
    out = []
    for start in range(0, events, batch):
        n = min(batch, events - start)
        # Half-way through, three features shift: the drifting windows cost the same.
        shift = 0.5 if start >= events // 2 else 0.0
        cols = {
            f"f{i}": rng.normal(i + (shift if i < 3 else 0.0), 1 + i % 3, size=n)
            for i in range(features)
        }
        cols["f0"][rng.random(n) < 0.01] = np.nan
        times = (start + np.arange(n)) / rate
        score = rng.beta(2, 5, size=n)
        latency = rng.gamma(2.0, 0.01, size=n)
        out.append((times, PredictionBatch(cols, score, latency)))
    return out


def to_records(b: PredictionBatch) -> list[dict]:
    names = list(b.features)
    cols = [b.features[f].tolist() for f in names]
    score, latency = b.score.tolist(), b.latency.tolist()
    return [
        {
            "features": {f: c[j] for f, c in zip(names, cols, strict=True)},
            "score": score[j],
            "latency": latency[j],
        }
        for j in range(len(score))
    ]


def run(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(args.seed)
    reference = make_reference(args.features, args.reference_rows, rng)
    batches = make_batches(args.features, args.events, args.batch, args.rate, rng)
    key = ("bench", "1")

    def pipeline(
        feed: list[tuple[np.ndarray, object]], convert: bool
    ) -> tuple[float, int, list[float]]:
        window = SlidingWindow(
            args.window, args.step or args.window, lambda: PredictionSketch(reference)
        )
        evaluator = WindowEvaluator(reference)
        closed_n, eval_times = 0, []
        t0 = time.perf_counter()
        for times, payload in feed:
            batch = PredictionBatch.from_records(payload, reference) if convert else payload
            for closed in window.update_many(key, times, batch):
                e0 = time.perf_counter()
                evaluator.evaluate(closed)
                eval_times.append(time.perf_counter() - e0)
                closed_n += 1
        for closed in window.flush():
            e0 = time.perf_counter()
            evaluator.evaluate(closed)
            eval_times.append(time.perf_counter() - e0)
            closed_n += 1
        return time.perf_counter() - t0, closed_n, eval_times

    print(
        f"{args.events:,} events, {args.features} numeric features, batches of {args.batch}, "
        f"windows of {args.window:g}s every {args.step or args.window:g}s "
        f"at {args.rate:g} events/s of event time "
        f"({int(args.window * args.rate):,} events/window)"
    )
    elapsed, closed, evals = pipeline(batches, convert=False)
    print(
        f"columns in:  {args.events / elapsed:>12,.0f} events/s  "
        f"({closed} windows closed, evaluation included)"
    )
    record_feed = [(t, to_records(b)) for t, b in batches[: args.record_batches]]
    n_records = sum(len(r) for _, r in record_feed)
    r_elapsed, _, _ = pipeline(record_feed, convert=True)
    print(f"records in:  {n_records / r_elapsed:>12,.0f} events/s  (dicts converted to columns)")
    one = record_feed[: max(1, args.single_events // args.batch)]
    window = SlidingWindow(
        args.window, args.step or args.window, lambda: PredictionSketch(reference)
    )
    n_one = 0
    t0 = time.perf_counter()
    for times, records in one:
        for t, record in zip(times.tolist(), records, strict=True):
            window.update(key, t, record)
            n_one += 1
    print(
        f"one by one:  {n_one / (time.perf_counter() - t0):>12,.0f} events/s  "
        "(update per record, no batching)"
    )
    metrics = len(WindowEvaluator(reference).evaluate(window_for(reference, batches[0], args)))
    print(
        f"evaluate one window ({metrics} metric values, 5 statistics x {args.features} features "
        f"+ score + quality): median {statistics.median(evals) * 1000:.1f} ms, "
        f"max {max(evals) * 1000:.1f} ms"
    )


def window_for(reference: ReferenceProfile, batch: tuple, args: argparse.Namespace):
    w = SlidingWindow(args.window, args.step or args.window, lambda: PredictionSketch(reference))
    w.update_many(("bench", "1"), batch[0], batch[1])
    return w.flush()[0]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--events", type=int, default=500_000, help="events to push (default 500k)")
    p.add_argument("--features", type=int, default=20, help="numeric features (default 20)")
    p.add_argument("--batch", type=int, default=1000, help="events per update_many batch")
    p.add_argument("--window", type=float, default=60.0, help="window size, seconds")
    p.add_argument(
        "--step", type=float, default=None, help="slide step, seconds (default: tumbling)"
    )
    p.add_argument("--rate", type=float, default=1000.0, help="events per second of event time")
    p.add_argument("--reference-rows", type=int, default=50_000, help="training rows profiled")
    p.add_argument(
        "--record-batches", type=int, default=50, help="batches timed on the dict-records path"
    )
    p.add_argument("--single-events", type=int, default=20_000, help="events timed one at a time")
    p.add_argument("--seed", type=int, default=0)
    run(p.parse_args(argv))


if __name__ == "__main__":
    main()
