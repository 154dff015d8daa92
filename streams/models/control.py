"""The control plane: which version of each model answers, and how workers learn of it.

The source of truth is ``<registry>/<model>/state.json``, changed read-modify-write
under the model's file lock. Every change is then published to ``models.events``,
a compacted topic keyed by model name. Since compaction keeps only the latest
event per model, every event carries the model's FULL state after the change,
never a delta: a worker replaying the topic from the start ends up with each
model's current state whatever was compacted away.

An event is a dict shaped like the Avro record ``schemas/ModelEvent.avsc``, plus
``seq`` and ``detail``, which stay local (:func:`avro_record` cuts them off; the
wire format is Avro through ``schemas.codec``, JSON where that is missing)::

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
``retired``, ``rollback``, and ``announced`` (the state re-published unchanged,
e.g. after the in-memory embedded broker restarted). ``detail`` values are strings.

Ordering. ``state.updated_at`` (= the event's ``ts``, epoch millis) is the model's
sequence number: every change sets it to ``max(now, previous + 1)`` under the lock,
so it strictly increases per model whatever the clocks of the machines making the
changes, and it survives a lost ``state.json`` (a new state starts at "now", above
anything published before). ``seq`` counts the changes, for people. A
:class:`ModelTable` ignores an event whose ``updated_at`` is not above the one it holds.

Routing (:meth:`ModelTable.route`) hashes ``model + "\\0" + entity_key`` with
BLAKE2b (8 bytes) into [0, 1) and walks the split's cumulative weights (champion
first, then the other aliases in name order): the same entity always lands on the
same variant while the split is unchanged.

>>> table = ModelTable()
>>> state = ModelState(model="fraud", updated_at=1, versions={1: {}, 2: {}},
...                    aliases={"champion": 1, "challenger": 2},
...                    split={"champion": 90, "challenger": 10})
>>> table.apply(make_event("split_set", state))
True
>>> table.route("fraud", "customer-42") in ([(1, "champion")], [(2, "challenger")])
True
>>> table.apply(make_event("split_set", state))  # the same state again: ignored
False
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from streams.models.registry import (
    ModelVersion,
    Registry,
    RegistryError,
    default_actor,
)

log = logging.getLogger(__name__)

EVENT_KINDS = (
    "registered",
    "alias_set",
    "split_set",
    "shadow_set",
    "retired",
    "rollback",
    "announced",
)
CHAMPION = "champion"
CHALLENGER = "challenger"
SHADOW = "shadow"
# The alias log is bounded: rollback can go back this many alias changes, and an
# event (which carries the log) stays far below Kafka's message size limit.
HISTORY_LIMIT = 200
JSON_HEADERS = [("content-type", b"application/json")]
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


class ControlError(RegistryError):
    """A control-plane change that is refused; nothing was written or published."""


class PublishError(ControlError):
    """The change is saved on disk but did not reach models.events."""


# -- state -----------------------------------------------------------------------------


def _ms(value: Any) -> int:
    """Epoch millis from millis, an ISO 8601 string or a datetime (Avro readers give those)."""
    if value is None or value == "":
        return 0
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.UTC)
        return int(value.timestamp() * 1000)
    if isinstance(value, str) and not value.lstrip("-").isdigit():
        return _ms(_dt.datetime.fromisoformat(value.replace("Z", "+00:00")))
    return int(value)


@dataclasses.dataclass
class ModelState:
    """A model's full control state: its versions, aliases, split, shadow and alias log.

    ``versions`` maps a version number to ``{flavor, sha256, path, created_at,
    parent, retired, meta_json}``; ``alias_history`` is the log of alias changes,
    oldest first (``{alias, version, ts}``, plus ``rollback: true`` on rollbacks).
    """

    model: str
    seq: int = 0
    versions: dict[int, dict[str, Any]] = dataclasses.field(default_factory=dict)
    aliases: dict[str, int] = dataclasses.field(default_factory=dict)
    split: dict[str, float] = dataclasses.field(default_factory=dict)
    shadow: int | None = None
    alias_history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    updated_at: int = 0

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
                info["created_at"] = _ms(info["created_at"])
            versions[int(item["version"])] = info
        history = []
        for e in data.get("alias_history") or []:
            entry = dict(e)
            entry["ts"] = _ms(entry.get("ts"))
            history.append(entry)
        return cls(
            model=str(data["model"]),
            seq=int(data.get("seq") or 0),
            versions=versions,
            aliases={str(k): int(v) for k, v in (data.get("aliases") or {}).items()},
            split={str(k): float(w) for k, w in (data.get("split") or {}).items()},
            shadow=int(data["shadow"]) if data.get("shadow") is not None else None,
            alias_history=history,
            updated_at=_ms(data.get("updated_at")),
        )


def _now_ms() -> int:
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
        "ts": state.updated_at or _now_ms(),
        "seq": state.seq,
        "detail": {k: "" if v is None else str(v) for k, v in (detail or {}).items()},
        "state": state.to_dict(),
    }


# -- wire format (one pair of functions: the codec lives here) ---------------------------

_AVRO_VERSION_FIELDS = {
    "flavor": "",
    "sha256": "",
    "path": "",
    "created_at": 0,
    "parent": None,
    "retired": False,
    "meta_json": "{}",
}


def make_codec(settings: Any = None) -> Any:
    """The Avro codec for ``models.events`` (``schemas.codec``), or None where it is missing."""
    try:
        from schemas.codec import Codec
    except ImportError:
        return None
    return Codec.from_settings(settings) if settings is not None else Codec()


def avro_record(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event cut to the fields of ``schemas/ModelEvent.avsc`` (the codec refuses others).

    Lost on the way: ``seq``, ``detail``, and the alias log's ``rollback`` marks;
    workers need none of them (ordering uses ``ts``, rollback reads state.json).
    """
    state = event["state"]
    return {
        "model": event["model"],
        "kind": event["kind"],
        "version": event.get("version"),
        "actor": event.get("actor"),
        "ts": event["ts"],
        "state": {
            "versions": [
                {
                    "version": int(v["version"]),
                    **{
                        k: v.get(k, d) if v.get(k) is not None else d
                        for k, d in _AVRO_VERSION_FIELDS.items()
                    },
                }
                for v in state.get("versions") or []
            ],
            "aliases": dict(state.get("aliases") or {}),
            "split": {k: float(w) for k, w in (state.get("split") or {}).items()},
            "shadow": state.get("shadow"),
            "alias_history": [
                {"alias": e["alias"], "version": e.get("version"), "ts": e.get("ts") or 0}
                for e in state.get("alias_history") or []
            ],
        },
    }


