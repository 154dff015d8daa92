"""The idle pause on the embedded broker: a paused consumer stops fetching, wakes within
one interval when a record arrives, and loses or repeats nothing across pauses,
resumes and rebalances; a batch lane shows its pause on the status page."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from confluent_kafka import Consumer, Producer
from test_lane import Echo, read_committed

from streams.config import Settings
from streams.kafka.idle import IdlePause
from streams.kafka.lane import BatchLane
from streams.kafka.topics import ensure_topics
from streams.local.processes import wait_for

AFTER_S = 0.5
INTERVAL_S = 0.25


class Reader(threading.Thread):
    """A group consumer with an idle pause that commits what it read after each poll."""

    def __init__(self, settings: Settings, group: str, topic: str, timeout_s: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.pause = IdlePause(after_s=AFTER_S, interval_s=INTERVAL_S, timeout_s=timeout_s)
        self.consumer = Consumer(settings.consumer_config(group))
        self.consumer.subscribe([topic], on_assign=self.pause.forget, on_revoke=self.pause.forget)
        self.values: list[bytes] = []
        self.arrived: dict[bytes, float] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            messages = self.consumer.consume(100, 0.05)
            self.pause.update(self.consumer, len(messages))
            good = [m for m in messages if m.error() is None]
            for m in good:
                self.values.append(m.value())
                self.arrived[m.value()] = time.monotonic()
            if good:
                self.consumer.commit(asynchronous=False)
        self.consumer.close()

    def stop(self) -> None:
        self.halt.set()
        self.join(15)


def produce(settings: Settings, values: list[bytes]) -> dict[bytes, float]:
    producer = Producer(settings.producer_config(linger_ms=1))
    sent = {}
    for i, value in enumerate(values):
        producer.produce(settings.topic_requests, value, f"k{i}".encode())
        assert producer.flush(30) == 0, f"{value!r} not delivered in 30 s"
        sent[value] = time.monotonic()
    return sent


def test_paused_consumer_wakes_within_an_interval(
    fresh_settings: Callable[..., Settings],
) -> None:
    settings = fresh_settings()
    ensure_topics(settings)
    reader = Reader(settings, "idle-wake", settings.topic_requests)
    reader.start()
    try:
        for round_ in range(3):
            assert wait_for(lambda: reader.pause.paused, 30), "never paused"
            time.sleep(3 * INTERVAL_S)  # a few asks that find nothing
            assert reader.pause.paused
            value = f"wake-{round_}".encode()
            sent = produce(settings, [value])[value]
            assert wait_for(lambda v=value: v in reader.arrived, 10), "never resumed"
            waited = reader.arrived[value] - sent
            # One interval, one ListOffsets round trip and a fetch; slack for a busy host.
            assert waited < INTERVAL_S + 0.75, f"round {round_}: {waited:.2f} s"
        assert reader.pause.resumes >= 3
        assert reader.values == [b"wake-0", b"wake-1", b"wake-2"]
    finally:
        reader.stop()


def test_nothing_lost_or_repeated_across_pauses_and_rebalances(
    fresh_settings: Callable[..., Settings],
) -> None:
    settings = fresh_settings()
    ensure_topics(settings)
    first = Reader(settings, "idle-group", settings.topic_requests)
    first.start()
    readers = [first]
    expected: list[bytes] = []

    def read() -> list[bytes]:
        return [v for r in readers for v in r.values]

    try:
        for round_ in range(4):
            assert wait_for(lambda: first.pause.paused, 30), f"round {round_}: never paused"
            if round_ == 1:
                # A second member joins while the first is paused: a rebalance.
                second = Reader(settings, "idle-group", settings.topic_requests)
                second.start()
                readers.append(second)
                assert wait_for(lambda: bool(readers[1].consumer.assignment()), 30)
            if round_ == 3:
                readers[1].stop()  # and leaves: the first gets every partition back
                assert wait_for(
                    lambda: len(first.consumer.assignment()) == settings.topic_partitions, 30
                )
            values = [f"r{round_}-{i}".encode() for i in range(30)]
            produce(settings, values)
            expected += values
            want = len(expected)
            assert wait_for(lambda n=want: len(read()) >= n, 30), f"round {round_}"
        time.sleep(1.0)  # duplicates would arrive now
        assert sorted(read()) == sorted(expected)
        assert first.pause.pauses >= 3
    finally:
        for reader in readers:
            reader.stop()


def test_no_pause_while_where_to_go_on_from_is_unknown(
    fresh_settings: Callable[..., Settings],
) -> None:
    """A broker too slow to say where an unread partition starts (here: every question
    times out at once) keeps the consumer fetching: a pause it could not seek back from
    may skip what a purged fetch held, and it could not ask for the ends either."""
    settings = fresh_settings()
    ensure_topics(settings)
    reader = Reader(settings, "idle-unknown", settings.topic_requests, timeout_s=0.0)
    reader.start()
    try:
        assert wait_for(lambda: bool(reader.consumer.assignment()), 30)
        time.sleep(6 * AFTER_S)  # idle long enough to pause several times over
        assert not reader.pause.paused
        assert reader.pause.pauses == 0
        values = [f"late-{i}".encode() for i in range(5)]
        produce(settings, values)
        assert wait_for(lambda: len(reader.values) >= len(values), 30), reader.values
        assert reader.values == values or sorted(reader.values) == sorted(values)
    finally:
        reader.stop()


def test_lane_pauses_resumes_and_shows_it(fresh_settings: Callable[..., Settings]) -> None:
    settings = fresh_settings()
    ensure_topics(settings)
    lane = BatchLane(settings, "idle", [settings.topic_requests], Echo(settings))
    assert lane.idle is not None  # on by default on the embedded broker
    lane.idle.after_s = AFTER_S
    lane.start()
    try:
        assert lane.wait_assigned(30)
        produce(settings, [b"before"])
        assert wait_for(lambda: lane.stats.consumed == 1, 30), lane.stats.as_dict()
        assert wait_for(lambda: lane.idle.paused, 30)
        assert lane.stats.as_dict()["idle_paused"] is True
        sent = produce(settings, [b"after"])[b"after"]
        assert wait_for(lambda: lane.stats.consumed == 2, 10)
        waited = time.monotonic() - sent
        assert waited < lane.idle.interval_s + 0.75, f"{waited:.2f} s"
        assert lane.stats.as_dict()["idle_resumes"] >= 1
        assert sorted(read_committed(settings, settings.topic_predictions, 2)) == [
            b"after",
            b"before",
        ]
    finally:
        lane.stop()
    assert not lane.failed


def test_off_for_real_kafka_and_by_setting(fresh_settings: Callable[..., Settings]) -> None:
    assert fresh_settings().idle_pause
    assert not fresh_settings(kafka_idle_pause=False).idle_pause
    assert not Settings(kafka_bootstrap="kafka:9092").idle_pause
    assert Settings(kafka_bootstrap="kafka:9092", kafka_idle_pause=True).idle_pause
