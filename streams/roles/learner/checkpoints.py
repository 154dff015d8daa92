"""Ticks and checkpoints: what a batch writes to the repartition topic and the changelog."""

from __future__ import annotations

import time

from monitors.state import CHUNK_SIZE, encode_snapshot
from streams.kafka.lane import Output
from streams.roles.learner.envelope import pack_tick
from streams.roles.learner.part import LearnerPart


class Checkpointing(LearnerPart):
    """Writes each changed partition's checkpoint, and ticks to partitions whose clock stands still.

    A :class:`~streams.roles.learner.part.LearnerPart`; besides its attributes it reads:"""

    state_topic: str
    last_checkpoint: float

    def ticks(self, now: float) -> list[Output]:
        """A tick for each partition whose oldest waiting entry is due but whose clock
        stands still (no traffic): the tick is read back and moves the clock."""
        out: list[Output] = []
        interval = self.options.tick_interval
        if interval <= 0:
            return out
        now_ms = int(now * 1000)
        mono = time.monotonic()
        for p, state in self.states.items():
            if (
                self.expiry.get(p, 1 << 62) <= now_ms
                and mono - state.last_input_wall >= interval
                and mono - state.tick_wall >= interval
            ):
                state.tick_wall = mono
                out.append(Output(self.repartition_topic, pack_tick(now_ms), None, None, p))
                self.counts["ticks"] += 1
        return out

    def wants_flush(self) -> bool:
        """Whether an idle lane should run an empty batch (a checkpoint or a tick is due)."""
        now = self.clock()
        if self.checkpoint_due(now):
            return True
        now_ms = int(now * 1000)
        mono = time.monotonic()
        interval = self.options.tick_interval
        return interval > 0 and any(
            self.expiry.get(p, 1 << 62) <= now_ms
            and mono - s.last_input_wall >= interval
            and mono - s.tick_wall >= interval
            for p, s in self.states.items()
        )

    def has_uncommitted(self) -> bool:
        """Whether something was learned (or changed) since the last checkpoint."""
        return any(s.dirty for s in self.states.values())

    def checkpoint_due(self, now: float) -> bool:
        if not any(s.dirty for s in self.states.values()):
            return False
        return self.force_checkpoint or now - self.last_checkpoint >= (
            self.options.checkpoint_interval
        )

    def write_checkpoint(self, now: float) -> list[Output]:
        """For each changed partition: its outputs since the last checkpoint, the
        changelog entries, and the checkpoint itself (chunked, one key per chunk)."""
        out: list[Output] = []
        topic = self.state_topic
        for p, state in self.states.items():
            if not state.dirty:
                continue
            out += state.outputs
            state.outputs = []
            for key, value in state.delta.items():
                out.append(Output(topic, value, key, None, p))
            state.delta = {}
            state.unlogged = set()
            for entry in state.outbox:
                entry["checkpointed"] = True
            state.checkpoint_id += 1
            chunks = encode_snapshot(state.checkpoint(), state.checkpoint_id, CHUNK_SIZE)
            out += [Output(topic, chunk, b"c/%d" % i, None, p) for i, chunk in enumerate(chunks)]
            # Slots a bigger checkpoint used: tombstones, so compaction forgets them.
            out += [
                Output(topic, None, b"c/%d" % i, None, p) for i in range(len(chunks), state.slots)
            ]
            state.slots = len(chunks)
            state.dirty = False
            self.counts["checkpoints"] += 1
        self.last_checkpoint = now
        self.force_checkpoint = False
        return out
