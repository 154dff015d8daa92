"""Clients no one here wrote infer against the gateway, and every answer is on Kafka."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from gateway_helpers import Gateway, predictions, sigmoid


@pytest.mark.parametrize("binary", [True, False], ids=["binary-tensors", "json-tensors"])
def test_tritonclient_infers_rows_and_each_is_a_prediction_on_kafka(
    gateway: Gateway, binary: bool
) -> None:
    client = triton.InferenceServerClient(url=gateway.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("m")
    meta = client.get_model_metadata("m")
    assert meta["inputs"] == [{"name": "x", "datatype": "FP64", "shape": [-1]}]
    assert meta["versions"] == ["1"] and meta["parameters"]["champion"] == "1"

    x = triton.InferInput("x", [3], "FP64")
    x.set_data_from_numpy(np.array([0.5, 1.5, 2.5]), binary_data=binary)
    result = client.infer("m", [x], request_id="t1")

    expected = sigmoid(-3.0)
    np.testing.assert_allclose(result.as_numpy("score"), [expected] * 3)
    assert result.as_numpy("model_version").tolist() == [1, 1, 1]
    assert [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("variant")] == [
        "champion"
    ] * 3
    response = result.get_response()
    assert response["id"] == "t1" and response["model_version"] == "1"
    ids = response["parameters"]["request_ids"]
    assert ids == ["t1-0", "t1-1", "t1-2"]

    logged = {p["request_id"]: p for p in predictions(gateway.settings, 3)}
    assert sorted(logged) == ids
    for rid, x_value in zip(ids, [0.5, 1.5, 2.5], strict=True):
        p = logged[rid]
        assert p["caller"] == "http" and p["model"] == "m"
        assert (p["version"], p["variant"]) == (1, "champion")
        assert p["features"] == {"x": x_value}
        assert p["score"] == pytest.approx(expected)


def test_httpx_v2_one_matrix_input_named_by_columns(gateway: Gateway) -> None:
    body = {
        "inputs": [
            {
                "name": "features",
                "shape": [2, 2],
                "datatype": "FP64",
                "data": [[1.0, 7.0], [2.0, 8.0]],
                "parameters": {"columns": ["x", "unused"]},
            }
        ],
        "outputs": [{"name": "score"}, {"name": "label"}],
    }
    response = httpx.post(f"{gateway.url}/v2/models/m/infer", json=body)
    assert response.status_code == 200, response.text
    out = response.json()
    assert [o["name"] for o in out["outputs"]] == ["score", "label"]
    assert out["outputs"][1]["data"] == ["0", "0"]
    generated = out["parameters"]["request_ids"]
    assert len(out["id"]) == 32 and generated == [f"{out['id']}-0", f"{out['id']}-1"]
    logged = {p["request_id"]: p for p in predictions(gateway.settings, 2)}
    assert logged[generated[1]]["features"] == {"x": 2.0, "unused": 8.0}


def test_v1_predict_answers_each_instance(gateway: Gateway) -> None:
    # kserve's own client speaks V1 too (test_kserve_client.py, from a side virtualenv);
    # this one needs nothing beyond this environment.
    body = {"instances": [{"x": 1.0}, {"x": 4.0}], "id": "v1req", "event_time": 1_700_000_000_000}
    response = httpx.post(f"{gateway.url}/v1/models/m:predict", json=body)
    assert response.status_code == 200, response.text
    answers = response.json()["predictions"]
    assert [a["request_id"] for a in answers] == ["v1req-0", "v1req-1"]
    assert all(a["score"] == pytest.approx(sigmoid(-3.0)) and a["label"] == "0" for a in answers)
    assert httpx.get(f"{gateway.url}/v1/models/m").json() == {"name": "m", "ready": True}
    logged = predictions(gateway.settings, 2)
    assert sorted(p["request_id"] for p in logged) == ["v1req-0", "v1req-1"]
    assert {p["event_time"] for p in logged} == {1_700_000_000_000}


def test_concurrent_requests_each_get_their_own_answers(gateway: Gateway) -> None:
    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=gateway.url) as client:

            def body(i: int) -> dict:
                rows = 1 + i % 3
                tensor = {"name": "x", "shape": [rows], "datatype": "FP64", "data": [1.0] * rows}
                return {"id": f"c{i}", "inputs": [tensor]}

            return await asyncio.gather(
                *(client.post("/v2/models/m/infer", json=body(i)) for i in range(48))
            )

    responses = asyncio.run(send_all())
    for i, response in enumerate(responses):
        assert response.status_code == 200, response.text
        out = response.json()
        rows = 1 + i % 3
        assert out["id"] == f"c{i}" and out["outputs"][0]["shape"] == [rows]
        if rows > 1:
            assert out["parameters"]["request_ids"] == [f"c{i}-{j}" for j in range(rows)]
    assert len(predictions(gateway.settings, 96)) == 96
