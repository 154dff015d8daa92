"""bench/scoring.py's throughput runs: a worker on pre-produced requests, its outputs
counted from the outside, timed from the first output to the last."""

from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from bench.scoring_children import Children, free_port, proc_status
from bench.scoring_job import FEATURES, MODEL, make_requests, train_model
from bench.scoring_kafka import PARTITIONS, create_topics, produce_all, reader_config
from bench.scoring_latency import Latency
from streams.config import Settings, settings_env

MIN_SPAN_S = 2.0  # a rate timed over less than this is not compared with anything
# The child jobs run as: scoring.py _child faust|quix|ceiling CONFIG_JSON
ENTRY = Path(__file__).resolve().with_name("scoring.py")


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
    """One benchmark's runs, each worker a child process in ``tmp``: the lastmile scorer's,
    the competitors' (:meth:`run_child`), and the latency runs (``latency``)."""

    def __init__(self, args: argparse.Namespace, settings: Settings, tmp: Path) -> None:
        self.args = args
        self.settings = settings
        self.tmp = tmp
        self.children = Children(tmp / "logs")
        self.model_path = tmp / "model.pkl"
        self.scorer_pid: int | None = None
        self.scorer_rss: dict[str, float] = {}
        self.latency = Latency(args, settings, self.scorer_alive)

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
            [sys.executable, str(ENTRY), "_child", kind, json.dumps(config)],
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
