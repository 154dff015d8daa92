"""``lastmile models compare`` on the embedded ClickHouse: predictions and outcomes
inserted as the sink stores them, arms taken from the model's state."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from river import linear_model
from sklearn.metrics import accuracy_score, mean_absolute_error, root_mean_squared_error

from monitors.comparison import Outcomes, compare_paired
from streams.cli.compare import ComparisonError, compare_model, compare_rows
from streams.cli.models import models
from streams.config import Settings, load_settings
from streams.models import ControlPlane
from streams.storage import db

NOW = dt.datetime.now(dt.UTC)
COLUMNS = ["request_id", "model", "version", "variant", "score", "label", "event_time", "ts",
           "latency_ms", "kafka_partition", "kafka_offset"]  # fmt: skip


@pytest.fixture(scope="module")
def settings(clickhouse: Any, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("compare")
    s = load_settings(
        env={},
        toml_path=None,
        clickhouse_port=clickhouse.port,
        clickhouse_database=f"cmp_{uuid.uuid4().hex[:10]}",
        registry=str(root / "registry"),
    )
    db.ensure_schema(s)
    return s


def register(settings: Settings, name: str, versions: int, task: str) -> ControlPlane:
    plane = ControlPlane(settings, publish=False)
    for _ in range(versions):
        classifier = task == "classification"
        model = linear_model.LogisticRegression() if classifier else linear_model.LinearRegression()
        positive = "1" if classifier else None
        plane.registry.register(
            name, model, "river", features=["x"], task=task, positive_label=positive
        )
    plane.promote(name, 1)
    return plane


def insert(settings: Settings, predictions: list[dict], outcomes: list[dict]) -> None:
    client = db.connect(settings)
    try:
        client.insert("predictions", [[p.get(c) for c in COLUMNS] for p in predictions],
                      column_names=COLUMNS)  # fmt: skip
        cols = ["request_id", "model", "label", "value", "ts", "kafka_partition", "kafka_offset"]
        client.insert("outcomes", [[o.get(c) for c in cols] for o in outcomes], column_names=cols)
    finally:
        client.close()


def prediction(rid: str, model: str, version: int, variant: str, label: Any, score: float,
               ago: float, offset: int) -> dict[str, Any]:  # fmt: skip
    t = NOW - dt.timedelta(seconds=ago)
    return {"request_id": rid, "model": model, "version": version, "variant": variant,
            "score": score, "label": label, "event_time": t, "ts": t, "latency_ms": 1.0,
            "kafka_partition": 0, "kafka_offset": offset}  # fmt: skip


def outcome(rid: str, model: str, label: str | None, value: float | None, i: int) -> dict:
    return {"request_id": rid, "model": model, "label": label, "value": value,
            "ts": NOW, "kafka_partition": 0, "kafka_offset": i}  # fmt: skip


def run(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(models, ["compare", *args], obj=settings, catch_exceptions=False)


def test_split_compare_decides_for_the_better_challenger(settings: Settings) -> None:
    plane = register(settings, "fraud", 2, "classification")
    plane.promote("fraud", 2, "challenger")
    plane.split("fraud", {"champion": 50, "challenger": 50})
    rng = np.random.default_rng(1)
    preds, outs, truth, said = [], [], {1: [], 2: []}, {1: [], 2: []}
    for i in range(6_000):
        version = 1 + i % 2
        accuracy = 0.8 if version == 1 else 0.9
        y = rng.random() < 0.5
        right = rng.random() < accuracy
        label = "1" if y == right else "0"
        rid = f"f{i}"
        preds.append(prediction(rid, "fraud", version, ["champion", "challenger"][version - 1],
                                label, 0.7 if label == "1" else 0.3, 60 + i, i))  # fmt: skip
        if i < 5_800:  # the last requests have no outcome yet: not counted
            outs.append(outcome(rid, "fraud", "1" if y else "0", None, i))
            truth[version].append(y)
            said[version].append(label == "1")
    # Old predictions of the same model, before --since: not counted either.
    preds += [prediction(f"old{i}", "fraud", 1, "champion", "0", 0.2, 3 * 86400, 10_000 + i)
              for i in range(300)]  # fmt: skip
    outs += [outcome(f"old{i}", "fraud", "1", None, 10_000 + i) for i in range(300)]
    insert(settings, preds, outs)

    result = run(settings, "fraud", "--json", "--since", "1d")
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    assert (got["model"], got["metric"], got["alpha"]) == ("fraud", "accuracy", 0.05)
    assert got["decision"] == "challenger_better"
    champion, challenger = got["arms"]
    assert (champion["variant"], champion["version"], champion["n"]) == ("champion", 1, 2_900)
    assert (challenger["variant"], challenger["version"], challenger["n"]) == (
        "challenger",
        2,
        2_900,
    )
    assert champion["value"] == pytest.approx(accuracy_score(truth[1], said[1]))
    assert challenger["value"] == pytest.approx(accuracy_score(truth[2], said[2]))
    assert got["lift"] == pytest.approx(challenger["value"] - champion["value"])
    assert 0 < got["lower"] < got["lift"] < got["upper"]

    table = run(settings, "fraud", "--metric", "roc_auc")
    assert table.exit_code == 0, table.output
    assert "decision:" in table.output and "no sequential test for roc_auc" in table.output
    assert "challenger" in table.output and "2900" in table.output


def test_shadow_compare_is_paired_by_request(settings: Settings) -> None:
    plane = register(settings, "price", 2, "regression")
    plane.shadow("price", 2)
    rng = np.random.default_rng(2)
    preds, outs = [], []
    truth = rng.normal(100, 20, 2_000)
    champ = truth + rng.normal(0, 10, 2_000)
    shadow = truth + rng.normal(0, 8, 2_000)
    for i in range(2_000):
        rid = f"p{i}"
        preds.append(prediction(rid, "price", 1, "champion", None, champ[i], 60 + i, 2 * i))
        preds.append(prediction(rid, "price", 2, "shadow", None, shadow[i], 60 + i, 2 * i + 1))
        outs.append(outcome(rid, "price", None, float(truth[i]), i))
    insert(settings, preds, outs)
    c = compare_model(settings, "price", metric="mae", since=86_400)
    reference = compare_paired(
        "price", Outcomes("champion", 1, truth, champ), Outcomes("shadow", 2, truth, shadow), "mae"
    )
    assert c.paired and c.decision == "challenger_better"
    assert [a.n for a in c.arms] == [2_000, 2_000]
    assert c.arms[0].value == pytest.approx(mean_absolute_error(truth, champ))
    assert c.lift == pytest.approx(reference.lift) and c.lower == pytest.approx(reference.lower)
    table = run(settings, "price", "--metric", "rmse")
    assert table.exit_code == 0, table.output
    assert "paired by request" in table.output and "mse (rmse is its square root)" in table.output
    assert f"{root_mean_squared_error(truth, shadow):.4f}" in table.output


def test_multiclass_rows_are_compared_on_accuracy_only() -> None:
    rows = [
        {"variant": v, "version": n, "request_id": f"{v}{i}", "score": 0.9, "label": said,
         "outcome_label": truth, "outcome_value": None}
        for v, n, hits in (("champion", 1, 6), ("challenger", 2, 9))
        for i, (said, truth) in enumerate(
            [("b", "b")] * hits * 10 + [("a", "c")] * (10 - hits) * 10
        )
    ]  # fmt: skip
    c = compare_rows("iris", rows, "challenger", 1, 2, labels=3, target_n=200)
    assert [a.value for a in c.arms] == [0.6, 0.9] and c.lift == pytest.approx(0.3)
    assert c.decision == "challenger_better"
    with pytest.raises(ComparisonError, match="only accuracy"):
        compare_rows("iris", rows, "challenger", 1, 2, metric="log_loss", labels=3)


def test_nothing_to_compare_and_wrong_metric_are_one_line_errors(settings: Settings) -> None:
    register(settings, "lonely", 1, "classification")
    result = run(settings, "lonely")
    assert result.exit_code == 1
    assert "neither a challenger nor a shadow" in result.output
    bad = run(settings, "price", "--metric", "accuracy")
    assert bad.exit_code == 1 and "accuracy is not a metric of regression" in bad.output
    assert run(settings, "fraud", "--since", "soon").exit_code == 2
