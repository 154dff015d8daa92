"""A model's state (which version answers) and the event that carries it on ``models.events``.

The source of truth is ``<registry>/<model>/state.json``, changed read-modify-write
under the model's file lock. Every change is then published to ``models.events``,
a compacted topic keyed by model name. Since compaction keeps only the latest
event per model, every event carries the model's FULL state after the change,
never a delta: a worker replaying the topic from the start ends up with each
model's current state whatever was compacted away.

An event is a dict shaped like the Avro record ``schemas/ModelEvent.avsc``, plus
``seq`` and ``detail``, which stay local (:func:`~streams.records.model_event_to_avro` cuts
them off; the wire format is Avro through ``schemas.codec``, JSON where that is missing)::

    {"model": "fraud", "kind": "alias_set", "version": 3, "actor": "alice@host",
     "ts": 1700000000123, "seq": 7,
     "detail": {"alias": "champion", "version": "3", "previous": "2"},
     "state": {"model": "fraud", "seq": 7, "updated_at": 1700000000123,
               "versions": [{"version": 3, "flavor": "river", "sha256": "...",
                             "path": "fraud/3/model.pkl", "created_at": 1699999999000,
                             "parent": 2, "retired": false, "meta_json": "{...}"}],
               "aliases": {"champion": 3, "challenger": 4},
               "split": {"champion": 90.0, "challenger": 10.0},
               "shadow": null,
               "alias_history": [{"alias": "champion", "version": 2, "ts": ...},
                                 {"alias": "champion", "version": 3, "ts": ...}]}}

Kinds: ``registered``, ``alias_set`` (promote), ``split_set``, ``shadow_set``,
``retired``, ``rollback``, ``paused`` and ``resumed`` (the kill switch: ``state.pause``
set or cleared), ``announced`` (the state re-published unchanged, e.g. after the
in-memory embedded broker restarted) and ``snapshot_requested`` (the state unchanged,
asking the learner to register its online model now). ``detail`` values are strings.

Paused (``"pause": {"score": 0.0, "label": "0", "version": null, "since": ...}``), a
model answers every request with its fallback, a constant or a fallback version, as
predictions of variant ``fallback`` (:class:`Pause`); its split and shadow wait.

Actions. ``state.actions`` is a bounded log of the changes made on behalf of someone
else's decision (an alert rule's action: ``{"action_id", "rule", "alert_id", ..., "kind",
"seq", "ts"}``). It stays in ``state.json`` (the wire format cuts it off): a change
carrying an ``action_id`` already in the log is not made twice (see
:meth:`~streams.models.commands.ControlPlane.rollback`).

Ordering. ``state.updated_at`` (= the event's ``ts``, epoch millis) is the model's
sequence number: every change sets it to ``max(now, previous + 1)`` under the lock,
so it strictly increases per model whatever the clocks of the machines making the
changes, and it survives a lost ``state.json`` (a new state starts at "now", above
anything published before). ``seq`` counts the changes, for people. A
:class:`~streams.models.routing.ModelTable` ignores an event whose ``updated_at`` is not
above the one it holds.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from collections.abc import Mapping
from typing import Any

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "EVENT_KINDS",
    "EVENT_META_KEYS",
    "FALLBACK",
    "FALLBACK_CONSTANT",
    "HISTORY_LIMIT",
    "SHADOW",
    "ModelState",
    "Pause",
    "epoch_ms",
    "make_event",
    "now_ms",
]

EVENT_KINDS = (
    "registered",
    "alias_set",
    "split_set",
    "shadow_set",
    "retired",
    "rollback",
    "announced",
    "paused",
    "resumed",
    "snapshot_requested",
)
CHAMPION = "champion"
CHALLENGER = "challenger"
SHADOW = "shadow"
# The variant of the answers a paused model gives, and the version number they carry when
# the fallback is a constant: registry versions start at 1, and Prediction.version is an int.
FALLBACK = "fallback"
FALLBACK_CONSTANT = 0
# The alias log is bounded: rollback can go back this many alias changes, and an
# event (which carries the log) stays far below Kafka's message size limit.
HISTORY_LIMIT = 200
# What of meta.json travels in events: enough to describe a version, without the
# reference profile, which can be large and is read from the registry when needed.
EVENT_META_KEYS = (
    "task",
    "labels",
    "positive_label",
    "features",
    "metrics",
    "registered_by",
    "description",
)


def epoch_ms(value: Any) -> int:
    """Epoch millis from millis, an ISO 8601 string or a datetime (Avro readers give those)."""
    if value is None or value == "":
        return 0
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.UTC)
        return int(value.timestamp() * 1000)
    if isinstance(value, str) and not value.lstrip("-").isdigit():
        return epoch_ms(_dt.datetime.fromisoformat(value.replace("Z", "+00:00")))
    return int(value)


@dataclasses.dataclass(frozen=True)
class Pause:
    """The kill switch of a paused model: what every request is answered with instead.

    Either a constant (``score`` and/or ``label``) or a fallback ``version``;
    ``since`` is when the model was paused (epoch millis).

    >>> p = Pause(score=0.0, label="0", since=1_700_000_000_000)
    >>> p.route_version, p.describe()
    (0, 'score=0, label=0')
    >>> Pause.from_dict(p.to_dict()) == p, Pause.from_dict(None)
    (True, None)
    >>> Pause(version=2).route_version, Pause(version=2).describe()
    (2, 'version 2')
    """

    score: float | None = None
    label: str | None = None
    version: int | None = None
    since: int = 0

    @property
    def route_version(self) -> int:
        """The version its answers carry: the fallback version, or :data:`FALLBACK_CONSTANT`."""
        return FALLBACK_CONSTANT if self.version is None else self.version

    def describe(self) -> str:
        if self.version is not None:
            return f"version {self.version}"
        parts = [] if self.score is None else [f"score={self.score:g}"]
        return ", ".join(parts + ([] if self.label is None else [f"label={self.label}"]))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Pause | None:
        if not data:
            return None
        score, label, version = data.get("score"), data.get("label"), data.get("version")
        return cls(
            score=None if score is None else float(score),
            label=None if label is None else str(label),
            version=None if version is None else int(version),
            since=epoch_ms(data.get("since")),
        )


@dataclasses.dataclass
class ModelState:
    """A model's full control state: its versions, aliases, split, shadow and alias log.

    ``versions`` maps a version number to ``{flavor, sha256, path, created_at,
    parent, retired, meta_json}``; ``alias_history`` is the log of alias changes,
    oldest first (``{alias, version, ts}``, plus ``rollback: true`` on rollbacks);
    ``pause`` is set while the model is paused (the kill switch).
    """

    model: str
    seq: int = 0
    versions: dict[int, dict[str, Any]] = dataclasses.field(default_factory=dict)
    aliases: dict[str, int] = dataclasses.field(default_factory=dict)
    split: dict[str, float] = dataclasses.field(default_factory=dict)
    shadow: int | None = None
    alias_history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    updated_at: int = 0
    pause: Pause | None = None
    #: When the learner was last asked for a snapshot (epoch ms); a learner line keeps
    #: the last request it answered, so each is answered once.
    snapshot_request: int | None = None
    actions: list[dict[str, str]] = dataclasses.field(default_factory=list)

    @property
    def champion(self) -> int | None:
        return self.aliases.get(CHAMPION)

    def live(self, version: int | None) -> bool:
        """True when the version exists and is not retired."""
        info = self.versions.get(version) if version is not None else None
        return info is not None and not info.get("retired", False)

    def alias_stack(self, alias: str) -> list[int | None]:
        """The versions ``alias`` pointed at, as a stack that rollbacks pop (top = now)."""
        stack: list[int | None] = []
        for entry in self.alias_history:
            if entry.get("alias") != alias:
                continue
            target = entry.get("version")
            if entry.get("rollback"):
                if stack:
                    stack.pop()
                while stack and stack[-1] != target:
                    stack.pop()
                if not stack:
                    stack.append(target)
            else:
                stack.append(target)
        return stack

    def rollback_target(self, alias: str = CHAMPION) -> int | None:
        """The live version a rollback of ``alias`` would point it at (None: there is none).

        >>> s = ModelState("m", versions={1: {}, 2: {}}, aliases={"champion": 2},
        ...                alias_history=[{"alias": "champion", "version": 1},
        ...                               {"alias": "champion", "version": 2}])
        >>> s.rollback_target(), ModelState("m").rollback_target()
        (1, None)
        """
        stack = self.alias_stack(alias)
        if stack:
            stack.pop()
        while stack and not self.live(stack[-1]):
            stack.pop()
        return stack[-1] if stack else None

    def acted(self, action_id: str) -> bool:
        """True when a change for ``action_id`` is in the action log."""
        return any(entry.get("action_id") == action_id for entry in self.actions)

    def log_action(self, kind: str, provenance: Mapping[str, Any]) -> None:
        entry = {k: str(v) for k, v in provenance.items()}
        entry.update(kind=kind, seq=str(self.seq), ts=str(self.updated_at))
        self.actions.append(entry)
        del self.actions[:-HISTORY_LIMIT]

    def log_alias(self, alias: str, version: int | None, rollback: bool = False) -> None:
        entry: dict[str, Any] = {"alias": alias, "version": version, "ts": self.updated_at}
        if rollback:
            entry["rollback"] = True
        self.alias_history.append(entry)
        del self.alias_history[:-HISTORY_LIMIT]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "seq": self.seq,
            "updated_at": self.updated_at,
            "versions": [{"version": v, **info} for v, info in sorted(self.versions.items())],
            "aliases": dict(self.aliases),
            "split": {k: float(w) for k, w in self.split.items()},
            "shadow": self.shadow,
            "alias_history": [dict(e) for e in self.alias_history],
            "pause": self.pause.to_dict() if self.pause else None,
            "snapshot_request": self.snapshot_request,
            "actions": [dict(e) for e in self.actions],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelState:
        raw_versions = data.get("versions") or []
        if isinstance(raw_versions, Mapping):  # {"3": {...}} also reads
            raw_versions = [{"version": int(v), **info} for v, info in raw_versions.items()]
        versions: dict[int, dict[str, Any]] = {}
        for item in raw_versions:
            info = {k: v for k, v in item.items() if k != "version"}
            if "created_at" in info:
                info["created_at"] = epoch_ms(info["created_at"])
            versions[int(item["version"])] = info
        history = []
        for e in data.get("alias_history") or []:
            entry = dict(e)
            entry["ts"] = epoch_ms(entry.get("ts"))
            history.append(entry)
        return cls(
            model=str(data["model"]),
            seq=int(data.get("seq") or 0),
            versions=versions,
            aliases={str(k): int(v) for k, v in (data.get("aliases") or {}).items()},
            split={str(k): float(w) for k, w in (data.get("split") or {}).items()},
            shadow=int(data["shadow"]) if data.get("shadow") is not None else None,
            alias_history=history,
            updated_at=epoch_ms(data.get("updated_at")),
            pause=Pause.from_dict(data.get("pause")),
            snapshot_request=(
                epoch_ms(data["snapshot_request"]) if data.get("snapshot_request") else None
            ),
            actions=[{str(k): str(v) for k, v in e.items()} for e in data.get("actions") or []],
        )


def now_ms() -> int:
    return int(time.time() * 1000)


def make_event(
    kind: str,
    state: ModelState,
    detail: Mapping[str, Any] | None = None,
    actor: str | None = None,
    version: int | None = None,
) -> dict[str, Any]:
    """The event dict for ``state`` after a change of ``kind`` (concerning ``version``)."""
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown event kind {kind!r}")
    return {
        "model": state.model,
        "kind": kind,
        "version": version,
        "actor": actor,
        "ts": state.updated_at or now_ms(),
        "seq": state.seq,
        "detail": {k: "" if v is None else str(v) for k, v in (detail or {}).items()},
        "state": state.to_dict(),
    }
