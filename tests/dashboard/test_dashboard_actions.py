"""The dashboard shows what the operator did: the Alerts page beside each alert, the
Models page on a timeline. One alert and its action are inserted as the sink stores them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

# `use` is test_dashboard.py's fixture: pointing the app at a database.
from test_dashboard import Filled, iso, make_database, metrics, render, use  # noqa: F401

from streams.models import ControlPlane
from streams.storage import db

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
AT = NOW - dt.timedelta(minutes=10)
MESSAGE = "rolled back fraud from v2 to v1"


@pytest.fixture(scope="module")
def acted(clickhouse: Any, tmp_path_factory: pytest.TempPathFactory) -> Filled:
    filled = make_database(clickhouse, False, tmp_path_factory.mktemp("actions"))
    with ControlPlane(None, registry=_registry(filled.registry), publish=False) as plane:
        from river import linear_model

        for _ in range(2):
            plane.register_and_publish(
                "fraud", linear_model.LogisticRegression(), "river", features=["x"]
            )
        plane.promote("fraud", 1)
    client = db.connect(filled.settings)
    try:
        client.insert(
            "alerts",
            [["a1", "fraud", 2, "performance", "accuracy", "", "firing", 0.3, 0.7,
              "critical", "accuracy_drop", AT, "accuracy of fraud v2 = 0.3", 0, 0]],
            column_names=["alert_id", "model", "version", "kind", "metric", "feature",
                          "state", "value", "threshold", "severity", "rule", "ts", "message",
                          "kafka_partition", "kafka_offset"],
        )  # fmt: skip
        client.insert(
            "actions",
            [["x1", "a1", "accuracy_drop", "fraud", 2, "rollback", "enforce", "done", "", 2, 1,
              "", "", "accuracy", 0.3, 0.7, AT - dt.timedelta(seconds=60), AT,
              AT + dt.timedelta(seconds=2), "lastmile-operator", MESSAGE, 0, 0]],
            column_names=["action_id", "alert_id", "rule", "model", "version", "kind", "mode",
                          "outcome", "reason", "version_before", "version_after",
                          "split_before", "split_after", "metric", "value", "threshold",
                          "window_start", "window_end", "ts", "actor", "message",
                          "kafka_partition", "kafka_offset"],
        )  # fmt: skip
    finally:
        client.close()
    return filled


def _registry(path: Path) -> Any:
    from streams.models import Registry

    return Registry(str(path))


def window() -> dict[str, str]:
    return {"from": iso(NOW - dt.timedelta(hours=1)), "to": iso(NOW + dt.timedelta(minutes=5))}


def test_the_alerts_page_says_what_was_done_about_each_alert(acted: Filled, use) -> None:  # noqa: F811
    use(acted)
    at = render(acted, "alerts", **window())
    events = at.dataframe[0].value
    [row] = events.to_dict("records")
    assert (row["rule"], row["action"]) == ("accuracy_drop", MESSAGE)


def test_the_models_page_shows_the_actions_on_a_timeline(acted: Filled, use) -> None:  # noqa: F811
    use(acted)
    at = render(acted, "models", model="fraud", **window())
    assert metrics(at)["Versions"] == "2"
    table = next(d.value for d in at.dataframe if "outcome" in d.value.columns)
    assert list(table["message"]) == [MESSAGE] and list(table["outcome"]) == ["done"]
    specs = [node.proto.spec for node in at.get("vega_lite_chart")]
    assert any("Actions timeline" in spec for spec in specs)
