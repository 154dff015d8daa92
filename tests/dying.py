"""How tests crash a worker at the worst moment: a lane whose process kills itself with
SIGKILL once the records it sent so far are on the broker: just before the commit of its
`kill_at`-th transaction, or, given `before_topic`, in the first transaction from the
`kill_at`-th on that sends other records first, before its first record to
`before_topic` (the transaction is cut in two: what it sent is readable on the embedded
broker, the rest never existed)."""

from __future__ import annotations

import os
import signal
from typing import Any


class DyingProducer:
    """A producer that dies in its `kill_at`-th transaction."""

    def __init__(self, producer: Any, kill_at: int, before_topic: str | None = None) -> None:
        self.producer, self.kill_at, self.before_topic = producer, kill_at, before_topic
        self.transactions = 0
        self.sent_other = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.producer, name)

    def begin_transaction(self) -> None:
        self.transactions += 1
        self.sent_other = False
        self.producer.begin_transaction()

    def produce(self, topic: str, *args: Any, **kwargs: Any) -> None:
        if self.before_topic is not None and self.transactions >= self.kill_at:
            if topic != self.before_topic:
                self.sent_other = True
            elif self.sent_other:
                self._die()
        self.producer.produce(topic, *args, **kwargs)

    def commit_transaction(self, *args: Any) -> Any:
        if self.before_topic is None and self.transactions == self.kill_at:
            self._die()
        return self.producer.commit_transaction(*args)

    def _die(self) -> None:
        assert self.producer.flush(30) == 0  # what was sent is on the broker
        os.kill(os.getpid(), signal.SIGKILL)


def dying(lane_class: type, kill_at: int, before_topic: str | None = None) -> type:
    """`lane_class` with a producer that dies in its `kill_at`-th transaction."""

    class Dying(lane_class):  # type: ignore[misc, valid-type]
        def _clients(self) -> tuple[Any, Any]:
            consumer, producer = super()._clients()
            return consumer, DyingProducer(producer, kill_at, before_topic)

    return Dying
