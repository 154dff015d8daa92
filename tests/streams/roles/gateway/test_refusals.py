"""Bad input gets a 4xx with the reason, never a 500, and is a dead letter with that reason."""

from __future__ import annotations

import json
import struct

import httpx
import pytest
from gateway_helpers import Gateway, dead_letters, predictions


def v2(data: list, name: str = "x", datatype: str = "FP64", shape: list | None = None) -> dict:
    tensor = {"name": name, "datatype": datatype, "shape": shape or [len(data)], "data": data}
    return {"inputs": [tensor]}


# (path, body, status, dead-letter stage, error type, words of the reason)
CASES = {
    "not json": ("/v2/models/m/infer", b"{nope", 400, "decode", "undecodable", "invalid JSON"),
    "no inputs key": ("/v2/models/m/infer", {"id": "a"}, 400, "validate", None, "inputs"),
    "shape and data disagree": (
        "/v2/models/m/infer",
        v2([1.0], shape=[3]),
        400,
        "validate",
        "schema_violation",
        "shape [3] holds 3 values, data has 1",
    ),
    "a string for FP64": (
        "/v2/models/m/infer",
        v2(["a"]),
        400,
        "validate",
        "schema_violation",
        "'a' is not a number",
    ),
    "the model's feature missing": (
        "/v2/models/m/infer",
        v2([1.0], name="y"),
        400,
        "score",
        "feature_missing",
        "'x'",
    ),
    "a string for a number feature": (
        "/v2/models/m/infer",
        v2(["high"], datatype="BYTES"),
        400,
        "score",
        "feature_type",
        "should be a number",
    ),
    "unknown model": ("/v2/models/nope/infer", v2([1.0]), 404, "route", "unknown_model", "nope"),
    "unknown version": (
        "/v2/models/m/versions/9/infer",
        v2([1.0]),
        404,
        "route",
        "unknown_version",
        "no live version 9",
    ),
    "v1 instance not an object": (
        "/v1/models/m:predict",
        {"instances": [[1.0]]},
        400,
        "validate",
        "schema_violation",
        "Expected `object`",
    ),
}


def trace_of(letter: dict) -> bytes | None:
    return {h["key"]: h["value"] for h in letter["original_headers"]}.get("traceparent")


@pytest.fixture
def refused(gateway: Gateway) -> dict[str, httpx.Response]:
    """Every case sent once, each with its own traceparent to find its dead letter by."""
    responses = {}
    for i, (name, (path, body, *_)) in enumerate(CASES.items()):
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        trace = f"00-{i:032x}-{i:016x}-01"
        responses[name] = httpx.post(
            gateway.url + path, content=content, headers={"traceparent": trace}
        )
    return responses


def test_each_bad_request_is_a_4xx_with_its_reason_and_a_dead_letter(
    gateway: Gateway, refused: dict[str, httpx.Response]
) -> None:
    letters = {trace_of(d): d for d in dead_letters(gateway.settings, len(CASES))}
    assert len(letters) == len(CASES)
    for i, (name, (_, _, status, stage, error_type, words)) in enumerate(CASES.items()):
        response = refused[name]
        assert response.status_code == status, (name, response.text)
        refusal = response.json()
        reason = refusal["error"]
        assert words in reason, (name, reason)
        letter = letters[f"00-{i:032x}-{i:016x}-01".encode()]
        assert letter["stage"] == refusal["stage"] == stage, name
        assert refusal["error_type"] == letter["error_type"], name
        if error_type is not None:
            assert letter["error_type"] == error_type, name
        assert words in letter["error"], name
    # nothing refused was answered
    assert predictions(gateway.settings, 0) == []


def test_nan_in_a_binary_tensor_is_refused(gateway: Gateway) -> None:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [2],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": 16},
                }
            ]
        }
    ).encode()
    body = header + struct.pack("<2d", 1.0, float("nan"))
    response = httpx.post(
        f"{gateway.url}/v2/models/m/infer",
        content=body,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 400
    assert "NaN" in response.json()["error"]
    [letter] = dead_letters(gateway.settings, 1)
    assert letter["original_value"] == body and "NaN" in letter["error"]


def test_unknown_routes_and_methods_are_4xx_not_500(gateway: Gateway) -> None:
    assert httpx.get(f"{gateway.url}/v2/models/nope").status_code == 404
    assert httpx.get(f"{gateway.url}/v2/models/m/versions/7").status_code == 404
    assert httpx.get(f"{gateway.url}/nowhere").status_code == 404
    assert httpx.delete(f"{gateway.url}/v2/models/m").status_code == 405
    assert httpx.post(f"{gateway.url}/v2/models/m/explain", json={}).status_code == 404


def test_a_row_too_large_for_kafka_is_a_400_and_a_dead_letter(gateway: Gateway) -> None:
    huge = "a" * 2_000_000
    body = {
        "inputs": [
            {"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]},
            {"name": "note", "shape": [1], "datatype": "BYTES", "data": [huge]},
        ]
    }
    response = httpx.post(f"{gateway.url}/v2/models/m/infer", json=body)
    assert response.status_code == 400, response.text
    assert "too large" in response.json()["error"]
    [letter] = dead_letters(gateway.settings, 1)
    assert letter["stage"] == "decode" and "too large" in letter["error"]