def encode_event(
    event: Mapping[str, Any], settings: Any = None, codec: Any = None
) -> tuple[bytes, list]:
    """A control event as ``(value, headers)`` for ``models.events``.

    Avro (``ModelEvent``, through ``schemas.codec``) when the codec is installed,
    else JSON marked by a ``content-type: application/json`` header.
    """
    codec = codec or make_codec(settings)
    if codec is None:
        return orjson.dumps(event), list(JSON_HEADERS)
    topic = getattr(settings, "topic_model_events", None)
    return codec.encode("ModelEvent", avro_record(event), topic=topic)


def decode_event(
    value: bytes | None, headers: Any = None, settings: Any = None, codec: Any = None
) -> dict | None:
    """The event dict from a ``models.events`` message (Avro or JSON); None for a tombstone."""
    if value is None:
        return None
    content_type = None
    for key, val in headers or ():
        if key == "content-type":
            content_type = val
    if content_type == b"application/json" or value[:1] == b"{":
        event = orjson.loads(value)
    else:
        codec = codec or make_codec(settings)
        if codec is None:
            raise ValueError("an Avro models.events message, and schemas.codec is not installed")
        topic = getattr(settings, "topic_model_events", None)
        event = dict(codec.decode(value, headers, "ModelEvent", topic))
    # Avro carries no state.model / updated_at: they are the event's model and ts.
    state = dict(event.get("state") or {})
    state.setdefault("model", event.get("model"))
    state.setdefault("updated_at", _ms(event.get("ts")))
    event["state"] = state
    event["ts"] = _ms(event.get("ts"))
    event.setdefault("seq", state.get("seq", 0))
    event.setdefault("detail", {})
    return event


