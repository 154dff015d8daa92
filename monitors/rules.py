"""Alert rules: YAML in, firing and resolved alerts out, one alert per key at a time.

A rule watches one metric (see ``rules.yaml`` beside this file for the fields and the
defaults). :class:`RuleEngine` evaluates each :class:`~monitors.events.MetricValue`
against the rules that match it and returns :class:`~monitors.events.AlertEvent` only on
transitions, so a breach lasting a hundred windows is one alert:

- it fires after `for` consecutive breaching windows, and not within `cooldown` of the
  last firing of the same alert;
- it resolves once the value is back past the `resolve` threshold (hysteresis: a value
  hovering at the threshold does not flap);
- alerts are keyed per (rule, model, version, segment, metric, feature); two rules on one
  metric (a warning and a critical tier) are two alerts;
- a window already evaluated for a key (same or earlier window end: a replay after a
  restart) is ignored, so at-least-once delivery of metrics does not double-count.

Times are the metrics' window ends, so alerts are reproducible from the metrics alone.

A rule may carry an ``action`` (one of :data:`ACTIONS`): the operator role
(:mod:`streams.roles.operator`) acts on its firing alerts. ``within`` limits the action to
a champion promoted at most that long before the alert (older ones only alert).

"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from monitors.events import KINDS, SEVERITIES, AlertEvent, MetricValue

__all__ = [
    "ACTIONS",
    "DEFAULT_RULES",
    "Rule",
    "RuleEngine",
    "RuleError",
    "load_rules",
    "parse_duration",
    "parse_rules",
]

#: What a rule's firing alert can make the operator do.
ACTIONS = ("rollback", "shed", "pause", "promote", "snapshot")

#: The rules file shipped with the package.
DEFAULT_RULES = Path(__file__).with_name("rules.yaml")


class RuleError(ValueError):
    """An invalid rules file or rule; says which file, rule and field."""

    def __init__(self, message: str, file: str = "", rule: str = "", field: str = "") -> None:
        self.file, self.rule, self.field = file, rule, field
        where = ": ".join(
            p
            for p in (file, f"rule {rule!r}" if rule else "", f"field {field!r}" if field else "")
            if p
        )
        super().__init__(f"{where}: {message}" if where else message)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string like ``"90s"``, ``"10m"``, ``"2h"``, ``"1d"``.

    >>> parse_duration(30), parse_duration("10m"), parse_duration("1.5h")
    (30.0, 600.0, 5400.0)

    """
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"not a duration: {value!r} (use seconds or 30s, 10m, 2h, 1d)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def _globs(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError("expected a glob string or a non-empty list of them")


@dataclasses.dataclass(frozen=True)
class Rule:
    """One alert rule (see the module docstring and ``rules.yaml``).

    >>> r = Rule("missing", "quality", "missing_rate", threshold=0.2, resolve=0.1)
    >>> r.breached(0.25), r.recovered(0.15), r.recovered(0.05)
    (True, False, True)
    >>> r.matches(MetricValue("m", "1", 0, 60, "missing_rate", "age", 0.3))
    True

    """

    name: str
    kind: str
    metric: str
    threshold: float
    direction: str = "above"
    for_windows: int = 1
    severity: str = "warning"
    cooldown: float = 0.0
    resolve: float | None = None
    features: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    models: tuple[str, ...] = ("*",)
    min_n: int = 0
    action: str | None = None
    within: float | None = None

    @property
    def resolve_threshold(self) -> float:
        return self.threshold if self.resolve is None else self.resolve

    def breached(self, value: float) -> bool:
        if self.direction == "above":
            return value >= self.threshold
        return value <= self.threshold

    def recovered(self, value: float) -> bool:
        if self.direction == "above":
            return value < self.resolve_threshold
        return value > self.resolve_threshold

    def matches(self, event: MetricValue) -> bool:
        if event.metric != self.metric or event.n < self.min_n:
            return False
        if not any(fnmatch.fnmatchcase(event.model, g) for g in self.models):
            return False
        if event.feature is None:
            # Model-level metrics have no feature: only the catch-all selects them.
            return "*" in self.features
        if any(fnmatch.fnmatchcase(event.feature, g) for g in self.exclude):
            return False
        return any(fnmatch.fnmatchcase(event.feature, g) for g in self.features)


_FIELDS = {
    "name",
    "kind",
    "metric",
    "threshold",
    "direction",
    "for",
    "severity",
    "cooldown",
    "resolve",
    "features",
    "exclude",
    "models",
    "min_n",
    "action",
    "within",
}


