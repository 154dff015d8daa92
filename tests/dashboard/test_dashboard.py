"""The dashboard, rendered with Streamlit's AppTest against the session's ClickHouse.

A database of its own is migrated with streams/storage/db.py and filled with a short
synthetic run (bench/dashboard.py: two models over two hours, drift in fraud's
``age``, outcomes, metrics, alerts, dead letters, model versions). The app reads
its settings from the environment, as it does when served, and the numbers it
shows are checked against SQL run here on the base tables.
"""

from __future__ import annotations

import datetime as dt
import doctest
import importlib.util
import json
import pkgutil
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from by_path import load
from click.testing import CliRunner
from streamlit.testing.v1 import AppTest

from dashboard.navigation import PAGE_FILES
from streams.config import Settings, load_settings
from streams.storage import db

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "dashboard" / "app.py"
PAGES = PAGE_FILES
TIMEOUT = 60


def load_bench() -> ModuleType:
    """bench/dashboard.py, which holds the synthetic run (bench/ is not a package)."""
    return load(Path("bench/dashboard.py"))


# ----------------------------------------------------------------------- fixtures


class Filled:
    """A migrated, filled database and what the app needs to find it."""

    def __init__(self, settings: Settings, registry: Path, run: Any) -> None:
        self.settings = settings
        self.registry = registry
        self.run = run

    @property
    def env(self) -> dict[str, str]:
        return {
            "LASTMILE_CLICKHOUSE_PORT": str(self.settings.clickhouse_port),
            "LASTMILE_CLICKHOUSE_DATABASE": self.settings.clickhouse_params()["database"],
            "LASTMILE_REGISTRY": str(self.registry),
        }

    def scalar(self, sql: str, **params: Any) -> Any:
        client = db.connect(self.settings)
        try:
            return client.query(sql, parameters=params).result_rows[0][0]
        finally:
            client.close()


def make_database(clickhouse: Any, fill: bool, root: Path) -> Filled:
    name = f"dash_{uuid.uuid4().hex[:10]}"
    settings = load_settings(
        env={}, toml_path=None, clickhouse_port=clickhouse.port, clickhouse_database=name
    )
    db.ensure_schema(settings)
    registry = root / f"registry-{name}"
    run = None
    if fill:
        client = db.connect(settings)
        try:
            run = load_bench().fill(client, registry, rows=20_000, hours=2.0)
        finally:
            client.close()
    return Filled(settings, registry, run)


@pytest.fixture(scope="module")
def filled(clickhouse: Any, tmp_path_factory: pytest.TempPathFactory) -> Filled:
    return make_database(clickhouse, True, tmp_path_factory.mktemp("dashboard"))


def serve_like_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every page through app.py, as under ``lastmile dashboard``.

    AppTest re-derives before each run whether the app "uses a pages directory"
    (it does: dashboard/pages/), and then runs a switched-to page file on its own;
    the command tells Streamlit up front that the app navigates with st.navigation
    (dashboard/cli.py). Do the same here.
    """
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def init(self: PagesManager, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


@pytest.fixture
def use(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[Filled], None]:
    """Point the app (which runs in this process) at a database through LASTMILE_*."""

    def point(target: Filled, served: bool = True) -> None:
        if served:
            serve_like_the_command(monkeypatch)
        monkeypatch.chdir(tmp_path)  # no lastmile.toml from the working directory
        for name in ("LASTMILE_CLICKHOUSE_URL", "LASTMILE_CONFIG", "LASTMILE_DASHBOARD_PASSWORD"):
            monkeypatch.delenv(name, raising=False)
        for name, value in target.env.items():
            monkeypatch.setenv(name, value)

    return point


def iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def render(filled: Filled, page: str, **params: str) -> AppTest:
    """The page as a browser would open it: query parameters, then the page's run.
    The time range defaults to the whole synthetic run, so the figures are fixed."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    if filled.run is not None:
        params.setdefault("from", iso(filled.run.start))
        params.setdefault("to", iso(filled.run.end))
    for key, value in params.items():
        at.query_params[key] = value
    at.session_state["lm_refresh"] = "off"
    at.run()
    if page != "overview":
        at.switch_page(PAGES[page]).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def number(text: str) -> float:
    """The number in a tile: "5.97 ms" -> 5.97, "1.2 s" -> 1200 (ms), "12.3k" -> 12300."""
    match = re.search(r"-?[0-9][0-9,]*\.?[0-9]*(?:e-?\d+)?", text)
    assert match, text
    value = float(match.group(0).replace(",", ""))
    if text.strip().endswith(" s"):
        value *= 1000
    if re.search(r"[0-9]k\b", text):
        value *= 1000
    return value


