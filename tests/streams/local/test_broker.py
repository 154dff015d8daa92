"""The embedded broker: the verified Tansu binary, readiness, clear failures."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

import streams.local.broker as broker_module
from streams.config import Settings
from streams.kafka.topics import ensure_topics
from streams.local.broker import BrokerError, EmbeddedBroker, broker_ready, tansu_binary
from streams.local.processes import free_port


def test_binary_is_verified_before_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tansu_binary().name == "tansu"
    key = next(iter(broker_module.TANSU_SHA256))
    monkeypatch.setitem(broker_module.TANSU_SHA256, key, "0" * 64)
    with pytest.raises(BrokerError, match="refusing to run"):
        tansu_binary()


def test_platform_without_binary_gets_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broker_module.platform, "machine", lambda: "riscv64")
    with pytest.raises(BrokerError, match="riscv64"):
        tansu_binary()


def test_port_in_use_is_one_clear_error_and_nothing_runs(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        broker = EmbeddedBroker(tmp_path, port)
        with pytest.raises(BrokerError, match=f"port {port} .* already in use"):
            broker.start()
        assert broker.process is None


def test_unwritable_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(BrokerError, match="cannot write the broker log"):
        EmbeddedBroker(blocker / "sub", free_port()).start()


def test_broker_starts_answers_and_stops(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path, free_port())
    broker.start(timeout=20)
    try:
        assert broker_ready(broker.bootstrap)
        producer = Producer({"bootstrap.servers": broker.bootstrap})
        reports = []
        producer.produce(
            "smoke", b"hello", partition=0, on_delivery=lambda err, msg: reports.append(err)
        )
        assert producer.flush(10) == 0
        assert reports == [None]
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "smoke"})
        consumer.assign([TopicPartition("smoke", 0, 0)])
        message = consumer.poll(10)
        assert message is not None and message.value() == b"hello"
        consumer.close()
    finally:
        broker.stop()
    assert not broker.alive
    assert not broker_ready(broker.bootstrap, timeout=0.5)


def test_topics_are_created_once_with_compacted_control_plane(fresh_settings) -> None:
    settings: Settings = fresh_settings()
    created = ensure_topics(settings)
    assert sorted(created) == sorted(settings.topics.values())
    assert ensure_topics(settings) == []
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient(settings.kafka_config())
    metadata = admin.list_topics(timeout=5).topics
    assert len(metadata[settings.topic_requests].partitions) == settings.topic_partitions
    resource = ConfigResource("topic", settings.topic_model_events)
    configs = admin.describe_configs([resource])[resource].result(10)
    assert configs["cleanup.policy"].value == "compact"
