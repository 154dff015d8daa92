"""Encode and decode rates of lastmile's codec for ScoringRequest with 20 features.

Compares, in the same run and process: lastmile's codec (header format, per message
and batched), the same through the Schema Registry format (mock registry),
confluent-kafka's own AvroSerializer/AvroDeserializer with the mock registry, and
plain fastavro schemaless_writer/schemaless_reader (no framing, no validation).

    .venv/bin/python bench/codec.py [--messages 100000] [--repeat 5] [--batch 1000]

Each figure is the median of --repeat rounds over --messages messages (20,000 for
the two slow references), processed in batches of --batch (results dropped per
batch, as a consume/score/produce loop would); rounds interleave the candidates.
Printed in messages per CPU second of this process (``--wall`` for wall clock); no
assertion.
"""

from __future__ import annotations

import argparse
import gc
import io
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fastavro  # noqa: E402
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer  # noqa: E402
from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: E402

from schemas import Codec, registry_client  # noqa: E402

TOPIC = "scoring.requests"


def requests(n: int, mixed: bool) -> list[dict]:
    out = []
    for i in range(n):
        if mixed:  # 15 doubles, 3 integers, 2 strings
            features = {f"num_{j}": (i * 31 + j) * 0.25 for j in range(15)}
            features |= {f"count_{j}": i + j for j in range(3)}
            features |= {"plan": ("gold", "silver", "bronze")[i % 3], "country": "NL"}
        else:  # 20 doubles
            features = {f"feature_{j:02d}": (i * 31 + j) * 0.25 for j in range(20)}
        out.append(
            {
                "request_id": f"req-{i:010d}",
                "model": "churn",
                "features": features,
                "event_time": 1_714_564_800_000 + i,
                "entity_id": f"customer-{i % 5000}",
                "caller": "crm",
                "metadata": {},
            }
        )
    return out


def rate(fn: Callable[[int, int], None], n: int, batch: int, clock: Callable[[], float]) -> float:
    gc.collect()
    start = clock()
    for lo in range(0, n, batch):
        fn(lo, min(n, lo + batch))
    return n / (clock() - start)


def bench(
    n: int, batch: int, repeat: int, mixed: bool, clock: Callable[[], float]
) -> list[tuple[str, float, float]]:
    records = requests(n, mixed)
    codec = Codec()
    client = registry_client("mock://bench")
    sr_codec = Codec(client)
    ctx = SerializationContext(TOPIC, MessageField.VALUE)
    serializer = AvroSerializer(client, codec.schema("ScoringRequest").schema_str)
    deserializer = AvroDeserializer(client)
    parsed = codec.schema("ScoringRequest").parsed

    encoded = [codec.encode("ScoringRequest", r) for r in records]
    values = [v for v, _ in encoded]
    headers = [h for _, h in encoded]
    sr_values = [sr_codec.encode("ScoringRequest", r, topic=TOPIC)[0] for r in records]
    cf_values = [serializer(r, ctx) for r in records]
    # sanity: everyone reads everyone's bytes the same way
    assert codec.decode(values[7], headers[7], "ScoringRequest") == records[7]
    assert sr_codec.decode(cf_values[7], None, "ScoringRequest") == records[7]
    assert deserializer(sr_values[7], ctx)["features"] == records[7]["features"]

    def ours_encode(lo, hi):
        for r in records[lo:hi]:
            codec.encode("ScoringRequest", r)

    def ours_encode_many(lo, hi):
        codec.encode_many("ScoringRequest", records[lo:hi])

    def ours_decode(lo, hi):
        for v, h in zip(values[lo:hi], headers[lo:hi], strict=True):
            codec.decode(v, h, "ScoringRequest")

    def ours_decode_many(lo, hi):
        codec.decode_many(values[lo:hi], headers[lo:hi], "ScoringRequest")

    def sr_encode(lo, hi):
        for r in records[lo:hi]:
            sr_codec.encode("ScoringRequest", r, topic=TOPIC)

    def sr_decode_many(lo, hi):
        sr_codec.decode_many(sr_values[lo:hi], None, "ScoringRequest")

    def cf_encode(lo, hi):
        for r in records[lo:hi]:
            serializer(r, ctx)

    def cf_decode(lo, hi):
        for v in cf_values[lo:hi]:
            deserializer(v, ctx)

    def fa_encode(lo, hi):
        for r in records[lo:hi]:
            out = io.BytesIO()
            fastavro.schemaless_writer(out, parsed, r)
            out.getvalue()

    def fa_decode(lo, hi):
        for v in values[lo:hi]:
            fastavro.schemaless_reader(io.BytesIO(v), parsed)

    rows = [
        ("lastmile, header format, per message", ours_encode, ours_decode),
        ("lastmile, header format, encode_many/decode_many", ours_encode_many, ours_decode_many),
        ("lastmile, schema registry format (mock)", sr_encode, sr_decode_many),
        ("confluent-kafka AvroSerializer/AvroDeserializer (mock)", cf_encode, cf_decode),
        ("fastavro schemaless_writer/reader (no framing)", fa_encode, fa_decode),
    ]
    # confluent and fastavro are several times slower: fewer messages keep the run short.
    # Rounds interleave the candidates, so a burst of load on a shared machine hits
    # them all alike; each figure is the median over the rounds.
    slow = {rows[3][0], rows[4][0]}
    runs: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name, _, _ in rows}
    for _ in range(repeat):
        for name, enc, dec in rows:
            m = min(n, 20_000) if name in slow else n
            runs[name][0].append(rate(enc, m, batch, clock))
            runs[name][1].append(rate(dec, m, batch, clock))
    return [(name, statistics.median(e), statistics.median(d)) for name, (e, d) in runs.items()]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument(
        "--wall",
        action="store_true",
        help="Wall-clock rates instead of per CPU second of this process (the default, which "
        "a busy shared machine distorts less).",
    )
    args = parser.parse_args()
    clock = time.perf_counter if args.wall else time.process_time
    print(
        f"ScoringRequest, 20 features; {args.messages:,} messages, batches of {args.batch}, "
        f"median of {args.repeat}; Python {platform.python_version()}, "
        f"fastavro {fastavro.__version__}; "
        + ("wall clock" if args.wall else "messages per CPU second")
    )
    for mixed in (False, True):
        kind = "mixed features (15 double, 3 long, 2 string)" if mixed else "20 double features"
        print(f"\n{kind}")
        print(f"  {'':58} {'encode/s':>12} {'decode/s':>12}")
        for name, enc, dec in bench(args.messages, args.batch, args.repeat, mixed, clock):
            print(f"  {name:58} {enc:>12,.0f} {dec:>12,.0f}")


if __name__ == "__main__":
    main()
