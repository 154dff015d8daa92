"""One model line: the online model the learner grows from a champion."""

from __future__ import annotations

import collections
import uuid
from typing import Any

from streams.models import LoadedModel, label_str
from streams.roles.learner.prequential_window import PrequentialWindow


class ModelLine:
    """The online model of one model and what is known about it: the versions it grew
    from, its prequential trackers, its counters and a sample of recent rows (the
    reference profile of its next snapshot).

    ``origin`` is the version the line started from, ``head`` the newest version
    registered from it (the parent of the next snapshot), ``champion`` the champion
    version the frozen evaluator scores. ``line_id`` names the line in the registry, so a
    snapshot registered before a crash is found again rather than registered twice.
    """

    def __init__(
        self,
        model: str,
        loaded: LoadedModel,
        window: int,
        reference_rows: int,
        clock: float,
    ) -> None:
        self.model = model
        self.line_id = uuid.uuid4().hex[:12]
        self.origin = int(loaded.version or 0)
        self.head = self.origin
        self.champion: int | None = self.origin
        self.versions = {self.origin}
        self.online = loaded.model
        self.meta = {
            k: loaded.meta.get(k)
            for k in ("flavor", "task", "labels", "positive_label", "features")
        }
        self.learned = 0
        self.since_snapshot = 0
        self.since_metrics = 0
        self.snapshot_wall = clock
        self.snapshot_answered = 0  # the latest snapshot request (epoch ms) it answered
        self.metrics_wall = clock
        self.window = window
        labels = self.meta.get("labels") or []
        self.binary = self.task == "classification" and len(labels) <= 2
        self.perf = PrequentialWindow(self.task, window, self.binary)
        self.perf_frozen: PrequentialWindow | None = PrequentialWindow(
            self.task, window, self.binary
        )
        self.first_t: int | None = None
        self.last_t: int | None = None
        self.reference: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=max(0, reference_rows)
        )
        self._init_transient()

    # Transient helpers (label coercion, the positive class): rebuilt after unpickling.

    def _init_transient(self) -> None:
        self._loaded = LoadedModel(self.online, {**self.meta, "version": self.head})
        self._labels: dict[Any, Any] = {}
        self.classifier = self.task == "classification"
        # A classifier learns the labels it was registered with; anything else (a typo,
        # "maybe") would silently become a class, so it is refused (a dead letter).
        self._known = (
            {label_str(v) for v in self.meta.get("labels") or []} if self.classifier else set()
        )
        positive = self.meta.get("positive_label")
        self.positive = self.coerce(positive if positive is not None else "1")
        names = [f["name"] for f in self.meta.get("features") or []]
        self.feature_names = names or None

    def __getstate__(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in self.__dict__.items()
            if k not in ("_loaded", "_labels", "_known", "classifier", "positive", "feature_names")
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_transient()

    @property
    def task(self) -> str:
        """``classification`` or ``regression``."""
        return self.meta.get("task") or "classification"

    def coerce(self, label: Any) -> Any:
        """An outcome's label as the model learns it, cached per raw value."""
        try:
            return self._labels[label]
        except KeyError:
            pass
        except TypeError:  # unhashable: not a label
            raise ValueError(f"label {label!r} is not a string or a number") from None
        y = self._loaded.coerce_label(label)
        if self._known and label_str(y) not in self._known:
            raise ValueError(
                f"label {label!r} is not one of the model's labels "
                f"({', '.join(sorted(self._known))})"
            )
        if len(self._labels) < 10_000:
            self._labels[label] = y
        return y

    def reset_frozen(self, version: int | None) -> None:
        """The champion changed: its evaluator starts over."""
        self.champion = version
        self.perf_frozen = (
            PrequentialWindow(self.task, self.window, self.binary) if version is not None else None
        )

    def summary(self) -> dict[str, Any]:
        """The line on the status page."""
        return {
            "origin": self.origin,
            "head": self.head,
            "champion": self.champion,
            "learned": self.learned,
            "prequential": {k: round(v, 4) for k, v in self.perf.get().items()},
        }
