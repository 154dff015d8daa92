"""Every flavor end to end over HTTP: registered and promoted, a batch of rows inferred
through the running gateway (the Open Inference Protocol, real HTTP), and each score what
the model's own runtime predicts on the same rows, each answer on ``scoring.predictions``
with caller ``http``. The Kafka twin is test_flavors_scorer.py, on the same cases."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
from flavor_models import FEATURES, data, flavor_cases, read_predictions, register_and_promote
from numpy.testing import assert_allclose

from streams.kafka.topics import ensure_topics
from streams.local.processes import free_port, wait_for
from streams.models import ControlPlane
from streams.roles.gateway import GatewayRole


def infer_body(name: str, X: np.ndarray) -> dict:
    """One V2 input of shape [rows, features], its columns named: the request id is ``name``."""
    matrix = {
        "name": "features",
        "shape": list(X.shape),
        "datatype": "FP64",
        "data": X.tolist(),
        "parameters": {"columns": FEATURES},
    }
    return {"id": name, "inputs": [matrix]}


def test_every_flavor_scores_over_http_as_its_runtime_does(fresh_settings, tmp_path: Path):
    settings = fresh_settings(gateway_port=free_port())
    ensure_topics(settings)
    X, y, target = data(200, seed=2)
    cases = flavor_cases(X, y, target, tmp_path)
    with ControlPlane(settings) as control:
        register_and_promote(control, cases)

    gateway = GatewayRole(settings)
    gateway.start()
    try:
        assert gateway.wait_ready(60)
        table = gateway.inference.table
        assert wait_for(lambda: all(table.get(n).champion == 1 for n in cases), 30)
        with httpx.Client(base_url=gateway.url, timeout=60) as http:
            answers = {
                name: http.post(f"/v2/models/{name}/infer", json=infer_body(name, X))
                for name in cases
            }
        logged = read_predictions(settings, len(cases) * len(X))
    finally:
        gateway.stop()

    by_id = {p["request_id"]: p for p in logged}
    assert len(logged) == len(by_id) == len(cases) * len(X)
    for name, case in cases.items():
        response = answers[name]
        assert response.status_code == 200, (name, response.text)
        body = response.json()
        outputs = {o["name"]: o["data"] for o in body["outputs"]}
        what = f"{name} ({case.flavor})"
        assert_allclose(outputs["score"], case.expected, rtol=1e-6, err_msg=what)
        assert body["model_version"] == "1" and set(outputs["variant"]) == {"champion"}
        ids = body["parameters"]["request_ids"]
        assert ids == [f"{name}-{i}" for i in range(len(X))]
        # Each answer was published before it was returned, as it was returned.
        published = [by_id[rid] for rid in ids]
        assert {(p["caller"], p["model"], p["version"]) for p in published} == {("http", name, 1)}
        assert [p["score"] for p in published] == outputs["score"], what
        assert published[0]["features"] == dict(zip(FEATURES, X[0].tolist(), strict=True))
