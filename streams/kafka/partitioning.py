"""Which partition of a repartition topic a model's records go to: one function every
role that re-keys by model uses (the learner's ``learner.input``, the partitioned
monitor's ``monitor.input``), so a model lands in the same partition number in both."""

from __future__ import annotations

import hashlib

__all__ = ["model_partition"]


def model_partition(model: str, partitions: int) -> int:
    """The repartition partition of a model: BLAKE2b of its name, stable across processes
    and clients (librdkafka's and Java's default partitioners disagree).

    >>> model_partition("fraud", 3) == model_partition("fraud", 3)
    True
    >>> model_partition("fraud", 1)
    0
    """
    digest = hashlib.blake2b(model.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % max(1, partitions)
