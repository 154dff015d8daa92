"""The sink's dead letters: built when a message cannot be stored, produced before
the offsets of their messages are committed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message

from streams.kafka.deadletters import dead_letter, encode_dead_letter
from streams.roles.sink.batching import Chunk
from streams.roles.sink.errors import WriteRetry
from streams.roles.sink.reader import DeadOut
from streams.roles.sink.state import SinkState

__all__ = ["SinkDeadLetters"]

_DLQ_FLUSH_S = 30.0


def _as_bytes(value: Any) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return str(value).encode() if not isinstance(value, bytearray | memoryview) else bytes(value)


class SinkDeadLetters(SinkState):
    """Dead letters of the messages the codec or ClickHouse refuse."""

    def _dead(
        self, message: Message, stage: str, reason: str, error_type: str | None = None
    ) -> DeadOut:
        record = dead_letter(message, stage, reason, error_type, worker=self.worker)
        value, headers = encode_dead_letter(self.codec, record, self.settings.topic_dlq)
        return DeadOut(_as_bytes(message.key()), value, headers)

    def _produce_dead(self, chunks: Sequence[Chunk]) -> None:
        outs = [(c, d) for c in chunks for d in c.dead_pending]
        if not outs:
            return
        producer = self._producer
        assert producer is not None
        failures: list[KafkaError] = []

        def report(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                failures.append(err)

        for _chunk, d in outs:
            while True:
                try:
                    producer.produce(
                        self.settings.topic_dlq,
                        d.value,
                        d.key,
                        headers=d.headers,
                        on_delivery=report,
                    )
                    break
                except BufferError:
                    producer.poll(0.05)
        remaining = producer.flush(_DLQ_FLUSH_S)
        if failures or remaining:
            err = failures[0] if failures else KafkaError(KafkaError._TIMED_OUT)
            raise WriteRetry("dead letters not delivered") from KafkaException(err)
        for chunk, _d in outs:
            chunk.dead_pending = []
        self.stats.dead_lettered(len(outs))
