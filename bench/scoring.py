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
import contextlib
import cProfile
import dataclasses
import gc
import io
import json
import logging
import os
import pickle
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from confluent_kafka import Consumer, Message, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from streams.config import Settings, load_settings, settings_env  # noqa: E402

FEATURES = [f"f{i}" for i in range(10)]
MODEL = "bench"
PARTITIONS = 3
SKIPPABLE = ("faust", "quix", "latency", "same-guarantee", "ceiling", "profile")
MIN_SPAN_S = 2.0  # a rate timed over less than this is not compared with anything
# The baselines' consumers get what the embedded broker needs, as lastmile's do
# (Settings.consumer_config): a group join in seconds, and a short fetch wait.
BASELINE_CONSUMER_TUNING = {
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000,
    "fetch.wait.max.ms": 10,
}

GOAL_RATE = 50_000
GOAL_VS_FAUST = 20.0
GOAL_VS_QUIX = 2.0
GOAL_P99_ADDED_MS = 20.0
GOAL_RSS_MB = 400.0


# -- data and model -----------------------------------------------------------------------


def train_model(rows: int = 2000, seed: int = 7) -> Any:
    """StandardScaler | LogisticRegression, trained briefly on a noisy linear concept."""
    from river import linear_model, preprocessing

    rng = np.random.default_rng(seed)
    weights = rng.normal(0.0, 1.0, len(FEATURES))
    x = rng.normal(0.0, 1.0, (rows, len(FEATURES)))
    y = (x @ weights + rng.normal(0.0, 0.5, rows)) > 0
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    for row, label in zip(x.tolist(), y.tolist(), strict=True):
        model.learn_one(dict(zip(FEATURES, row, strict=True)), bool(label))
    return model


def make_requests(n: int, prefix: str, seed: int) -> list[dict]:
    """``n`` scoring requests with random features, keyed by entity ``e<i>``."""
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, 1.0, (n, len(FEATURES))).round(4).tolist()
    now = int(time.time() * 1000)
    return [
        {
            "request_id": f"{prefix}{i}",
            "model": MODEL,
            "features": dict(zip(FEATURES, row, strict=True)),
            "event_time": now,
            "entity_id": f"e{i}",
        }
        for i, row in enumerate(matrix)
    ]


def request_encoder(fmt: str) -> Callable[[dict], tuple[bytes, list | None]]:
    """(value, headers) of a request: JSON, or lastmile Avro (header format)."""
    if fmt == "json":
        return lambda record: (orjson.dumps(record), None)
    from schemas import Codec

    codec = Codec()
    return lambda record: codec.encode("ScoringRequest", record)


def score_one(model: Any, request: dict) -> dict:
    """What the Faust and Quix jobs answer: the fields of lastmile's Prediction, as JSON."""
    proba = model.predict_proba_one(request["features"])
    return answer(request, float(proba.get(True, 0.0)), int(time.time() * 1000))


def answer(request: dict, score: float, now: int) -> dict:
    """The prediction of the baselines (and the ceiling) for a request and its score."""
    return {
        "request_id": request["request_id"],
        "model": request["model"],
        "version": 1,
        "variant": "champion",
        "score": score,
        "label": "1" if score >= 0.5 else "0",
        "features": request["features"],
        "event_time": request["event_time"],
        "scored_time": now,
        "latency_ms": float(max(0, now - request["event_time"])),
        "entity_id": request.get("entity_id"),
    }


# -- Kafka helpers --------------------------------------------------------------------------


def create_topics(settings: Settings, names: list[str]) -> None:
    admin = AdminClient({**settings.kafka_config(), "log_level": 3})
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=PARTITIONS, replication_factor=1) for n in names],
        request_timeout=15,
    )
    for future in futures.values():
        future.result(15)


