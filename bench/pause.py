"""Benchmark the kill switch: from ``pause`` to every scorer answering with the fallback.

Runs on the embedded broker, started here on a free port in a temporary directory
(or on the broker of the settings given to :func:`bench_pause`). A champion (a tiny River
logistic regression) serves model ``bench``; ``--workers`` scorer workers (``lastmile
worker --roles scorer`` processes, default 2) share ``scoring.requests`` (3 partitions),
and a thread here keeps a steady trickle of requests on every partition (``--rate`` per
second in all). A consumer reads ``scoring.predictions`` as callers do (read_committed).

One trial: ``ControlPlane.pause`` (what ``lastmile models pause`` runs: state.json under
the lock, fsync, publish, flush) at t0, then the time until a fallback prediction of a
request of EVERY partition is visible: every partition is some worker's, so every worker
switched and its transaction committed. Then ``resume`` and the same for the champion's
answers, before the next trial. Printed as p50/p99 over ``--trials`` (20) trials beside
the goal (1 s), with when the last of those predictions was scored (``scored_time``, the
workers' clock, the same machine), i.e. without the commit. Asserts nothing.

    python bench/pause.py
    python bench/pause.py --trials 20 --workers 2 --rate 300
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import orjson  # noqa: E402
from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition  # noqa: E402

from schemas import Codec  # noqa: E402
from streams.config import Settings, load_settings, settings_env  # noqa: E402
from streams.models import FALLBACK  # noqa: E402
from streams.models.state import epoch_ms  # noqa: E402

GOAL_MS = 1000.0
MODEL = "bench"


@dataclasses.dataclass
class PauseResult:
    """Milliseconds per trial: to every partition answered by the fallback (``pause_*``),
    and back to the champion (``resume_*``); ``*_scored`` without the commit."""

    workers: int
    pause_ms: list[float]
    pause_scored_ms: list[float]
    resume_ms: list[float]
    resume_scored_ms: list[float]

    @staticmethod
    def p(values: list[float], q: float) -> float:
        return float(np.percentile(values, q)) if values else float("nan")

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"trials": len(self.pause_ms), "workers": self.workers}
        for name in ("pause_ms", "pause_scored_ms", "resume_ms", "resume_scored_ms"):
            values = getattr(self, name)
            out[f"{name[:-3]}_p50_ms"] = self.p(values, 50)
            out[f"{name[:-3]}_p99_ms"] = self.p(values, 99)
        out["goal_ms"] = GOAL_MS
        out["meets_goal"] = out["pause_p99_ms"] <= GOAL_MS
        return out


class Answers:
    """The predictions callers see, per request partition: the latest of each variant."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.codec = Codec.from_settings(settings)
        self.lock = threading.Lock()
        # (partition, variant) -> [(seen at, scored_time ms)] since the trial began
        self.seen: dict[tuple[int, str], list[tuple[float, int]]] = {}
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="bench-answers", daemon=True)
        self.ready = threading.Event()

    def start(self) -> Answers:
        self.thread.start()
        self.ready.wait(30)
        return self

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(10)

    def reset(self) -> None:
        with self.lock:
            self.seen = {}

    def first_everywhere(self, variant: str, since_ms: int, partitions: int) -> tuple | None:
        """(seen, scored) of the last partition to show ``variant`` scored after
        ``since_ms``, or None while a partition has not."""
        with self.lock:
            firsts = []
            for p in range(partitions):
                hits = [h for h in self.seen.get((p, variant), []) if h[1] >= since_ms]
                if not hits:
                    return None
                firsts.append(min(hits))
        return max(f[0] for f in firsts), max(f[1] for f in firsts)

    def _run(self) -> None:
        consumer = Consumer(
            self.settings.consumer_config("bench-answers", **{"isolation.level": "read_committed"})
        )
        topic = self.settings.topic_predictions
        consumer.assign(
            [TopicPartition(topic, p, OFFSET_END) for p in range(self.settings.topic_partitions)]
        )
        consumer.consume(1, 1.0)  # the assignment takes effect: nothing before is read
        self.ready.set()
        try:
            while not self._stop.is_set():
                batch = consumer.consume(1000, 0.05)
                now = time.time()
                with self.lock:
                    for m in batch:
                        if m.error() is not None:
                            continue
                        p = self.codec.decode(m.value(), m.headers(), "Prediction", topic)
                        part = int(p["request_id"].split("-", 1)[0][1:])
                        scored = epoch_ms(p["scored_time"])
                        self.seen.setdefault((part, p["variant"]), []).append((now, scored))
        finally:
            consumer.close()


def trickle(settings: Settings, rate: float, stop: threading.Event) -> None:
    """Requests on every partition in turn, ``rate`` per second, until ``stop``; the
    request id tells its partition (``p<partition>-<n>``)."""
    producer = Producer(settings.producer_config(**{"linger.ms": 0}))
    partitions = settings.topic_partitions
    interval = 1.0 / rate
    n = 0
    next_at = time.monotonic()
    while not stop.is_set():
        part = n % partitions
        request = {
            "request_id": f"p{part}-{n}",
            "model": MODEL,
            "features": {"x": float(n % 7)},
            "event_time": int(time.time() * 1000),
            "entity_id": f"e{n}",
        }
        producer.produce(settings.topic_requests, orjson.dumps(request), partition=part)
        producer.poll(0)
        n += 1
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))
    producer.flush(10)


