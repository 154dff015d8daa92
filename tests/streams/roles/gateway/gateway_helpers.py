"""A gateway on the embedded broker for the tests here: one River model, ``m``, whose
score tells which version answered; and readers of what the gateway wrote to Kafka."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from constant_model import tiny_model
from topic_reading import read_records

from streams.config import Settings
from streams.kafka.topics import ensure_topics
from streams.local.processes import free_port, wait_for
from streams.models import ControlPlane
from streams.roles.gateway import GatewayRole


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


def predictions(settings: Settings, expect: int) -> list[dict]:
    return read_records(settings, settings.topic_predictions, "Prediction", expect, timeout=30)


def dead_letters(settings: Settings, expect: int) -> list[dict]:
    return read_records(settings, settings.topic_dlq, "DeadLetter", expect, timeout=30)
