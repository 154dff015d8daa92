"""The batch lane's delivery guarantee when a worker dies inside a transaction.

A worker is killed (SIGKILL) after its transaction's records reached the broker and
before the commit: the worker that takes its place must neither stall behind the open
transaction nor let a reader see a record twice or miss one.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from streams.config import Settings, settings_env
from streams.kafka.lane import BatchLane, Output
from streams.kafka.takeover import InFlight, left_visible
from streams.kafka.topics import ensure_topics

# A lane that echoes each request to the predictions topic and kills itself inside its
# transaction number argv[1], just before the commit (tests/dying.py).
DYING_WORKER = textwrap.dedent(
    """
    import sys
    sys.path[:0] = [{tests!r}, {here!r}]  # tests/dying.py, and this file for Echo
    from dying import dying
    from streams.config import load_settings
    from streams.kafka.lane import BatchLane
    from test_lane import Echo

    settings = load_settings()
    lane = dying(BatchLane, int(sys.argv[1]))(
        settings, "echo", [settings.topic_requests], Echo(settings), max_batch=50,
        skip_visible=True,
    )
    lane.run()
    """
)


class Echo:
    """Each request becomes one record on the predictions topic, keyed like it."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topic_predictions

    def process(self, messages: list) -> list[Output]:
        return [Output(self.topic, m.value(), m.key()) for m in messages]


def read_committed(settings: Settings, topic: str, expect: int, timeout: float = 60) -> list:
    """Every value a read_committed reader sees in `topic`, once `expect` arrived and the
    topic stayed quiet for a second (so duplicates after them are counted too)."""
    consumer = Consumer(settings.consumer_config("reader", **{"isolation.level": "read_committed"}))
    consumer.assign([TopicPartition(topic, p, 0) for p in range(settings.topic_partitions)])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        batch = consumer.consume(1000, 0.2)
        values += [m.value() for m in batch if m.error() is None]
        if batch:
            quiet_since = time.monotonic()
        elif len(values) >= expect and time.monotonic() - quiet_since > 1.0:
            break
    consumer.close()
    return values


def produce_requests(settings: Settings) -> None:
    ensure_topics(settings)
    producer = Producer(settings.producer_config())
    for i in range(REQUESTS):
        producer.produce(settings.topic_requests, f"r{i}".encode(), f"k{i}".encode())
    assert producer.flush(30) == 0


def echo_all(
    settings: Settings,
    lane_class: type[BatchLane] = BatchLane,
    exactly_once: bool = True,
    expect: int = 0,
) -> tuple[BatchLane, list]:
    """Run an echo lane (guarded) until every request's output (or `expect` outputs) is
    read; the lane and what readers saw."""
    lane = lane_class(
        settings,
        "echo",
        [settings.topic_requests],
        Echo(settings),
        max_batch=50,
        skip_visible=True,
        exactly_once=exactly_once,
    )
    lane.start()
    try:
        values = read_committed(
            settings, settings.topic_predictions, expect or REQUESTS, timeout=90
        )
    finally:
        lane.stop()
    assert not lane.failed, lane.stats.last_error
    return lane, values


def kill_inside_a_transaction_then_take_over(settings: Settings, tmp_path: Path) -> list:
    """Run the dying worker on the requests until it kills itself in its third
    transaction, then a lane of the same group takes over; what readers see."""
    die_in_third_transaction(settings, tmp_path)
    return echo_all(settings)[1]


def die_in_third_transaction(settings: Settings, tmp_path: Path) -> None:
    """Produce the requests and run the dying worker on them until it kills itself in
    its third transaction."""
    produce_requests(settings)
    here = Path(__file__).resolve()
    script = DYING_WORKER.format(tests=str(here.parents[2]), here=str(here.parent))
    env = {**os.environ, **settings_env(settings)}
    log_path = tmp_path / "worker.log"
    with log_path.open("ab") as log:
        dead = subprocess.run([sys.executable, "-c", script, "3"], env=env, stderr=log, timeout=120)
    assert dead.returncode == -9, log_path.read_text()[-3000:]


REQUESTS = 600


def test_the_worker_taking_over_from_a_killed_one_is_not_stalled_and_loses_nothing(
    fresh_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """The killed worker's transaction stays open on the broker; the next worker claims
    the same transactional.id, fences it, and serves every request."""
    values = kill_inside_a_transaction_then_take_over(fresh_settings(), tmp_path)
    missing = REQUESTS - len(set(values))
    assert missing == 0, f"{missing} requests have no output"


def test_a_batch_in_flight_when_its_worker_is_killed_is_read_once(
    fresh_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """The embedded broker shows the fenced transaction's records and does not commit its
    offsets; the replay skips what it showed (streams/kafka/takeover.py)."""
    values = kill_inside_a_transaction_then_take_over(fresh_settings(), tmp_path)
    repeated = {v: c for v, c in collections.Counter(values).items() if c > 1}
    assert not repeated, f"{len(repeated)} outputs seen more than once"


def test_a_lane_switched_to_at_least_once_after_a_crash_is_not_stalled(
    fresh_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """A worker killed exactly once leaves its transaction open; the worker restarted at
    least once fences it all the same (else read_committed readers wait for good) and
    replays its batch (duplicates allowed). Switched back to exactly once, the next lane
    must not skip new outputs keyed like what the killed transaction left readable."""
    settings = fresh_settings()
    die_in_third_transaction(settings, tmp_path)
    [journal] = (settings.data_dir / "transactions").glob("*.journal")
    killed = InFlight(journal).last()
    _, values = echo_all(settings, exactly_once=False)
    assert len(set(values)) == REQUESTS

    visible = left_visible(settings, killed)  # readable now that it is fenced
    assert visible, "the killed transaction left nothing readable: the test needs some"

    keys = sorted(key for _topic, key, _identity in visible)
    producer = Producer(settings.producer_config())
    for i, key in enumerate(keys):
        producer.produce(settings.topic_requests, f"r{REQUESTS + i}".encode(), key)
    assert producer.flush(30) == 0
    _, values = echo_all(settings, expect=len(values) + len(keys))
    later = collections.Counter(v for v in values if int(v[1:]) >= REQUESTS)
    assert sorted(later.values()) == [1] * len(keys)


class FailingOnce:
    """A producer whose `fail_at`-th commit fails as an abortable error would."""

    def __init__(self, producer: Producer, fail_at: int) -> None:
        self.producer, self.commits, self.fail_at = producer, 0, fail_at

    def __getattr__(self, name: str) -> object:
        return getattr(self.producer, name)

    def commit_transaction(self, *args: object) -> None:
        self.commits += 1
        if self.commits == self.fail_at:
            assert self.producer.flush(30) == 0
            raise KafkaException(KafkaError(KafkaError._STATE, "injected", txn_requires_abort=True))
        self.producer.commit_transaction(*args)


def test_an_aborted_batch_is_replayed_and_read_once(
    fresh_settings: Callable[..., Settings],
) -> None:
    """The embedded broker shows an aborted transaction's records too; the lane rewinds,
    replays the batch and skips what the aborted attempt left visible."""
    settings = fresh_settings()
    produce_requests(settings)

    class Failing(BatchLane):
        def _clients(self) -> tuple[Consumer, Producer]:
            consumer, real = super()._clients()
            return consumer, FailingOnce(real, 3)  # type: ignore[return-value]

    lane, values = echo_all(settings, Failing)
    assert lane.stats.errors == 1, lane.stats.last_error
    counts = collections.Counter(values)
    assert len(counts) == REQUESTS
    assert max(counts.values()) == 1, "an output of the aborted attempt was read twice"
