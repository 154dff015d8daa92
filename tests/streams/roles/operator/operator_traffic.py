"""Traffic for the operator tests and bench/actions.py: a good and a broken (inverted)
classifier, and requests sent in real time with their outcomes a moment later."""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from typing import Any

import numpy as np
import orjson
from confluent_kafka import Producer

from streams.config import Settings


class Classifier:
    """A python-flavor classifier of x: P(1) = sigmoid(4x); ``inverted`` turns it around
    (a broken version: every score is 1 - the right one)."""

    classes_ = [0, 1]

    def __init__(self, inverted: bool = False) -> None:
        self.inverted = inverted

    def predict_proba(self, X: Any) -> np.ndarray:
        x = np.asarray(X, dtype=float)[:, 0]
        p = 1.0 / (1.0 + np.exp(-4.0 * x))
        if self.inverted:
            p = 1.0 - p
        return np.column_stack([1.0 - p, p])


def register_pair(plane: Any, model: str) -> tuple[int, int]:
    """Register the good version, then the broken one; promote the good one."""
    good = plane.register_and_publish(model, Classifier(), "python", features=["x"]).version
    broken = plane.register_and_publish(
        model, Classifier(inverted=True), "python", features=["x"]
    ).version
    plane.promote(model, good)
    return good, broken


class Traffic:
    """Sends ``rate`` requests/s of ``model`` (event time: now) on a thread, and each
    one's outcome (label 1 when x > 0) ``delay`` seconds later."""

    def __init__(self, settings: Settings, model: str, rate: float = 100.0, delay: float = 0.3):
        self.settings, self.model, self.rate, self.delay = settings, model, rate, delay
        self.sent: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._rng = np.random.default_rng(7)
        self.prefix = uuid.uuid4().hex[:6]

    def start(self) -> Traffic:
        self._thread.start()
        return self

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join(30)
        return self.sent

    def _run(self) -> None:
        s = self.settings
        producer = Producer(s.producer_config(linger_ms=1))
        waiting: deque[tuple[float, dict[str, Any]]] = deque()
        started = time.monotonic()
        i = 0
        while not self._stop.is_set() or waiting:
            now = time.monotonic()
            if not self._stop.is_set() and i < (now - started) * self.rate:
                x = float(self._rng.normal())
                rid = f"{self.prefix}-{i}"
                ms = int(time.time() * 1000)
                request = {"request_id": rid, "model": self.model, "features": {"x": x},
                           "event_time": ms, "entity_id": f"e{i}"}  # fmt: skip
                producer.produce(s.topic_requests, orjson.dumps(request), rid.encode())
                waiting.append((now + self.delay, {"request_id": rid, "model": self.model,
                                                   "label": "1" if x > 0 else "0"}))  # fmt: skip
                self.sent.append(rid)
                i += 1
                continue
            while waiting and waiting[0][0] <= now:
                outcome = waiting.popleft()[1]
                outcome["event_time"] = int(time.time() * 1000)
                producer.produce(
                    s.topic_outcomes, orjson.dumps(outcome), outcome["request_id"].encode()
                )
            producer.poll(0)
            time.sleep(0.002)
        producer.flush(30)
