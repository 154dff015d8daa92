"""A real Prometheus scraping every role of a running stack, with the scrape configuration
docker-compose gives it (docs/operate/prometheus.yml, targets rewritten to this test's
ports), and the Grafana dashboard's every query run against it.

The roles run as ``lastmile up`` runs them: one worker process per role, against the
session's broker and ClickHouse. Known traffic goes in (good requests with event times
spread over known monitor windows, requests for a model that does not exist, one with a
W3C traceparent); Prometheus' HTTP API must then show exactly that.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from confluent_kafka import Consumer, Producer, TopicPartition
from constant_model import tiny_model
from private_settings import private_settings, unique_suffix

from streams.config import Settings, settings_env
from streams.kafka.topics import ensure_topics
from streams.local.processes import ManagedProcess, free_port, free_ports, wait_for
from streams.local.stack import Stack, role_services
from streams.models import ControlPlane

ROOT = Path(__file__).resolve().parents[3]
OPERATE = ROOT / "docs" / "operate"
PROMETHEUS = shutil.which("prometheus")
ROLES = ["scorer", "sink", "monitor", "learner", "operator", "gateway"]
# The roles that read a topic (the gateway answers HTTP and only produces).
CONSUMING = [role for role in ROLES if role != "gateway"]

pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="needs Prometheus (make prometheus: apt-get install prometheus)"
)

MODEL = "metered"
GOOD = 200  # requests over 5 monitor windows of 2 s, then one that closes the last
UNKNOWN = 7  # requests for a model nobody registered: dead letters at the route stage
WINDOW_MS = 2000
# Event times on a whole window, well in the past: window w is [T0 + 2 w, T0 + 2 w + 2) s.
T0_MS = (int(time.time() * 1000) // WINDOW_MS - 1000) * WINDOW_MS
TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@dataclass
class Running:
    settings: Settings
    prometheus: str  # base URL of its HTTP API
    ports: dict[str, int]  # role -> web port

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.prometheus}/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        assert body["status"] == "success", (expr, body)
        return body["data"]["result"]

    def value(self, expr: str) -> float | None:
        """The single value of an instant query (None when it returns nothing)."""
        result = self.query(expr)
        assert len(result) <= 1, (expr, result)
        return float(result[0]["value"][1]) if result else None

    def settles_at(self, expr: str, expected: float, timeout: float = 90) -> float | None:
        """Wait until the query's value is `expected`; the last value seen."""
        seen: list[float | None] = [None]

        def check() -> bool:
            seen[0] = self.value(expr)
            return seen[0] == expected

        wait_for(check, timeout, interval=0.5)
        return seen[0]


def scrape_config(ports: dict[str, int], interval: str = "1s") -> dict[str, Any]:
    """docker-compose's prometheus.yml with each role's DNS discovery replaced by this
    test's worker: the same jobs, names and metrics path, scraped every second."""
    config = yaml.safe_load((OPERATE / "prometheus.yml").read_text())
    config["global"].update(scrape_interval=interval, evaluation_interval=interval)
    for job in config["scrape_configs"]:
        names = [name for sd in job.pop("dns_sd_configs") for name in sd["names"]]
        job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[name]}" for name in names]}]
        job["scrape_timeout"] = interval
    return config


