"""Model versions: aliases, split, shadow and lineage, from ClickHouse or the registry,
and a version's reference profile."""

from __future__ import annotations

from typing import Any

import orjson
import pandas as pd

from dashboard.queries.cache import cached
from dashboard.queries.connection import query_frame
from dashboard.queries.view import View

LEARNER_MARK = "learner"


VERSION_COLUMNS = [
    "version",
    "parent",
    "created_at",
    "registered_by",
    "flavor",
    "aliases",
    "is_shadow",
    "retired",
    "split",
    "metrics",
    "task",
    "source",
]


@cached
def model_versions(view: View, model: str) -> pd.DataFrame:
    """A model's versions with aliases, split, shadow and lineage: from ClickHouse's
    ``model_versions`` (what models.events said), else from the registry on disk."""
    frame = query_frame(
        view.db,
        "model_versions",
        """
        SELECT version, parent, created_at,
               JSONExtractString(meta_json, 'registered_by') AS registered_by,
               flavor, aliases, is_shadow, retired, split,
               JSONExtractRaw(meta_json, 'metrics') AS metrics,
               JSONExtractString(meta_json, 'task') AS task
        FROM model_versions FINAL
        WHERE model = {model:String}
        ORDER BY version""",
        {"model": model},
    )
    if not frame.empty:
        frame["source"] = "clickhouse"
        frame["metrics"] = [json_object(m) for m in frame["metrics"]]
        frame["aliases"] = [sorted(a) for a in frame["aliases"]]
        frame["parent"] = [None if pd.isna(p) else int(p) for p in frame["parent"]]
        return frame[VERSION_COLUMNS]
    return registry_versions(view.registry, model, view.tick)


def json_object(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


@cached
def registry_versions(registry: str, model: str, tick: int) -> pd.DataFrame:
    """The same table as :func:`model_versions`, read from the registry directory."""
    from streams.models import ControlPlane, Registry, RegistryError

    try:
        reg = Registry(registry)
        state = ControlPlane(None, registry=reg, publish=False).state(model)
        versions = reg.versions(model)
    except (RegistryError, OSError):
        return pd.DataFrame(columns=VERSION_COLUMNS)
    rows = []
    for mv in versions:
        info = state.versions.get(mv.version, {})
        rows.append(
            {
                "version": mv.version,
                "parent": mv.parent,
                "created_at": pd.Timestamp(mv.created_at).tz_localize(None)
                if pd.Timestamp(mv.created_at).tzinfo
                else pd.Timestamp(mv.created_at),
                "registered_by": mv.registered_by,
                "flavor": mv.flavor,
                "aliases": sorted(a for a, v in state.aliases.items() if v == mv.version),
                "is_shadow": state.shadow == mv.version,
                "retired": bool(info.get("retired", False)),
                "split": dict(state.split),
                "metrics": dict(mv.metrics or {}),
                "task": mv.task,
                "source": "registry",
            }
        )
    return pd.DataFrame(rows, columns=VERSION_COLUMNS)


@cached
def reference_profile(registry: str, model: str, version: int, tick: int) -> dict | None:
    """The version's reference profile (drift baseline) from its meta.json, or None."""
    from streams.models import Registry, RegistryError

    try:
        return Registry(registry).get(model, version).reference_profile
    except (RegistryError, OSError, ValueError):
        return None


def is_learner(registered_by: str | None) -> bool:
    """Online snapshots are the versions the learner registered (``registered_by``
    names it, e.g. ``learner`` or ``learner@host``)."""
    return LEARNER_MARK in (registered_by or "").lower()


@cached
def model_actions(view: View, model: str) -> pd.DataFrame:
    """The operator's actions on a model in the range (``actions``), oldest first: when,
    what, with which outcome, and the alert's rule, metric, value and threshold."""
    return query_frame(
        view.db,
        "model_actions",
        """
        SELECT ts, kind, outcome, reason, mode, version_before, version_after, rule, metric,
               value, threshold, actor, message, action_id
        FROM actions
        WHERE model = {model:String}
          AND ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}
        ORDER BY ts LIMIT 1000""",
        view.params(model=model),
    )
