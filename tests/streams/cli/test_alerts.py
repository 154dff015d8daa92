"""``lastmile alerts``: list the alerts topic and fire a test alert, against the embedded broker."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from click.testing import CliRunner, Result
from confluent_kafka import Producer

from monitors.events import AlertEvent
from schemas import Codec
from streams.cli.alerts import alerts_group
from streams.config import Settings
from streams.kafka.topics import ensure_topics
from streams.records import alert_to_avro


class Hook:
    """A webhook receiver on a free port: records JSON bodies, answers `status`."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", 0))
                hook.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


@pytest.fixture
def settings(fresh_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for var in ("LASTMILE_MONITOR_WEBHOOKS", "LASTMILE_MONITOR_SLACK_WEBHOOKS"):
        monkeypatch.delenv(var, raising=False)
    s = fresh_settings()
    ensure_topics(s)
    return s


def run(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(alerts_group, list(args), obj=settings, catch_exceptions=False)


def produce_alerts(settings: Settings, alerts: list[AlertEvent]) -> None:
    codec = Codec()
    producer = Producer(settings.producer_config())
    for a in alerts:
        value, headers = codec.encode("Alert", alert_to_avro(a))
        producer.produce(settings.topic_alerts, value, a.model, headers=headers)
    assert producer.flush(10) == 0


def alert(feature: str, state: str, ts: float, model: str = "churn") -> AlertEvent:
    return AlertEvent(
        model,
        "3",
        "drift",
        "drift",
        feature,
        1.0 if state == "firing" else 0.0,
        0.5,
        "warning",
        state=state,
        rule="feature_drift",
        ts=ts,
    )  # type: ignore[arg-type]


def test_list_all_and_firing(settings: Settings) -> None:
    assert json.loads(run(settings, "list", "--json").output) == []
    produce_alerts(
        settings,
        [
            alert("age", "firing", 120.0),
            alert("plan", "firing", 180.0),
            alert("age", "resolved", 240.0),
            alert("x", "firing", 60.0, model="fraud"),
        ],
    )
    rows = json.loads(run(settings, "list", "--json").output)
    assert [(r["model"], r["feature"], r["state"]) for r in rows] == [
        ("fraud", "x", "firing"),
        ("churn", "age", "firing"),
        ("churn", "plan", "firing"),
        ("churn", "age", "resolved"),
    ]
    assert rows[1]["version"] == 3 and rows[1]["time"] == "1970-01-01 00:02:00"
    assert rows[1]["alert_id"] == rows[3]["alert_id"]
    assert "FIRING churn v3 drift: drift of age" in rows[1]["message"]
    firing = json.loads(run(settings, "list", "--firing", "--json").output)
    assert [(r["model"], r["feature"]) for r in firing] == [("fraud", "x"), ("churn", "plan")]
    only = json.loads(run(settings, "list", "--firing", "--model", "churn", "--json").output)
    assert [r["feature"] for r in only] == ["plan"]
    table = run(settings, "list", "--firing").output.splitlines()
    assert table[0].split()[:4] == ["time", "state", "severity", "model"]
    assert len(table) == 3 and "plan" in table[2]


def test_fire_test_alert_through_webhook_and_topic(
    settings: Settings, hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="lastmile.monitors.notify"):
        result = run(settings, "test", "--webhook", hook.url)
    assert result.exit_code == 0, result.output
    assert f"WebhookSink {hook.url}: delivered 2" in result.output
    assert [b["state"] for b in hook.bodies] == ["firing", "resolved"]
    assert hook.bodies[0]["alert_id"] == hook.bodies[1]["alert_id"]
    assert hook.bodies[0]["model"] == "lastmile-test" and "FIRING" in hook.bodies[0]["message"]
    assert any("FIRING lastmile-test" in r.getMessage() for r in caplog.records)
    rows = json.loads(run(settings, "list", "--json").output)
    assert [(r["model"], r["state"], r["version"]) for r in rows] == [
        ("lastmile-test", "firing", None),
        ("lastmile-test", "resolved", None),
    ]
    assert json.loads(run(settings, "list", "--firing", "--json").output) == []
    assert run(settings, "test", "--keep-firing", "--model", "m2").exit_code == 0
    firing = json.loads(run(settings, "list", "--firing", "--json").output)
    assert [r["model"] for r in firing] == ["m2"]


def test_configured_webhooks_and_failures(
    settings: Settings, hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = Hook(status=500)
    try:
        monitor = dataclasses.replace(settings.monitor, webhooks=(hook.url, broken.url))
        configured = dataclasses.replace(settings, monitor=monitor)
        result = CliRunner().invoke(alerts_group, ["test", "--no-topic"], obj=configured)
        assert result.exit_code == 1
        assert f"WebhookSink {broken.url}: failed" in result.stderr
        assert len(hook.bodies) == 2 and len(broken.bodies) == 1  # no retries from the CLI
    finally:
        broken.close()
    assert json.loads(run(settings, "list", "--json").output) == []
