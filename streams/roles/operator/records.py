"""The Action record: its id (stable across replays of one alert), the provenance a
control change carries, and the record published to the actions topic."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from streams.roles.operator.decision import Plan, describe, split_text

__all__ = ["ACTOR", "action_id", "action_record", "provenance"]

#: Who the operator's changes are made by (the control events' ``actor``).
ACTOR = "lastmile-operator"


def action_id(alert: Mapping[str, Any]) -> str:
    """The action's id: one per firing of an alert (an alert id is shared by every firing
    and resolution of one rule on one series, the firing's time tells them apart).

    >>> action_id({"alert_id": "a1", "ts": 60_000}) == action_id({"alert_id": "a1", "ts": 60_000})
    True
    >>> action_id({"alert_id": "a1", "ts": 60_000}) == action_id({"alert_id": "a1", "ts": 120_000})
    False
    """
    key = f"{alert['alert_id']}@{int(alert['ts'])}"
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def provenance(
    alert: Mapping[str, Any], ident: str, plan: Plan, mode: str, window_ms: int
) -> dict[str, str]:
    """What the control change carries about why it was made (strings, as event details)."""
    return {
        "action_id": ident,
        "alert_id": alert["alert_id"],
        "rule": alert["rule"],
        "metric": alert["metric"],
        "value": f"{alert['value']:.6g}",
        "threshold": f"{alert['threshold']:.6g}",
        "window_start": str(int(alert["ts"]) - window_ms),
        "window_end": str(int(alert["ts"])),
        "mode": mode,
        "version_before": "" if plan.version_before is None else str(plan.version_before),
        "version_after": "" if plan.version_after is None else str(plan.version_after),
        "split_before": split_text(plan.split_before),
        "split_after": split_text(plan.split_after),
    }


def action_record(
    alert: Mapping[str, Any],
    ident: str,
    plan: Plan,
    mode: str,
    outcome: str,
    now_ms: int,
    window_ms: int,
    reason: str | None = None,
) -> dict[str, Any]:
    """The Action record (schemas/Action.avsc) of a decision about a firing alert."""
    return {
        "action_id": ident,
        "alert_id": alert["alert_id"],
        "rule": alert["rule"],
        "model": alert["model"],
        "version": alert.get("version"),
        "kind": plan.kind,
        "mode": mode,
        "outcome": outcome,
        "reason": plan.reason if reason is None else reason,
        "version_before": plan.version_before,
        "version_after": plan.version_after,
        "split_before": split_text(plan.split_before),
        "split_after": split_text(plan.split_after),
        "metric": alert["metric"],
        "value": float(alert["value"]),
        "threshold": float(alert["threshold"]),
        "window_start": int(alert["ts"]) - window_ms,
        "window_end": int(alert["ts"]),
        "ts": now_ms,
        "actor": ACTOR,
        "message": describe(plan, alert["model"], outcome),
    }


def _parse_split(text: str) -> dict[str, float]:
    pairs = (item.partition("=") for item in text.split(",") if item)
    return {alias: float(weight) for alias, _, weight in pairs}


def plan_from_log(entry: Mapping[str, str]) -> Plan:
    """The plan an action-log entry of ``state.actions`` was made from (a replay).

    >>> plan_from_log({"kind": "split_set", "version_before": "4", "version_after": "3",
    ...                "split_before": "champion=90,challenger=10",
    ...                "split_after": "champion=90,challenger=0"}).split_after
    {'champion': 90.0, 'challenger': 0.0}
    """

    def version(key: str) -> int | None:
        text = entry.get(key) or ""
        return int(text) if text else None

    kinds = {"alias_set": "promote", "split_set": "shed"}
    return Plan(
        kinds.get(entry.get("kind", ""), entry.get("kind", "")),
        version_before=version("version_before"),
        version_after=version("version_after"),
        split_before=_parse_split(entry.get("split_before", "")),
        split_after=_parse_split(entry.get("split_after", "")),
    )
