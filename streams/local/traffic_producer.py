"""Producing simulated traffic to Kafka: :func:`simulated_events` paced in real time
(or as fast as the broker takes it), with a :class:`SimulationSummary` of what was sent."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import Any

from streams.local.simulate import SimEvent, simulated_events

__all__ = ["SimulationSummary", "produce_simulation"]


@dataclasses.dataclass
class SimulationSummary:
    """Counts of what a simulation produced."""

    requests: int = 0
    outcomes: int = 0
    bad: int = 0
    failed: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    bad_kinds: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def sent(self) -> int:
        return self.requests + self.outcomes + self.bad

    def line(self) -> str:
        rate = self.requests / self.seconds if self.seconds > 0 else 0.0
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.bad_kinds.items()))
        return (
            f"{self.requests} requests, {self.outcomes} outcomes, {self.bad} bad"
            f"{f' ({kinds})' if kinds else ''}, {self.failed} failed, in {self.seconds:.1f} s "
            f"({rate:,.0f} requests/s)"
        )


def produce_simulation(
    settings: Any,
    events: Iterator[SimEvent] | None = None,
    progress: Callable[[str], None] | None = None,
    progress_every: float = 2.0,
    stop: Callable[[], bool] | None = None,
    **options: Any,
) -> SimulationSummary:
    """Send simulated events to the broker, each at its due time; flush; count.

    ``events`` defaults to ``simulated_events(**options)`` paced in real time.
    """
    from confluent_kafka import Producer

    from streams.kafka.topics import ensure_topics

    start = time.monotonic()
    if events is None:
        options.setdefault("start_ms", int(time.time() * 1000))
        options.setdefault("clock", lambda: time.monotonic() - start)
        events = simulated_events(**options)
    ensure_topics(settings)
    producer = Producer(settings.producer_config())
    topics = settings.topics
    summary = SimulationSummary()

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            summary.failed += 1

    last_report = start
    try:
        for event in events:
            if stop is not None and stop():
                break
            wait = start + event.due - time.monotonic()
            while wait > 0:
                producer.poll(min(wait, 0.05))
                wait = start + event.due - time.monotonic()
            while True:
                try:
                    producer.produce(
                        topics[event.topic], key=event.key, value=event.value, on_delivery=delivered
                    )
                    break
                except BufferError:  # the local queue is full: let it drain
                    producer.poll(0.05)
            producer.poll(0)
            if event.kind == "request":
                summary.requests += 1
            elif event.kind == "outcome":
                summary.outcomes += 1
            else:
                summary.bad += 1
                kind = event.bad_kind or "?"
                summary.bad_kinds[kind] = summary.bad_kinds.get(kind, 0) + 1
            now = time.monotonic()
            if progress is not None and now - last_report >= progress_every:
                last_report = now
                summary.seconds = now - start
                progress(f"simulate: {summary.line()}")
    except KeyboardInterrupt:
        summary.interrupted = True  # Ctrl-C: flush what was sent, then report
    finally:
        remaining = producer.flush(30)
        summary.failed += remaining
        summary.seconds = time.monotonic() - start
    return summary
