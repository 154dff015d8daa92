"""The errors of the ``streams`` package, all under :class:`~schemas.errors.LastmileError`.

Subpackages define their own small subclasses beside the code that raises them and import
the root from here.

>>> issubclass(StreamsError, LastmileError)
True
"""

from __future__ import annotations

from schemas.errors import LastmileError

__all__ = ["LastmileError", "StreamsError"]


class StreamsError(LastmileError):
    """An error of the runtime: the roles, the model plane, storage, the local stack."""
