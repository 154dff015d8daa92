"""The root of lastmile's errors, and the schema package's own.

Every error lastmile raises on purpose is a :class:`LastmileError`, so a caller can catch
all of them in one clause (Quix Streams' ``QuixException``, Faust's ``FaustError``). Each
package adds small subclasses; where callers have always caught ``ValueError`` the subclass
is one too, as Faust's ``ValidationError(FaustError, ValueError)`` is.

It lives here because ``schemas`` is the package every other one imports, and it imports none
of them.

The codec's errors: :class:`DecodeError` (a message that cannot be read, and why) and
:class:`EncodeError` (a record that does not fit its schema) are each a :class:`SchemaError`,
so a ``ValueError`` as they always were; :class:`SchemaRegistryUnavailable` is a
``RuntimeError`` (retry, do not dead-letter).

>>> issubclass(SchemaError, LastmileError) and issubclass(SchemaError, ValueError)
True
>>> issubclass(DecodeError, SchemaError), issubclass(SchemaRegistryUnavailable, RuntimeError)
(True, True)
"""

from __future__ import annotations

__all__ = [
    "LastmileError",
    "SchemaError",
    "DecodeError",
    "EncodeError",
    "SchemaRegistryUnavailable",
    "shorten",
]


class LastmileError(Exception):
    """An error lastmile raises on purpose; the message says what failed."""


class SchemaError(LastmileError, ValueError):
    """A schema, or a value measured against one, is not what it must be."""


class DecodeError(SchemaError):
    """A message lastmile cannot read, and why.

    ``reason`` is a sentence for people; ``stage`` is ``"decode"`` (the bytes
    cannot be read) or ``"validate"`` (they can, but break the schema's rules);
    ``error_type`` is ``"undecodable"`` or ``"schema_violation"``, for dead letters.

    >>> err = DecodeError("empty message", stage="decode")
    >>> (str(err), err.stage, err.error_type)
    ('empty message', 'decode', 'undecodable')
    """

    def __init__(self, reason: str, stage: str = "decode", schema: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.stage = stage
        self.schema = schema

    @property
    def error_type(self) -> str:
        return "schema_violation" if self.stage == "validate" else "undecodable"

    def __reduce__(self) -> tuple:
        return (DecodeError, (self.reason, self.stage, self.schema))


class EncodeError(SchemaError):
    """A record that does not fit its schema; the message names the field and the problem."""


class SchemaRegistryUnavailable(LastmileError, RuntimeError):
    """The schema registry could not be asked (down, unreachable, refused): retry later.

    Not a :class:`DecodeError`: the message is probably fine, so it must not be
    dead-lettered.
    """


def shorten(text: str, limit: int = 60) -> str:
    """`text`, cut to `limit` characters with an ellipsis, for quoting it in an error.

    >>> shorten("x" * 10, 8)
    'xxxxx...'
    """
    return text if len(text) <= limit else text[: limit - 3] + "..."
