"""The errors of the model plane, all under :class:`~streams.errors.StreamsError`.

Each carries what it is about as attributes (``model``, ``version``), so callers can
act on them without parsing the message; the message stays one line a user can act on.

>>> err = VersionNotFoundError("model 'fraud' has no version 9", model="fraud", version=9)
>>> (str(err), err.model, err.version, isinstance(err, RegistryError))
("model 'fraud' has no version 9", 'fraud', 9, True)
>>> issubclass(PublishError, ControlError) and issubclass(ControlError, StreamsError)
True
"""

from __future__ import annotations

from streams.errors import StreamsError

__all__ = [
    "ArtifactIntegrityError",
    "ControlError",
    "ModelNotFoundError",
    "PublishError",
    "RegistryError",
    "VersionNotFoundError",
]


class RegistryError(StreamsError):
    """Anything the registry refuses; the message is one line a user can act on."""

    def __init__(self, message: str, *, model: str | None = None, version: int | None = None):
        super().__init__(message)
        self.model = model
        self.version = version


class ModelNotFoundError(RegistryError):
    """No model of that name in the registry."""


class VersionNotFoundError(RegistryError):
    """The model exists but not that version."""


class ArtifactIntegrityError(RegistryError):
    """An artifact's sha256 differs from the one recorded when it was registered."""


class ControlError(RegistryError):
    """A control-plane change that is refused; nothing was written or published."""


class PublishError(ControlError):
    """The change is saved on disk but did not reach models.events."""
