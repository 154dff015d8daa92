"""A gateway on the embedded broker for the tests here: one River model, ``m``, whose
score tells which version answered; and readers of what the gateway wrote to Kafka."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

from confluent_kafka import Consumer, Message, TopicPartition

from schemas import Codec
from streams.config import Settings
from streams.kafka.topics import ensure_topics
from streams.local.processes import free_port, wait_for
from streams.models import ControlPlane
from streams.roles.gateway import GatewayRole


def tiny_model(bias: float):
    """A River logistic regression answering sigmoid(bias) whatever ``x`` is."""
    from river import linear_model, optim

    model = linear_model.LogisticRegression(optimizer=optim.SGD(0.0), intercept_lr=0.0)
    model.learn_one({"x": 0.0}, True)
    model.learn_one({"x": 0.0}, False)
    model.intercept = bias
    return model


def sigmoid(bias: float) -> float:
    return 1.0 / (1.0 + math.exp(-bias))


@dataclass
class Gateway:
    settings: Settings
    control: ControlPlane
    role: GatewayRole

    @property
    def url(self) -> str:
        return self.role.url

    def register(self, bias: float, model: str = "m") -> int:
        mv = self.control.register_and_publish(
            model, tiny_model(bias), "river", features=["x"], labels=[False, True]
        )
        return mv.version

    def sees(self, model: str, check) -> None:
        """Wait until the gateway's table shows what the control plane just published."""
        table = self.role.inference.table
        assert wait_for(lambda: (s := table.get(model)) is not None and check(s), 30)


def open_gateway(settings: Settings) -> Iterator[Gateway]:
    ensure_topics(settings)
    with ControlPlane(settings) as control:
        gateway = Gateway(settings, control, GatewayRole(settings))
        v1 = gateway.register(-3.0)
        control.promote("m", v1)
        gateway.role.start()
        try:
            assert gateway.role.wait_ready(60)
            gateway.sees("m", lambda s: s.champion == v1)
            yield gateway
        finally:
            gateway.role.stop()


def gateway_settings(fresh_settings) -> Settings:
    return fresh_settings(gateway_port=free_port())


def read_messages(
    settings: Settings, topic: str, expect: int, timeout: float = 30
) -> list[Message]:
    """Every message of `topic`, once `expect` arrived and a second passed with no more."""
    consumer = Consumer(settings.consumer_config("reader", **{"isolation.level": "read_committed"}))
    consumer.assign([TopicPartition(topic, p, 0) for p in range(settings.topic_partitions)])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        batch = consumer.consume(1000, 0.2)
        messages += [m for m in batch if m.error() is None]
        if batch:
            quiet_since = time.monotonic()
        elif len(messages) >= expect and time.monotonic() - quiet_since > 1.0:
            break
    consumer.close()
    return messages


def read_records(settings: Settings, topic: str, schema: str, expect: int) -> list[dict]:
    codec = Codec.from_settings(settings)
    return [
        codec.decode(m.value(), m.headers(), schema, topic)
        for m in read_messages(settings, topic, expect)
    ]


def predictions(settings: Settings, expect: int) -> list[dict]:
    return read_records(settings, settings.topic_predictions, "Prediction", expect)


def dead_letters(settings: Settings, expect: int) -> list[dict]:
    return read_records(settings, settings.topic_dlq, "DeadLetter", expect)
