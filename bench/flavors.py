"""Benchmark the model flavors through the scorer: a 100-tree gradient-boosted model on 10
features as native LightGBM, native XGBoost, ONNX (the LightGBM model converted by
onnxmltools), a pickle (the same LightGBM model, flavor ``python``), and a scikit-learn
Pipeline (StandardScaler | HistGradientBoostingClassifier, 100 iterations), in one run;
first, as the reference of the same run, bench/scoring.py's River model
(``StandardScaler | LogisticRegression``, whose scoring costs well under a microsecond a
row): what the scorer does without a heavy model on this machine at this moment.

For each flavor, two figures:

1. Through the scorer: the requests (JSON, 10 numeric features) are pre-produced to a
   topic of their own on the embedded broker, then ``python -m streams.cli.main worker
   --roles scorer`` runs as a child process and its predictions are counted from the
   outside (bench/scoring.py's harness: events/s from the first prediction to the last).
2. Inside the runtime, in this process: the time of one call of the flavor's predictor
   on a checked float matrix of the lane's batch size (5,000 rows, ``MAX_BATCH``), and of
   ``LoadedModel.predict_many`` on the same batch (the runtime plus turning its output
   into scores and labels).

The goal: the scorer with the 100-tree LightGBM or its ONNX form >= 50,000 events/s per
process, i.e. the runtime is not the bottleneck. The machine is shared and noisy:
compare figures from one run. Prints figures; asserts nothing. Takes 2-4 minutes.

    python bench/flavors.py
    python bench/flavors.py --count 100000 --only lightgbm,onnx
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import scoring  # noqa: E402  (bench/scoring.py: the scorer's harness, reused)

from streams.config import Settings, load_settings  # noqa: E402

FLAVOR_RUNS = ("river", "lightgbm", "xgboost", "onnx", "pickle", "sklearn-pipeline")
TREES = 100
GOAL_RATE = 50_000
BATCH = 5000  # streams.kafka.lane.MAX_BATCH


def train(rows: int = 20_000, seed: int = 3) -> dict[str, tuple[Any, str]]:
    """The models to register, by run name: (model, flavor)."""
    import lightgbm
    import xgboost
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    X = rng.normal(0.0, 1.0, (rows, len(scoring.FEATURES)))
    margin = X[:, 0] - X[:, 1] + 0.5 * X[:, 2] * X[:, 3] + np.sin(X[:, 4])
    y = (margin + rng.normal(0.0, 0.5, rows) > 0).astype(int)
    lgb = lightgbm.LGBMClassifier(n_estimators=TREES, num_leaves=31, verbose=-1).fit(X, y)
    xgb = xgboost.XGBClassifier(n_estimators=TREES, max_depth=6).fit(X, y)
    initial = [("input", FloatTensorType([None, len(scoring.FEATURES)]))]
    onnx_graph = convert_lightgbm(lgb, initial_types=initial, zipmap=False, target_opset=15)
    pipeline = make_pipeline(StandardScaler(), HistGradientBoostingClassifier(max_iter=TREES))
    pipeline.fit(X, y)
    return {
        "river": (scoring.train_model(), "river"),
        "lightgbm": (lgb, "lightgbm"),
        "xgboost": (xgb, "xgboost"),
        "onnx": (onnx_graph, "onnx"),
        "pickle": (lgb, "python"),
        "sklearn-pipeline": (pipeline, "sklearn"),
    }


def settings_for(base: Settings, name: str, tmp: Path) -> Settings:
    """Topics and a registry of the run's own: one flavor's scorer sees only its requests."""
    return load_settings(
        env={},
        toml_path=None,
        kafka_port=base.kafka_port,
        data_dir=tmp / name,
        topic_requests=f"bench.{name}.requests",
        topic_predictions=f"bench.{name}.predictions",
        topic_dlq=f"bench.{name}.dlq",
        topic_model_events=f"bench.{name}.models",
    )


def register(settings: Settings, model: Any, flavor: str) -> None:
    from streams.kafka.topics import ensure_topics
    from streams.models import ControlPlane

    ensure_topics(settings)
    with ControlPlane(settings) as control:
        labels = [False, True] if flavor == "river" else None  # River learns classes online
        mv = control.register_and_publish(
            scoring.MODEL, model, flavor, features=scoring.FEATURES, labels=labels
        )
        control.promote(scoring.MODEL, mv.version)


def time_runtime(settings: Settings, repeats: int) -> dict[str, float]:
    """Milliseconds per batch of BATCH rows: the predictor alone, and predict_many."""
    from streams.models import Registry
    from streams.models.flavors import get_flavor

    loaded = Registry.from_settings(settings).load(scoring.MODEL, 1)
    rows = [r["features"] for r in scoring.make_requests(BATCH, "t", seed=5)]
    invalid, matrix = loaded.check_many(rows)
    assert not invalid and matrix is not None
    import pandas as pd

    X: Any = matrix
    if loaded.flavor == "river":  # River scores a DataFrame with its batch methods
        predictor = loaded.model.predict_proba_many
        X = pd.DataFrame(matrix, columns=loaded.feature_names)
    else:
        flavor = get_flavor(loaded.flavor)
        predictor = flavor.predictor(loaded.model, loaded.meta)
        if flavor.wants_frame(loaded.model):
            X = pd.DataFrame(matrix, columns=loaded.feature_names)

    def best(call: Any) -> float:
        call()  # warm-up: first-call allocations, thread pools
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
        return min(times) * 1000.0

    return {
        "runtime_ms": best(lambda: predictor(X)),
        "predict_many_ms": best(lambda: loaded.predict_many(rows, matrix=matrix)),
    }


def run(args: argparse.Namespace) -> int:
    from streams.local.broker import EmbeddedBroker

    tmp = Path(tempfile.mkdtemp(prefix="lastmile-bench-flavors-"))
    (tmp / "logs").mkdir()
    port = scoring.free_port()
    base = load_settings(env={}, toml_path=None, kafka_port=port, data_dir=tmp / "data")
    names = [n for n in FLAVOR_RUNS if not args.only or n in args.only]
    print(
        f"lastmile flavor benchmark: {TREES}-tree gradient-boosted classifier, "
        f"{len(scoring.FEATURES)} numeric features, {args.count:,} JSON requests a flavor"
    )
    print(
        f"embedded broker on 127.0.0.1:{port}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}; work dir {tmp}"
    )
    models = train()
    results: dict[str, dict[str, Any]] = {}
    bench = scoring.Bench(args, base, tmp)
    try:
        with EmbeddedBroker(tmp / "broker", port):
            for i, name in enumerate(names, 1):
                model, flavor = models[name]
                s = settings_for(base, name, tmp)
                register(s, model, flavor)
                timing = time_runtime(s, args.repeats)
                print(
                    f"\n[{i}/{len(names)}] {name} (flavor {flavor}): predictor "
                    f"{timing['runtime_ms']:.2f} ms, predict_many {timing['predict_many_ms']:.2f}"
                    f" ms per batch of {BATCH:,}"
                )
                one = bench.run_lastmile(name, s)
                bench.stop_scorer()
                scoring.report_run(one)
                results[name] = {**timing, "run": one}
    finally:
        bench.children.stop_all()
        summarize(results)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def summarize(results: dict[str, dict[str, Any]]) -> None:
    print(f"\n== summary == (load average now {os.getloadavg()[0]:.2f})")
    print(
        f"{'flavor':<18} {'events/s':>10} {'predictor ms/batch':>19} {'us/row':>7} "
        f"{'predict_many ms/batch':>22}"
    )
    for name, r in results.items():
        rate = r["run"].rate if r["run"].timed else None
        print(
            f"{name:<18} {scoring.fmt_rate(rate):>10} {r['runtime_ms']:>19.2f} "
            f"{1000.0 * r['runtime_ms'] / BATCH:>7.2f} {r['predict_many_ms']:>22.2f}"
        )
    river = results.get("river", {}).get("run")
    for name, r in results.items():
        if river is not None and name != "river" and r["run"].timed and river.timed:
            print(f"{name}: {r['run'].rate / river.rate:.2f}x the River reference's rate")
    best = [
        r["run"].rate
        for n, r in results.items()
        if n in ("lightgbm", "onnx") and r["run"].timed and r["run"].rate
    ]
    if best:
        ok = max(best) >= GOAL_RATE
        print(
            f"goal: LightGBM or ONNX >= {GOAL_RATE:,} events/s per process: "
            f"{max(best):,.0f} {scoring.goal(ok)}"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--count", type=int, default=200_000, help="requests a flavor (200,000)")
    p.add_argument("--only", default="", help=f"comma-separated runs: {', '.join(FLAVOR_RUNS)}")
    p.add_argument("--repeats", type=int, default=20, help="timed predictor calls (best of)")
    p.add_argument("--startup-timeout", type=float, default=90.0)
    p.add_argument("--stall-timeout", type=float, default=30.0)
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    args = p.parse_args(argv)
    args.only = [n for n in args.only.split(",") if n]
    unknown = set(args.only) - set(FLAVOR_RUNS)
    if unknown:
        p.error(f"unknown runs: {', '.join(sorted(unknown))}")
    args.request_format = "json"
    return args


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
