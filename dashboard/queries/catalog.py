"""Which models exist (for the sidebar), and whether anything was ever scored."""

from __future__ import annotations

from dashboard.queries.cache import cached
from dashboard.queries.connection import Db, query_frame


@cached
def models(db: Db, registry: str, tick: int) -> dict[str, list[int]]:
    """Every model and its versions: what ClickHouse saw scored or registered, and the
    registry on disk (a model registered but not yet scored is pickable too)."""
    frame = query_frame(
        db,
        "models",
        """
        SELECT model, arraySort(groupUniqArray(version)) AS versions
        FROM (
            SELECT DISTINCT model, version FROM predictions_1m
            UNION ALL
            SELECT model, version FROM model_versions FINAL
        )
        GROUP BY model ORDER BY model""",
        {},
    )
    out: dict[str, list[int]] = {r.model: [int(v) for v in r.versions] for r in frame.itertuples()}
    for name, versions in _registry_models(registry).items():
        out[name] = sorted(set(out.get(name, [])) | set(versions))
    return dict(sorted(out.items()))


def _registry_models(registry: str) -> dict[str, list[int]]:
    from streams.models import Registry

    try:
        reg = Registry(registry)
        return {name: reg.version_numbers(name) for name in reg.models()}
    except Exception:
        # The dashboard may run where the registry is not mounted: ClickHouse still knows.
        return {}


@cached
def has_predictions(db: Db, tick: int) -> bool:
    """Whether anything was ever scored: no means the empty state, not an empty range."""
    frame = query_frame(
        db, "has_predictions", "SELECT count() AS n FROM (SELECT 1 FROM predictions_1m LIMIT 1)", {}
    )
    return bool(frame.iloc[0, 0])
