"""The table every worker holds: each model's state, and which version(s) answer a request.

Routing (:meth:`ModelTable.route`) hashes ``model + "\\0" + entity_key`` with
BLAKE2b (8 bytes) into [0, 1) and walks the split's cumulative weights (champion
first, then the other aliases in name order): the same entity always lands on the
same variant while the split is unchanged. A paused model (``state.pause``) routes every
request to variant ``fallback``: its fallback version, or :data:`FALLBACK_CONSTANT`
for a constant answer (:meth:`ModelTable.fallback`); no split, no shadow.

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

import dataclasses
import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from streams.models.state import CHAMPION, FALLBACK, SHADOW, ModelState, Pause, make_event

__all__ = ["CATCH_UP_S", "ModelTable", "load_table", "route_hash"]

log = logging.getLogger(__name__)

#: The longest a decision waits for its table to catch up with ``models.events``
#: (:meth:`ModelTable.catch_up`): one ListOffsets and, when events are behind, a fetch.
CATCH_UP_S = 2.0


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
    if state.pause is not None:
        # The fallback version was live when paused and cannot be retired while it is.
        version = state.pause.version
        if version is None or state.live(version):
            return _Plan(((2.0, state.pause.route_version, FALLBACK),), None)
        return _Plan((), None)
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
    >>> paused = dataclasses.replace(s, updated_at=4, pause=Pause(score=0.0, label="0"))
    >>> t.apply(make_event("paused", paused))
    True
    >>> t.route("churn", "c-1"), t.fallback("churn").describe()
    ([(0, 'fallback')], 'score=0, label=0')
    """

    def __init__(self) -> None:
        self._states: dict[str, ModelState] = {}
        self._plans: dict[str, _Plan] = {}
        self._pauses: dict[str, Pause] = {}
        self._lock = threading.Lock()
        self._listeners: list[Callable[[ModelState | None, ModelState], None]] = []
        self._catch_up: Callable[[float, int | None], bool] | None = None
        self.applied = 0
        self.ignored = 0

    def watched_by(self, catch_up: Callable[[float, int | None], bool]) -> None:
        """Let :meth:`catch_up` ask `catch_up` (the :class:`ModelWatcher` feeding this
        table: :meth:`ModelWatcher.catch_up`)."""
        self._catch_up = catch_up

    def catch_up(self, timeout_s: float = CATCH_UP_S, since_ms: int | None = None) -> bool:
        """Make sure every event in ``models.events`` up to its end now is applied, or
        (`since_ms`) every event published before that time; call it before deciding
        that a model is unknown or has no version. False when that could not be made
        sure within `timeout_s`. A table no watcher feeds is as current as it gets: True.

        >>> ModelTable().catch_up(since_ms=1700000000000)
        True
        """
        catch_up = self._catch_up
        return True if catch_up is None else catch_up(timeout_s, since_ms)

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
            except Exception:  # one listener's bug must not stop the table applying events
                log.exception("model table listener failed for %s", state.model)
        with self._lock:
            stale, _ = self._stale(state)  # another thread may have applied newer meanwhile
            if stale:
                self.ignored += 1
                return False
            # The plan first: route() reads the plan without the lock. The pause before
            # it, and kept after a resume: a request routed to the fallback just before
            # gets the answer it was routed to.
            if state.pause is not None:
                self._pauses[state.model] = state.pause
            self._plans[state.model] = plan
            self._states[state.model] = state
            self.applied += 1
        return True

    def get(self, model: str) -> ModelState | None:
        return self._states.get(model)

    def models(self) -> list[str]:
        return sorted(self._states)

    def fallback(self, model: str) -> Pause | None:
        """The model's latest pause: what a request :meth:`route` sent to ``fallback`` gets."""
        return self._pauses.get(model)

    def route(self, model: str, entity_key: str | bytes | None) -> list[tuple[int, str]]:
        """``[(version, variant)]``: the answering version first, then the shadow if any.

        The variant is the alias that answers (``champion``, ``challenger``, ...),
        ``shadow``, or ``fallback`` while the model is paused. An unknown model, or one
        with no live champion and no split, routes nowhere (``[]``). Without an entity
        key, pass the request id.
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


def load_table(states: Iterable[ModelState]) -> ModelTable:
    """A table from states (e.g. read from disk), for tools that do not watch the topic."""
    table = ModelTable()
    for state in states:
        table.apply(make_event("announced", state))
    return table
