"""Dashboard benchmark: every page's query and render time on a big synthetic run.

    python bench/dashboard.py                 # 10M predictions over 24 h
    python bench/dashboard.py --rows 1000000 --hours 6

Starts its own embedded ClickHouse in a temporary directory, registers the models
in a temporary registry, fills the tables with ``INSERT ... SELECT FROM numbers()``
(the rollups fill themselves: their materialized views fire on every insert into
``predictions``), then renders each page with Streamlit's AppTest, twice: cold
(empty cache, every query runs) and warm (what a viewer gets within one refresh
interval). The queries' own time is what ``dashboard.queries`` logs per execution.

:func:`fill` (bench/dashboard_fill.py) is also the synthetic run the dashboard tests
render against: two models over a couple of hours, feature drift in one feature of one
model, outcomes, monitor metrics, alerts, dead letters, model versions with learner
snapshots.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# First on the path, even when PYTHONPATH has it: run as a script, this file's folder
# comes first, and there `dashboard` would be this file instead of the package.
if sys.path[:1] != [str(ROOT)]:
    sys.path.insert(0, str(ROOT))

# The repository is on the path now. The synthetic run is beside this file:
# dashboard_fill.py (fill, Run, the tables' inserts), dashboard_models.py (the registry),
# dashboard_monitor_rows.py (the monitor's metrics and alerts).
from bench.dashboard_fill import Run, fill  # noqa: E402
from dashboard.navigation import PAGE_FILES  # noqa: E402

__all__ = ["Run", "fill", "main"]

APP = ROOT / "dashboard" / "app.py"
PAGES = PAGE_FILES


def _env(port: int, database: str, registry: Path) -> dict[str, str]:
    return {
        "LASTMILE_CLICKHOUSE_PORT": str(port),
        "LASTMILE_CLICKHOUSE_DATABASE": database,
        "LASTMILE_REGISTRY": str(registry),
    }


def _serve_like_the_command() -> None:
    """AppTest would run a switched-to page file on its own (the app has a pages/
    directory); ``lastmile dashboard`` tells Streamlit the app uses st.navigation, so
    every run goes through app.py. Do the same (see dashboard/cli.py)."""
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def init(self: PagesManager, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    PagesManager.__init__ = init  # type: ignore[method-assign]


# (label, page, whole run or the last hour, session state to set before the run)
CASES: list[tuple[str, str, bool, dict[str, Any]]] = [
    *[(page, page, True, {}) for page in PAGES],
    ("overview, 1 h", "overview", False, {}),
    ("drift, 1 h", "drift", False, {}),
    ("drift, 24 h hist", "drift", True, {"lm_drift_window": "whole time range"}),
    ("performance, 1 h", "performance", False, {}),
]


def _render(
    page: str, run: Run, whole: bool, state: dict[str, Any], timeout: float
) -> dict[str, Any]:
    """Render one page cold (empty cache) then warm; the query time is what
    dashboard.queries logged for the cold run's executions."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from dashboard import queries

    at = AppTest.from_file(str(APP), default_timeout=timeout)
    if whole:
        at.query_params["from"] = run.start.strftime("%Y-%m-%dT%H:%M:%SZ")
        at.query_params["to"] = run.end.strftime("%Y-%m-%dT%H:%M:%SZ")
    else:
        at.session_state["lm_range"] = "Last hour"
    at.query_params["model"] = "fraud"
    at.session_state["lm_refresh"] = "off"
    at.run()
    for key, value in state.items():
        at.session_state[key] = value
    at.switch_page(PAGES[page])
    st.cache_data.clear()
    queries.QUERY_LOG.clear()
    started = time.perf_counter()
    at.run()
    cold = time.perf_counter() - started
    log = list(queries.QUERY_LOG)
    started = time.perf_counter()
    at.run()
    warm = time.perf_counter() - started
    errors = [str(e.value)[:200] for e in at.exception] + [str(e.value)[:200] for e in at.error]
    shown = {m.label: m.value for m in at.metric}
    return {
        "cold": cold,
        "warm": warm,
        "queries": len(log),
        "query_s": sum(seconds for _name, seconds, _rows in log),
        "slowest": max(log, key=lambda e: e[1]) if log else ("-", 0.0, 0),
        "errors": errors,
        "shown": shown,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="predictions to insert")
    parser.add_argument("--hours", type=float, default=24.0, help="time span of the run")
    parser.add_argument("--timeout", type=float, default=120.0, help="AppTest timeout per run")
    args = parser.parse_args(argv)

    import logging

    logging.basicConfig(level=logging.WARNING)
    from bench.scratch_store import scratch_store
    from streams.config import load_settings
    from streams.storage import db

    with scratch_store("lastmile-bench-dashboard-") as (store, root):
        registry = root / "registry"
        os.environ.update(_env(store.port, "bench", registry))
        for name in (
            "LASTMILE_CLICKHOUSE_URL",
            "LASTMILE_CONFIG",
            "LASTMILE_DASHBOARD_PASSWORD",
        ):
            os.environ.pop(name, None)
        settings = load_settings(toml_path=None)
        db.ensure_schema(settings)
        client = db.connect(settings)
        started = time.perf_counter()
        run = fill(
            client,
            registry,
            rows=args.rows,
            hours=args.hours,
            progress=lambda m: print(f"  {m}", flush=True),
        )
        filled = time.perf_counter() - started
        (n,) = client.query("SELECT count() FROM predictions").result_rows[0]
        (m,) = client.query("SELECT count() FROM predictions_1m").result_rows[0]
        client.close()
        print(
            f"filled {n:,} predictions ({m:,} rollup rows) over {args.hours:g} h "
            f"in {filled:.1f} s ({n / filled:,.0f} rows/s)"
        )
        print(
            f"model fraud; range: the whole run ({args.hours:g} h), or the last hour "
            "(1 h); times in seconds"
        )
        print(
            f"{'page':<18}{'cold render':>12}{'queries':>9}{'query time':>12}"
            f"{'warm render':>13}  slowest query"
        )
        _serve_like_the_command()
        for label, page, whole, state in CASES:
            r = _render(page, run, whole, state, args.timeout)
            name, seconds, _rows = r["slowest"]
            flag = "" if r["cold"] < 2.0 else "  OVER 2 s"
            print(
                f"{label:<18}{r['cold']:>12.2f}{r['queries']:>9}{r['query_s']:>12.2f}"
                f"{r['warm']:>13.2f}  {name} {seconds:.2f}{flag}"
            )
            if label == "overview":
                tiles = ("Predictions/s", "Latency p99", "Active alerts")
                print(f"{'':<18}shown: " + ", ".join(f"{k} {r['shown'].get(k)}" for k in tiles))
            for error in r["errors"]:
                print(f"{'':<18}error: {error}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
