"""A model registered and promoted just before its first HTTP request is known, though
the gateway's model watcher was idle-paused: the gateway catches up before a 404."""

from __future__ import annotations

import time

import httpx
from gateway_helpers import Gateway, sigmoid

# The watcher's own asks for the ends never come within the test: only a catch-up wakes it.
NEVER_S = 300.0


def test_a_model_promoted_while_the_watcher_is_paused_answers_at_once(gateway: Gateway) -> None:
    watcher = gateway.role.inference.watcher
    assert watcher.idle is not None  # on by default on the embedded broker
    deadline = time.monotonic() + 30
    while not watcher.idle.paused:
        assert time.monotonic() < deadline, "the watcher never paused"
        time.sleep(0.05)
    watcher.idle.interval_s = NEVER_S
    time.sleep(0.5)  # the ask already due, if any, is past
    assert watcher.idle.paused

    gateway.control.promote("n", gateway.register(1.0, model="n"))
    meta = httpx.get(f"{gateway.url}/v2/models/n")
    assert meta.status_code == 200, meta.text
    assert meta.json()["versions"] == ["1"]

    gateway.control.promote("o", gateway.register(-1.0, model="o"))
    body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]}
    answer = httpx.post(f"{gateway.url}/v2/models/o/infer", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"][0] == sigmoid(-1.0)

    unknown = httpx.post(f"{gateway.url}/v2/models/nope/infer", json=body)
    assert unknown.status_code == 404
    assert watcher.errors == 0
