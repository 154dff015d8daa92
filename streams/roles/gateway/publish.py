"""The gateway's producer: an HTTP answer waits until its records are on the broker.

Each call hands its records to one idempotent ``acks=all`` producer and awaits a future
that the delivery reports settle, on a thread of their own that polls the producer; so
a prediction is durable on ``scoring.predictions`` before its caller hears the answer,
and an answer whose record could not be written is refused (503), never returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException, Producer

from streams.config import Settings
from streams.kafka.lane import Output
from streams.roles.gateway.errors import Unavailable

__all__ = ["Publisher"]

log = logging.getLogger("lastmile.gateway")

# A caller waits for its answer: no linger. Concurrent answers still share broker requests,
# gathered while the ones before them are in flight.
LINGER_MS = 0
# How long a record may take to reach the broker before its caller gets a 503.
DELIVERY_TIMEOUT_MS = 10_000


def _settle(settled: list[tuple[asyncio.Future, list[KafkaError]]]) -> None:
    for future, errors in settled:
        if future.done():  # the caller went away: nobody waits for this answer
            continue
        if errors:
            future.set_exception(Unavailable(f"Kafka did not take the records: {errors[0]}"))
        else:
            future.set_result(None)


class Publisher:
    """Produces outputs and awaits their delivery (see the module's docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.producer = Producer(
            settings.producer_config(
                linger_ms=LINGER_MS, **{"message.timeout.ms": DELIVERY_TIMEOUT_MS}
            )
        )
        self.failures = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        # Calls whose records are all delivered, settled on the loop once per poll: one
        # wake-up of the loop for all of them, not one per call.
        self._settled: list[tuple[asyncio.Future, list[KafkaError]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._poll, name="lastmile-gateway-delivery", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.05)
            self._wake()

    def _wake(self) -> None:
        loop = self._loop
        if self._settled and loop is not None:
            settled, self._settled = self._settled, []
            if loop.is_closed():
                return  # the server stopped first: nobody waits for these answers any more
            with contextlib.suppress(RuntimeError):  # closed between the check and the call
                loop.call_soon_threadsafe(_settle, settled)

    async def deliver(self, outputs: Sequence[Output]) -> None:
        """Produce `outputs`; return once every one is on the broker. Raises
        :class:`Unavailable` when one is not."""
        if not outputs:
            return
        loop = self._loop = asyncio.get_running_loop()
        future = loop.create_future()
        pending = len(outputs)
        errors: list[KafkaError] = []

        def report(err: KafkaError | None, _msg: object) -> None:
            nonlocal pending
            if err is not None:
                errors.append(err)
            pending -= 1
            if pending == 0:
                if errors:
                    self.failures += 1
                self._settled.append((future, errors))

        produce = self.producer.produce
        for out in outputs:
            while True:
                try:
                    produce(out.topic, out.value, out.key, headers=out.headers, on_delivery=report)
                    break
                except BufferError:
                    # The local queue is full: give the broker a moment, without the loop.
                    await asyncio.sleep(0.005)
                except KafkaException as err:  # refused at once (too large, ...): not written
                    raise Unavailable(f"Kafka did not take the records: {err}") from None
        await future

    def close(self, timeout: float = 10.0) -> None:
        """Stop polling and flush what is still queued."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        left = self.producer.flush(timeout)
        if left:
            log.warning("gateway: %d records not delivered at shutdown", left)
