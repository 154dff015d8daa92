"""The control plane's commands: promote, split, shadow, retire, roll back and pause a model.

The source of truth is ``<registry>/<model>/state.json``
(:class:`~streams.models.state.ModelState`), changed read-modify-write under the model's
file lock; every change is then published to ``models.events`` with the model's full
state (see :mod:`streams.models.state` for the event and its ordering).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from streams.models.errors import ControlError, PublishError, RegistryError
from streams.models.registry import Registry
from streams.models.state import (
    CHAMPION,
    EVENT_META_KEYS,
    SHADOW,
    ModelState,
    Pause,
    epoch_ms,
    make_event,
    now_ms,
)
from streams.models.versions import ModelVersion, default_actor
from streams.models.wire import encode_event, make_codec

__all__ = ["ControlEvent", "ControlPlane"]

log = logging.getLogger(__name__)


def _version_entry(mv: ModelVersion) -> dict[str, Any]:
    meta = {k: mv.meta.get(k) for k in EVENT_META_KEYS}
    return {
        "flavor": mv.flavor,
        "sha256": mv.sha256,
        "path": f"{mv.name}/{mv.version}/{mv.artifact.name}",  # relative to the registry
        "created_at": epoch_ms(mv.created_at),
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
    streams.models.errors.ControlError: model 'm' has no version 7
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
        for number in self.registry.version_numbers_in(self.registry.model_dir(name)):
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
        provenance: Mapping[str, Any] | None = None,
    ) -> ControlEvent:
        self.registry.version_numbers(name)  # ModelNotFoundError for an unknown model
        action_id = str((provenance or {}).get("action_id") or "")
        with self.registry.lock(name):
            state = self._read_state(name)
            if action_id and state.acted(action_id):
                # Made before (its maker died before recording it): not twice. Published
                # again, in case the death came between writing state.json and publishing.
                event = make_event("announced", state, {"replayed": action_id}, self.actor)
                self._publish(event)
                return ControlEvent(event, published=self.publish_enabled)
            previous_ts = state.updated_at
            # Set before mutating: alias log entries are stamped with it.
            state.updated_at = max(now_ms(), previous_ts + 1)
            detail = mutate(state)
            if detail is None:  # nothing changed: nothing written, nothing published
                state.updated_at = previous_ts
                return ControlEvent(make_event(kind, state, {}, self.actor), published=False)
            state.seq += 1
            if provenance:
                detail = {**detail, **{k: str(v) for k, v in provenance.items()}}
                if action_id:
                    state.log_action(kind, provenance)
            self._write_state(state)
            version = detail.get("version")  # the change's own, whatever provenance says
            detail = {**detail, **{k: str(v) for k, v in (provenance or {}).items()}}
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
                f"run `lastmile models publish {event['model']}` once the broker is reachable",
                model=event["model"],
                version=event.get("version"),
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
                    state.updated_at = max(now_ms(), state.updated_at + 1)
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
            raise ControlError(
                f"model {state.model!r} has no version {version}",
                model=state.model,
                version=version,
            )
        if state.versions[version].get("retired"):
            raise ControlError(
                f"model {state.model!r} version {version} is retired",
                model=state.model,
                version=version,
            )

    def promote(
        self,
        name: str,
        version: int | str,
        alias: str = CHAMPION,
        provenance: Mapping[str, Any] | None = None,
    ) -> ControlEvent:
        """Point ``alias`` (default ``champion``) at ``version``.

        ``provenance`` (every change takes it) says on whose behalf: its items join the
        event's detail, and one with an ``action_id`` is logged in ``state.actions``, so
        the same action id never changes the state twice.
        """
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

        return self._change(name, "alias_set", mutate, provenance)

    def split(
        self,
        name: str,
        weights: Mapping[str, float],
        provenance: Mapping[str, Any] | None = None,
    ) -> ControlEvent:
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
                        f"promote a version to it first",
                        model=name,
                    )
                self._require_live(state, state.aliases[alias])
            if clean == state.split:
                return None
            state.split = clean
            return {"split": ",".join(f"{a}={w:g}" for a, w in clean.items()) or "off"}

        return self._change(name, "split_set", mutate, provenance)

    def shadow(
        self,
        name: str,
        version: int | str | None,
        provenance: Mapping[str, Any] | None = None,
    ) -> ControlEvent:
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

        return self._change(name, "shadow_set", mutate, provenance)

    def rollback(
        self, name: str, alias: str = CHAMPION, provenance: Mapping[str, Any] | None = None
    ) -> ControlEvent:
        """Point ``alias`` back at the live version it pointed at before.

        Rollbacks stack: promote 1, 2, 3, then rollback twice gives 2, then 1.
        Retired versions are skipped.
        """
        _check_alias(alias)

        def mutate(state: ModelState) -> dict[str, Any]:
            current = state.aliases.get(alias)
            target = state.rollback_target(alias)
            if target is None:
                raise ControlError(
                    f"model {name!r}: no earlier live version of {alias!r} to roll back to",
                    model=name,
                )
            state.aliases[alias] = target
            state.log_alias(alias, target, rollback=True)
            return {"alias": alias, "version": target, "previous": current}

        return self._change(name, "rollback", mutate, provenance)

    def retire(
        self,
        name: str,
        version: int | str,
        force: bool = False,
        provenance: Mapping[str, Any] | None = None,
    ) -> ControlEvent:
        """Take a version out of service; the champion only with ``force``.

        Other aliases pointing at it are removed (with their split weight) and a
        shadow on it stops. Its files stay: versions are immutable and audits need them.
        """
        number = _as_version(version)

        def mutate(state: ModelState) -> dict[str, Any] | None:
            if number not in state.versions:
                raise ControlError(
                    f"model {name!r} has no version {number}", model=name, version=number
                )
            if state.versions[number].get("retired"):
                return None
            if state.pause is not None and state.pause.version == number:
                raise ControlError(
                    f"model {name!r} version {number} is the fallback of the paused model: "
                    "resume it (or pause with another fallback) first",
                    model=name,
                    version=number,
                )
            if state.champion == number and not force:
                raise ControlError(
                    f"model {name!r} version {number} is the champion: promote another "
                    "version first, or force",
                    model=name,
                    version=number,
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

        return self._change(name, "retired", mutate, provenance)

    # -- the kill switch, and asking the learner for a snapshot

    def pause(
        self,
        name: str,
        *,
        fallback_score: float | None = None,
        fallback_label: str | None = None,
        fallback_version: int | str | None = None,
        provenance: Mapping[str, str] | None = None,
    ) -> ControlEvent:
        """Answer every request of the model with a fallback until :meth:`resume`.

        The fallback is a constant (``fallback_score`` and/or ``fallback_label``;
        its predictions carry version 0) or a live ``fallback_version``, never both.
        Every scorer then publishes the answers as predictions of variant ``fallback``;
        the split and the shadow wait. Pausing again with another fallback changes it.

        >>> import tempfile
        >>> from river import linear_model
        >>> from streams.config import load_settings
        >>> s = load_settings(env={}, toml_path=None, registry=tempfile.mkdtemp())
        >>> cp = ControlPlane(s, publish=False)
        >>> _ = cp.register_and_publish("m", linear_model.LinearRegression(), "river")
        >>> cp.pause("m", fallback_score=0.0).state.pause.describe()
        'score=0'
        >>> cp.resume("m").state.pause is None
        True
        >>> cp.pause("m")
        Traceback (most recent call last):
        ...
        streams.models.errors.ControlError: pausing 'm' needs a fallback: a score/label or a version
        """
        if fallback_version is not None and (fallback_score, fallback_label) != (None, None):
            raise ControlError(
                f"pausing {name!r}: give a fallback score/label or a fallback version, not both",
                model=name,
            )
        if fallback_version is None and fallback_score is None and fallback_label is None:
            raise ControlError(
                f"pausing {name!r} needs a fallback: a score/label or a version",
                model=name,
            )
        score = _finite_score(name, fallback_score)
        if fallback_label is not None and not str(fallback_label):
            raise ControlError(f"pausing {name!r}: the fallback label is empty", model=name)
        label = None if fallback_label is None else str(fallback_label)
        version = None if fallback_version is None else _as_version(fallback_version)

        def mutate(state: ModelState) -> dict[str, Any] | None:
            if version is not None:
                self._require_live(state, version)
                # The fallback must load on every scorer when the switch is thrown.
                self.registry.read_artifact(self.registry.get(name, version))
            since = state.pause.since if state.pause else state.updated_at
            pause = Pause(score=score, label=label, version=version, since=since)
            if pause == state.pause:
                return None
            previous, state.pause = state.pause, pause
            return {
                "version": version,
                "fallback": pause.describe(),
                "previous": previous.describe() if previous else None,
            }

        return self._change(name, "paused", mutate, provenance)

    def resume(self, name: str, *, provenance: Mapping[str, str] | None = None) -> ControlEvent:
        """Serve the model again as before the pause (champion, split, shadow).

        Resuming a model that is not paused changes nothing (``changed`` is False).
        """

        def mutate(state: ModelState) -> dict[str, Any] | None:
            if state.pause is None:
                return None
            pause, state.pause = state.pause, None
            return {"fallback": pause.describe(), "paused_since": pause.since}

        return self._change(name, "resumed", mutate, provenance)

    def request_snapshot(
        self, name: str, *, provenance: Mapping[str, str] | None = None
    ) -> ControlEvent:
        """Ask the learner to register its online model of ``name`` now.

        Traffic stays as it is; the state records when it was asked
        (``snapshot_request``, the change's ``updated_at``). A request is state, not an
        event: the compacted topic may drop an event a learner has not read, never the
        latest state; a learner line keeps the last request it answered, so each request
        is answered once, restarts included.
        """

        def mutate(state: ModelState) -> dict[str, Any]:
            state.snapshot_request = state.updated_at
            return {"request": "snapshot"}

        return self._change(name, "snapshot_requested", mutate, provenance)


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
        return Registry.parse_version(version)
    except RegistryError as err:
        raise ControlError(str(err)) from None


def _finite_score(name: str, score: Any) -> float | None:
    if score is None:
        return None
    try:
        value = float(score)
    except (TypeError, ValueError):
        raise ControlError(f"pausing {name!r}: fallback score {score!r} is not a number") from None
    if not math.isfinite(value):
        raise ControlError(f"pausing {name!r}: fallback score must be finite, got {score!r}")
    return value


def _check_alias(alias: str) -> None:
    if not alias or alias == SHADOW or not all(c.isalnum() or c in "_-" for c in alias):
        raise ControlError(
            f"alias {alias!r} is not valid (letters, digits, '_' or '-'; not 'shadow')"
        )
