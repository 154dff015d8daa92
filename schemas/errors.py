"""The root of lastmile's errors, and the schema package's own.

Every error lastmile raises on purpose is a :class:`LastmileError`, so a caller can catch
all of them in one clause (Quix Streams' ``QuixException``, Faust's ``FaustError``). Each
package adds small subclasses; where callers have always caught ``ValueError`` the subclass
is one too, as Faust's ``ValidationError(FaustError, ValueError)`` is.

It lives here because ``schemas`` is the package every other one imports, and it imports none
of them.

>>> issubclass(SchemaError, LastmileError) and issubclass(SchemaError, ValueError)
True
"""

from __future__ import annotations

__all__ = ["LastmileError", "SchemaError"]


class LastmileError(Exception):
    """An error lastmile raises on purpose; the message says what failed."""


class SchemaError(LastmileError, ValueError):
    """A schema, or a value measured against one, is not what it must be."""