def produce_all(settings: Settings, topic: str, records: list[dict], fmt: str = "json") -> float:
    """Produce every request (idempotent, acks=all, linger 20 ms); return the seconds taken."""
    encode = request_encoder(fmt)
    producer = Producer(settings.producer_config())
    t0 = time.perf_counter()
    for record in records:
        value, headers = encode(record)
        while True:
            try:
                producer.produce(topic, value, record["entity_id"].encode(), headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(60)
    if remaining:
        raise RuntimeError(f"{remaining} requests were not delivered to {topic}")
    return time.perf_counter() - t0


def reader_config(settings: Settings, group: str, fetch_wait_ms: int) -> dict[str, Any]:
    return settings.consumer_config(
        group,
        **{
            "isolation.level": "read_committed",
            "enable.partition.eof": False,
            "fetch.wait.max.ms": fetch_wait_ms,
        },
    )


def assign_at_end(consumer: Consumer, topic: str) -> None:
    """Assign every partition of ``topic`` at its current end (high watermark)."""
    parts = []
    for p in range(PARTITIONS):
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        parts.append(TopicPartition(topic, p, high))
    consumer.assign(parts)


# -- child processes ------------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MB (empty when it is gone)."""
    out: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0]) / 1024.0
    return out


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when this benchmark dies, even by SIGKILL."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Children:
    """Every process this benchmark starts, each in its own session, stopped on the way out."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}

    def spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                cwd=ROOT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self.procs[name] = proc
        return proc

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, name: str, timeout: float = 15.0) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        # Anything the child left behind in its session goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        for name in list(self.procs):
            with contextlib.suppress(Exception):
                self.stop(name)


# -- throughput -----------------------------------------------------------------------------


@dataclasses.dataclass
class Run:
    name: str
    expected: int
    counted: int = 0
    spawned_at: float = 0.0
    first_at: float | None = None
    last_at: float | None = None
    first_poll: int = 0
    stopped: str = ""
    peak_rss_mb: float | None = None

    @property
    def complete(self) -> bool:
        return self.counted >= self.expected

    @property
    def rate(self) -> float | None:
        """Events/s from the first output to the last."""
        if self.first_at is None or self.last_at is None or self.last_at <= self.first_at:
            return None
        return (self.counted - self.first_poll) / (self.last_at - self.first_at)

    @property
    def span_s(self) -> float:
        if self.first_at is None or self.last_at is None:
            return 0.0
        return self.last_at - self.first_at

    @property
    def timed(self) -> bool:
        """Whether the outputs came over long enough to give a rate worth comparing."""
        return self.span_s >= MIN_SPAN_S

    @property
    def total_rate(self) -> float | None:
        if self.last_at is None:
            return None
        return self.counted / (self.last_at - self.spawned_at)

    @property
    def startup_s(self) -> float | None:
        return None if self.first_at is None else self.first_at - self.spawned_at


def count_outputs(
    consumer: Consumer,
    run: Run,
    alive: Callable[[], bool],
    startup_timeout: float,
    stall_timeout: float,
    deadline_s: float,
    tick: Callable[[], None] | None = None,
) -> Run:
    """Count messages on the assigned output partitions until ``run.expected`` arrived,
    the worker died, nothing came for ``stall_timeout`` s, or time ran out."""
    deadline = run.spawned_at + deadline_s
    last_tick = 0.0
    while True:
        batch = consumer.consume(10_000, 0.02)
        now = time.monotonic()
        good = sum(1 for m in batch if m.error() is None)
        if good:
            if run.first_at is None:
                run.first_at, run.first_poll = now, good
            run.counted += good
            run.last_at = now
        if tick is not None and now - last_tick > 0.5:
            tick()
            last_tick = now
        if run.counted >= run.expected:
            run.stopped = "all outputs counted"
            break
        if now > deadline:
            run.stopped = f"deadline of {deadline_s:.0f} s reached"
            break
        if run.first_at is None and now - run.spawned_at > startup_timeout:
            run.stopped = f"no output within {startup_timeout:.0f} s of start"
            break
        if run.last_at is not None and now - run.last_at > stall_timeout:
            run.stopped = f"no output for {stall_timeout:.0f} s"
            break
        if not batch and not alive():
            run.stopped = "the worker exited"
            break
    return run


class Bench:
    def __init__(self, args: argparse.Namespace, settings: Settings, tmp: Path) -> None:
        self.args = args
        self.settings = settings
        self.tmp = tmp
        self.children = Children(tmp / "logs")
        self.model_path = tmp / "model.pkl"
        self.scorer_pid: int | None = None
        self.scorer_rss: dict[str, float] = {}

    # The lastmile scorer ----------------------------------------------------------------

    def setup_model(self) -> None:
        from streams.kafka.topics import ensure_topics
        from streams.models import ControlPlane

        ensure_topics(self.settings)
        model = train_model()
        self.model_path.write_bytes(pickle.dumps(model))
        with ControlPlane(self.settings) as control:
            mv = control.register_and_publish(
                MODEL, model, "river", features=FEATURES, labels=[False, True]
            )
            control.promote(MODEL, mv.version)

    def _timeouts(self, n: int, floor_rate: float) -> float:
        return self.args.startup_timeout + n / floor_rate + 30

    def at_least_once(self) -> Settings:
        """The bench's settings for a scorer at least once, on topics of its own."""
        return dataclasses.replace(
            self.settings,
            scorer_exactly_once=False,
            topic_requests="bench.lastmile-alo.requests",
            topic_predictions="bench.lastmile-alo.predictions",
        )

    def run_lastmile(self, name: str = "lastmile", s: Settings | None = None) -> Run:
        """The scorer worker (child process ``scorer``) on ``--count`` requests; it keeps
        running afterwards for the latency run, until :meth:`stop_scorer`."""
        from streams.kafka.topics import ensure_topics

        s = s or self.settings
        ensure_topics(s)  # else the first producer auto-creates them, with other partitions
        records = make_requests(self.args.count, "r", seed=1)
        took = produce_all(s, s.topic_requests, records, self.args.request_format)
        print(
            f"  produced {len(records):,} {self.args.request_format} requests to "
            f"{s.topic_requests} in {took:.1f} s"
        )
        del records
        consumer = Consumer(reader_config(s, "bench-count", 20))
        consumer.assign([TopicPartition(s.topic_predictions, p, 0) for p in range(PARTITIONS)])
        run = Run(name, self.args.count)
        env = settings_env(s)
        env["LASTMILE_WEB_PORT"] = str(free_port())
        run.spawned_at = time.monotonic()
        proc = self.children.spawn(
            "scorer", [sys.executable, "-m", "streams.cli.main", "worker", "--roles", "scorer"], env
        )
        self.scorer_pid = proc.pid

        def tick() -> None:
            status = proc_status(proc.pid)
            if status:
                self.scorer_rss = status

        self._count(consumer, run, proc, 2000, tick)
        tick()
        run.peak_rss_mb = self.scorer_rss.get("VmHWM")
        if not run.complete:
            print(
                f"  {name} stopped early ({run.stopped}); worker log:\n"
                + self.children.log_tail("scorer")
            )
        return run

    def _count(
        self,
        consumer: Consumer,
        run: Run,
        proc: subprocess.Popen,
        floor_rate: float,
        tick: Callable[[], None],
    ) -> None:
        """Count `proc`'s outputs into `run` until all are in, or it stalls or dies; the
        consumer is closed after."""
        try:
            count_outputs(
                consumer,
                run,
                lambda: proc.poll() is None,
                self.args.startup_timeout,
                self.args.stall_timeout,
                self._timeouts(run.expected, floor_rate),
                tick,
            )
        finally:
            consumer.close()

    def scorer_alive(self) -> bool:
        proc = self.children.procs.get("scorer")
        return proc is not None and proc.poll() is None

    def stop_scorer(self) -> None:
        if self.scorer_pid is not None:
            status = proc_status(self.scorer_pid)
            if status:
                self.scorer_rss = status
        self.children.stop("scorer")
        self.scorer_pid = None

    # The baselines --------------------------------------------------------------------

    def run_child(
        self, kind: str, n: int, floor_rate: float, guarantee: str = "at-least-once"
    ) -> Run:
        """The Faust or Quix job on ``n`` requests; Quix with the processing ``guarantee``."""
        s = self.settings
        name = kind if guarantee == "at-least-once" else f"{kind}-eos"
        in_topic, out_topic = f"bench.{name}.requests", f"bench.{name}.predictions"
        create_topics(s, [in_topic, out_topic])
        records = make_requests(n, f"{kind}-", seed=2)
        took = produce_all(s, in_topic, records)
        print(f"  produced {n:,} json requests to {in_topic} in {took:.1f} s")
        del records
        config = {
            "bootstrap": s.kafka_bootstrap_servers,
            "input": in_topic,
            "output": out_topic,
            "model": str(self.model_path),
            "data_dir": str(self.tmp / kind),
            "group": f"bench-{name}",
            "guarantee": guarantee,
        }
        consumer = Consumer(reader_config(s, "bench-count", 20))
        consumer.assign([TopicPartition(out_topic, p, 0) for p in range(PARTITIONS)])
        run = Run(name, n)
        run.spawned_at = time.monotonic()
        proc = self.children.spawn(
            name,
            [sys.executable, str(Path(__file__).resolve()), "_child", kind, json.dumps(config)],
        )
        peak = 0.0

        def tick() -> None:
            nonlocal peak
            peak = max(peak, proc_status(proc.pid).get("VmHWM", 0.0))

        try:
            self._count(consumer, run, proc, floor_rate, tick)
            tick()
        finally:
            self.children.stop(name)
        run.peak_rss_mb = peak or None
        if not run.complete:
            print(
                f"  {name} stopped early ({run.stopped}); its log:\n" + self.children.log_tail(name)
            )
        return run

    # Latency ------------------------------------------------------------------------------

    def latency(
        self,
        label: str,
        in_topic: str,
        out_topic: str,
        fmt: str,
        times_of: Callable[[Message], tuple[str, float, float | None]],
    ) -> dict[str, Any]:
        """Offer requests at the configured rate to ``in_topic`` and time each arrival on
        ``out_topic`` against the ``event_time`` it carries. ``times_of`` gives a received
        message's (request_id, event_time, scored_time or None); messages of other requests
        are counted apart and left out: the embedded broker's high watermark can lag behind
        an idempotent producer's last batch, so a previous run's tail may be read too."""
        args, s = self.args, self.settings
        n = int(args.latency_rate * args.latency_seconds)
        consumer = Consumer(reader_config(s, f"bench-latency-{label}", args.fetch_wait_ms))
        assign_at_end(consumer, out_topic)
        consumer.consume(100, 0.5)  # connections up, fetches going
        producer = Producer(s.producer_config(**{"linger.ms": args.linger_ms}))
        encode = request_encoder(fmt)
        done = threading.Event()
        started = time.time()
        errors: list[BaseException] = []

        def offer() -> None:
            try:
                t0 = time.monotonic()
                for i in range(n):
                    delay = t0 + i / args.latency_rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    value, headers = encode(
                        {
                            "request_id": f"{label}-{i}",
                            "model": MODEL,
                            "features": {
                                f: float((i * 7 + j) % 13) / 3.0 for j, f in enumerate(FEATURES)
                            },
                            "event_time": int(time.time() * 1000),
                            "entity_id": f"e{i}",
                        }
                    )
                    producer.produce(in_topic, value, f"e{i}".encode(), headers=headers)
                    producer.poll(0)
                producer.flush(30)
            except BaseException as err:  # reported by the caller
                errors.append(err)
            finally:
                done.set()

        thread = threading.Thread(target=offer, name=f"offer-{label}", daemon=True)
        thread.start()
        samples: list[tuple[float, float, float | None]] = []
        own, others = f"{label}-", 0
        hard_deadline = time.monotonic() + args.latency_seconds + 60
        done_at: float | None = None
        try:
            while time.monotonic() < hard_deadline:
                # poll(), not consume(n, timeout): consume waits for n messages or the
                # whole timeout, which would add its wait to every sample.
                m = consumer.poll(0.05)
                received = time.time() * 1000.0
                if m is not None and m.error() is None:
                    request_id, *times = times_of(m)
                    if request_id.startswith(own):
                        samples.append((*times, received))
                    else:
                        others += 1
                if done.is_set():
                    done_at = done_at or time.monotonic()
                    if len(samples) >= n or time.monotonic() - done_at > 5:
                        break
        finally:
            consumer.close()
            thread.join(35)
        if errors:
            raise errors[0]
        cutoff = started * 1000.0 + args.latency_warmup * 1000.0
        kept = [x for x in samples if x[0] >= cutoff]
        result: dict[str, Any] = {
            "n": len(kept),
            "offered": n,
            "received": len(samples),
            "others": others,
        }
        if kept:
            result["total"] = percentiles([rcv - sent for sent, _sc, rcv in kept])
            if kept[0][1] is not None:
                result["to_scored"] = percentiles([sc - sent for sent, sc, _rcv in kept])
                result["after_scored"] = percentiles([rcv - sc for _sent, sc, rcv in kept])
        return result

    def measure_latency(
        self, run: Run, s: Settings, floor: bool = False
    ) -> dict[str, dict[str, Any]]:
        """Latency through the scorer that made ``run`` (still running, with settings
        ``s``), after the broker floor when ``floor``; keyed ``floor`` and the run's name."""
        args = self.args
        if "latency" in args.skip:
            return {}
        if not self.scorer_alive() or not run.complete:
            print("  latency: skipped, the scorer did not finish its run")
            return {}
        print(
            f"  latency at {args.latency_rate:,.0f} events/s offered for "
            f"{args.latency_seconds:g} s: "
            + ("the broker floor, then through the scorer" if floor else "through the scorer")
        )
        out = {}
        if floor:
            out["floor"] = self.latency_floor()
            print(f"  floor: {out['floor']['received']:,}/{out['floor']['offered']:,} received")
        out[run.name] = self.latency_scorer(s, run.name)
        print(f"  {run.name}: {out[run.name]['received']:,}/{out[run.name]['offered']:,} received")
        for name, result in out.items():
            if result["others"]:
                print(f"  ({name}: {result['others']:,} messages of other requests ignored)")
        return out

    def latency_floor(self) -> dict[str, Any]:
        topic = "bench.floor"
        create_topics(self.settings, [topic])

        def times_of(m: Message) -> tuple[str, float, None]:
            request = orjson.loads(m.value())
            return request["request_id"], request["event_time"], None

        return self.latency("floor", topic, topic, "json", times_of)

    def latency_scorer(self, s: Settings, label: str) -> dict[str, Any]:
        from schemas import Codec

        codec = Codec.from_settings(s)

        def times_of(m: Message) -> tuple[str, float, float]:
            p = codec.decode(m.value(), m.headers(), "Prediction", s.topic_predictions)
            return p["request_id"], p["event_time"], p["scored_time"]

        return self.latency(
            label, s.topic_requests, s.topic_predictions, self.args.request_format, times_of
        )

    # Profile ------------------------------------------------------------------------------

    def profile(self) -> None:
        profile_scorer(self.settings, self.args.profile_count, self.args.request_format)


