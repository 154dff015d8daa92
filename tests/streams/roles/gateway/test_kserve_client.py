"""The kserve package's own REST client (``kserve.InferenceRESTClient``) infers against
the gateway, V2 and V1, and every answer is on Kafka.

kserve pins pandas < 3, so it cannot share this environment: the client runs in its own
virtualenv (bench/venvs.py's ``kserve-client``, which ``make test`` makes first), one
script in one subprocess, which prints what the client returned as JSON.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
from by_path import load
from gateway_helpers import Gateway, predictions, sigmoid

ROOT = Path(__file__).resolve().parents[4]

# Run by the side virtualenv's python with the gateway's URL; prints one JSON object of
# what each call of kserve's client returned.
CLIENT_SCRIPT = r"""
import asyncio, json, sys
from importlib.metadata import version

import httpx
import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig


def tensors(response):
    return {o.name: [v.decode() if isinstance(v, bytes) else v for v in o.data]
            for o in response.outputs}


async def main(url):
    out = {"kserve": version("kserve")}
    async with InferenceRESTClient(RESTConfig(protocol="v2", retries=0)) as v2:
        out["v2_live"] = await v2.is_server_live(url)
        out["v2_ready"] = await v2.is_server_ready(url)
        out["v2_model_ready"] = await v2.is_model_ready(url, "m")
        out["v2_unknown_ready"] = await v2.is_model_ready(url, "nope")
        for kind in ("binary", "json"):
            x = InferInput("x", [3], "FP64")
            x.set_data_from_numpy(np.array([0.5, 1.5, 2.5]), binary_data=kind == "binary")
            request = InferRequest("m", [x], request_id=f"k-{kind}")
            response = await v2.infer(url, request, model_name="m")
            out[f"v2_{kind}"] = {
                "id": response.id, "model_name": response.model_name,
                "parameters": response.parameters, "outputs": tensors(response),
            }
        try:
            await v2.infer(url, InferRequest("nope", [x], request_id="k-bad"), model_name="nope")
        except httpx.HTTPStatusError as err:
            out["v2_unknown_error"] = [err.response.status_code, str(err)]
    async with InferenceRESTClient(RESTConfig(protocol="v1", retries=0)) as v1:
        out["v1_live"] = await v1.is_server_live(url)
        out["v1_model_ready"] = await v1.is_model_ready(url, "m")
        body = {"instances": [{"x": 1.0}, {"x": 4.0}], "id": "k-v1"}
        out["v1"] = await v1.infer(url, body, model_name="m")
    print(json.dumps(out))


asyncio.run(main(sys.argv[1]))
"""


def kserve_client_venv() -> ModuleType:
    """bench/venvs.py's kserve-client virtualenv (bench/ is not a package)."""
    return load(Path("bench/venvs.py")).KSERVE_CLIENT


@pytest.fixture(scope="module")
def kserve_python() -> Path:
    """The side virtualenv's python; the test fails (before any gateway starts) without it."""
    venv = kserve_client_venv()
    if not venv.ready():
        pytest.fail(
            f"kserve's client virtualenv {venv.path} is missing or incomplete: "
            "run `make kserve-venv` (`make test` does) to make it, once, from the package index"
        )
    return venv.python


def run_kserve_client(python: Path, url: str) -> dict:
    command = [str(python), "-c", CLIENT_SCRIPT, url]
    env = kserve_client_venv().env()  # no PYTHONPATH: kserve's packages, not this checkout
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_kserve_rest_client_checks_health_and_infers_v2_and_v1(
    kserve_python: Path, gateway: Gateway
) -> None:
    out = run_kserve_client(kserve_python, gateway.url)
    assert out["kserve"].startswith("0.21.")
    assert out["v2_live"] is True and out["v2_ready"] is True
    assert out["v2_model_ready"] is True and out["v2_unknown_ready"] is False
    assert out["v1_live"] is True and out["v1_model_ready"] is True

    expected = sigmoid(-3.0)
    for kind in ("binary", "json"):
        answer = out[f"v2_{kind}"]
        assert answer["id"] == f"k-{kind}" and answer["model_name"] == "m"
        # kserve's InferResponse.from_bytes drops the response's model_version: the tensor
        # carries it per row.
        assert answer["outputs"]["score"] == pytest.approx([expected] * 3)
        assert answer["outputs"]["model_version"] == [1, 1, 1]
        assert answer["outputs"]["variant"] == ["champion"] * 3
        assert answer["outputs"]["label"] == ["0"] * 3
        assert answer["parameters"]["request_ids"] == [f"k-{kind}-{j}" for j in range(3)]
    status, message = out["v2_unknown_error"]
    assert status == 404 and "unknown model 'nope'" in message

    v1 = out["v1"]["predictions"]
    assert [a["request_id"] for a in v1] == ["k-v1-0", "k-v1-1"]
    assert all(a["score"] == pytest.approx(expected) and a["label"] == "0" for a in v1)

    logged = {p["request_id"]: p for p in predictions(gateway.settings, 8)}
    rows = {
        f"k-{kind}-{j}": x for kind in ("binary", "json") for j, x in enumerate([0.5, 1.5, 2.5])
    }
    rows |= {"k-v1-0": 1.0, "k-v1-1": 4.0}
    assert sorted(logged) == sorted(rows)
    for rid, x in rows.items():
        p = logged[rid]
        assert p["caller"] == "http" and p["model"] == "m"
        assert (p["version"], p["variant"]) == (1, "champion")
        assert p["features"] == {"x": x}
        assert p["score"] == pytest.approx(expected)
