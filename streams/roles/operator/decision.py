"""What an action would change, decided from the alert, its rule and the model's state,
without changing anything: a :class:`Plan` to carry out, or a reason to skip.

Pure functions of their inputs, so the guards are tested without a broker and dry-run
says exactly what enforce would have done.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from monitors.rules import Rule
from streams.models import CHALLENGER, CHAMPION, ModelState

__all__ = ["Plan", "describe", "plan_action", "split_text"]


@dataclasses.dataclass(frozen=True)
class Plan:
    """An action to carry out (``reason`` empty) or skipped (``reason`` says why)."""

    kind: str
    reason: str = ""
    detail: str = ""
    version_before: int | None = None
    version_after: int | None = None
    split_before: dict[str, float] = dataclasses.field(default_factory=dict)
    split_after: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def skipped(self) -> bool:
        return bool(self.reason)


def split_text(split: Mapping[str, float]) -> str:
    """``{"champion": 90.0, "challenger": 0.0}`` -> ``"champion=90,challenger=0"``."""
    return ",".join(f"{alias}={weight:g}" for alias, weight in split.items())


def _skip(kind: str, reason: str, detail: str) -> Plan:
    return Plan(kind, reason=reason, detail=detail)


def _promoted_at(state: ModelState, alias: str) -> int | None:
    """When ``alias`` was last pointed at the version it points at now (epoch ms)."""
    current = state.aliases.get(alias)
    for entry in reversed(state.alias_history):
        if entry.get("alias") == alias:
            return int(entry["ts"]) if entry.get("version") == current else None
    return None


def plan_action(
    alert: Mapping[str, Any], rule: Rule, state: ModelState, now_ms: int, stale_after_s: float
) -> Plan:
    """The plan for a firing alert whose rule has an action (guards per model aside).

    >>> from monitors.rules import Rule
    >>> rule = Rule("acc", "performance", "accuracy", 0.7, "below", action="rollback",
    ...             within=86400.0)
    >>> state = ModelState("m", versions={1: {}, 2: {}}, aliases={"champion": 2},
    ...     alias_history=[{"alias": "champion", "version": 1, "ts": 0},
    ...                    {"alias": "champion", "version": 2, "ts": 50_000}])
    >>> alert = {"model": "m", "version": 2, "ts": 100_000}
    >>> plan_action(alert, rule, state, now_ms=110_000, stale_after_s=70)
    Plan(kind='rollback', reason='', detail='', version_before=2, version_after=1, ...)
    >>> plan_action(alert, rule, state, now_ms=200_000, stale_after_s=70).reason
    'stale'
    >>> plan_action({**alert, "version": 1}, rule, state, 110_000, 70).detail
    'v1 is not the champion (v2)'
    """
    kind = rule.action or ""
    model = alert["model"]
    version = alert.get("version")
    age_s = (now_ms - int(alert["ts"])) / 1000.0
    if age_s > stale_after_s:
        return _skip(kind, "stale", f"the alert is {age_s:.0f} s old (limit {stale_after_s:g} s)")
    champion = state.champion
    if kind == "rollback":
        if champion is None:
            return _skip(kind, "not_target", f"{model} has no champion")
        if version is not None and version != champion:
            return _skip(kind, "not_target", f"v{version} is not the champion (v{champion})")
        promoted = _promoted_at(state, CHAMPION)
        if rule.within is not None and promoted is not None:
            since_s = (int(alert["ts"]) - promoted) / 1000.0
            if since_s > rule.within:
                return _skip(
                    kind,
                    "outside_within",
                    f"v{champion} was promoted {since_s:.0f} s before the alert "
                    f"(the rule acts within {rule.within:g} s)",
                )
        target = state.rollback_target(CHAMPION)
        if target is None:
            return _skip(kind, "first_version", f"v{champion} is the first champion of {model}")
        return Plan(kind, version_before=champion, version_after=target)
    if kind == "shed":
        if version is None or version == champion:
            return _skip(kind, "not_target", "shed takes a challenger's traffic, not the champion")
        arms = [a for a, v in state.aliases.items() if v == version and a != CHAMPION]
        live = [a for a in arms if state.split.get(a, 0.0) > 0]
        if not live:
            return _skip(kind, "not_target", f"v{version} gets no traffic of the split")
        after = {a: (0.0 if a in live else w) for a, w in state.split.items()}
        if sum(after.values()) <= 0:
            return _skip(kind, "not_target", f"v{version} has all the traffic")
        return Plan(
            kind,
            version_before=version,
            version_after=champion,
            split_before=dict(state.split),
            split_after=after,
        )
    if kind == "promote":
        challenger = state.aliases.get(CHALLENGER)
        if challenger is None:
            return _skip(kind, "not_target", f"{model} has no challenger")
        if version is not None and version not in (challenger, champion):
            return _skip(kind, "not_target", f"v{version} is not the challenger (v{challenger})")
        if challenger == champion:
            return _skip(kind, "nothing_to_change", f"v{challenger} is the champion already")
        return Plan(kind, version_before=champion, version_after=challenger)
    # pause and snapshot concern the model as a whole.
    return Plan(kind, version_before=champion, version_after=champion)


_VERBS = {
    "rollback": ("rolled back", "roll back"),
    "shed": ("shed", "shed"),
    "pause": ("paused", "pause"),
    "promote": ("promoted", "promote"),
    "snapshot": ("asked for a snapshot of", "ask for a snapshot of"),
}


def describe(plan: Plan, model: str, outcome: str) -> str:
    """A sentence for people.

    >>> describe(Plan("rollback", version_before=2, version_after=1), "fraud", "would")
    'would roll back fraud from v2 to v1'
    >>> describe(Plan("shed", reason="cooldown", detail="last action 30 s ago"), "m", "skipped")
    'did not shed m: cooldown (last action 30 s ago)'
    """
    done, infinitive = _VERBS.get(plan.kind, (plan.kind, plan.kind))
    if outcome == "skipped":
        why = f"{plan.reason} ({plan.detail})" if plan.detail else plan.reason
        return f"did not {infinitive} {model}: {why}"
    verb = done if outcome == "done" else f"would {infinitive}"
    if plan.kind in ("rollback", "promote"):
        return f"{verb} {model} from v{plan.version_before} to v{plan.version_after}"
    if plan.kind == "shed":
        return (
            f"{verb} v{plan.version_before} of {model}: split "
            f"{split_text(plan.split_before)} -> {split_text(plan.split_after)}"
        )
    return f"{verb} {model}"