# -- the in-process profile ---------------------------------------------------------------


def percentiles(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=float)
    return {
        "p50": float(np.percentile(arr, 50)),
        "p90": float(np.percentile(arr, 90)),
        "p99": float(np.percentile(arr, 99)),
        "max": float(arr.max()),
    }


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def profile_scorer(settings: Settings, limit: int, fmt: str) -> None:
    """Where the scorer's time goes, per stage, over messages fetched beforehand."""
    from schemas import Codec
    from streams.models import ModelTable, ModelWatcher, Registry
    from streams.roles.scorer import Scorer

    scratch = "bench.profile.predictions"
    create_topics(settings, [scratch])
    s = dataclasses.replace(settings, topic_predictions=scratch)
    table = ModelTable()
    watcher = ModelWatcher(s, table).start()
    try:
        if not watcher.wait_caught_up(20):
            print("  profile: the control plane did not replay in 20 s; skipped")
            return
    finally:
        watcher.stop()
    scorer = Scorer(s, table, Registry.from_settings(s), Codec.from_settings(s))

    # Consume as the lane does: a group member, read_committed, batches of up to 5,000.
    consumer = Consumer(
        s.consumer_config(
            "bench-profile", **{"isolation.level": "read_committed", "enable.partition.eof": False}
        )
    )
    try:
        consumer.subscribe([s.topic_requests])
        messages, consume_s = _prefetch(consumer, limit)
        if not messages:
            print("  profile: no requests to profile")
            return
        n = len(messages)
        lane_batches = _chunks(messages, 5000)
        print(f"  {n:,} requests fetched beforehand, {len(lane_batches)} batches of up to 5,000")

        # 1. Scorer.process as the lane calls it (and the garbage collector's pauses).
        with GcPauses() as pauses:
            t0 = time.perf_counter()
            outputs = [scorer.process(b) for b in lane_batches]
            process_s = time.perf_counter() - t0
        produced = sum(len(o) for o in outputs)

        # 1b. The same after gc.freeze(), as the lane runs after its first batch: what
        #     the collector's full runs cost.
        gc.collect()
        gc.freeze()
        try:
            with GcPauses() as frozen_pauses:
                t0 = time.perf_counter()
                for b in lane_batches:
                    scorer.process(b)
                frozen_s = time.perf_counter() - t0

            # 2. The same work, stage by stage, with the scorer's own parts (frozen too:
            #    a full collection would land in whichever stage it falls in).
            stages, compare = _stages(scorer, table, lane_batches, fmt)
            staged_s = sum(stages.values())
        finally:
            gc.unfreeze()

        # 3. The lane's Kafka side for the same outputs: one transaction per batch, then
        #    small transactions as at 1,000 events/s (~20 requests per batch).
        kafka, small = _transactions(s, consumer, outputs)
    finally:
        consumer.close()

    # 4. cProfile over Scorer.process.
    prof = cProfile.Profile()
    prof.enable()
    for b in lane_batches:
        scorer.process(b)
    prof.disable()

    def line(name: str, seconds: float, total: float) -> str:
        rate = n / seconds if seconds > 0 else float("inf")
        return (
            f"    {name:<40} {seconds * 1e6 / n:7.2f} us/event  {rate:>12,.0f} ev/s"
            f"  {100 * seconds / total:5.1f}%"
        )

    lane_total = consume_s + frozen_s + sum(kafka.values())
    print(
        f"  Scorer.process alone: {n / process_s:,.0f} events/s "
        f"({process_s * 1e6 / n:.2f} us/event, {produced:,} outputs)"
    )
    print(f"  garbage collections during it: {pauses.summary()}")
    print(
        f"  the same after gc.freeze() of what start-up left: {n / frozen_s:,.0f} events/s; "
        f"collections: {frozen_pauses.summary()}"
    )
    print(
        "  per stage of Scorer.process (replayed with its parts, frozen; % of the staged sum "
        f"{staged_s * 1e6 / n:.2f} us/event):"
    )
    for name, seconds in stages.items():
        print(line(name, seconds, staged_s))
    print("  decoding the same requests other ways, for comparison (% of the staged sum):")
    for name, seconds in compare.items():
        print(line(name, seconds, staged_s))
    print(
        "  the whole lane, batches of 5,000, frozen (% of consume + process + Kafka delivery, "
        f"{lane_total * 1e6 / n:.2f} us/event = {n / lane_total:,.0f} events/s "
        "on one thread):"
    )
    print(line("consume (librdkafka, prefetched)", consume_s, lane_total))
    print(line("Scorer.process (after gc.freeze)", frozen_s, lane_total))
    for name, seconds in kafka.items():
        print(line(name, seconds, lane_total))
    if small:
        print(
            f"  one small transaction ({SMALL_TXN} predictions) as at low rates, "
            f"{len(small['total'])} in a row, ms:"
        )
        for name, values in small.items():
            p = percentiles(values)
            print(f"    {name:<40} p50 {p['p50']:6.1f}  p99 {p['p99']:6.1f}  max {p['max']:6.1f}")
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(14)
    text = out.getvalue()
    start = text.find("   ncalls")
    print("  cProfile of Scorer.process, top functions by own time:")
    for row in text[start:].rstrip().splitlines():
        print("    " + row.replace(str(ROOT) + "/", "").replace(sys.prefix + "/", ""))


