"""Benchmark alerts that act: how long from a firing alert to the control change, and
from the change to the first prediction by the restored version.

On the embedded broker (started here in a temporary directory), a scorer and an
operator run in this process; traffic of one model flows at ``--rate`` requests/s (the
operator tests' traffic: a good version and a broken, inverted one). Each trial
promotes the broken version, waits ``--settle`` seconds, then produces a firing
``rollback`` alert about it (as the monitor would) and times:

- alert -> action: from producing the alert to the rollback stamped in the model's state
  (``state.updated_at``, taken under the registry lock just before it is published);
- action -> first prediction: from that stamp to the ``scored_time`` of the first
  prediction by the restored version (the scorer applies ``models.events`` within a second).

The cooldown is 0 and the cap high, so every trial acts. Goal: <= 2 s for both, p99.
The machine is shared and noisy (2 cores): compare figures from one run.

Then, in the same run, the kill switch's figures (``bench/pause.py``: pause -> every
scorer answering with the fallback, goal <= 1 s) and the outcomes the comparison needs
to decide lifts of 1, 2 and 5 accuracy points beside a fixed-n test's sample size
(``bench/lift_sample_sizes.py``).

    python bench/actions.py
    python bench/actions.py --trials 20 --rate 200
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import logging
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# The operator tests' traffic and models: one definition for the tests and the bench.
sys.path.insert(0, str(ROOT / "tests" / "streams" / "roles" / "operator"))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from operator_traffic import Traffic, register_pair  # noqa: E402

from schemas import Codec  # noqa: E402
from streams.config import Settings, load_settings  # noqa: E402
from streams.kafka.topics import ensure_topics  # noqa: E402
from streams.local.broker import EmbeddedBroker  # noqa: E402
from streams.local.processes import free_port  # noqa: E402
from streams.models import ControlPlane  # noqa: E402
from streams.roles.operator import OperatorLane  # noqa: E402
from streams.roles.scorer import ScorerLane  # noqa: E402

RULES = """
rules:
  - {name: bench_rollback, kind: performance, metric: accuracy, direction: below,
     threshold: 0.7, action: rollback}
"""
GOAL_S = 2.0


class FirstPrediction:
    """Follows the predictions topic on a thread; tells when a version first answered
    after a given time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.codec = Codec.from_settings(settings)
        self.seen: list[tuple[int, int]] = []  # (scored_time, version)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> FirstPrediction:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        topic = self.settings.topic_predictions
        consumer = Consumer(
            self.settings.consumer_config(
                f"bench-{uuid.uuid4().hex[:6]}",
                **{"isolation.level": "read_committed", "fetch.wait.max.ms": 10},
            )
        )
        consumer.assign(
            [TopicPartition(topic, p, 0) for p in range(self.settings.topic_partitions)]
        )
        try:
            while not self._stop.is_set():
                for m in consumer.consume(1000, 0.05):
                    if m.error() is None:
                        p = self.codec.decode(m.value(), m.headers(), "Prediction", topic)
                        with self._lock:
                            self.seen.append((p["scored_time"], p["version"]))
        finally:
            consumer.close()

    def first(self, version: int, since_ms: int) -> int | None:
        with self._lock:
            times = [t for t, v in self.seen if v == version and t >= since_ms]
        return min(times) if times else None


def alert(model: str, version: int) -> dict[str, Any]:
    return {
        "alert_id": uuid.uuid4().hex[:16],
        "model": model,
        "version": version,
        "kind": "performance",
        "metric": "accuracy",
        "feature": None,
        "state": "firing",
        "value": 0.1,
        "threshold": 0.7,
        "severity": "critical",
        "rule": "bench_rollback",
        "ts": int(time.time() * 1000),
        "message": "",
    }


def wait_for(check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.005)
    raise TimeoutError("timed out")


def run_trials(settings: Settings, trials: int, rate: float, settle: float) -> dict[str, list]:
    codec = Codec.from_settings(settings)
    plane = ControlPlane(settings, actor="bench")
    good, broken = register_pair(plane, "m")
    lanes = [ScorerLane(settings), OperatorLane(settings)]
    for lane in lanes:
        lane.start()
    watch = FirstPrediction(settings).start()
    traffic = Traffic(settings, "m", rate=rate).start()
    producer = Producer(settings.producer_config(linger_ms=0))
    out: dict[str, list[float]] = {"alert_to_action": [], "action_to_prediction": []}
    try:
        wait_for(lambda: watch.first(good, 0), 60)
        for i in range(trials):
            plane.promote("m", broken)
            time.sleep(settle)
            before = plane.state("m").updated_at
            record = alert("m", broken)
            value, headers = codec.encode("Alert", record)
            sent_ms = time.time() * 1000
            producer.produce(settings.topic_alerts, value, b"m", headers=headers)
            producer.flush(10)
            state = wait_for(functools.partial(_changed, plane, before), 30)
            assert state.champion == good, f"trial {i}: champion is v{state.champion}"
            first = wait_for(functools.partial(watch.first, good, state.updated_at), 30)
            out["alert_to_action"].append((state.updated_at - sent_ms) / 1000.0)
            out["action_to_prediction"].append((first - state.updated_at) / 1000.0)
            print(
                f"  trial {i + 1:2d}: alert -> action {out['alert_to_action'][-1]:.3f} s, "
                f"action -> first prediction by v{good} {out['action_to_prediction'][-1]:.3f} s"
            )
    finally:
        traffic.stop()
        watch.stop()
        for lane in reversed(lanes):
            lane.stop()
        plane.close()
        del producer
    return out


def _changed(plane: ControlPlane, before: int) -> Any:
    state = plane.state("m")
    return state if state.updated_at > before else None


def report(name: str, values: list[float]) -> None:
    p50, p99 = np.percentile(values, [50, 99])
    verdict = "meets" if p99 <= GOAL_S else "misses"
    print(f"{name:<38} p50 {p50:.3f} s  p99 {p99:.3f} s  ({verdict} the {GOAL_S:g} s goal)")


def sibling_bench(module: str, argv: list[str]) -> None:
    """Run ``bench/<module>.py``'s ``main(argv)``: the kill switch's and the comparison's
    figures print beside the actions' ones, in the same run."""
    path = Path(__file__).with_name(f"{module}.py")
    spec = importlib.util.spec_from_file_location(f"bench_{module}", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    print(f"\n-- bench/{module}.py")
    mod.main(argv)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s")
    parser.add_argument("--settle", type=float, default=1.0, help="s between promote and alert")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedBroker(Path(tmp) / "broker", free_port()) as broker,
    ):
        rules = Path(tmp) / "rules.yaml"
        rules.write_text(RULES)
        settings = load_settings(
            env={},
            toml_path=None,
            kafka_port=broker.port,
            data_dir=Path(tmp) / "data",
            monitor_rules=str(rules),
            actions_cooldown="0s",
            actions_max_per_hour=1_000_000,
        )
        ensure_topics(settings)
        print(f"alerts that act: {args.trials} trials at {args.rate:g} requests/s")
        out = run_trials(settings, args.trials, args.rate, args.settle)
    report("alert -> action", out["alert_to_action"])
    report("action -> first prediction (restored)", out["action_to_prediction"])
    sibling_bench("pause", ["--trials", str(args.trials)])
    sibling_bench("lift_sample_sizes", [])


if __name__ == "__main__":
    main()