# -- the table every worker holds ------------------------------------------------------


def route_hash(model: str, key: str | bytes | None) -> float:
    """A stable position in [0, 1) for an entity of a model (BLAKE2b, 64 bits).

    >>> route_hash("fraud", "customer-42") == route_hash("fraud", b"customer-42")
    True
    """
    if isinstance(key, bytes):
        raw = model.encode() + b"\0" + key
    else:
        raw = f"{model}\0{'' if key is None else key}".encode()
    digest = hashlib.blake2b(raw, digest_size=8).digest()
    return int.from_bytes(digest, "big") / 18446744073709551616.0


@dataclasses.dataclass(frozen=True)
class _Plan:
    """A state compiled for routing: cumulative thresholds, built once per change."""

    buckets: tuple[tuple[float, int, str], ...]
    shadow: int | None


def _compile(state: ModelState) -> _Plan:
    champion = state.champion if state.live(state.champion) else None
    weights: list[tuple[str, int, float]] = []
    if state.split:
        order = sorted(state.split, key=lambda a: (a != CHAMPION, a))
        for alias in order:
            version = state.aliases.get(alias)
            w = float(state.split[alias])
            if version is not None and state.live(version) and w > 0:
                weights.append((alias, version, w))
    buckets: list[tuple[float, int, str]] = []
    total = sum(w for _, _, w in weights)
    if total > 0:
        acc = 0.0
        for alias, version, w in weights:
            acc += w / total
            buckets.append((acc, version, alias))
        buckets[-1] = (2.0, buckets[-1][1], buckets[-1][2])  # float sums can fall short of 1
    elif champion is not None:
        buckets.append((2.0, champion, CHAMPION))
    shadow = state.shadow if state.live(state.shadow) else None
    return _Plan(tuple(buckets), shadow)


