"""What a flavor refuses, each a :class:`~streams.models.errors.RegistryError`.

A refused registration writes no version: the version that served before keeps serving.

>>> err = FlavorMismatchError("declared flavor xgboost, but model.txt is a LightGBM text model")
>>> isinstance(err, RegistryError), err.model
(True, None)
"""

from __future__ import annotations

from streams.models.errors import RegistryError

__all__ = [
    "CodeRefusedError",
    "FeatureMismatchError",
    "FlavorMismatchError",
    "MissingRuntimeError",
    "SourceNotFoundError",
    "UnsupportedModelError",
]


class FlavorMismatchError(RegistryError):
    """The declared flavor does not match the model object or the artifact's content."""


class FeatureMismatchError(RegistryError):
    """The model's input names or count differ from the features it is registered with."""


class UnsupportedModelError(RegistryError):
    """A model lastmile cannot feed or read scores from (a string ONNX input, an objective
    with no probabilities)."""


class SourceNotFoundError(RegistryError):
    """A model source that does not resolve: an MLflow URI, a missing directory."""


class CodeRefusedError(RegistryError):
    """A flavor whose loading runs code, while ``registry_allow_code`` is off."""


class MissingRuntimeError(RegistryError):
    """The flavor's runtime is not installed; the message names the extra to install."""