@pytest.fixture(scope="module")
def running(broker, clickhouse, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("metrics")
    suffix = unique_suffix()
    settings = private_settings(
        broker.port,
        tmp / "data",
        suffix,
        clickhouse_port=clickhouse.port,
        clickhouse_database=f"m_{suffix}",
        web_port=free_ports(len(ROLES)),
        gateway_port=free_port(),
        monitor_window="2s",
        monitor_allowed_lateness="0s",
        monitor_group=f"lastmile-monitor-{suffix}",
    )
    ensure_topics(settings)
    with ControlPlane(settings) as control:
        version = control.register_and_publish(
            MODEL,
            tiny_model(),
            "river",
            features=["x"],
            labels=[False, True],
            reference_rows=[{"x": float(i % 7)} for i in range(700)],
        ).version
        control.promote(MODEL, version)
    services = role_services(settings, ROLES)
    env = settings_env(settings)
    for service in services:
        service.process.env = env
    ports = {role: settings.web_port + i for i, role in enumerate(ROLES)}
    stack = Stack(settings, services=services, on_event=lambda _line: None)
    stack.start()
    port = free_port()
    config_path = tmp / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(scrape_config(ports)))
    url = f"http://127.0.0.1:{port}"
    prometheus = ManagedProcess(
        "prometheus",
        [
            str(PROMETHEUS),
            f"--config.file={config_path}",
            f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        ready=lambda: httpx.get(f"{url}/-/ready", timeout=1).status_code == 200,
        log_path=tmp / "prometheus.log",
    )
    try:
        prometheus.start(timeout=60)
        send_traffic(settings)
        yield Running(settings, url, ports)
    finally:
        prometheus.stop()
        stack.stop()


def send_traffic(settings: Settings) -> None:
    producer = Producer(settings.producer_config())

    def request(i: int, model: str, event_ms: int, headers: list | None = None) -> None:
        value = orjson.dumps(
            {
                "request_id": f"{model}-{i}",
                "model": model,
                "features": {"x": float(i % 7)},
                "event_time": event_ms,
                "entity_id": f"e{i}",
            }
        )
        producer.produce(settings.topic_requests, value, f"e{i}".encode(), headers=headers)

    for i in range(GOOD):
        headers = [("traceparent", TRACEPARENT)] if i == 0 else None
        request(i, MODEL, T0_MS + i * (5 * WINDOW_MS) // GOOD, headers)
    for i in range(UNKNOWN):
        request(i, "nobody", T0_MS)
    assert producer.flush(30) == 0
    # Once all is scored, one request in window 5 closes window 4 too: the monitor closes
    # a window when an event past its end arrives and no partition lags behind.
    assert wait_for(lambda: _predicted(settings) >= GOOD, 90, 0.5), "the scorer did not answer"
    request(GOOD, MODEL, T0_MS + 5 * WINDOW_MS + WINDOW_MS // 2)
    assert producer.flush(30) == 0


def _predicted(settings: Settings) -> int:
    status = httpx.get(f"http://127.0.0.1:{settings.web_port}/lastmile/status", timeout=5).json()
    return sum(status["roles"]["scorer"]["counts"].get(v, 0) for v in ("champion",))


def test_every_role_is_a_target_prometheus_finds_up(running: Running) -> None:
    def targets() -> list[dict[str, Any]]:
        body = httpx.get(f"{running.prometheus}/api/v1/targets", timeout=10).json()
        return body["data"]["activeTargets"]

    def all_up() -> bool:
        found = targets()
        return len(found) == len(ROLES) and all(t["health"] == "up" for t in found)

    assert wait_for(all_up, 30, 0.5), targets()
    jobs = {t["labels"]["job"]: t["scrapeUrl"] for t in targets()}
    assert jobs == {
        f"lastmile-{role}": f"http://127.0.0.1:{port}/metrics"
        for role, port in running.ports.items()
    }
    assert running.value('count(up{job=~"lastmile-.*"} == 1)') == len(ROLES)


def test_predictions_dead_letters_windows_and_rows_are_the_traffic_sent(
    running: Running,
) -> None:
    labels = f'model="{MODEL}",version="1",variant="champion"'
    assert running.settles_at(f"lastmile_predictions_total{{{labels}}}", GOOD + 1) == GOOD + 1
    # Every prediction's latency went into the histogram: its count is the predictions'.
    assert running.value(f"lastmile_scoring_latency_seconds_count{{{labels}}}") == GOOD + 1
    consumed = 'lastmile_consumed_total{job="lastmile-scorer",role="scorer"}'
    assert running.settles_at(consumed, GOOD + UNKNOWN + 1) == GOOD + UNKNOWN + 1
    dead = 'lastmile_dead_letters_total{stage="route",reason="unknown_model"}'
    assert running.settles_at(dead, UNKNOWN) == UNKNOWN
    # Windows 0-4 of the version closed (window 5 stays open): the monitor evaluated 5.
    closed = f'lastmile_monitor_windows_closed_total{{model="{MODEL}",version="1"}}'
    assert running.settles_at(closed, 5) == 5
    rows = 'lastmile_sink_rows_total{table="predictions"}'
    assert running.settles_at(rows, GOOD + 1) == GOOD + 1
    # The same distribution as the reference: nothing drifted.
    assert running.value(f'lastmile_drift_share{{model="{MODEL}",version="1"}}') == 0.0
    # Nothing is left behind once all is done. The requests come from a plain producer:
    # the scorer's lag is 0. The other roles read topics written in transactions, whose
    # commit marker takes an offset no consumer is given: 1 a partition at most when idle
    # (Kafka's own kafka-consumer-groups shows the same).
    requests = running.settings.topic_requests
    lag = f'sum(lastmile_consumer_lag{{role="scorer",topic="{requests}"}})'
    assert running.settles_at(lag, 0) == 0
    for role in CONSUMING:
        worst = f'max(lastmile_consumer_lag{{role="{role}"}}) <= bool 1'
        assert running.settles_at(worst, 1) == 1, running.query("lastmile_consumer_lag > 1")
    partitions = 'count(lastmile_consumer_lag{role="scorer"})'
    assert running.value(partitions) == running.settings.topic_partitions
    assert running.value("sum(lastmile_role_failed)") == 0
    # The transaction histogram saw every batch the scorer committed.
    batches = running.value('lastmile_batches_total{role="scorer"}')
    assert running.value('lastmile_transaction_seconds_count{role="scorer"}') == batches
    assert running.value('lastmile_batch_size_sum{role="scorer"}') == GOOD + UNKNOWN + 1


def test_every_dashboard_query_returns_data(running: Running) -> None:
    # The series the panels rest on exist by now.
    closed = f'lastmile_monitor_windows_closed_total{{model="{MODEL}",version="1"}}'
    assert running.settles_at(closed, 5) == 5
    dashboard = json.loads((OPERATE / "grafana" / "dashboards" / "lastmile.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs
    # Grafana's own variable: the rate window it picks for the scrape interval. A rate
    # needs two scrapes of its series, and a series appears with the first value its
    # role counts (a loaded machine scrapes late): ask again for a while.
    empty = exprs

    def every_query_has_data() -> bool:
        nonlocal empty
        empty = [e for e in empty if not running.query(e.replace("$__rate_interval", "1m"))]
        return not empty

    wait_for(every_query_has_data, 30, interval=1.0)
    assert not empty, f"no data for {empty}"


def test_a_traceparent_on_a_request_comes_out_on_its_prediction(running: Running) -> None:
    settings = running.settings
    consumer = Consumer(
        settings.consumer_config(
            f"trace-{uuid.uuid4().hex[:6]}", **{"isolation.level": "read_committed"}
        )
    )
    topic = settings.topic_predictions
    consumer.assign([TopicPartition(topic, p, 0) for p in range(settings.topic_partitions)])
    traced: dict[bytes, list] = {}
    deadline = time.monotonic() + 60
    try:
        while len(traced) < GOOD + 1 and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                if message.error() is None:
                    traced[message.key()] = [
                        v for k, v in message.headers() or [] if k == "traceparent"
                    ]
    finally:
        consumer.close()
    assert traced[f"{MODEL}-0".encode()] == [TRACEPARENT]
    assert all(not v for k, v in traced.items() if k != f"{MODEL}-0".encode())