def _rule(raw: Any, index: int, source: str) -> Rule:
    if not isinstance(raw, Mapping):
        raise RuleError(f"rule #{index + 1} must be a mapping", source)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise RuleError(f"rule #{index + 1} needs a non-empty string name", source, field="name")

    def err(field: str, message: str) -> RuleError:
        return RuleError(message, source, name, field)

    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise err(unknown[0], f"unknown field; known fields are {sorted(_FIELDS)}")
    for required in ("kind", "metric", "threshold"):
        if required not in raw:
            raise err(required, "is required")
    kind = raw["kind"]
    if kind not in KINDS:
        raise err("kind", f"must be one of {list(KINDS)}, not {kind!r}")
    metric = raw["metric"]
    if not isinstance(metric, str) or not metric:
        raise err("metric", "must be a non-empty string")

    def number(field: str, default: float | None = None) -> float | None:
        value = raw.get(field, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise err(field, f"must be a number, not {value!r}")
        return float(value)

    threshold = number("threshold")
    assert threshold is not None
    resolve = number("resolve")
    direction = raw.get("direction", "above")
    if direction not in ("above", "below"):
        raise err("direction", f"must be 'above' or 'below', not {direction!r}")
    if resolve is not None:
        if direction == "above" and resolve > threshold:
            raise err("resolve", "must be <= threshold for an 'above' rule (hysteresis)")
        if direction == "below" and resolve < threshold:
            raise err("resolve", "must be >= threshold for a 'below' rule (hysteresis)")
    for_windows = raw.get("for", 1)
    if isinstance(for_windows, bool) or not isinstance(for_windows, int) or for_windows < 1:
        raise err("for", f"must be a whole number of windows >= 1, not {for_windows!r}")
    min_n = raw.get("min_n", 0)
    if isinstance(min_n, bool) or not isinstance(min_n, int) or min_n < 0:
        raise err("min_n", f"must be a whole number >= 0, not {min_n!r}")
    severity = raw.get("severity", "warning")
    if severity not in SEVERITIES:
        raise err("severity", f"must be one of {list(SEVERITIES)}, not {severity!r}")
    try:
        cooldown = parse_duration(raw.get("cooldown", 0))
    except ValueError as e:
        raise err("cooldown", str(e)) from None
    action = raw.get("action")
    if action is not None and action not in ACTIONS:
        raise err("action", f"must be one of {list(ACTIONS)}, not {action!r}")
    within = None
    if "within" in raw:
        if action is None:
            raise err("within", "only means something with an action")
        try:
            within = parse_duration(raw["within"])
        except ValueError as e:
            raise err("within", str(e)) from None
        if within <= 0:
            raise err("within", "must be more than 0")
    selectors = {}
    for field, default in (("features", "*"), ("exclude", None), ("models", "*")):
        value = raw.get(field, default)
        try:
            selectors[field] = () if value is None else _globs(value)
        except ValueError as e:
            raise err(field, str(e)) from None
    return Rule(
        name=name,
        kind=kind,
        metric=metric,
        threshold=threshold,
        direction=direction,
        for_windows=for_windows,
        severity=severity,
        cooldown=cooldown,
        resolve=resolve,
        min_n=min_n,
        action=action,
        within=within,
        **selectors,
    )


def parse_rules(data: Any, source: str = "<rules>") -> list[Rule]:
    """Rules from parsed YAML: ``{"rules": [...]}`` or a bare list.

    >>> [r.name for r in parse_rules({"rules": [
    ...     {"name": "lat", "kind": "latency", "metric": "latency_p99", "threshold": 1}]})]
    ['lat']
    >>> parse_rules([{"name": "x", "kind": "drift", "metric": "psi", "threshold": "high"}])
    Traceback (most recent call last):
    ...
    monitors.rules.RuleError: <rules>: rule 'x': field 'threshold': must be a number, not 'high'
    >>> parse_rules([{"name": "x", "kind": "performance", "metric": "accuracy",
    ...               "threshold": 0.7, "action": "reboot"}])
    Traceback (most recent call last):
    ...
    monitors.rules.RuleError: <rules>: rule 'x': field 'action': must be one of [...], not 'reboot'

    """
    if isinstance(data, Mapping):
        unknown = sorted(set(data) - {"rules"})
        if unknown:
            raise RuleError(f"unknown top-level key {unknown[0]!r}; expected 'rules'", source)
        data = data.get("rules")
    if data is None:
        return []
    if not isinstance(data, list):
        raise RuleError("'rules' must be a list of rules", source)
    rules = [_rule(raw, i, source) for i, raw in enumerate(data)]
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise RuleError("duplicate rule name", source, rule.name, "name")
        seen.add(rule.name)
    return rules


def load_rules(path: str | Path | None = None) -> list[Rule]:
    """Rules from a YAML file; the packaged defaults when `path` is None."""
    path = Path(path) if path is not None else DEFAULT_RULES
    try:
        text = path.read_text()
    except OSError as e:
        raise RuleError(f"cannot read rules: {e.strerror or e}", str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RuleError(f"invalid YAML{where}: {getattr(e, 'problem', e)}", str(path)) from None
    return parse_rules(data, str(path))


@dataclasses.dataclass
class _AlertState:
    streak: int = 0
    firing: bool = False
    last_fired: float | None = None
    last_window_end: float | None = None


AlertKey = tuple[str, str, str, str | None, str, str | None]


class RuleEngine:
    """Evaluates metric values against rules; returns alerts on transitions only.

    >>> engine = RuleEngine([Rule("miss", "quality", "missing_rate", 0.2, for_windows=2,
    ...                           resolve=0.1)])
    >>> def window(i, v):
    ...     return MetricValue("churn", "3", 60.0 * i, 60.0 * (i + 1), "missing_rate", "age", v)
    >>> [(a.state, a.ts) for i, v in enumerate([0.3, 0.3, 0.3, 0.15, 0.05])
    ...  for a in engine.evaluate(window(i, v))]
    [('firing', 120.0), ('resolved', 300.0)]

    """

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = list(rules)
        self._by_metric: dict[str, list[Rule]] = {}
        for rule in self.rules:
            self._by_metric.setdefault(rule.metric, []).append(rule)
        self._states: dict[AlertKey, _AlertState] = {}

    @classmethod
    def from_yaml(cls, path: str | Path | None = None) -> RuleEngine:
        return cls(load_rules(path))

    def firing(self) -> list[AlertKey]:
        """Keys of the alerts currently firing."""
        return [k for k, s in self._states.items() if s.firing]

    def evaluate(self, event: MetricValue) -> list[AlertEvent]:
        out: list[AlertEvent] = []
        if event.value is None or math.isnan(event.value):
            return out
        for rule in self._by_metric.get(event.metric, ()):
            if not rule.matches(event):
                continue
            key = (
                rule.name,
                event.model,
                event.version,
                event.segment,
                event.metric,
                event.feature,
            )
            state = self._states.get(key)
            if state is None:
                state = self._states[key] = _AlertState()
            end = event.window_end
            if state.last_window_end is not None and end <= state.last_window_end:
                continue
            state.last_window_end = end
            if state.firing:
                if rule.recovered(event.value):
                    state.firing = False
                    state.streak = 0
                    out.append(self._alert(rule, event, "resolved"))
                continue
            state.streak = state.streak + 1 if rule.breached(event.value) else 0
            cooled = state.last_fired is None or end - state.last_fired >= rule.cooldown
            if state.streak >= rule.for_windows and cooled:
                state.firing = True
                state.last_fired = end
                out.append(self._alert(rule, event, "firing"))
        return out

    def evaluate_many(self, events: Iterable[MetricValue]) -> list[AlertEvent]:
        return [a for e in events for a in self.evaluate(e)]

    @staticmethod
    def _alert(rule: Rule, event: MetricValue, state: str) -> AlertEvent:
        return AlertEvent(
            model=event.model,
            version=event.version,
            kind=rule.kind,
            metric=event.metric,
            feature=event.feature,
            value=event.value,
            threshold=rule.threshold if state == "firing" else rule.resolve_threshold,
            severity=rule.severity,
            state=state,  # type: ignore[arg-type]
            rule=rule.name,
            ts=event.window_end,
            segment=event.segment,
        )

    def to_dict(self) -> dict[str, Any]:
        """Alert state (not the rules: they come from the rules file at start-up)."""
        return {"states": [[list(k), dataclasses.asdict(s)] for k, s in self._states.items()]}

    def load_state(self, d: Mapping[str, Any]) -> RuleEngine:
        """Restore state saved by :meth:`to_dict`; state of rules no longer defined is dropped."""
        names = {r.name for r in self.rules}
        self._states = {
            tuple(k): _AlertState(**s)  # type: ignore[misc]
            for k, s in d["states"]
            if k[0] in names
        }
        return self

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], rules: Sequence[Rule]) -> RuleEngine:
        return cls(rules).load_state(d)
