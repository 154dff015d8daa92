"""What the tests of ``lastmile.Client`` on a running stack share: the stack, a small
River model and its data, and a wait."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from private_settings import private_settings, unique_suffix
from river import linear_model, preprocessing

from streams.config import Settings
from streams.kafka.topics import ensure_topics
from streams.local.processes import free_port
from streams.roles.gateway import GatewayRole
from streams.roles.monitor import monitor_lane
from streams.roles.scorer import ScorerLane
from streams.roles.sink import Sink, SinkOptions
from streams.storage import db

FEATURES = {"amount", "age"}


def training_frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "amount": rng.normal(50.0 + shift, 10.0, n),
            "age": rng.integers(18, 80, n),
        }
    )


def trained_model(frame: pd.DataFrame) -> Any:
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    for row in frame.to_dict("records"):
        model.learn_one(row, row["amount"] > 50.0)
    return model


def wait_for(what: Callable[[], Any], timeout: float, message: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value is not None and value is not False:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {message}")


@pytest.fixture(scope="module", name="stack")
def running_stack(
    broker: Any, clickhouse: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """Settings of a stack of its own (the session broker and ClickHouse of
    tests/conftest.py, topics and a database of its own), with a scorer, a sink, a
    monitor and a gateway (on ``gateway_port``) running in this process; one a module.

    A test module takes it as ``stack`` by importing it (``from client_stack import
    running_stack``): a conftest.py here would clash, under ``--doctest-modules``, with
    the other non-root conftest.py files, all imported as ``conftest``."""
    suffix = unique_suffix()
    base: Path = tmp_path_factory.mktemp("lastmile")
    settings = private_settings(
        broker.port,
        base / "data",
        suffix,
        clickhouse_port=clickhouse.port,
        clickhouse_database=f"client_{suffix}",
        gateway_port=free_port(),
    )
    ensure_topics(settings)
    db.ensure_schema(settings)
    scorer = ScorerLane(settings)
    sink = Sink(settings, SinkOptions.from_settings(None, env={}, batch_seconds=0.3))
    monitor = monitor_lane(settings)
    gateway = GatewayRole(settings)
    for role in (scorer, sink, monitor, gateway):
        role.start()
    try:
        assert sink.wait_assigned(60), "the sink got no partitions"
        assert gateway.wait_ready(60), "the gateway is not ready"
        yield settings
    finally:
        for role in (gateway, monitor, sink, scorer):
            role.stop()
