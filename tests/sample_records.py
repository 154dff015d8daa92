"""Records of the wire schemas for tests that need one of a kind and no particular one."""

from __future__ import annotations

from typing import Any


def drift_alert(model: str, ts: int, **fields: Any) -> dict[str, Any]:
    """An ``Alert`` firing on ``model``: PSI drift of ``age`` (0.3 over the rule's 0.2),
    with ``fields`` (version, message, ...) added or replaced.

    >>> drift_alert("fraud", 1, version=2)["rule"], drift_alert("fraud", 1, version=2)["version"]
    ('psi-high', 2)
    """
    return {
        "alert_id": "a1",
        "model": model,
        "kind": "drift",
        "metric": "psi",
        "feature": "age",
        "state": "firing",
        "value": 0.3,
        "threshold": 0.2,
        "severity": "warning",
        "rule": "psi-high",
        "ts": ts,
        **fields,
    }


def accuracy_alert(rule: str, version: int | None, value: float, ts: int, **fields: Any) -> dict:
    """An ``Alert`` firing on model ``m``'s ``version``: accuracy ``value`` under the
    rule's 0.7, critical (what the operator acts on), with ``fields`` added or replaced.

    >>> accuracy_alert("floor", 2, 0.3, 1)["alert_id"], accuracy_alert("floor", 2, 0.3, 1)["kind"]
    ('floor-2', 'performance')
    """
    return {
        "alert_id": f"{rule}-{version}",
        "model": "m",
        "version": version,
        "kind": "performance",
        "metric": "accuracy",
        "feature": None,
        "state": "firing",
        "value": value,
        "threshold": 0.7,
        "severity": "critical",
        "rule": rule,
        "ts": ts,
        "message": "",
        **fields,
    }