class ModelTable:
    """Every model's current state, as a worker sees it; thread-safe to read while applied.

    >>> t = ModelTable()
    >>> s = ModelState("churn", updated_at=3, versions={1: {}, 2: {}}, aliases={"champion": 1},
    ...                shadow=2)
    >>> t.apply(make_event("shadow_set", s))
    True
    >>> t.route("churn", "c-1")
    [(1, 'champion'), (2, 'shadow')]
    >>> t.route("unknown", "c-1")
    []
    """

    def __init__(self) -> None:
        self._states: dict[str, ModelState] = {}
        self._plans: dict[str, _Plan] = {}
        self._lock = threading.Lock()
        self._listeners: list[Callable[[ModelState | None, ModelState], None]] = []
        self.applied = 0
        self.ignored = 0

    def subscribe(self, callback: Callable[[ModelState | None, ModelState], None]) -> None:
        """Call ``callback(old_state, new_state)`` for each change, BEFORE it goes live.

        So a scorer can load the versions the new state routes to before traffic
        reaches them. A callback that raises is logged; the change still applies.
        """
        self._listeners.append(callback)

    def _stale(self, state: ModelState) -> tuple[bool, ModelState | None]:
        old = self._states.get(state.model)
        return old is not None and state.updated_at <= old.updated_at, old

    def apply(self, event: Mapping[str, Any] | None) -> bool:
        """Replace the model's state with the event's; False when the event is stale or repeated.

        Stale means ``state.updated_at`` not above the held one (see the module doc).
        """
        if not event or not event.get("state"):
            return False
        state = ModelState.from_dict(event["state"])
        with self._lock:
            stale, old = self._stale(state)
        if stale:
            self.ignored += 1
            return False
        plan = _compile(state)
        for callback in list(self._listeners):
            try:
                callback(old, state)
            except Exception:
                log.exception("model table listener failed for %s", state.model)
        with self._lock:
            stale, _ = self._stale(state)  # another thread may have applied newer meanwhile
            if stale:
                self.ignored += 1
                return False
            # The plan first: route() reads the plan without the lock.
            self._plans[state.model] = plan
            self._states[state.model] = state
            self.applied += 1
        return True

    def get(self, model: str) -> ModelState | None:
        return self._states.get(model)

    def models(self) -> list[str]:
        return sorted(self._states)

    def route(self, model: str, entity_key: str | bytes | None) -> list[tuple[int, str]]:
        """``[(version, variant)]``: the answering version first, then the shadow if any.

        The variant is the alias that answers (``champion``, ``challenger``, ...) or
        ``shadow``. An unknown model, or one with no live champion and no split,
        routes nowhere (``[]``). Without an entity key, pass the request id.
        """
        plan = self._plans.get(model)
        if plan is None:
            return []
        out: list[tuple[int, str]] = []
        buckets = plan.buckets
        if len(buckets) == 1:
            out.append((buckets[0][1], buckets[0][2]))
        elif buckets:
            u = route_hash(model, entity_key)
            for upper, version, alias in buckets:
                if u < upper:
                    out.append((version, alias))
                    break
        if plan.shadow is not None and (not out or plan.shadow != out[0][0]):
            out.append((plan.shadow, SHADOW))
        return out

    def keyless_route(self, model: str) -> list[tuple[int, str]] | None:
        """:meth:`route` for every entity of `model` when no split makes it depend on
        the key (``[]`` for a model that routes nowhere), else None: a batch asks once
        per model instead of hashing each request.

        >>> t = ModelTable()
        >>> s = ModelState("churn", updated_at=3, versions={1: {}, 2: {}},
        ...                aliases={"champion": 1, "challenger": 2})
        >>> _ = t.apply(make_event("alias_set", s))
        >>> t.keyless_route("churn"), t.keyless_route("unknown")
        ([(1, 'champion')], [])
        >>> s.split = {"champion": 90, "challenger": 10}
        >>> s.updated_at = 4
        >>> _ = t.apply(make_event("split_set", s))
        >>> t.keyless_route("churn") is None
        True
        """
        plan = self._plans.get(model)
        if plan is not None and len(plan.buckets) > 1:
            return None
        return self.route(model, None)


# -- the control plane ----------------------------------------------------------------


def _version_entry(mv: ModelVersion) -> dict[str, Any]:
    meta = {k: mv.meta.get(k) for k in EVENT_META_KEYS}
    return {
        "flavor": mv.flavor,
        "sha256": mv.sha256,
        "path": f"{mv.name}/{mv.version}/{mv.artifact.name}",  # relative to the registry
        "created_at": _ms(mv.created_at),
        "parent": mv.parent,
        "retired": False,
        "meta_json": orjson.dumps(meta).decode(),
    }