def charts_of(at: AppTest) -> list[dict[str, Any]]:
    """The Vega-Lite specs the page drew."""
    return [json.loads(node.proto.spec) for node in at.get("vega_lite_chart")]


def title_of(spec: dict[str, Any]) -> str:
    title = spec.get("title") or ""
    if not title:
        for layer in spec.get("layer", []):
            title = layer.get("title") or title
    return title if isinstance(title, str) else title.get("text", "")


# ------------------------------------------------------------------------- pages


@pytest.mark.parametrize("page", list(PAGES))
@pytest.mark.parametrize("model", ["", "fraud", "churn"])
def test_every_page_renders(filled: Filled, use: Callable, page: str, model: str) -> None:
    use(filled)
    params = {"model": model} if model else {}
    at = render(filled, page, **params)
    assert not at.error, [e.value for e in at.error]
    assert [t.value for t in at.title] == [page.replace("_", " ").capitalize()]
    # The sidebar is drawn on every page, and keeps the link's model across pages.
    assert at.selectbox(key="lm_model").value == model
    # Every page says when its data was read (the last line of the refreshing body).
    assert any("Data as of" in c.value for c in at.caption)


def test_overview_numbers_match_sql(filled: Filled, use: Callable) -> None:
    use(filled)
    run = filled.run
    at = render(filled, "overview")
    shown = metrics(at)
    seconds = (run.end - run.start).total_seconds()
    where = "ts >= {s:DateTime64(3, 'UTC')} AND ts < {e:DateTime64(3, 'UTC')}"
    predictions = filled.scalar(
        f"SELECT count() FROM predictions WHERE {where}", s=run.start, e=run.end
    )
    answered = filled.scalar(
        f"SELECT count() FROM predictions WHERE {where} AND variant != 'shadow'",
        s=run.start,
        e=run.end,
    )
    dead = filled.scalar(
        f"SELECT count() FROM dead_letters FINAL WHERE {where}", s=run.start, e=run.end
    )
    dead_requests = filled.scalar(
        f"SELECT count() FROM dead_letters FINAL WHERE {where} "
        "AND source_topic = 'scoring.requests'",
        s=run.start,
        e=run.end,
    )
    from dashboard.charts import fmt_rate

    assert predictions > answered > 0 and dead > 0
    # The rate tiles say now: the range's last minute (the range ended in the past).
    last = run.end - dt.timedelta(seconds=60)
    recent = {
        name: filled.scalar(sql.format(where=where), s=last, e=run.end)
        for name, sql in {
            "predictions": "SELECT count() FROM predictions WHERE {where}",
            "answered": "SELECT count() FROM predictions WHERE {where} AND variant != 'shadow'",
            "dead": "SELECT count() FROM dead_letters FINAL WHERE {where}",
            "dead_requests": "SELECT count() FROM dead_letters FINAL WHERE {where} "
            "AND source_topic = 'scoring.requests'",
        }.items()
    }
    assert 0 < recent["predictions"] < predictions
    assert shown["Predictions/s"] == fmt_rate(recent["predictions"] / 60)
    assert shown["Requests/s"] == fmt_rate((recent["answered"] + recent["dead_requests"]) / 60)
    assert shown["Dead letters/s"] == fmt_rate(recent["dead"] / 60)
    # The range's totals are in the tiles' help.
    help_of = {m.label: m.help for m in at.metric}
    assert f"{predictions:,}" in help_of["Predictions/s"]
    requests = answered + dead_requests
    assert f"{requests:,}, {fmt_rate(requests / seconds)}/s" in help_of["Requests/s"]
    assert f"{dead:,}" in help_of["Dead letters/s"]
    firing = filled.scalar("""
        SELECT count() FROM (SELECT alert_id, argMax(state, ts) AS last FROM alerts
                             GROUP BY alert_id) WHERE last = 'firing'""")
    assert firing == 3 and shown["Active alerts"] == "3"
    # Latency from the rollup's t-digests, against the exact quantiles of the raw rows.
    for q, label in ((0.5, "Latency p50"), (0.95, "Latency p95"), (0.99, "Latency p99")):
        exact = filled.scalar(
            f"SELECT quantileExact({q})(latency_ms) FROM predictions WHERE {where}",
            s=run.start,
            e=run.end,
        )
        assert number(shown[label]) == pytest.approx(exact, rel=0.1, abs=1.0), label
    assert shown["Sink lag"] == "42 msgs"
    # The traffic table: each version's share of its model's answered requests.
    frame = at.dataframe[1].value
    fraud_v2 = frame[(frame["model"] == "fraud") & (frame["variant"] == "challenger")]
    fraud_answered = filled.scalar(
        f"SELECT countIf(version = 2) / count() FROM predictions WHERE {where} AND model = 'fraud'",
        s=run.start,
        e=run.end,
    )
    assert float(fraud_v2["share"].iloc[0]) == pytest.approx(fraud_answered)


