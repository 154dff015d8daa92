"""Settings whose topics no other test uses, for the fixtures that share the session's
broker: each test (or module) reads only the messages it wrote itself."""

from __future__ import annotations

import uuid
from pathlib import Path

from streams.config import Settings, load_settings


def unique_suffix() -> str:
    """A short random tag to make a topic, database or group name this test's own."""
    return uuid.uuid4().hex[:8]


def private_settings(
    kafka_port: int, data_dir: Path, suffix: str | None = None, **overrides: object
) -> Settings:
    """The default settings against the broker on ``kafka_port``, every topic renamed
    ``<default name>.<suffix>`` (a fresh suffix unless given), then ``overrides``.

    >>> settings = private_settings(9092, Path("data"), suffix="t1", clickhouse_port=9000)
    >>> settings.topics["requests"], settings.clickhouse_port
    ('scoring.requests.t1', 9000)
    """
    suffix = suffix or unique_suffix()
    defaults = load_settings(env={}, toml_path=None)
    topics = {f"topic_{role}": f"{name}.{suffix}" for role, name in defaults.topics.items()}
    values = {"kafka_port": kafka_port, "data_dir": data_dir, **topics, **overrides}
    return load_settings(env={}, toml_path=None, **values)