class ControlPlane:
    """Change a model's state on disk and announce it on ``models.events``.

    Each change runs under the model's file lock: read state.json, check, change,
    advance ``updated_at`` (and ``seq``), write, publish and flush. Publishing inside
    the lock keeps the topic in the order of the changes, so compaction keeps the
    newest state. Changes that change nothing (promoting the current champion)
    neither write nor publish.

    >>> import tempfile
    >>> from river import linear_model
    >>> from streams.config import load_settings
    >>> s = load_settings(env={}, toml_path=None, registry=tempfile.mkdtemp())
    >>> cp = ControlPlane(s, publish=False)
    >>> v = cp.register_and_publish("m", linear_model.LinearRegression(), "river", features=["x"])
    >>> cp.promote("m", 1).state.champion
    1
    >>> cp.promote("m", 7)
    Traceback (most recent call last):
    ...
    streams.models.control.ControlError: model 'm' has no version 7
    """

    def __init__(
        self,
        settings: Any,
        registry: Registry | None = None,
        publish: bool = True,
        actor: str | None = None,
        flush_timeout: float = 15.0,
    ) -> None:
        self.settings = settings
        self.registry = registry or Registry.from_settings(settings)
        self.publish_enabled = publish
        self.actor = actor or default_actor()
        self.flush_timeout = flush_timeout
        self._producer: Any = None
        self._codec: Any = None

    # -- state on disk

    def _read_state(self, name: str) -> ModelState:
        path = self.registry.state_path(name)
        try:
            state = ModelState.from_dict(orjson.loads(path.read_bytes()))
        except FileNotFoundError:
            state = ModelState(model=name)
        # Versions registered without the control plane (or by a process that died
        # between registering and updating state) are picked up here.
        for number in self.registry._version_numbers(self.registry.model_dir(name)):
            if number not in state.versions:
                state.versions[number] = _version_entry(self.registry.get(name, number))
        return state

    def _write_state(self, state: ModelState) -> None:
        path = self.registry.state_path(state.model)
        tmp = path.with_name(f".state-{uuid.uuid4().hex}.json")
        with open(tmp, "wb") as fh:
            fh.write(orjson.dumps(state.to_dict(), option=orjson.OPT_INDENT_2))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def state(self, name: str) -> ModelState:
        """The model's current state from disk (no lock; a consistent snapshot)."""
        self.registry.version_numbers(name)  # ModelNotFoundError for an unknown model
        return self._read_state(name)

    def states(self) -> list[ModelState]:
        return [self.state(name) for name in self.registry.models()]

    def _change(
        self,
        name: str,
        kind: str,
        mutate: Callable[[ModelState], Mapping[str, Any] | None],
    ) -> ControlEvent:
        self.registry.version_numbers(name)  # ModelNotFoundError for an unknown model
        with self.registry.lock(name):
            state = self._read_state(name)
            previous_ts = state.updated_at
            # Set before mutating: alias log entries are stamped with it.
            state.updated_at = max(_now_ms(), previous_ts + 1)
            detail = mutate(state)
            if detail is None:  # nothing changed: nothing written, nothing published
                state.updated_at = previous_ts
                return ControlEvent(make_event(kind, state, {}, self.actor), published=False)
            state.seq += 1
            self._write_state(state)
            version = detail.get("version")
            event = make_event(kind, state, detail, self.actor, version)
            self._publish(event)
        return ControlEvent(event, published=self.publish_enabled)

    # -- publishing

    def _get_producer(self) -> Any:
        if self._producer is None:
            from confluent_kafka import Producer

            from streams.kafka.topics import ensure_topics

            # Publishing to a missing topic would auto-create it uncompacted.
            ensure_topics(self.settings)
            self._producer = Producer(
                self.settings.producer_config(**{"linger.ms": 0, "message.timeout.ms": 10000})
            )
        return self._producer

    def _publish(self, event: Mapping[str, Any]) -> None:
        if not self.publish_enabled:
            return
        errors: list[str] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(str(err))

        try:
            producer = self._get_producer()
            if self._codec is None:
                self._codec = make_codec(self.settings)
            value, headers = encode_event(event, self.settings, self._codec)
            producer.produce(
                self.settings.topic_model_events,
                key=event["model"].encode(),
                value=value,
                headers=headers,
                on_delivery=delivered,
            )
            remaining = producer.flush(self.flush_timeout)
            if remaining:
                errors.append(f"{remaining} message(s) not delivered in {self.flush_timeout:g} s")
        except Exception as err:  # broker down, topic creation refused, ...
            errors.append(str(err))
        if errors:
            raise PublishError(
                f"{event['model']}: state saved (seq {event['seq']}) but not published to "
                f"{self.settings.topic_model_events}: {errors[0]}; "
                f"run `lastmile models publish {event['model']}` once the broker is reachable"
            )

    def announce(self, name: str | None = None) -> list[ControlEvent]:
        """Publish the current state of one model (or all) again, unchanged.

        The embedded broker keeps topics in memory only: after it restarts, this
        tells workers every model's state again.
        """
        names = [name] if name else self.registry.models()
        out = []
        for n in names:
            self.registry.version_numbers(n)
            with self.registry.lock(n):
                state = self._read_state(n)
                if state.updated_at == 0 or not self.registry.state_path(n).exists():
                    # Never changed through the control plane: give it a time to stand on.
                    state.seq += 1
                    state.updated_at = max(_now_ms(), state.updated_at + 1)
                    self._write_state(state)
                event = make_event("announced", state, {}, self.actor)
                self._publish(event)
            out.append(ControlEvent(event, published=self.publish_enabled))
        return out

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self.flush_timeout)
            self._producer = None

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- changes

    def register_and_publish(
        self, name: str, obj_or_path: Any, flavor: str, **kwargs: Any
    ) -> ModelVersion:
        """Register a new version (see :meth:`Registry.register`) and announce it."""
        kwargs.setdefault("registered_by", self.actor)
        mv = self.registry.register(name, obj_or_path, flavor, **kwargs)

        def mutate(state: ModelState) -> dict[str, Any]:
            state.versions[mv.version] = _version_entry(mv)
            return {"version": mv.version, "parent": mv.parent, "flavor": mv.flavor}

        self._change(name, "registered", mutate)
        return mv

    @staticmethod
    def _require_live(state: ModelState, version: int) -> None:
        if version not in state.versions:
            raise ControlError(f"model {state.model!r} has no version {version}")
        if state.versions[version].get("retired"):
            raise ControlError(f"model {state.model!r} version {version} is retired")

    def promote(self, name: str, version: int | str, alias: str = CHAMPION) -> ControlEvent:
        """Point ``alias`` (default ``champion``) at ``version``."""
        number = _as_version(version)
        _check_alias(alias)

        def mutate(state: ModelState) -> dict[str, Any] | None:
            self._require_live(state, number)
            # Traffic never goes to an artifact that changed since registration.
            self.registry.read_artifact(self.registry.get(name, number))
            previous = state.aliases.get(alias)
            if previous == number:
                return None
            state.aliases[alias] = number
            state.log_alias(alias, number)
            return {"alias": alias, "version": number, "previous": previous}

        return self._change(name, "alias_set", mutate)

    def split(self, name: str, weights: Mapping[str, float]) -> ControlEvent:
        """Set the traffic split over aliases, e.g. ``{"champion": 90, "challenger": 10}``.

        Every alias must exist and point at a live version; weights are >= 0 and add
        up to more than 0 (they are used relative to their sum). An empty mapping
        clears the split: all traffic to the champion.
        """
        clean: dict[str, float] = {}
        for alias, w in weights.items():
            try:
                value = float(w)
            except (TypeError, ValueError):
                raise ControlError(f"split weight of {alias!r} is not a number: {w!r}") from None
            if not math.isfinite(value) or value < 0:
                raise ControlError(f"split weight of {alias!r} must be >= 0, got {w!r}")
            clean[str(alias)] = value
        if clean and sum(clean.values()) <= 0:
            raise ControlError("split weights must add up to more than 0")

        def mutate(state: ModelState) -> dict[str, Any] | None:
            for alias in clean:
                if alias not in state.aliases:
                    known = ", ".join(sorted(state.aliases)) or "none"
                    raise ControlError(
                        f"model {name!r} has no alias {alias!r} (aliases: {known}); "
                        f"promote a version to it first"
                    )
                self._require_live(state, state.aliases[alias])
            if clean == state.split:
                return None
            state.split = clean
            return {"split": ",".join(f"{a}={w:g}" for a, w in clean.items()) or "off"}

        return self._change(name, "split_set", mutate)

    def shadow(self, name: str, version: int | str | None) -> ControlEvent:
        """Score ``version`` in shadow beside the answering version (None: stop)."""
        target = _as_version(version) if version is not None else None

        def mutate(state: ModelState) -> dict[str, Any] | None:
            if target is not None:
                self._require_live(state, target)
                self.registry.read_artifact(self.registry.get(name, target))
            if state.shadow == target:
                return None
            previous, state.shadow = state.shadow, target
            return {"version": target, "previous": previous}

        return self._change(name, "shadow_set", mutate)

    def rollback(self, name: str, alias: str = CHAMPION) -> ControlEvent:
        """Point ``alias`` back at the live version it pointed at before.

        Rollbacks stack: promote 1, 2, 3, then rollback twice gives 2, then 1.
        Retired versions are skipped.
        """
        _check_alias(alias)

        def mutate(state: ModelState) -> dict[str, Any]:
            stack = state.alias_stack(alias)
            current = state.aliases.get(alias)
            if stack:
                stack.pop()
            while stack and not state.live(stack[-1]):
                stack.pop()
            if not stack:
                raise ControlError(
                    f"model {name!r}: no earlier live version of {alias!r} to roll back to"
                )
            target = stack[-1]
            assert target is not None  # live() is False for None
            state.aliases[alias] = target
            state.log_alias(alias, target, rollback=True)
            return {"alias": alias, "version": target, "previous": current}

        return self._change(name, "rollback", mutate)

    def retire(self, name: str, version: int | str, force: bool = False) -> ControlEvent:
        """Take a version out of service; the champion only with ``force``.

        Other aliases pointing at it are removed (with their split weight) and a
        shadow on it stops. Its files stay: versions are immutable and audits need them.
        """
        number = _as_version(version)

        def mutate(state: ModelState) -> dict[str, Any] | None:
            if number not in state.versions:
                raise ControlError(f"model {name!r} has no version {number}")
            if state.versions[number].get("retired"):
                return None
            if state.champion == number and not force:
                raise ControlError(
                    f"model {name!r} version {number} is the champion: promote another "
                    "version first, or force"
                )
            state.versions[number]["retired"] = True
            dropped = sorted(a for a, v in state.aliases.items() if v == number)
            for alias in dropped:
                del state.aliases[alias]
                state.split.pop(alias, None)
                state.log_alias(alias, None)
            if state.split and sum(state.split.values()) <= 0:
                state.split = {}
            if state.shadow == number:
                state.shadow = None
            return {"version": number, "aliases_removed": ",".join(dropped)}

        return self._change(name, "retired", mutate)