def tiny_model() -> Any:
    from river import linear_model, optim

    model = linear_model.LogisticRegression(optimizer=optim.SGD(0.0), intercept_lr=0.0)
    model.learn_one({"x": 0.0}, True)
    model.learn_one({"x": 0.0}, False)
    return model


def wait(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result is not None:
            return result
        time.sleep(0.002)
    raise TimeoutError(f"{what}: not within {timeout:g} s")


def start_workers(settings: Settings, n: int, log_dir: Path) -> list[subprocess.Popen]:
    from streams.local.processes import free_port

    procs = []
    for i in range(n):
        env = {
            **os.environ,
            **settings_env(settings),
            "LASTMILE_WEB_PORT": str(free_port()),
            "PYTHONPATH": str(ROOT),
        }
        log = (log_dir / f"worker{i}.log").open("ab")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "streams.cli.main", "worker", "--roles", "scorer"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
                cwd=ROOT,
            )
        )
    return procs


def stop_workers(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def bench_pause(
    settings: Settings | None = None, trials: int = 20, workers: int = 2, rate: float = 300.0
) -> PauseResult:
    """Run the trials (on an embedded broker of its own when ``settings`` is None)."""
    if settings is None:
        from streams.local.broker import EmbeddedBroker
        from streams.local.processes import free_port

        work = Path(tempfile.mkdtemp(prefix="lastmile-bench-pause-"))
        try:
            with EmbeddedBroker(work / "broker", free_port()) as broker:
                own = load_settings(
                    env={}, toml_path=None, kafka_port=broker.port, data_dir=work / "data"
                )
                return bench_pause(own, trials, workers, rate)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    from streams.kafka.topics import ensure_topics
    from streams.models import ControlPlane

    ensure_topics(settings)
    result = PauseResult(workers, [], [], [], [])
    partitions = settings.topic_partitions
    log_dir = Path(tempfile.mkdtemp(prefix="lastmile-bench-pause-logs-"))
    with ControlPlane(settings) as control:
        control.promote(MODEL, control.register_and_publish(MODEL, tiny_model(), "river").version)
        answers = Answers(settings).start()
        stop = threading.Event()
        producer = threading.Thread(target=trickle, args=(settings, rate, stop), daemon=True)
        producer.start()
        procs = start_workers(settings, workers, log_dir)
        try:
            start_ms = int(time.time() * 1000)
            wait(
                lambda: answers.first_everywhere("champion", start_ms, partitions),
                180,
                "every partition answered by the champion (workers up)",
            )
            time.sleep(2.0)  # let the group settle: no rebalance inside a trial
            for _ in range(trials):
                for command, variant, total, scored in (
                    (
                        lambda: control.pause(MODEL, fallback_score=0.0, fallback_label="0"),
                        FALLBACK,
                        result.pause_ms,
                        result.pause_scored_ms,
                    ),
                    (lambda: control.resume(MODEL), "champion", result.resume_ms,
                     result.resume_scored_ms),
                ):  # fmt: skip
                    answers.reset()
                    t0 = time.time()
                    command()
                    seen, scored_at = wait(
                        lambda v=variant, t=int(t0 * 1000): answers.first_everywhere(
                            v, t, partitions
                        ),
                        30,
                        f"every partition answered by {variant}",
                    )
                    total.append((seen - t0) * 1000)
                    scored.append(max(0.0, scored_at - t0 * 1000))
                time.sleep(0.2)
        finally:
            stop.set()
            producer.join(10)
            stop_workers(procs)
            answers.stop()
            shutil.rmtree(log_dir, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="scorer worker processes")
    parser.add_argument("--rate", type=float, default=300.0, help="requests per second in all")
    args = parser.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores")
    r = bench_pause(trials=args.trials, workers=args.workers, rate=args.rate).summary()
    mark = "meets" if r["meets_goal"] else "MISSES"
    print(
        f"pause -> every scorer answering with the fallback ({r['workers']} workers, "
        f"{r['trials']} trials): p50 {r['pause_p50_ms']:.0f} ms, p99 {r['pause_p99_ms']:.0f} ms "
        f"({mark} the goal of {GOAL_MS:.0f} ms); scored (before the commit): "
        f"p50 {r['pause_scored_p50_ms']:.0f} ms, p99 {r['pause_scored_p99_ms']:.0f} ms"
    )
    print(
        f"resume -> every scorer answering with the champion: p50 {r['resume_p50_ms']:.0f} ms, "
        f"p99 {r['resume_p99_ms']:.0f} ms; scored: p50 {r['resume_scored_p50_ms']:.0f} ms, "
        f"p99 {r['resume_scored_p99_ms']:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
