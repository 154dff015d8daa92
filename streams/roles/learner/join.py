"""The join of outcomes to their predictions: TTLs, capacities, dead letters."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

from confluent_kafka import Message

from streams.kafka.deadletters import dead_letter, encode_dead_letter
from streams.kafka.lane import Output
from streams.roles.learner.envelope import (
    KIND_BUNDLE,
    KIND_OUTCOME,
    KIND_PREDICTION,
    bundle_items,
    key_model,
    routed_at,
    source_message,
)
from streams.roles.learner.part import LearnerPart
from streams.roles.learner.partition_state import PartitionState


class JoinStage(LearnerPart):
    """Folds a partition's routed items in and joins outcomes with their predictions.

    A :class:`~streams.roles.learner.part.LearnerPart`; besides its attributes it reads:"""

    worker: str
    join_ttl_ms: int
    outcome_wait_ms: int

    def ingest(self, state: PartitionState, batch: Sequence[Message]) -> None:
        """Fold one partition's records in, in offset order (a bundle's items in their
        order); learn what joins."""
        state.last_input_wall = time.monotonic()
        state.dirty = True
        joined: list[tuple[bytes, bytes, bytes]] = []
        pending, waiting = state.pending, state.waiting
        unlogged, delta = state.unlogged, state.delta
        part = state.partition
        start = state.offset if state.offset is not None else -1
        seen = routed_again = 0
        first_routing = state.first_routing
        for m in batch:
            offset = m.offset()
            if offset < start:
                seen += 1  # covered by the checkpoint already (fetched before the seek)
                continue
            state.offset = offset + 1
            record = m.value()
            ts = int.from_bytes(record[1:9], "big")
            if ts > state.clock:
                state.clock = ts
                if ts >= self.expiry.get(part, 1 << 62):
                    self._expire(state)
            if record[0] != KIND_BUNDLE:
                continue  # a tick: it only moved the clock
            for key, value, source_partition, source_offset in bundle_items(record):
                if not first_routing(value[0], source_partition, source_offset):
                    routed_again += 1
                    continue
                if value[0] == KIND_OUTCOME:
                    prediction = pending.pop(key, None)
                    if prediction is not None:
                        if key in unlogged:
                            unlogged.discard(key)
                            delta.pop(key, None)
                        else:
                            delta[key] = None
                        joined.append((key, prediction, value))
                        continue
                    if not waiting:
                        self.expiry[part] = min(
                            self.expiry.get(part, 1 << 62), ts + self.outcome_wait_ms
                        )
                    state.put(waiting, b"o" + key[1:], value)
                    state.counts["outcomes_waited"] += 1
                    if len(waiting) > self.options.outcome_capacity:
                        self._dead_outcome(state, *waiting.popitem(last=False), "capacity")
                elif value[0] == KIND_PREDICTION:
                    if waiting:
                        wkey = b"o" + key[1:]
                        early = waiting.pop(wkey, None)
                        if early is not None:
                            state.forget(wkey)
                            joined.append((key, value, early))
                            continue
                    if key in pending:
                        state.counts["duplicate_predictions"] += 1
                        continue
                    if not pending:
                        self.expiry[part] = min(
                            self.expiry.get(part, 1 << 62), ts + self.join_ttl_ms
                        )
                    if key in delta:
                        state.put(pending, key, value)  # re-added since the last checkpoint
                    else:
                        pending[key] = value
                        delta[key] = value
                        unlogged.add(key)
                    if len(pending) > self.options.join_capacity:
                        old, _ = pending.popitem(last=False)
                        state.forget(old)
                        state.counts["predictions_evicted"] += 1
        if seen:
            state.counts["skipped_seen"] += seen
        if routed_again:
            state.counts["routed_again"] += routed_again
        if joined:
            self.learn(state, joined)

    def _expire(self, state: PartitionState) -> None:
        """Drop predictions older than the TTL; dead-letter outcomes that waited too long."""
        for key, _value in _pop_due(state.pending, self.join_ttl_ms, state.clock):
            state.forget(key)
            state.counts["predictions_expired"] += 1
        for key, value in _pop_due(state.waiting, self.outcome_wait_ms, state.clock):
            self._dead_outcome(state, key, value, "ttl")
        self.expiry[state.partition] = state.next_expiry(self.join_ttl_ms, self.outcome_wait_ms)

    def _dead_outcome(self, state: PartitionState, key: bytes, value: bytes, why: str) -> None:
        state.forget(key)
        model = key_model(key).decode()
        rid = key[key.index(b"\0") + 1 :].decode(errors="replace")
        if why == "ttl":
            reason = (
                f"no prediction of model {model!r} for request {rid!r} arrived within "
                f"{_human(self.options.outcome_wait)} of its outcome (learner join); "
                "replay it once the prediction exists"
            )
        else:
            reason = (
                f"the learner holds {self.options.outcome_capacity:,} outcomes waiting for "
                f"their predictions; the oldest, request {rid!r} of model {model!r}, was let go"
            )
        self.send_dead_letter(state, source_message(value), reason, "no_prediction", model)

    def send_dead_letter(
        self, state: PartitionState, source: Any, reason: str, error_type: str, model: str
    ) -> None:
        record = dead_letter(source, "learn", reason, error_type, model, self.worker)
        value, headers = encode_dead_letter(self.codec, record, self.settings.topic_dlq)
        state.outputs.append(Output(self.settings.topic_dlq, value, source.key(), headers))
        state.counts[f"dead_letters.{error_type}"] += 1
        self.counts["dead_letters"] += 1


def _human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _pop_due(
    entries: OrderedDict[bytes, bytes], wait_ms: int, now: int
) -> Iterator[tuple[bytes, bytes]]:
    """Take out, oldest first, the entries (in routing order) that have waited `wait_ms`."""
    while entries:
        key, value = next(iter(entries.items()))
        if routed_at(value) + wait_ms > now:
            return
        entries.popitem(last=False)
        yield key, value
