"""Everything the learner holds for one repartition partition."""

from __future__ import annotations

import collections
import time
from collections.abc import Mapping
from typing import Any

from streams.roles.learner.changelog import STATE_FORMAT
from streams.roles.learner.envelope import routed_at
from streams.roles.learner.model_line import ModelLine


class PartitionState:
    """Everything the learner holds for one repartition partition.

    ``pending`` maps join keys to ``P`` values (predictions waiting for their outcome),
    ``waiting`` maps ``b"o"`` keys to ``O`` values (outcomes waiting for their
    prediction); both in arrival order, the oldest first, which is the order they
    expire in. ``delta`` is what the changelog lacks since the last checkpoint
    (``None``: a tombstone), ``unlogged`` the keys added since then: an entry added and
    removed between two checkpoints never reaches the changelog.
    """

    def __init__(self, partition: int) -> None:
        self.partition = partition
        self.offset: int | None = None
        self.clock = 0
        self.lines: dict[str, ModelLine] = {}
        self.pending: collections.OrderedDict[bytes, bytes] = collections.OrderedDict()
        self.waiting: collections.OrderedDict[bytes, bytes] = collections.OrderedDict()
        self.delta: dict[bytes, bytes | None] = {}
        self.unlogged: set[bytes] = set()
        self.outbox: list[dict[str, Any]] = []
        # The newest source offset routed here, per (item kind, source partition).
        self.routed: dict[tuple[int, int], int] = {}
        self.outputs: list[Any] = []
        self.counts: collections.Counter[str] = collections.Counter()
        self.dirty = False
        self.checkpoint_id = 0
        self.slots = 0
        self.last_input_wall = time.monotonic()
        self.tick_wall = 0.0

    # changelog bookkeeping

    def put(self, table: collections.OrderedDict[bytes, bytes], key: bytes, value: bytes) -> None:
        """Add `key` to `table` (pending or waiting) and to the changelog delta; a key
        already there moves to the end, as reading the changelog back would put it."""
        delta = self.delta
        # Whether the changelog has a value for `key`: a tombstone in the delta says it
        # had one, a value in the delta says so unless it came after the last checkpoint,
        # and outside the delta an entry of `table` is one the last checkpoint wrote.
        logged = (delta[key] is None or key not in self.unlogged) if key in delta else key in table
        table.pop(key, None)
        table[key] = value
        delta.pop(key, None)
        delta[key] = value
        if logged:
            self.unlogged.discard(key)
        else:
            self.unlogged.add(key)

    def forget(self, key: bytes) -> None:
        """`key` left pending/waiting: tombstone it, unless the changelog never had it."""
        if key in self.unlogged:
            self.unlogged.discard(key)
            self.delta.pop(key, None)
        else:
            self.delta[key] = None

    def first_routing(self, kind: int, partition: int, offset: int) -> bool:
        """Whether an item routed from `offset` of source `partition` is new here, not a
        second routing of one already folded in (a router killed or aborted mid-batch
        on the embedded broker leaves its bundles readable, and the batch is routed
        again). A source partition's items arrive in offset order.

        >>> state = PartitionState(0)
        >>> [state.first_routing(ord("O"), 2, o) for o in (5, 6, 5, 6, 7)]
        [True, True, False, False, True]
        """
        where = (kind, partition)
        if offset <= self.routed.get(where, -1):
            return False
        self.routed[where] = offset
        return True

    def next_expiry(self, join_ttl_ms: int, outcome_wait_ms: int) -> int:
        """Routed-at time at which the oldest entry expires (a large number: none)."""
        out = 1 << 62
        for _k, v in self.pending.items():
            out = routed_at(v) + join_ttl_ms
            break
        for _k, v in self.waiting.items():
            out = min(out, routed_at(v) + outcome_wait_ms)
            break
        return out

    def checkpoint(self) -> dict[str, Any]:
        """The checkpoint (the changelog holds pending and waiting entries)."""
        return {
            "format": STATE_FORMAT,
            "partition": self.partition,
            "offset": self.offset,
            "clock": self.clock,
            "lines": self.lines,
            "outbox": self.outbox,
            "routed": self.routed,
            "counts": dict(self.counts),
        }

    def load(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`checkpoint` (pending and waiting entries come from the changelog)."""
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"learner checkpoint format {state.get('format')!r} is not 1")
        self.offset = state["offset"]
        self.clock = int(state["clock"])
        self.lines = dict(state["lines"])
        self.outbox = list(state["outbox"])
        self.routed = dict(state.get("routed") or {})
        self.counts = collections.Counter(state.get("counts") or {})