@dataclasses.dataclass
class ControlEvent:
    """What a change produced: the event dict (with the full state) and whether it was published.

    ``changed`` is False when the request changed nothing (nothing was written or sent).
    """

    event: dict[str, Any]
    published: bool = True

    @property
    def kind(self) -> str:
        return self.event["kind"]

    @property
    def version(self) -> int | None:
        return self.event.get("version")

    @property
    def state(self) -> ModelState:
        return ModelState.from_dict(self.event["state"])

    @property
    def detail(self) -> dict[str, str]:
        return self.event["detail"]

    @property
    def changed(self) -> bool:
        return bool(self.event["detail"]) or self.kind == "announced"


def _as_version(version: Any) -> int:
    try:
        return Registry._parse_version(version)
    except RegistryError as err:
        raise ControlError(str(err)) from None


def _check_alias(alias: str) -> None:
    if not alias or alias == SHADOW or not all(c.isalnum() or c in "_-" for c in alias):
        raise ControlError(
            f"alias {alias!r} is not valid (letters, digits, '_' or '-'; not 'shadow')"
        )


# -- the watcher ----------------------------------------------------------------------


class ModelWatcher:
    """A background thread applying ``models.events`` to a :class:`ModelTable`, from the start.

    It assigns the topic's partitions at the beginning (no consumer group: every
    worker needs every event) and keeps applying events live.

    Against a running broker (``settings`` from :func:`streams.config.load_settings`)::

        table = ModelTable()
        with ModelWatcher(settings, table) as watcher:
            watcher.wait_caught_up(10)
            table.route("fraud", "customer-42")  # [(3, "champion")]

    ``tests/test_control.py::test_watcher_sees_promotion`` runs exactly this.
    """

    def __init__(self, settings: Any, table: ModelTable, poll_timeout: float = 0.1) -> None:
        self.settings = settings
        self.table = table
        self.poll_timeout = poll_timeout
        self.errors = 0
        self._stop = threading.Event()
        self._caught_up = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    def start(self) -> ModelWatcher:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> ModelWatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def caught_up(self) -> bool:
        return self._caught_up.is_set()

    def wait_caught_up(self, timeout: float | None = None) -> bool:
        """Block until every event up to the high watermark seen at start is applied.

        Returns False on timeout. Raises if the watcher thread died.
        """
        done = self._caught_up.wait(timeout)
        if self._failure is not None:
            raise RuntimeError(f"model watcher failed: {self._failure}") from self._failure
        return done

    def _partitions(self, consumer: Any) -> list[int]:
        topic = self.settings.topic_model_events
        meta = consumer.list_topics(topic, timeout=5.0).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            return []
        return sorted(meta.partitions)

    def _run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

        try:
            conf = self.settings.consumer_config(
                f"lastmile-model-watcher-{uuid.uuid4().hex[:8]}",
                **{"enable.partition.eof": True, "enable.auto.offset.store": False},
            )
            consumer = Consumer(conf)
        except BaseException as err:
            self._failure = err
            self._caught_up.set()
            return
        topic = self.settings.topic_model_events
        codec = make_codec(self.settings)
        try:
            partitions: list[int] = []
            while not self._stop.is_set() and not partitions:
                partitions = self._partitions(consumer)
                if not partitions:
                    # No topic yet means no events yet: caught up, and wait for it.
                    self._caught_up.set()
                    self._stop.wait(1.0)
            if self._stop.is_set():
                return
            pending: dict[int, int] = {}
            for p in partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5.0)
                if high > low:
                    pending[p] = high
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
            if not pending:
                self._caught_up.set()
            while not self._stop.is_set():
                msg = consumer.poll(self.poll_timeout)
                if msg is None:
                    continue
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        pending.pop(msg.partition(), None)
                    else:
                        self.errors += 1
                        log.warning("models.events: %s", msg.error())
                else:
                    try:
                        self.table.apply(
                            decode_event(msg.value(), msg.headers(), self.settings, codec)
                        )
                    except Exception:
                        self.errors += 1
                        log.exception("models.events offset %s: cannot apply event", msg.offset())
                    if pending.get(msg.partition(), 1 << 62) <= msg.offset() + 1:
                        pending.pop(msg.partition(), None)
                if not pending and not self._caught_up.is_set():
                    self._caught_up.set()
        except BaseException as err:  # pragma: no cover - surfaced via wait_caught_up
            self._failure = err
            self._caught_up.set()
            log.exception("model watcher stopped")
        finally:
            with contextlib.suppress(Exception):
                consumer.close()


def load_table(states: Iterable[ModelState]) -> ModelTable:
    """A table from states (e.g. read from disk), for tools that do not watch the topic."""
    table = ModelTable()
    for state in states:
        table.apply(make_event("announced", state))
    return table


__all__ = [
    "ControlError",
    "ControlEvent",
    "ControlPlane",
    "ModelState",
    "ModelTable",
    "ModelWatcher",
    "PublishError",
    "decode_event",
    "encode_event",
    "load_table",
    "make_event",
    "route_hash",
]
