"""The operator's Kafka lane: ``monitor.alerts`` in, Action records out in the same
transaction as the alerts' offsets; the guards rebuilt from the actions topic first."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import Consumer, Message, Producer

from schemas import DecodeError
from streams.config import BACKGROUND_FETCH_WAIT_MS, Settings
from streams.kafka.lane import BatchLane
from streams.kafka.topics import ensure_topics, read_to_end
from streams.roles.operator.handler import Operator
from streams.roles.operator.settings import OperatorSettings

log = logging.getLogger("lastmile.operator")

__all__ = ["OperatorLane", "operator_lane", "read_actions"]


def read_actions(settings: Settings, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Every committed Action record of the actions topic, oldest decision first; a record
    that does not decode is skipped with a warning."""
    from schemas import Codec

    topic = settings.topic_actions
    codec = Codec.from_settings(settings)
    out = []
    for msg in read_to_end(settings, topic, timeout=timeout):
        try:
            out.append(codec.decode(msg.value(), msg.headers(), "Action", topic))
        except DecodeError as err:
            log.warning("skipping %s/%s@%s: %s", topic, msg.partition(), msg.offset(), err)
    out.sort(key=lambda r: (r["ts"], r["action_id"]))
    return out


class OperatorLane(BatchLane):
    """The operator's lane (one consumer group; alerts are keyed by model, so one model's
    alerts are decided in order by one operator)."""

    def __init__(
        self,
        settings: Settings,
        options: OperatorSettings | None = None,
        operator: Operator | None = None,
        **lane_options: Any,
    ) -> None:
        self.options = options or OperatorSettings.from_settings(settings)
        self.operator = operator or Operator(settings, self.options)
        lane_options.setdefault("group_id", self.options.group_id)
        lane_options.setdefault("max_batch", 500)
        lane_options.setdefault("fetch_wait_ms", BACKGROUND_FETCH_WAIT_MS)
        super().__init__(
            settings, "operator", [settings.topic_alerts], self.operator, **lane_options
        )

    def _clients(self) -> tuple[Consumer, Producer]:
        """The clients, then the guards: only once ``init_transactions`` has fenced a
        killed predecessor is the actions topic readable to its end."""
        ensure_topics(self.settings)
        consumer, producer = super()._clients()
        self._restore()
        return consumer, producer

    def _restore(self) -> None:
        records = read_actions(self.settings)
        self.operator.restore(records)
        topic = self.settings.topic_actions
        log.info("operator: %d past actions read from %s", len(records), topic)

    def rewind(self, consumer: Consumer, messages: list[Message]) -> None:
        """After an aborted transaction: the guards go back to what was committed."""
        super().rewind(consumer, messages)
        self._restore()

    def details(self) -> dict[str, object]:
        return {"mode": self.options.mode, **dict(self.operator.counts)}

    def stop(self, timeout: float = 30.0) -> None:
        super().stop(timeout)
        self.operator.close()
        self.consumer = None
        self.producer = None


def operator_lane(settings: Settings) -> OperatorLane:
    """The operator role's lane (``ROLES["operator"]`` in :mod:`streams.app`)."""
    return OperatorLane(settings)
