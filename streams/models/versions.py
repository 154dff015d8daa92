"""A registered version as read from disk: its ``meta.json`` and where its artifact is."""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.models.loaded import label_str

__all__ = ["ARTIFACT", "LOCK", "META", "STATE", "ModelVersion", "default_actor"]

ARTIFACT = "model.pkl"
META = "meta.json"
STATE = "state.json"
LOCK = ".lock"


@dataclass(frozen=True)
class ModelVersion:
    """One registered version: its ``meta.json`` and where its artifact is."""

    name: str
    version: int
    path: Path  # the version's directory
    meta: dict[str, Any] = field(repr=False)

    @property
    def artifact(self) -> Path:
        return self.path / self.meta.get("artifact", ARTIFACT)

    @property
    def flavor(self) -> str:
        return self.meta["flavor"]

    @property
    def sha256(self) -> str:
        return self.meta["sha256"]

    @property
    def task(self) -> str:
        return self.meta["task"]

    @property
    def labels(self) -> list[str]:
        return [label_str(v) for v in self.meta.get("labels") or []]

    @property
    def positive_label(self) -> str | None:
        return self.meta.get("positive_label")

    @property
    def features(self) -> list[dict[str, str]]:
        return self.meta.get("features") or []

    @property
    def feature_names(self) -> list[str]:
        return [f["name"] for f in self.features]

    @property
    def parent(self) -> int | None:
        return self.meta.get("parent")

    @property
    def created_at(self) -> str:
        return self.meta["created_at"]

    @property
    def registered_by(self) -> str:
        return self.meta.get("registered_by", "")

    @property
    def metrics(self) -> dict[str, Any]:
        return self.meta.get("metrics") or {}

    @property
    def reference_profile(self) -> dict[str, Any] | None:
        return self.meta.get("reference_profile")


def default_actor() -> str:
    """``user@host``: who registers or changes a model from this process."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"
