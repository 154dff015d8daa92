"""What every part of the learner works on: the attributes the handler sets up.

The learner is one handler (:class:`~streams.roles.learner.handler.Learner`) made of
parts, one a stage (routing, join, learning, metrics, snapshots, checkpoints); each part
is a :class:`LearnerPart` and declares only what it alone reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections import Counter
    from collections.abc import Callable

    from schemas import Codec
    from streams.config import LearnerSettings, Settings
    from streams.models import ModelTable, Registry
    from streams.roles.learner.partition_state import PartitionState

__all__ = ["LearnerPart"]


class LearnerPart:
    """The attributes :class:`~streams.roles.learner.handler.Learner` sets up, which its
    parts read."""

    settings: Settings
    options: LearnerSettings
    codec: Codec
    registry: Registry
    table: ModelTable
    clock: Callable[[], float]
    counts: Counter[str]
    states: dict[int, PartitionState]
    learner_made: dict[tuple[str, int], bool]
    repartition_topic: str
    force_checkpoint: bool
    expiry: dict[int, int]
