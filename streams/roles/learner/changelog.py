"""The changelog's format: the keys of ``learner.state`` and the checkpoint version.

The changelog (``learner.state``, compacted, partition ``p`` for repartition partition
``p``): ``b"p..."`` -> a prediction waiting for its outcome (the ``P`` value), ``b"o..."``
-> an outcome waiting for its prediction (the ``O`` value), ``None`` once joined or
expired; ``b"c/<i>"`` -> chunk ``i`` of the partition's checkpoint
(:func:`monitors.state.encode_snapshot`).
"""

from __future__ import annotations

#: Changelog key prefixes (the first byte of a key).
PENDING = ord("p")
WAITING = ord("o")
CHECKPOINT_PREFIX = b"c/"
STATE_FORMAT = 1
