"""bench/scoring.py's latency runs: requests offered at a steady rate, each timed from
its ``event_time`` to its arrival, through the scorer and over the broker alone."""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from confluent_kafka import Consumer, Message, Producer

from bench.scoring_job import FEATURES, MODEL, request_encoder
from bench.scoring_kafka import assign_at_end, create_topics, reader_config
from streams.config import Settings

if TYPE_CHECKING:
    from bench.scoring_throughput import Run


def percentiles(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=float)
    return {
        "p50": float(np.percentile(arr, 50)),
        "p90": float(np.percentile(arr, 90)),
        "p99": float(np.percentile(arr, 99)),
        "max": float(arr.max()),
    }


class Latency:
    """The latency runs of one bench: its options (``args``), its settings, and whether
    the scorer they go through still runs (``scorer_alive``)."""

    def __init__(
        self, args: argparse.Namespace, settings: Settings, scorer_alive: Callable[[], bool]
    ) -> None:
        self.args = args
        self.settings = settings
        self.scorer_alive = scorer_alive

    def arrivals(
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

    def measure(self, run: Run, s: Settings, floor: bool = False) -> dict[str, dict[str, Any]]:
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
            out["floor"] = self.broker_floor()
            print(f"  floor: {out['floor']['received']:,}/{out['floor']['offered']:,} received")
        out[run.name] = self.through_scorer(s, run.name)
        print(f"  {run.name}: {out[run.name]['received']:,}/{out[run.name]['offered']:,} received")
        for name, result in out.items():
            if result["others"]:
                print(f"  ({name}: {result['others']:,} messages of other requests ignored)")
        return out

    def broker_floor(self) -> dict[str, Any]:
        topic = "bench.floor"
        create_topics(self.settings, [topic])

        def times_of(m: Message) -> tuple[str, float, None]:
            request = orjson.loads(m.value())
            return request["request_id"], request["event_time"], None

        return self.arrivals("floor", topic, topic, "json", times_of)

    def through_scorer(self, s: Settings, label: str) -> dict[str, Any]:
        from schemas import Codec

        codec = Codec.from_settings(s)

        def times_of(m: Message) -> tuple[str, float, float]:
            p = codec.decode(m.value(), m.headers(), "Prediction", s.topic_predictions)
            return p["request_id"], p["event_time"], p["scored_time"]

        return self.arrivals(
            label, s.topic_requests, s.topic_predictions, self.args.request_format, times_of
        )