def test_overview_follows_the_version_picker(filled: Filled, use: Callable) -> None:
    use(filled)
    run = filled.run
    at = render(filled, "overview", model="fraud", version="2")
    n = filled.scalar(
        "SELECT count() FROM predictions WHERE model = 'fraud' AND version = 2 "
        "AND ts >= {s:DateTime64(3, 'UTC')} AND ts < {e:DateTime64(3, 'UTC')}",
        s=run.start,
        e=run.end,
    )
    from dashboard.charts import fmt_rate

    n_last = filled.scalar(
        "SELECT count() FROM predictions WHERE model = 'fraud' AND version = 2 "
        "AND ts >= {s:DateTime64(3, 'UTC')} AND ts < {e:DateTime64(3, 'UTC')}",
        s=run.end - dt.timedelta(seconds=60),
        e=run.end,
    )
    assert 0 < n_last < n
    assert metrics(at)["Predictions/s"] == fmt_rate(n_last / 60)
    assert at.selectbox(key="lm_model").value == "fraud"
    assert at.selectbox(key="lm_version").value == 2


def test_drift_link_opens_the_window_of_the_alert(filled: Filled, use: Callable) -> None:
    """What an alert's link carries (model, version, feature, at) selects the feature
    and the monitor window of that moment; the histogram counts that window's rows."""
    use(filled)
    run = filled.run
    at_time = run.drift_at + dt.timedelta(minutes=2, seconds=30)
    at = render(
        filled,
        "drift",
        model="fraud",
        version="1",
        feature="age",
        at=iso(at_time),
        statistic="wasserstein",
    )
    assert at.selectbox(key="lm_feature").value == "age"
    assert at.selectbox(key="lm_drift_statistic").value == "wasserstein"
    window = at.selectbox(key="lm_drift_window").value
    start = at_time.replace(second=0)
    assert window.startswith(f"{start:%Y-%m-%d %H:%M:%S}")
    rows = filled.scalar(
        "SELECT count() FROM predictions WHERE model = 'fraud' AND version = 1 "
        "AND mapContains(features_num, 'age') AND event_time >= {s:DateTime64(3, 'UTC')} "
        "AND event_time < {s:DateTime64(3, 'UTC')} + INTERVAL 1 MINUTE",
        s=start,
    )
    titles = [title_of(spec) for spec in charts_of(at)]
    assert f"age: reference v1 against {rows:,} rows of the window" in titles
    # Drifted: a quarter of the window's ages lie above the reference's maximum (80).
    compare = next(s for s in charts_of(at) if title_of(s).startswith("age: reference"))
    assert compare["encoding"]["x"]["field"] == "label"
    # The heatmap shows every feature and the score, and the line chart the focus feature.
    heat = next(s for s in charts_of(at) if "per feature" in title_of(s))
    assert "threshold 0.1" in title_of(heat)
    assert at.multiselect(key="lm_drift_lines").value == ["age"]


