"""``client.score`` through the gateway over real HTTP, on the embedded stack (``stack``,
from client_stack.py, its gateway running): the same frame as through Kafka, the same per-row
reasons, each answer on ``scoring.predictions`` with caller ``http``; and a clear error
when no gateway listens."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from client_stack import (
    running_stack,  # noqa: F401 (the stack fixture)
    trained_model,
    training_frame,
    wait_for,
)

import lastmile
from schemas import Codec
from streams.config import Settings
from streams.kafka.topics import read_to_end
from streams.local.processes import free_port
from streams.roles.gateway import CALLER, GatewayRole


@pytest.fixture
def client(stack: Settings) -> Iterator[lastmile.Client]:
    with lastmile.Client(settings=stack, gateway=True) as c:
        yield c


def published(settings: Settings, ids: set[str]) -> dict[str, dict]:
    """The predictions on the topic now whose request ids are among ``ids``."""
    codec = Codec.from_settings(settings)
    topic = settings.topic_predictions
    records = (
        codec.decode(m.value(), m.headers(), "Prediction", topic)
        for m in read_to_end(settings, topic)
    )
    return {r["request_id"]: r for r in records if r["request_id"] in ids}


def serving(settings: Settings, model: str) -> None:
    """Wait until the gateway serves `model`: its watcher applies a registration about a
    second after it is published, and a model it does not know yet is a 404 (a row's
    error), as it would be for any caller."""
    url = f"http://127.0.0.1:{settings.gateway_port}/v2/models/{model}/ready"
    wait_for(lambda: httpx.get(url).is_success, 30, f"the gateway to serve {model}")


def test_rows_scored_over_the_gateway_are_answered_as_over_kafka(
    client: lastmile.Client, stack: Settings
) -> None:
    train = training_frame(300, seed=11)
    model = trained_model(train)
    client.models.register(model, name="card", reference=train, promote="champion")
    serving(client.settings, "card")
    rows = training_frame(25, seed=12)
    rows.index = [f"row-{i}" for i in range(len(rows))]
    when = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)
    entities = [f"e{i % 5}" for i in range(len(rows))]

    over_http = client.score("card", rows, timeout=60, event_time=when, entity_ids=entities)
    over_kafka = client.score("card", rows, timeout=60, via="kafka")

    assert list(over_http.columns) == list(over_kafka.columns)
    assert list(over_http.index) == list(rows.index)
    assert over_http.dtypes.equals(over_kafka.dtypes)
    assert over_http["error"].isna().all(), over_http["error"].tolist()
    cols = ["model", "version", "variant", "score", "label"]
    pd.testing.assert_frame_equal(over_http[cols], over_kafka[cols])
    assert (over_http["latency_ms"] > 0).all()
    for key, row in rows.iterrows():  # River's own answer on the same row
        assert over_http.loc[key, "score"] == pytest.approx(
            model.predict_proba_one(row.to_dict())[True], rel=1e-9
        )

    # Each answer was on scoring.predictions, caller http, as it was returned.
    logged = published(stack, set(over_http["request_id"]))
    assert len(logged) == len(rows)
    for (key, answer), entity in zip(over_http.iterrows(), entities, strict=True):
        p = logged[answer["request_id"]]
        assert (p["caller"], p["entity_id"], p["version"]) == (CALLER, entity, 1)
        assert p["score"] == answer["score"] and p["label"] == answer["label"]
        assert p["features"] == pytest.approx(rows.loc[key].to_dict())
        assert p["event_time"] in (when, int(when.timestamp() * 1000))


def test_a_refused_row_says_why_as_over_kafka_and_the_others_are_answered(
    client: lastmile.Client,
) -> None:
    train = training_frame(200, seed=13)
    client.models.register(trained_model(train), name="strict", reference=train, promote="champion")
    serving(client.settings, "strict")
    rows = [{"amount": 42.0, "age": 30}, {"amount": 42.0}, {"amount": 70.0, "age": "old"}]
    over_http = client.score("strict", rows, timeout=60)
    over_kafka = client.score("strict", rows, timeout=60, via="kafka")
    assert over_http["error"].isna().tolist() == [True, False, False]
    assert over_http["score"].notna().tolist() == [True, False, False]
    assert over_http["error"].tolist()[1:] == over_kafka["error"].tolist()[1:]
    assert over_http.loc[1, "error"].startswith("score") and "age" in over_http.loc[1, "error"]

    unknown = client.score("no-such-model", [{"amount": 1.0}], timeout=60)
    assert unknown.loc[0, "error"].startswith("route: "), unknown.loc[0, "error"]
    assert "no-such-model" in unknown.loc[0, "error"]


def test_no_gateway_at_the_address_is_a_clear_lastmile_error(stack: Settings) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with lastmile.Client(settings=stack, gateway=url) as nowhere:
        assert repr(nowhere).endswith(f"gateway={url!r})")
        with pytest.raises(lastmile.GatewayUnavailable, match="does not answer") as caught:
            nowhere.score("card", [{"amount": 1.0, "age": 30}], timeout=10)
    assert url in str(caught.value) and isinstance(caught.value, lastmile.LastmileError)


def test_what_the_gateway_cannot_carry_is_refused_before_anything_is_sent(
    client: lastmile.Client,
) -> None:
    with pytest.raises(lastmile.ClientError, match="row 0"):
        client.score("card", [{"amount": [1, 2]}], timeout=5)
    with pytest.raises(lastmile.ClientError, match="caller"):
        client.score("card", [{"amount": 1.0}], caller="batch-job")
    with pytest.raises(lastmile.ClientError, match="via"):
        client.score("card", [{"amount": 1.0}], via="carrier-pigeon")
    with pytest.raises(lastmile.ClientError, match="URL"):
        lastmile.Client(gateway="127.0.0.1:8080")
    assert client.score("card", pd.DataFrame(columns=["amount", "age"])).empty


def test_a_gateway_that_is_not_ready_is_retried_until_the_timeout(
    stack: Settings, tmp_path: Path
) -> None:
    """A real gateway with no broker to read models.events from answers 503 to every
    row: the client tries again until ``timeout``, then keeps what it has."""
    lost = dataclasses.replace(
        stack, kafka_port=free_port(), gateway_port=free_port(), data_dir=tmp_path
    )
    gateway = GatewayRole(lost)
    gateway.start()
    try:
        url = f"http://127.0.0.1:{lost.gateway_port}"
        assert wait_for(lambda: httpx.get(f"{url}/v2/health/ready").status_code == 503, 30, "up")
        with (
            lastmile.Client(settings=lost, gateway=url) as waiting,
            pytest.raises(lastmile.ScoreTimeout, match="models.events") as caught,
        ):
            waiting.score("card", [{"amount": 1.0, "age": 30}, {"amount": 2.0, "age": 40}], 1.5)
    finally:
        gateway.stop(10)
    err = caught.value
    assert len(err.missing) == 2 and list(err.frame["request_id"]) == err.missing
    assert err.frame["error"].tolist() == ["no answer yet"] * 2
