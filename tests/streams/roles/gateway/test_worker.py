"""``lastmile worker --roles gateway`` is a worker like the others: it serves, shows its
status, and a SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from gateway_helpers import gateway_settings, predictions, tiny_model

from streams.config import settings_env
from streams.kafka.topics import ensure_topics
from streams.local.processes import free_port, wait_for
from streams.models import ControlPlane

ROOT = Path(__file__).resolve().parents[4]


def test_the_worker_role_serves_and_stops_on_sigterm(fresh_settings) -> None:
    settings = gateway_settings(fresh_settings)
    ensure_topics(settings)
    with ControlPlane(settings) as control:
        mv = control.register_and_publish(
            "m", tiny_model(0.0), "river", features=["x"], labels=[False, True]
        )
        control.promote("m", mv.version)
    web = free_port()
    env = {**os.environ, **settings_env(settings), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "streams.cli.main", "worker", "--roles", "gateway"]
    worker = subprocess.Popen([*command, "--web-port", str(web)], env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{settings.gateway_port}"
    try:
        assert wait_for(lambda: httpx.get(f"{url}/v2/models/m/ready").is_success, 90)
        body = {"instances": [{"x": 3.0}], "id": "w1"}
        # The first answer pays the producer's connection to the broker: slow on a loaded
        # machine, and not what this test is about (httpx's default timeout is 5 s).
        answer = httpx.post(f"{url}/v1/models/m:predict", json=body, timeout=60).json()
        assert answer["predictions"][0]["score"] == 0.5
        status = httpx.get(f"http://127.0.0.1:{web}/lastmile/status").json()
        gateway = status["roles"]["gateway"]
        assert gateway["ready"] is True and gateway["url"] == url
        assert gateway["counts"]["champion"] == 1
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0
    [logged] = predictions(settings, 1)
    assert (logged["request_id"], logged["caller"]) == ("w1", "http")
