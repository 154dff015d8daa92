"""Reading a partition's state back from the changelog, up to its last complete checkpoint."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from typing import Any

from monitors.state import SnapshotError, SnapshotReader, chunk_header
from streams.config import Settings
from streams.kafka.topics import read_to_end
from streams.roles.learner.changelog import CHECKPOINT_PREFIX, PENDING, WAITING
from streams.roles.learner.partition_state import PartitionState

log = logging.getLogger("lastmile.learner")


def read_state(
    settings: Settings,
    topic: str,
    partitions: Iterable[int],
    timeout: float = 120.0,
) -> dict[int, PartitionState]:
    """The committed state of `partitions`, read back from the changelog `topic`.

    Every partition is read from its start to its end under ``read_committed``, and
    only up to its last complete checkpoint (what a transaction cut short left readable
    on the embedded broker is dropped), so the checkpoint and the pending entries read
    are those of one batch. A partition without a checkpoint starts empty (``offset``
    None: from the start of its input).
    """
    wanted = sorted(set(partitions))
    states = {p: PartitionState(p) for p in wanted}
    replays = {p: _Replay(states[p]) for p in wanted}
    if wanted:
        group = f"lastmile-learner-restore-{uuid.uuid4().hex[:8]}"
        for msg in read_to_end(settings, topic, group, timeout, partitions=wanted):
            replays[msg.partition()].add(msg.key(), msg.value())
    for replay in replays.values():
        replay.finish()
    return states


def state_from_records(
    partition: int, records: Iterable[tuple[bytes | None, bytes | None]]
) -> PartitionState:
    """A partition's state from its changelog records ``(key, value)`` in log order (what
    :func:`read_state` does with what it reads; tests feed it directly)."""
    state = PartitionState(partition)
    replay = _Replay(state)
    for key, value in records:
        replay.add(key, value)
    replay.finish()
    return state


def _is_slot_tombstone(key: bytes | None, value: Any) -> bool:
    return value is None and bool(key) and key.startswith(CHECKPOINT_PREFIX)


class _Replay:
    """Applies changelog records in log order, a checkpoint's worth at a time: the
    entries of a batch and its checkpoint are applied once the checkpoint's last chunk is
    read. What follows the last complete checkpoint is dropped: on the embedded broker a
    transaction cut short by a crash or an abort stays readable, and its entries belong
    to a checkpoint that never was."""

    def __init__(self, state: PartitionState) -> None:
        self.state = state
        self.reader = SnapshotReader()
        self.staged: list[tuple[bytes | None, Any]] = []

    def add(self, key: bytes | None, value: Any) -> None:
        self.staged.append((key, value))
        if value is not None and key and key.startswith(CHECKPOINT_PREFIX):
            try:
                _sid, index, count = chunk_header(value)
            except SnapshotError:
                return
            if index == count - 1:
                for k, v in self.staged:
                    _apply(self.state, self.reader, k, v)
                self.staged = []

    def finish(self) -> None:
        staged = self.staged
        # Tombstones of slots the last checkpoint no longer uses follow its last chunk.
        whole = 0
        while whole < len(staged) and _is_slot_tombstone(*staged[whole]):
            whole += 1
        for key, value in staged[:whole]:
            _apply(self.state, self.reader, key, value)
        if len(staged) > whole:
            log.warning(
                "learner: partition %d: %d changelog records after the last complete "
                "checkpoint (a batch cut short) are ignored",
                self.state.partition,
                len(staged) - whole,
            )
        _finish(self.state, self.reader)


def _apply(state: PartitionState, reader: SnapshotReader, key: bytes | None, value: Any) -> None:
    if not key:
        return
    head = key[0]
    if head == PENDING:
        table = state.pending
    elif head == WAITING:
        table = state.waiting
    elif key.startswith(CHECKPOINT_PREFIX) and key[2:].isdigit():
        index = int(key[2:])
        reader.add(index, value)
        if index == 0:
            state.slots = chunk_header(value)[2] if value is not None else 0
        return
    else:
        return
    if value is None:
        table.pop(key, None)
    else:
        table.pop(key, None)
        table[key] = value


def _finish(state: PartitionState, reader: SnapshotReader) -> None:
    result = reader.result()
    if result is None:
        if state.pending or state.waiting:
            # Entries are only ever written with a checkpoint: without one they are
            # left-overs of a state topic another learner version wrote. Start clean.
            log.warning(
                "learner: partition %d has changelog entries but no checkpoint; ignoring them",
                state.partition,
            )
            state.pending.clear()
            state.waiting.clear()
        return
    snapshot_id, checkpoint = result
    state.load(checkpoint)
    state.checkpoint_id = snapshot_id
