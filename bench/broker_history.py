"""Benchmark how the embedded broker's cost grows with a partition's history.

Tansu 0.6's memory store keeps every record batch a partition was ever sent (no
retention; DeleteRecords is not implemented: the broker drops the connection), and a
fetch that finds new data lists all of them. So the CPU the broker spends on one
produce-then-fetch round trip grows with the number of batches the fetched partition
holds, which is why a long-running embedded stack gets slower by the minute, and why
lastmile's background roles fetch every 100 ms, not every 10 ms
(``streams.config.BACKGROUND_FETCH_WAIT_MS``).

Starts a broker on a free port, then for each size: fills a partition with that many
one-record batches (in the partition fetched, or with ``--elsewhere`` in another
topic), and times ``--round-trips`` round trips of one record (produce, flush, fetch
it with ``fetch.wait.max.ms`` 10). Prints the broker's CPU-ms and the wall time per
round trip. Asserts nothing.

    python bench/broker_history.py
    python bench/broker_history.py --sizes 500,5000,15000 --elsewhere
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from procstat import cpu_seconds  # noqa: E402

from streams.local.broker import EmbeddedBroker  # noqa: E402
from streams.local.processes import free_port  # noqa: E402

FETCHED = "history"
OTHER = "history-elsewhere"


def round_trips(
    producer: Producer, consumer: Consumer, count: int, pid: int
) -> tuple[float, float]:
    """Broker CPU-ms and wall ms per round trip of one record through `FETCHED`."""
    cpu0, wall0 = cpu_seconds(pid), time.perf_counter()
    for i in range(count):
        marker = f"trip-{i}".encode()
        producer.produce(FETCHED, marker)
        producer.flush(10)
        while True:
            message = consumer.poll(5)
            if message is None:
                raise RuntimeError("a round trip's record did not come back within 5 s")
            if message.error() is None and message.value() == marker:
                break
    return (
        (cpu_seconds(pid) - cpu0) * 1000 / count,
        (time.perf_counter() - wall0) * 1000 / count,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="500,5000,15000",
        help="Batches held before each measure (500,5000,15000).",
    )
    parser.add_argument(
        "--round-trips", type=int, default=200, help="Round trips timed at each size (200)."
    )
    parser.add_argument(
        "--elsewhere",
        action="store_true",
        help="Fill another topic instead: its history should not matter.",
    )
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    filled_topic = OTHER if args.elsewhere else FETCHED
    with EmbeddedBroker(Path(tempfile.mkdtemp()), free_port()) as broker:
        pid = broker.pid
        assert pid is not None
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        for future in admin.create_topics([NewTopic(FETCHED, 1), NewTopic(OTHER, 1)]).values():
            future.result()
        producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
        consumer = Consumer(
            {
                "bootstrap.servers": broker.bootstrap,
                "group.id": "history",
                "fetch.wait.max.ms": 10,
                "enable.auto.commit": False,
            }
        )
        consumer.assign([TopicPartition(FETCHED, 0, 0)])
        held = 0
        print(f"batches held in {filled_topic!r}; round trips through {FETCHED!r}:")
        for size in sizes:
            while held < size:
                producer.produce(filled_topic, b"x" * 150)
                producer.flush(10)  # one record, one batch
                held += 1
            while consumer.poll(0.3) is not None:  # the fill, read
                pass
            cpu_ms, wall_ms = round_trips(producer, consumer, args.round_trips, pid)
            print(
                f"  {held:7,d} batches: broker {cpu_ms:6.2f} CPU-ms, {wall_ms:6.1f} ms wall "
                "per round trip",
                flush=True,
            )
        consumer.close()


if __name__ == "__main__":
    main()
