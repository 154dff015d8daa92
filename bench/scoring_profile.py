"""bench/scoring.py's in-process profile of ``Scorer.process`` over pre-fetched messages:
the time per stage and of the lane's Kafka side, the garbage collector's pauses (also
after ``gc.freeze()``), plus cProfile's top functions."""

from __future__ import annotations

import cProfile
import dataclasses
import gc
import io
import pstats
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from confluent_kafka import Consumer, Message, Producer

from bench.scoring_job import MODEL
from bench.scoring_kafka import create_topics
from bench.scoring_latency import percentiles
from streams.config import Settings

ROOT = Path(__file__).resolve().parent.parent


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
