"""Which online model recovers from the demo's drift: prequential accuracy after it.

The learner keeps learning a copy of the champion, so the kind of the champion decides
how the online line comes back after a drift. For each demo stream and each candidate
(River's ``StandardScaler | LogisticRegression``, ``HoeffdingAdaptiveTreeClassifier``,
``ARFClassifier``), the model is trained on 5,000 rows as ``lastmile demo-models`` does,
then fed the demo's traffic (``simulated_events``: drift at ``--pre`` requests, of the
concept and, for fraud, of the inputs too, as ``make demo`` sends it) one outcome at a
time, predicting before learning. Prints the accuracy of 1,000-outcome windows after the
drift for the online model and the frozen one, how many outcomes the online model needs
to be back at 0.85, and the learning cost per row.

    python bench/adaptive.py
    python bench/adaptive.py --post 40000 --models hat,arf
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.local.demo_models import TRAIN_SEED_OFFSET  # noqa: E402
from streams.local.simulate import simulated_events, stream_rows  # noqa: E402

WINDOW = 1000


def candidates() -> dict[str, Callable[[], Any]]:
    from river import forest, linear_model, preprocessing, tree

    return {
        "logreg": lambda: preprocessing.StandardScaler() | linear_model.LogisticRegression(),
        "hat": lambda: tree.HoeffdingAdaptiveTreeClassifier(grace_period=50, seed=1),
        "arf": lambda: forest.ARFClassifier(n_models=5, seed=1),
    }


def labelled_traffic(model: str, pre: int, post: int, drift_type: str) -> list[tuple[dict, bool]]:
    events = list(
        simulated_events(
            model, count=pre + post, drift_at=pre, drift_type=drift_type, label_delay=0.0
        )
    )
    requests = {e.request_id: e.record["features"] for e in events if e.kind == "request"}
    return [
        (requests[e.request_id], e.record["label"] in ("1", "True", "true"))
        for e in events
        if e.kind == "outcome"
    ]


def measure(stream: str, make: Callable[[], Any], rows: list[tuple[dict, bool]], pre: int) -> dict:
    model = make()
    for x, y in stream_rows(stream, TRAIN_SEED_OFFSET, 5000):
        model.learn_one(x, bool(y))
    frozen = copy.deepcopy(model)
    windows: list[tuple[int, float, float]] = []
    online_hits = frozen_hits = 0
    learning = 0.0
    for i, (x, y) in enumerate(rows):
        online_hits += model.predict_one(x) == y
        frozen_hits += frozen.predict_one(x) == y
        start = time.perf_counter()
        model.learn_one(x, y)
        learning += time.perf_counter() - start
        if (i + 1) % WINDOW == 0:
            windows.append((i + 1 - pre, online_hits / WINDOW, frozen_hits / WINDOW))
            online_hits = frozen_hits = 0
    after = [w for w in windows if w[0] > 0]
    back = next((w[0] for w in after if w[1] >= 0.85), None)
    return {
        "before": windows[pre // WINDOW - 1][1],
        "frozen_after": sum(w[2] for w in after) / len(after),
        "at": {n: next(w[1] for w in after if w[0] >= n) for n in (2000, 5000, 10000)},
        "last": after[-1][1],
        "back_at": back,
        "learn_us": 1e6 * learning / len(rows),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pre", type=int, default=6000, help="requests before the drift")
    parser.add_argument("--post", type=int, default=20000, help="requests after it")
    parser.add_argument("--models", default="logreg,hat,arf", help="candidates, comma-separated")
    args = parser.parse_args(argv)
    chosen = {k: v for k, v in candidates().items() if k in args.models.split(",")}
    print(f"prequential accuracy, windows of {WINDOW} outcomes; drift after {args.pre} requests")
    print(
        f"{'model':7} {'stream':10} {'before':>6} {'frozen':>6} {'+2k':>6} {'+5k':>6} "
        f"{'+10k':>6} {'last':>6} {'>=0.85 at':>9} {'learn µs':>8}"
    )
    for model_name, stream, drift_type in (
        ("fraud", "agrawal", "both"),
        ("churn", "hyperplane", "concept"),
    ):
        rows = labelled_traffic(model_name, args.pre, args.post, drift_type)
        for name, make in chosen.items():
            r = measure(stream, make, rows, args.pre)
            back = "never" if r["back_at"] is None else f"+{r['back_at']}"
            at = r["at"]
            print(
                f"{name:7} {stream:10} {r['before']:6.3f} {r['frozen_after']:6.3f} "
                f"{at[2000]:6.3f} {at[5000]:6.3f} {at[10000]:6.3f} {r['last']:6.3f} "
                f"{back:>9} {r['learn_us']:8.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
