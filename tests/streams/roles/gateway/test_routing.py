"""An HTTP request is routed as a Kafka request is (split, shadow, pinned version), its
trace context comes out on its prediction, and the gateway counts what it answered."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest
from confluent_kafka import Producer
from gateway_helpers import Gateway, predictions, sigmoid
from topic_reading import read_messages

from streams.roles.scorer import ScorerLane


def infer(gateway: Gateway, x: float, entity: str | None = None, **extra) -> httpx.Response:
    body: dict = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [x]}]}
    if entity is not None:
        body["parameters"] = {"entity_id": entity}
    return httpx.post(f"{gateway.url}/v2/models/m/infer", json=body, **extra)


def test_a_split_is_sticky_per_entity_and_agrees_with_the_kafka_scorer(gateway: Gateway) -> None:
    settings, control = gateway.settings, gateway.control
    v2 = gateway.register(2.0)
    control.promote("m", v2, alias="challenger")
    control.split("m", {"champion": 50, "challenger": 50})
    gateway.sees("m", lambda s: len(s.split) == 2)

    entities = [f"customer-{i}" for i in range(40)]
    over_http = {}
    for entity in entities:
        first, again = infer(gateway, 1.0, entity).json(), infer(gateway, 2.0, entity).json()
        variant = first["outputs"][3]["data"][0]
        assert again["outputs"][3]["data"][0] == variant  # sticky
        version = first["outputs"][2]["data"][0]
        assert first["outputs"][0]["data"][0] == pytest.approx(
            sigmoid(-3.0 if version == 1 else 2.0)
        )
        over_http[entity] = (version, variant)
    assert {variant for _, variant in over_http.values()} == {"champion", "challenger"}

    # The same entities through the Kafka scorer land on the same versions.
    producer = Producer(settings.producer_config())
    for entity in entities:
        request = {
            "request_id": f"kafka-{entity}",
            "model": "m",
            "features": {"x": 1.0},
            "event_time": int(time.time() * 1000),
            "entity_id": entity,
        }
        producer.produce(settings.topic_requests, orjson.dumps(request), entity.encode())
    assert producer.flush(30) == 0
    lane = ScorerLane(settings)
    lane.start()
    try:
        logged = predictions(settings, 2 * len(entities) + len(entities))
    finally:
        lane.stop()
    over_kafka = {
        p["entity_id"]: (p["version"], p["variant"]) for p in logged if p["caller"] != "http"
    }
    assert over_kafka == over_http
    http_logged = [p for p in logged if p["caller"] == "http"]
    assert len(http_logged) == 2 * len(entities)
    assert all(over_http[p["entity_id"]] == (p["version"], p["variant"]) for p in http_logged)


def test_a_pinned_version_answers_and_a_shadow_is_logged_not_returned(gateway: Gateway) -> None:
    control = gateway.control
    v2 = gateway.register(1.0)
    v3 = gateway.register(0.5)
    control.promote("m", v2, alias="challenger")
    control.shadow("m", v3)
    gateway.sees("m", lambda s: s.shadow == v3 and s.aliases.get("challenger") == v2)

    body = {"id": "pin", "inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [0]}]}
    pinned = httpx.post(f"{gateway.url}/v2/models/m/versions/{v2}/infer", json=body).json()
    assert pinned["model_version"] == str(v2)
    assert pinned["outputs"][3]["data"] == ["challenger"]
    assert pinned["outputs"][0]["data"][0] == pytest.approx(sigmoid(1.0))

    routed = infer(gateway, 0.0, "someone").json()
    assert routed["model_version"] == "1" and routed["outputs"][3]["data"] == ["champion"]
    logged = predictions(gateway.settings, 3)
    by_variant = sorted((p["request_id"] == "pin", p["version"], p["variant"]) for p in logged)
    # the pinned request is not routed, so no shadow; the routed one has its shadow logged
    assert by_variant == [(False, 1, "champion"), (False, v3, "shadow"), (True, v2, "challenger")]


def test_traceparent_comes_out_on_the_prediction(gateway: Gateway) -> None:
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    response = infer(gateway, 1.0, headers={"traceparent": trace})
    assert response.status_code == 200
    [message] = read_messages(gateway.settings, gateway.settings.topic_predictions, 1, timeout=30)
    assert ("traceparent", trace.encode()) in message.headers()


def test_metrics_count_requests_and_predictions_by_model_version_and_variant(
    gateway: Gateway,
) -> None:
    def sample(text: str, line_start: str) -> float:
        lines = [line for line in text.splitlines() if line.startswith(line_start)]
        return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0

    ok = 'lastmile_gateway_requests_total{code="200",model="m",protocol="v2"}'
    rows = 'lastmile_gateway_predictions_total{model="m",variant="champion",version="1"}'
    bad = 'lastmile_gateway_requests_total{code="404",model="__unknown__",protocol="v2"}'
    before = httpx.get(f"{gateway.url}/metrics").text
    for _ in range(3):
        assert infer(gateway, 1.0).status_code == 200
    assert httpx.post(f"{gateway.url}/v2/models/zz/infer", json={"inputs": []}).status_code == 404
    after = httpx.get(f"{gateway.url}/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    assert sample(after.text, ok) - sample(before, ok) == 3
    assert sample(after.text, rows) - sample(before, rows) == 3
    assert sample(after.text, bad) - sample(before, bad) == 1
    assert "lastmile_gateway_request_seconds_bucket" in after.text
