"""Kafka for lastmile's roles: the batch lane, its delivery, takeover, topics, dead letters.

* :mod:`.lane`: the consume-process-produce-commit loop every fast role runs.
* :mod:`.delivery`: how a lane makes a batch durable (one transaction, or flush and commit).
* :mod:`.transactional_slot`: the ``transactional.id`` a lane keeps across restarts.
* :mod:`.takeover`: what a killed lane left visible, so its successor skips it.
* :mod:`.topics`: the topics and their creation; :mod:`.deadletters`: dead letters.
"""

from __future__ import annotations

from streams.kafka.deadletters import (
    DeadLetterError,
    DeadLetterProducer,
    dead_letter,
    dead_letter_from_error,
    encode_dead_letter,
)
from streams.kafka.delivery import LaneDelivery, Output
from streams.kafka.lane import MAX_BATCH, BatchHandler, BatchLane, LaneStats, rewind_to_batch_start
from streams.kafka.takeover import InFlight, SkipList, Transaction, left_visible
from streams.kafka.topics import ensure_topics, topic_specs
from streams.kafka.transactional_slot import TransactionalSlot

__all__ = [
    "MAX_BATCH",
    "BatchHandler",
    "BatchLane",
    "DeadLetterError",
    "DeadLetterProducer",
    "InFlight",
    "LaneDelivery",
    "LaneStats",
    "Output",
    "SkipList",
    "Transaction",
    "TransactionalSlot",
    "dead_letter",
    "dead_letter_from_error",
    "encode_dead_letter",
    "ensure_topics",
    "left_visible",
    "rewind_to_batch_start",
    "topic_specs",
]