SMALL_TXN = 20


class GcPauses:
    """Counts and times the cyclic garbage collector's runs, per generation."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._start = 0.0

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.pauses[info["generation"]].append((time.perf_counter() - self._start) * 1000)

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def summary(self) -> str:
        parts = []
        for gen, values in self.pauses.items():
            if values:
                parts.append(
                    f"gen{gen} {len(values)}x, {sum(values):.0f} ms in all, "
                    f"longest {max(values):.1f} ms"
                )
        return "; ".join(parts) or "none"


def _prefetch(consumer: Consumer, limit: int) -> tuple[list[Message], float]:
    """Up to ``limit`` messages, and the seconds consume() took after the group join."""
    messages: list[Message] = []
    consume_s = 0.0
    deadline = time.monotonic() + 60
    while len(messages) < limit and time.monotonic() < deadline:
        t0 = time.perf_counter()
        got = consumer.consume(min(5000, limit - len(messages)), 1.0)
        elapsed = time.perf_counter() - t0
        got = [m for m in got if m.error() is None]
        if got:
            if messages:  # the first call includes the group join
                consume_s += elapsed
            messages.extend(got)
    if messages and consume_s == 0.0:
        consume_s = 1e-9
    return messages, consume_s


def _stages(
    scorer: Any, table: Any, lane_batches: list[list[Message]], fmt: str
) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds per stage of Scorer.process, replayed with the scorer's own parts, and the
    same requests decoded other ways for comparison."""
    from streams.records import PREDICTION_FIELDS, prediction_values

    codec, topic_in, topic_out = (
        scorer.codec,
        scorer.settings.topic_requests,
        scorer.settings.topic_predictions,
    )
    stages: dict[str, float] = {}
    compare: dict[str, float] = {}

    def timed(into: dict[str, float], name: str, fn: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        result = fn()
        into[name] = into.get(name, 0.0) + time.perf_counter() - t
        return result

    for batch in lane_batches:
        reqs = timed(
            stages,
            f"decode (codec.decode_messages, {fmt})",
            lambda b=batch: codec.decode_messages(b, "ScoringRequest", topic_in),
        )
        routes = timed(
            stages,
            "route (once a batch) and group",
            lambda r=reqs: (table.keyless_route(MODEL), [(q["model"], q) for q in r]),
        )[0]
        version = routes[0][0]
        loaded = scorer.cache.get(MODEL, version)
        rows = [q["features"] for q in reqs]
        _, matrix = timed(
            stages, "check + float matrix (check_many)", lambda r=rows, lm=loaded: lm.check_many(r)
        )
        frame = timed(
            stages,
            "predict: DataFrame of the matrix",
            lambda r=rows, lm=loaded, m=matrix: lm._frame(r, m),
        )
        proba = timed(
            stages,
            "predict: River predict_proba_many",
            lambda f=frame, lm=loaded: lm.model.predict_proba_many(f),
        )
        results = timed(
            stages,
            "predict: to (score, label)",
            lambda p=proba, lm=loaded: lm._from_matrix(
                np.nan_to_num(p.to_numpy(dtype=float)), [str(c) for c in p.columns]
            ),
        )
        now_ms = int(time.time() * 1000)
        values = timed(
            stages,
            "prediction values",
            lambda b=batch, r=reqs, res=results, v=version, t=now_ms: prediction_values(
                b, r, res, v, "champion", t
            ),
        )
        timed(
            stages,
            "encode (codec.encode_projections, Avro)",
            lambda r=reqs, v=values: codec.encode_projections(
                "Prediction", r, PREDICTION_FIELDS, v, topic_out
            ),
        )
        as_json = [orjson.dumps(q) for q in reqs]
        as_avro = [codec.encode("ScoringRequest", q) for q in reqs]
        timed(
            compare,
            "orjson.loads alone (no validation)",
            lambda v=as_json: [orjson.loads(x) for x in v],
        )
        timed(
            compare,
            "codec.decode of JSON requests",
            lambda v=as_json: [codec.decode(x, None, "ScoringRequest", topic_in) for x in v],
        )
        timed(
            compare,
            "codec.decode_many of Avro requests",
            lambda v=as_avro: codec.decode_many(
                [x for x, _h in v], [h for _x, h in v], "ScoringRequest", topic_in
            ),
        )
    return stages, compare


def _transactions(
    settings: Settings, consumer: Consumer, outputs: list[list[Any]]
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """The lane's delivery of ``outputs``: seconds per step over all batches, and ms per
    step of small transactions."""
    producer = Producer(
        settings.producer_config(
            **{
                "transactional.id": f"bench-profile-{uuid.uuid4().hex}",
                "client.id": "bench-profile",
            }
        )
    )
    try:
        producer.init_transactions(30)
        steps = (
            "produce() calls",
            "send_offsets_to_transaction",
            "commit_transaction (flush + EndTxn)",
        )
        kafka = dict.fromkeys(steps, 0.0)
        small: dict[str, list[float]] = {name: [] for name in (*steps, "total")}
        flat = [o for outs in outputs for o in outs]
        batches = list(outputs) + [
            flat[i : i + SMALL_TXN] for i in range(0, SMALL_TXN * 100, SMALL_TXN)
        ]
        for i, outs in enumerate(batches):
            if not outs:
                continue
            t = time.perf_counter()
            producer.begin_transaction()
            for out in outs:
                while True:
                    try:
                        producer.produce(out.topic, out.value, out.key, headers=out.headers)
                        break
                    except BufferError:
                        producer.poll(0.05)
            t1 = time.perf_counter()
            producer.send_offsets_to_transaction(
                consumer.position(consumer.assignment()), consumer.consumer_group_metadata(), 30
            )
            t2 = time.perf_counter()
            producer.commit_transaction(60)
            t3 = time.perf_counter()
            if i < len(outputs):
                for name, value in zip(steps, (t1 - t, t2 - t1, t3 - t2), strict=True):
                    kafka[name] += value
            else:
                for name, value in zip(
                    (*steps, "total"), (t1 - t, t2 - t1, t3 - t2, t3 - t), strict=True
                ):
                    small[name].append(value * 1000)
        producer.flush(10)
    finally:
        del producer  # gone before the broker stops, or librdkafka complains
    return kafka, {k: v for k, v in small.items() if v}


# -- the child jobs (run as: scoring.py _child faust|quix CONFIG_JSON) -----------------------


def faust_child(config: dict) -> None:
    """A plain Faust agent: per event, predict_proba_one and await send."""
    import faust

    logging.basicConfig(level=logging.WARNING, force=True)  # Faust would set DEBUG
    model = pickle.loads(Path(config["model"]).read_bytes())
    app = faust.App(
        f"bench-faust-{os.getpid()}",
        broker=f"kafka://{config['bootstrap']}",
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        broker_rebalance_timeout=10.0,
        consumer_auto_offset_reset="earliest",
        producer_linger=0.02,
        store="memory://",
        datadir=config["data_dir"],
        web_enabled=False,
        topic_partitions=PARTITIONS,
        topic_replication_factor=1,
        logging_config=None,
    )
    source = app.topic(config["input"], key_serializer="raw", value_serializer="raw")
    sink = app.topic(config["output"], key_serializer="raw", value_serializer="raw")

    @app.agent(source)
    async def score(stream: Any) -> None:
        async for value in stream:
            request = orjson.loads(value)
            prediction = score_one(model, request)
            await sink.send(key=request["request_id"].encode(), value=orjson.dumps(prediction))

    worker = faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()


def quix_child(config: dict) -> None:
    """Quix Streams: JSON in, apply(predict_proba_one), JSON out."""
    from quixstreams import Application

    model = pickle.loads(Path(config["model"]).read_bytes())
    app = Application(
        broker_address=config["bootstrap"],
        consumer_group=config["group"],
        auto_offset_reset="earliest",
        consumer_extra_config=BASELINE_CONSUMER_TUNING,
        producer_extra_config={"linger.ms": 20},
        state_dir=config["data_dir"],
        use_changelog_topics=False,
        processing_guarantee=config["guarantee"],
        loglevel="WARNING",
    )
    source = app.topic(config["input"], value_deserializer="json", key_deserializer="bytes")
    sink = app.topic(config["output"], value_serializer="json", key_serializer="bytes")
    sdf = app.dataframe(source)
    sdf = sdf.apply(lambda request: score_one(model, request))
    sdf.to_topic(sink)
    app.run()


def ceiling_child(config: dict) -> None:
    """The practical ceiling the issue names: a hand-written confluent-kafka batch loop,
    at least once, with nothing of lastmile's: orjson in and out, River's
    ``predict_proba_many`` on a DataFrame, produce, flush, commit. No validation, no
    routing, no Avro, no dead letters, no transaction."""
    import pandas as pd

    model = pickle.loads(Path(config["model"]).read_bytes())
    consumer = Consumer(
        {
            "bootstrap.servers": config["bootstrap"],
            "group.id": config["group"],
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **BASELINE_CONSUMER_TUNING,
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": config["bootstrap"],
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 2,  # as the lanes (streams/kafka/lane.py): it flushes every batch
        }
    )
    consumer.subscribe([config["input"]])
    output = config["output"]
    while True:
        messages = consumer.consume(5000, 0.5)
        requests = [orjson.loads(m.value()) for m in messages if m.error() is None]
        if not requests:
            continue
        frame = pd.DataFrame.from_records([r["features"] for r in requests])
        scores = model.predict_proba_many(frame)[True].tolist()
        now = int(time.time() * 1000)
        for request, score in zip(requests, scores, strict=True):
            prediction = orjson.dumps(answer(request, score, now))
            producer.produce(output, prediction, request["request_id"].encode())
        producer.flush(60)
        consumer.commit(asynchronous=False)


# -- the report ----------------------------------------------------------------------------


def goal(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT met")


def fmt_rate(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:,.0f}"


def report_run(run: Run, note: str = "") -> None:
    total = (
        f"total {fmt_rate(run.total_rate)} ev/s incl. {run.startup_s:.1f} s start-up"
        if run.startup_s is not None
        else "no output"
    )
    rss = f", peak RSS {run.peak_rss_mb:.0f} MB" if run.peak_rss_mb else ""
    status = (
        "" if run.complete else f"  INCOMPLETE: {run.counted:,}/{run.expected:,}, {run.stopped}"
    )
    short = (
        ""
        if run.timed or run.rate is None
        else f"  [outputs came over {run.span_s:.2f} s only: too short to time, raise the count]"
    )
    print(
        f"  {run.name:<9} {run.counted:>9,} events  {fmt_rate(run.rate):>8} ev/s  "
        f"({total}{rss}){note}{status}{short}"
    )


def free_port() -> int:
    from streams.local.processes import free_port as _free_port

    return _free_port()


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
            latency.update(bench.measure_latency(runs["lastmile"], bench.settings, floor=True))
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
                latency.update(bench.measure_latency(runs["lastmile-alo"], alo))
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
                bench.profile()
        failed = False
    finally:
        bench.children.stop_all()
        summarize(args, runs, latency, rss)
        if failed:
            print(f"\n(stopped before the end: logs kept in {tmp / 'logs'})")
        elif not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def summarize(
    args: argparse.Namespace, runs: dict[str, Run], latency: dict[str, dict], rss: dict[str, float]
) -> None:
    print(f"\n== summary == (load average now {os.getloadavg()[0]:.2f})")
    print(
        f"throughput, events/s from first output to last (the total includes start-up); "
        f"lastmile requests in {args.request_format}:"
    )
    for name, r in runs.items():
        note = ""
        if name == "faust" and args.faust_count < args.count:
            note = f"  [run on {args.faust_count:,} events, not {args.count:,}: per-event path]"
        if name.startswith("quix") and args.quix_count != args.count:
            note = f"  [run on {args.quix_count:,} events]"
        if name == "ceiling" and args.ceiling_count != args.count:
            note = f"  [run on {args.ceiling_count:,} events]"
        report_run(r, note)

    def rate_of(name: str) -> float | None:
        r = runs.get(name)
        return r.rate if r is not None and r.timed and r.rate else None

    rate = rate_of("lastmile")
    print(
        f"  goal >= {GOAL_RATE:,} events/s per worker process: "
        f"{goal(None if rate is None else rate >= GOAL_RATE)}"
    )

    def ratio(ours: str, theirs: str, target: float | None = None, asked: bool = False) -> None:
        a, b = rate_of(ours), rate_of(theirs)
        if a is None or b is None:
            return
        line = f"    {ours}/{theirs}: {a / b:,.2f}x"
        if asked:
            line += f"  (what the {target:g}x goal would ask of it)"
        elif target is not None:
            line += f"  (goal >= {target:g}x: {goal(a / b >= target)})"
        print(line)

    baselines = (("faust", GOAL_VS_FAUST), ("quix", GOAL_VS_QUIX))
    print("  lastmile exactly once against the baselines' defaults (at least once):")
    for other, target in baselines:
        ratio("lastmile", other, target)
    pairs = [
        ("lastmile-alo", "faust", GOAL_VS_FAUST),
        ("lastmile-alo", "quix", GOAL_VS_QUIX),
        ("lastmile", "quix-eos", GOAL_VS_QUIX),
    ]
    if any(rate_of(ours) and rate_of(theirs) for ours, theirs, _ in pairs):
        print("  the same delivery guarantee on both sides:")
    for ours, theirs, target in pairs:
        ratio(ours, theirs, target)
    if rate_of("ceiling") is not None:
        print("  against the practical ceiling (a hand-written batch loop, at least once):")
        for ours in ("lastmile", "lastmile-alo"):
            ratio(ours, "ceiling")
        for other, target in baselines:
            ratio("ceiling", other, target, asked=True)
    floor = latency.get("floor")
    if floor is not None:
        print(
            f"latency at {args.latency_rate:,.0f} events/s for {args.latency_seconds:g} s "
            f"(first {args.latency_warmup:g} s dropped; producer linger {args.linger_ms} ms, "
            f"consumer fetch.wait.max.ms {args.fetch_wait_ms}):"
        )
        _latency_row("broker floor (no worker)", floor, "total")
    for name, title in (("lastmile", "exactly once"), ("lastmile-alo", "at least once")):
        scored = latency.get(name)
        if floor is None or scored is None:
            continue
        _latency_row(f"scorer, {title}", scored, "total")
        _latency_row("  request -> scored_time", scored, "to_scored")
        _latency_row("  scored_time -> received", scored, "after_scored")
        if floor.get("total") and scored.get("total"):
            f, t = floor["total"], scored["total"]
            added50, added99 = t["p50"] - f["p50"], t["p99"] - f["p99"]
            print(
                f"  {'  added over the floor':<26} p50 {added50:+7.1f} ms  "
                f"{'':16}p99 {added99:+7.1f} ms  "
                f"(goal p99 added <= {GOAL_P99_ADDED_MS:g} ms: "
                f"{goal(added99 <= GOAL_P99_ADDED_MS)})"
            )
    if rss:
        hwm = rss.get("VmHWM")
        print(
            f"scorer worker RSS, exactly once: peak (VmHWM) {hwm:.0f} MB, last "
            f"{rss.get('VmRSS', 0):.0f} MB "
            f"(goal <= {GOAL_RSS_MB:g} MB: {goal(None if hwm is None else hwm <= GOAL_RSS_MB)})"
        )


def _latency_row(name: str, result: dict[str, Any], part: str) -> None:
    p = result.get(part)
    if p:
        print(
            f"  {name:<26} p50 {p['p50']:7.1f} ms  p90 {p['p90']:7.1f} ms  "
            f"p99 {p['p99']:7.1f} ms  max {p['max']:7.1f} ms"
            + (
                f"  ({result['received']:,}/{result['offered']:,} received)"
                if part == "total"
                else ""
            )
        )
    elif part == "total":
        print(f"  {name:<26} no samples ({result.get('received', 0)} received)")


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
        {"faust": faust_child, "quix": quix_child, "ceiling": ceiling_child}[kind](config)
        return 0
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    def terminate(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally blocks: children stop

    signal.signal(signal.SIGTERM, terminate)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
