"""``import lastmile`` on the embedded stack: a River model registered and promoted from
Python, rows scored through Kafka by a running scorer, and what the sink stored read back
as DataFrames (predictions, the monitor's metrics and alerts).

One stack for the module (``stack``, from client_stack.py): topics and a database of its
own, and a scorer, a sink and a monitor (and a gateway) running in this process.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator

import pandas as pd
import pytest
from client_stack import (
    FEATURES,
    running_stack,  # noqa: F401 (the stack fixture)
    trained_model,
    training_frame,
    wait_for,
)

import lastmile
from schemas import Codec
from streams.config import Settings
from streams.kafka.topics import ensure_topics, read_to_end


@pytest.fixture
def client(stack: Settings) -> Iterator[lastmile.Client]:
    with lastmile.Client(settings=stack) as c:
        yield c


def test_register_promote_score_and_read_the_predictions_back(client: lastmile.Client) -> None:
    train = training_frame(500, seed=1)
    model = trained_model(train)
    version = lastmile.register(
        model, name="fraud", reference=train, promote="champion", client=client
    )
    assert (version.version, version.flavor, version.task) == (1, "river", "classification")
    assert set(version.feature_names) == FEATURES
    listed = client.models.list().set_index("model")
    assert listed.loc["fraud", "champion"] == 1
    assert client.models.show("fraud")["aliases"].tolist() == ["champion"]

    rows = training_frame(40, seed=2)
    rows.index = [f"row-{i}" for i in range(len(rows))]
    answers = client.score("fraud", rows, timeout=60)

    assert list(answers.index) == list(rows.index)
    assert answers["error"].isna().all(), answers["error"].tolist()
    assert set(answers["version"]) == {1} and set(answers["variant"]) == {"champion"}
    # The scorer's answer is River's own on the same row.
    for key, row in rows.iterrows():
        expected = model.predict_proba_one(row.to_dict())[True]
        assert answers.loc[key, "score"] == pytest.approx(expected, rel=1e-9)
        assert answers.loc[key, "label"] == ("1" if expected >= 0.5 else "0")

    stored = wait_for(
        lambda: (f := client.predictions("fraud")) is not None and len(f) >= len(rows) and f,
        60,
        "the sink to store the predictions",
    )
    assert sorted(stored["request_id"]) == sorted(answers["request_id"])
    by_id = stored.set_index("request_id")
    for key, answer in answers.iterrows():
        got = by_id.loc[answer["request_id"]]
        assert got["score"] == pytest.approx(answer["score"])
        assert got["version"] == 1 and got["variant"] == "champion"
        assert got["features"] == pytest.approx(rows.loc[key].to_dict())
    # The time bounds are the scored time's.
    assert client.predictions("fraud", since=dt.timedelta(0)).empty
    assert len(client.predictions("fraud", since=dt.timedelta(hours=1))) == len(rows)
    assert client.predictions("fraud", version=2).empty


def test_a_row_that_cannot_be_scored_says_why_and_the_others_are_answered(
    client: lastmile.Client,
) -> None:
    train = training_frame(200, seed=3)
    client.models.register(
        trained_model(train), name="checked", reference=train, promote="champion"
    )
    rows = [{"amount": 42.0, "age": 30}, {"amount": 42.0}, {"amount": 70.0, "age": 61}]
    answers = client.score("checked", rows, timeout=60)
    assert answers["error"].isna().tolist() == [True, False, True]
    assert "age" in answers.loc[1, "error"] and answers.loc[1, "error"].startswith("score")
    assert answers["score"].notna().tolist() == [True, False, True]

    unknown = client.score("no-such-model", [{"amount": 1.0}], timeout=60)
    assert unknown.loc[0, "error"].startswith("route"), unknown.loc[0, "error"]


def test_without_a_scorer_score_times_out_and_keeps_what_it_sent(
    client: lastmile.Client, stack: Settings
) -> None:
    idle = dataclasses.replace(stack, topic_requests=f"{stack.topic_requests}.nobody")
    ensure_topics(idle)
    with lastmile.Client(settings=idle) as alone, pytest.raises(lastmile.ScoreTimeout) as caught:
        alone.score("fraud", pd.DataFrame({"amount": [1.0, 2.0], "age": [30, 40]}), timeout=2)
    err = caught.value
    assert len(err.missing) == 2 and list(err.frame["request_id"]) == err.missing
    assert "scorer" in str(err) and isinstance(err, lastmile.LastmileError)


def test_bad_rows_are_refused_before_anything_is_sent(client: lastmile.Client) -> None:
    with pytest.raises(lastmile.ClientError, match="row 0"):
        client.score("fraud", [{"amount": [1, 2]}], timeout=5)
    with pytest.raises(lastmile.ClientError, match="not a time"):
        client.predictions("fraud", since="yesterday-ish")


def test_metrics_and_alerts_of_a_drifting_window_as_frames(
    client: lastmile.Client, stack: Settings
) -> None:
    """Rows far from the reference in one window: the monitor's drift metrics and its
    dataset_drift alert come back from ClickHouse exactly as it published them."""
    train = training_frame(1000, seed=4)
    client.models.register(trained_model(train), name="drifty", reference=train)
    client.models.promote("drifty", 1)
    # Windows in the future, so no earlier test's events make these late.
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)).replace(second=0, microsecond=0)
    drifted = training_frame(300, seed=5, shift=60.0)
    client.score("drifty", drifted, timeout=60, event_time=start + dt.timedelta(seconds=5))
    # A later event closes the window (its end plus the allowed lateness have passed).
    client.score("drifty", drifted.head(1), timeout=60, event_time=start + dt.timedelta(minutes=3))

    alerts = wait_for(
        lambda: (a := client.alerts("drifty")) is not None and not a.empty and a,
        90,
        "the monitor's alert to be stored",
    )
    published = [
        Codec.from_settings(stack).decode(m.value(), m.headers(), "Alert")
        for m in read_to_end(stack, stack.topic_alerts)
    ]
    mine = [a for a in published if a["model"] == "drifty"]
    assert sorted(alerts["alert_id"]) == sorted(a["alert_id"] for a in mine)
    assert "dataset_drift" in set(alerts["rule"])
    firing = client.alerts("drifty", firing=True)
    assert set(firing["alert_id"]) <= set(alerts["alert_id"]) and not firing.empty
    assert set(firing["state"]) == {"firing"}

    drift = client.metrics("drifty", "drift", feature="amount")
    assert not drift.empty and drift["value"].max() == 1.0
    assert (drift["window_start"] >= pd.Timestamp(start)).all()

    def published_metrics() -> set[tuple]:
        codec = Codec.from_settings(stack)
        records = [
            codec.decode(m.value(), m.headers(), "MonitorMetric")
            for m in read_to_end(stack, stack.topic_metrics)
        ]
        return {
            (r["metric"], r["feature"] or "", r["segment"] or "", r["version"] or 0,
             r["window_start"], r["value"])
            for r in records
            if r["model"] == "drifty"
        }  # fmt: skip

    def stored_metrics() -> set[tuple]:
        return {
            (r.metric, r.feature, r.segment, r.version, int(r.window_start.timestamp() * 1000),
             r.value)
            for r in client.metrics("drifty").itertuples()
        }  # fmt: skip

    # Every metric the monitor published is a row of the frame, value for value.
    wait_for(lambda: stored_metrics() == published_metrics(), 60, "every metric to be stored")


def test_simulate_sends_the_requests_lastmile_simulate_would(
    client: lastmile.Client, stack: Settings
) -> None:
    summary = client.simulate("sim", count=50, seed=3, label_delay=None)
    assert (summary.requests, summary.outcomes, summary.failed) == (50, 0, 0)
    codec = Codec.from_settings(stack)
    sent = [
        codec.decode(m.value(), m.headers(), "ScoringRequest")
        for m in read_to_end(stack, stack.topic_requests)
    ]
    simulated = [r for r in sent if r["model"] == "sim"]
    assert len(simulated) == 50 and len({r["request_id"] for r in simulated}) == 50
    with pytest.raises(lastmile.ClientError, match="stream"):
        client.simulate("sim", stream="nope")