def view_of(filled: Filled, model: str, **choices: Any) -> Any:
    """The dashboard's view of `model` in the filled database over its whole run."""
    from dashboard import queries as q

    return q.View(
        db=q.Db.from_settings(filled.settings),
        registry=str(filled.registry),
        requests_topic="scoring.requests",
        model=model,
        since=filled.run.start,
        until=filled.run.end,
        **choices,
    )


def test_drift_heatmap_reads_the_monitor_metrics(filled: Filled, use: Callable) -> None:
    from dashboard import queries as q

    use(filled)
    run = filled.run
    view = view_of(filled, "fraud", version=1, step=60, tick=0)
    matrix = q.drift_matrix(view, "wasserstein")
    assert set(matrix["feature"]) == {"age", "salary", "loan", "plan", "__score__"}
    drifted = matrix[(matrix["feature"] == "age")]
    before = drifted[drifted["t"] < run.drift_at.replace(tzinfo=None)]["hi"]
    after = drifted[drifted["t"] >= run.drift_at.replace(tzinfo=None)]["hi"]
    assert before.max() < 0.1 <= after.min()


def test_performance_compares_champion_and_challenger(filled: Filled, use: Callable) -> None:
    use(filled)
    run = filled.run
    at = render(filled, "performance", model="fraud")
    shown = metrics(at)
    accuracy = {}
    for version in (1, 2):
        accuracy[version] = filled.scalar(
            """SELECT avg(p.label = o.label) FROM predictions AS p
               INNER JOIN outcomes AS o ON p.request_id = o.request_id AND p.model = o.model
               WHERE p.model = 'fraud' AND p.version = {v:UInt32}
                 AND p.ts >= {s:DateTime64(3, 'UTC')} AND p.ts < {e:DateTime64(3, 'UTC')}""",
            v=version,
            s=run.start,
            e=run.end,
        )
    assert shown["Accuracy · v1 champion"] == f"{accuracy[1]:.3f}"
    assert shown["Accuracy · v2 challenger"] == f"{accuracy[2]:.3f}"
    assert shown["Label delay (p50)"] == "5 min"
    # The rolling metric tiles follow the champion; the latest window says 0.70 or so.
    assert 0.6 < float(shown["accuracy · v1 (champion)"]) < 0.75


def test_performance_shows_the_learner_snapshots(filled: Filled, use: Callable) -> None:
    use(filled)
    at = render(filled, "performance", model="churn")
    snapshots = at.dataframe[-1].value
    assert list(snapshots["version"]) == [2, 3, 4]
    assert list(snapshots["parent"]) == [1, 2, 3]
    assert set(snapshots["registered_by"]) == {"learner@worker-1"}
    # The shadow version is scored on the same requests: it has its own labelled accuracy.
    assert any(label.endswith("v4 shadow") for label in metrics(at))


def test_alerts_page_lists_and_links_to_drift(filled: Filled, use: Callable) -> None:
    use(filled)
    run = filled.run
    at = render(filled, "alerts")
    shown = metrics(at)
    assert shown["Firing now"] == "3"
    fired = filled.scalar("SELECT countIf(state = 'firing') FROM alerts")
    resolved = filled.scalar("SELECT countIf(state = 'resolved') FROM alerts")
    assert (shown["Fired in range"], shown["Resolved in range"]) == (str(fired), str(resolved))
    events = at.dataframe[0].value
    assert set(events["rule"]) == {
        "feature_drift",
        "score_drift",
        "accuracy_drop",
        "latency_p99",
        "dead_letters",
    }
    links = [node.proto for node in at.get("page_link")]
    drift = [p for p in links if "feature=age" in p.query_string]
    assert len(drift) == 1 and drift[0].page.endswith("drift")
    assert "model=fraud" in drift[0].query_string and "version=1" in drift[0].query_string
    fired_at = run.drift_at + dt.timedelta(minutes=2)
    assert f"at={fired_at:%Y-%m-%dT%H%%3A%M%%3A%SZ}" in drift[0].query_string
    timeline = next(s for s in charts_of(at) if title_of(s) == "Alert timeline")
    assert timeline["mark"]["type"] == "bar"


