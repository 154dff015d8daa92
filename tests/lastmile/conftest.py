"""The stack the tests of ``lastmile.Client`` run against, one a module: the session
broker and ClickHouse (tests/conftest.py), topics and a database of its own, and a
scorer, a sink, a monitor and the gateway running in this process."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.config import Settings, load_settings
from streams.kafka.topics import ensure_topics
from streams.local.processes import free_port
from streams.roles.gateway import GatewayRole
from streams.roles.monitor import monitor_lane
from streams.roles.scorer import ScorerLane
from streams.roles.sink import Sink, SinkOptions
from streams.storage import db


@pytest.fixture(scope="module")
def stack(
    broker: Any, clickhouse: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """Settings of a stack of its own, with a scorer, a sink, a monitor and a gateway
    (on ``gateway_port``) running."""
    suffix = uuid.uuid4().hex[:8]
    base: Path = tmp_path_factory.mktemp("lastmile")
    defaults = load_settings(env={}, toml_path=None)
    settings = load_settings(
        env={},
        toml_path=None,
        kafka_port=broker.port,
        clickhouse_port=clickhouse.port,
        clickhouse_database=f"client_{suffix}",
        data_dir=base / "data",
        gateway_port=free_port(),
        **{f"topic_{role}": f"{name}.{suffix}" for role, name in defaults.topics.items()},
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