def test_models_page_shows_aliases_and_lineage(filled: Filled, use: Callable) -> None:
    use(filled)
    at = render(filled, "models", model="churn")
    shown = metrics(at)
    assert (shown["Versions"], shown["Champion"], shown["Challenger"], shown["Shadow"]) == (
        "4",
        "v1",
        "none",
        "v4",
    )
    dot = at.get("graphviz_chart")[0].proto.spec
    for edge in ("v1 -> v2", "v2 -> v3", "v3 -> v4"):
        assert edge in dot
    profile = at.dataframe[-1].value
    assert list(profile["feature"]) == ["x0", "x1", "x2"]
    at = render(filled, "models", model="fraud")
    assert (metrics(at)["Champion"], metrics(at)["Challenger"]) == ("v1", "v2")


def test_dead_letters_page_counts_by_stage(filled: Filled, use: Callable) -> None:
    use(filled)
    run = filled.run
    at = render(filled, "dead_letters")
    total = filled.scalar(
        "SELECT count() FROM dead_letters FINAL WHERE ts >= {s:DateTime64(3, 'UTC')} "
        "AND ts < {e:DateTime64(3, 'UTC')}",
        s=run.start,
        e=run.end,
    )
    assert metrics(at)["Dead letters"] == f"{total:,}"
    reasons = at.dataframe[0].value
    assert set(reasons["stage"]) == {"decode", "validate", "route", "score"}
    # Digits are folded so one reason groups its many offsets.
    assert any("offset N" in r for r in reasons["reason"])
    latest = at.dataframe[1].value
    assert len(latest) == 50 and latest["ts"].is_monotonic_decreasing


def test_user_input_is_bound_not_spliced(filled: Filled, use: Callable) -> None:
    from dashboard import queries as q

    use(filled)
    # A link's model that does not exist falls back to all models.
    at = render(filled, "overview", model="x' OR 1=1 --", version="7")
    assert not at.error and at.selectbox(key="lm_model").value == ""
    # And values reach ClickHouse as bound parameters, never as SQL.
    run = filled.run
    view = view_of(filled, "x' OR 1=1 --", tick=-1)
    assert q.traffic_totals(view)["predictions"] == 0
    hostile = "age'] OR 1=1 --"
    assert q.numeric_histogram(
        view.with_model("fraud"), hostile, (0.0, 1.0), run.start, run.end
    ).empty


# ----------------------------------------------------------------- empty and broken


@pytest.fixture(scope="module")
def empty(clickhouse: Any, tmp_path_factory: pytest.TempPathFactory) -> Filled:
    return make_database(clickhouse, False, tmp_path_factory.mktemp("dashboard-empty"))


@pytest.mark.parametrize("page", list(PAGES))
def test_empty_database_says_what_to_do(empty: Filled, use: Callable, page: str) -> None:
    use(empty)
    at = render(empty, page)
    assert not at.error, [e.value for e in at.error]
    texts = [i.value for i in at.info] + [s.value for s in at.success]
    assert texts, f"{page} shows nothing about being empty"
    if page == "overview":
        assert any("lastmile simulate" in t for t in texts)


def test_unreachable_clickhouse_is_an_error_not_a_crash(
    use: Callable, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from streams.local.processes import free_port

    nowhere = Filled(
        load_settings(env={}, toml_path=None, clickhouse_port=free_port()), tmp_path, None
    )
    use(nowhere)
    at = render(nowhere, "overview")
    messages = [e.value for e in at.error]
    assert any("cannot reach ClickHouse" in m and "lastmile up" in m for m in messages)


# ------------------------------------------------------------------------ password


def test_nothing_renders_until_the_right_password(
    filled: Filled, use: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(filled)
    monkeypatch.setenv("LASTMILE_DASHBOARD_PASSWORD", "s3cret pass")
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    assert not at.exception
    assert not at.metric and not at.sidebar.selectbox and not at.dataframe
    assert [t.value for t in at.title] == ["lastmile"]
    with pytest.raises(ValueError):
        at.switch_page("pages/drift.py")  # not a page until signed in

    at.text_input(key="lm_password").input("s3cret")
    at.button[0].click().run()
    assert [e.value for e in at.error] == ["Wrong password."]
    assert not at.metric

    at.text_input(key="lm_password").input("s3cret pass")
    at.button[0].click().run()
    assert not at.exception and not at.error
    assert "Requests/s" in metrics(at)
    at.switch_page("pages/drift.py").run()
    assert [t.value for t in at.title] == ["Drift"]

    # A changed password signs the session out.
    monkeypatch.setenv("LASTMILE_DASHBOARD_PASSWORD", "another")
    at.run()
    assert not at.metric and [t.value for t in at.title] == ["lastmile"]


def test_a_page_run_on_its_own_is_gated_too(
    filled: Filled, use: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Streamlit can run a file of pages/ without the entry point (before anything
    called st.navigation); the page then asks for the password itself."""
    from streamlit.runtime.pages_manager import PagesManager

    use(filled, served=False)
    monkeypatch.setenv("LASTMILE_DASHBOARD_PASSWORD", "s3cret")
    original = PagesManager.__init__

    def in_pages_directory_mode(self: PagesManager, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = True

    monkeypatch.setattr(PagesManager, "__init__", in_pages_directory_mode)
    at = AppTest.from_file(str(APP.parent / "pages" / "overview.py"), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception and not at.metric and not at.sidebar.selectbox
    assert [t.value for t in at.title] == ["lastmile"]
    at.text_input(key="lm_password").input("s3cret")
    at.button[0].click().run()
    assert [t.value for t in at.title] == ["Overview"] and "Requests/s" in metrics(at)


def test_password_comparison() -> None:
    from dashboard.auth import password_matches

    assert password_matches("ünïcode", "ünïcode")
    assert not password_matches("", "x") and not password_matches("x ", "x")


# --------------------------------------------------------------------- the command


def test_dashboard_command_binds_loopback_headless_without_telemetry(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from dashboard import cli

    monkeypatch.chdir(tmp_path)
    for name in ("LASTMILE_DASHBOARD_HOST", "LASTMILE_DASHBOARD_PORT", "LASTMILE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    calls: list[tuple[str, int]] = []
    monkeypatch.setattr(cli, "run", lambda host, port: calls.append((host, port)))
    result = CliRunner().invoke(cli.dashboard, [])
    assert result.exit_code == 0, result.output
    assert calls == [("127.0.0.1", 8501)]
    result = CliRunner().invoke(
        cli.dashboard, ["--port", "9999"], env={"LASTMILE_DASHBOARD_HOST": "0.0.0.0"}
    )
    assert calls[-1] == ("0.0.0.0", 9999)
    assert "without a password" in result.output
    args = cli.streamlit_args("127.0.0.1", 8501)
    pairs = dict(zip(args[2::2], args[3::2], strict=True))
    assert args[:2] == ["run", str(APP)]
    assert pairs["--server.address"] == "127.0.0.1" and pairs["--server.port"] == "8501"
    assert pairs["--server.headless"] == "true"
    assert pairs["--browser.gatherUsageStats"] == "false"


@pytest.mark.parametrize(
    "module", ["dashboard.charts", "dashboard.queries", "dashboard.auth", "dashboard.cli"]
)
def test_doctests(module: str) -> None:
    imported = importlib.import_module(module)
    # testmod finds a module's own docstrings only: a package's live in its modules.
    modules = [imported]
    if hasattr(imported, "__path__"):
        prefix = f"{module}."
        found = pkgutil.iter_modules(imported.__path__, prefix)
        modules += [importlib.import_module(info.name) for info in found]
    for each in modules:
        result = doctest.testmod(each, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, each.__name__


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    """Cached results are keyed by database; the refresh tick is per hour with
    refresh off, so a test never sees another database's numbers. Clear anyway:
    the empty and filled databases are each read by many tests."""
    import streamlit as st

    st.cache_data.clear()
    yield
