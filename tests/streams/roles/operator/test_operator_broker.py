"""The operator on the embedded broker: a broken champion pulled by its own alert, with
every prediction answered once across the switch; dry-run, the cooldown, restarts, and
the provenance in ``models show``, ``actions list`` and ClickHouse."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from confluent_kafka import Producer
from operator_traffic import Classifier, Traffic, register_pair
from private_settings import private_settings
from sample_records import accuracy_alert

from schemas import Codec
from streams.cli.main import main
from streams.config import Settings
from streams.kafka.topics import ensure_topics, read_to_end
from streams.models import ControlPlane
from streams.roles.monitor import MonitorLane
from streams.roles.operator import ACTOR, OperatorLane, read_actions
from streams.roles.scorer import ScorerLane

CODEC = Codec()
RULES = """
rules:
  - {name: fresh_champion, kind: performance, metric: accuracy, direction: below,
     threshold: 0.7, resolve: 0.75, min_n: 30, action: rollback, within: 24h,
     severity: critical}
  - {name: champion_floor, kind: performance, metric: accuracy, direction: below,
     threshold: 0.5, min_n: 30, action: rollback}
"""


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def at_least(records: list, n: int) -> list | None:
    return records if len(records) >= n else None


def actions_at_least(settings: Settings, n: int) -> list | None:
    return at_least(read_actions(settings), n)


def read_records(settings: Settings, topic: str, schema: str) -> list[dict[str, Any]]:
    return [CODEC.decode(m.value(), m.headers(), schema) for m in read_to_end(settings, topic)]


def rules_file(tmp_path: Path) -> str:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return str(path)


@pytest.fixture(scope="module")
def healing(
    broker: Any, clickhouse: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Scorer, monitor and operator running; traffic of model "m" at 100 requests/s with
    its outcomes 0.3 s later; v1 (good) serves, then the broken v2 is promoted. Once for
    the module (the tests read what it left)."""
    tmp_path = tmp_path_factory.mktemp("healing")
    settings = private_settings(
        broker.port,
        tmp_path / "data",
        monitor_window="3s",
        monitor_allowed_lateness="2s",
        monitor_rules=rules_file(tmp_path),
        monitor_group=f"monitor-{uuid.uuid4().hex[:6]}",
        operator_group=f"operator-{uuid.uuid4().hex[:6]}",
        actions_cooldown="1h",
        clickhouse_port=clickhouse.port,
        clickhouse_database=f"t_{uuid.uuid4().hex[:10]}",
    )
    ensure_topics(settings)
    plane = ControlPlane(settings, actor="alice")
    good, broken = register_pair(plane, "m")
    lanes = [ScorerLane(settings), MonitorLane(settings), OperatorLane(settings)]
    for lane in lanes:
        lane.start()
    traffic = Traffic(settings, "m").start()
    try:
        time.sleep(4)
        plane.promote("m", broken)
        promoted = time.time()
        actions = wait_until(
            lambda: [a for a in read_actions(settings) if a["outcome"] == "done"],
            60,
            "the rollback",
        )
        time.sleep(4)  # the restored version answers for a while
        sent = traffic.stop()
        predictions = wait_until(
            lambda: at_least(
                read_records(settings, settings.topic_predictions, "Prediction"), len(sent)
            ),
            60,
            "every prediction",
        )
        yield {
            "settings": settings,
            "plane": plane,
            "good": good,
            "broken": broken,
            "promoted": promoted,
            "sent": sent,
            "predictions": predictions,
            "actions": actions,
            "operator": lanes[2],
        }
    finally:
        traffic.stop()
        for lane in reversed(lanes):
            lane.stop()
        plane.close()


def test_a_broken_champion_is_rolled_back_and_no_prediction_is_lost_or_duplicated(
    healing,
) -> None:
    good, broken = healing["good"], healing["broken"]
    [action] = healing["actions"]
    assert (action["kind"], action["model"], action["version"]) == ("rollback", "m", broken)
    assert (action["version_before"], action["version_after"]) == (broken, good)
    assert healing["plane"].state("m").champion == good
    # Every request answered exactly once, across both switches.
    counts = Counter(p["request_id"] for p in healing["predictions"])
    assert set(counts) == set(healing["sent"]) and set(counts.values()) == {1}
    by_time = sorted(healing["predictions"], key=lambda p: p["scored_time"])
    versions = [p["version"] for p in by_time]
    # v1, then the broken v2, then v1 again until the end.
    assert versions[0] == good and broken in versions and versions[-1] == good
    first_broken = versions.index(broken)
    last_broken = len(versions) - 1 - versions[::-1].index(broken)
    assert set(versions[first_broken : last_broken + 1]) == {broken}
    restored = by_time[last_broken + 1]
    assert restored["scored_time"] >= action["ts"] - 1000  # within the control plane's second
    # Whatever else fired on the model (the second rule) is held: one action only.
    records = read_actions(healing["settings"])
    assert Counter(r["outcome"] for r in records)["done"] == 1


def test_the_provenance_is_in_models_show_actions_list_and_clickhouse(healing) -> None:
    from streams.roles.sink import Sink, SinkOptions
    from streams.storage import db

    settings = healing["settings"]
    [action] = healing["actions"]
    runner = CliRunner()
    shown = runner.invoke(main, ["models", "show", "m", "--json"], obj=settings)
    assert shown.exit_code == 0, shown.output
    [logged] = json.loads(shown.output)["state"]["actions"]
    assert logged["action_id"] == action["action_id"]
    assert (logged["alert_id"], logged["rule"], logged["metric"]) == (
        action["alert_id"],
        action["rule"],
        "accuracy",
    )
    assert float(logged["value"]) < 0.7 and float(logged["threshold"]) == action["threshold"]
    assert int(logged["window_end"]) - int(logged["window_start"]) == 3000
    listed = runner.invoke(main, ["actions", "list", "--json", "--model", "m"], obj=settings)
    assert listed.exit_code == 0, listed.output
    rows = {r["action_id"]: r for r in json.loads(listed.output)}
    row = rows[action["action_id"]]
    assert (row["outcome"], row["actor"], row["alert_id"]) == ("done", ACTOR, action["alert_id"])

    db.ensure_schema(settings)  # what `lastmile init` does, before the sink starts
    sink = Sink(settings, SinkOptions.from_settings(None, env={}), roles=["actions"])
    sink.start()
    try:
        client = db.connect(settings)

        def landed() -> list:
            return client.query(
                "SELECT action_id, alert_id, rule, outcome, version_before, version_after, "
                "metric, actor FROM actions WHERE outcome = 'done'"
            ).result_rows

        rows_ch = wait_until(landed, 60, "the action in ClickHouse")
    finally:
        sink.stop()
    assert rows_ch == [
        (
            action["action_id"],
            action["alert_id"],
            action["rule"],
            "done",
            healing["broken"],
            healing["good"],
            "accuracy",
            ACTOR,
        )
    ]


# -- alerts produced directly: the operator alone ------------------------------------------


def produce_alerts(settings: Settings, alerts: list[dict[str, Any]]) -> None:
    producer = Producer(settings.producer_config())
    for a in alerts:
        value, headers = CODEC.encode("Alert", a)
        producer.produce(settings.topic_alerts, value, a["model"].encode(), headers=headers)
    assert producer.flush(30) == 0


def operator_acting_on(
    settings: Settings, alerts: list[dict[str, Any]], acted: Callable[[], Any], what: str
) -> Any:
    """An operator running while ``alerts`` are produced, until ``acted()`` is truthy
    (its value), within 30 s; stopped after."""
    lane = OperatorLane(settings)
    lane.start()
    try:
        produce_alerts(settings, alerts)
        return wait_until(acted, 30, what)
    finally:
        lane.stop()


def alert(rule: str, version: int, **kw: Any) -> dict[str, Any]:
    ts = int(time.time() * 1000) - 1000
    unique = f"{rule}-{version}-{uuid.uuid4().hex[:4]}"
    return accuracy_alert(rule, version, 0.2, ts, **{"alert_id": unique, **kw})


@pytest.fixture
def alone(fresh_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[dict[str, Any]]:
    def make(**overrides: Any) -> Settings:
        settings = fresh_settings(
            monitor_rules=rules_file(tmp_path),
            operator_group=f"operator-{uuid.uuid4().hex[:6]}",
            **overrides,
        )
        ensure_topics(settings)
        return settings

    yield make


def events_of(settings: Settings) -> list[dict[str, Any]]:
    return read_records(settings, settings.topic_model_events, "ModelEvent")


def test_dry_run_acts_on_nothing(alone) -> None:
    settings = alone(actions_mode="dry-run")
    with ControlPlane(settings) as plane:
        good, broken = register_pair(plane, "m")
        plane.promote("m", broken)
        before = plane.state("m")
        published = len(events_of(settings))
        [record] = operator_acting_on(
            settings,
            [alert("fresh_champion", broken)],
            lambda: read_actions(settings),
            "the dry-run record",
        )
        assert (record["outcome"], record["mode"]) == ("would", "dry-run")
        assert record["message"] == f"would roll back m from v{broken} to v{good}"
        after = plane.state("m")
    assert after.to_dict() == before.to_dict()
    assert len(events_of(settings)) == published  # nothing told to the scorers


def test_cooldown_and_restarts_act_once_per_alert(alone) -> None:
    settings = alone(actions_cooldown="1h")
    with ControlPlane(settings) as plane:
        v1, v2 = register_pair(plane, "m")
        v3 = plane.register_and_publish("m", Classifier(), "python", features=["x"]).version
        plane.promote("m", v2)
        plane.promote("m", v3)
        # Two alerts on v3 in one window: one rollback, one held by the cooldown.
        records = operator_acting_on(
            settings,
            [alert("fresh_champion", v3), alert("champion_floor", v3)],
            lambda: actions_at_least(settings, 2),
            "2 records",
        )
        assert sorted((r["outcome"], r["reason"]) for r in records) == [
            ("done", ""),
            ("skipped", "cooldown"),
        ]
        assert plane.state("m").champion == v2
        # A new operator (same group) replays nothing twice; the cooldown survived it.
        restarted = OperatorLane(settings)
        restarted.start()
        try:
            produce_alerts(settings, [alert("fresh_champion", v2)])
            wait_until(lambda: actions_at_least(settings, 3), 30, "3 records")
            time.sleep(2)  # nothing more comes
            later = read_actions(settings)
        finally:
            restarted.stop()
        assert len(later) == 3 and len({r["action_id"] for r in later}) == 3
        assert (later[-1]["outcome"], later[-1]["reason"]) == ("skipped", "cooldown")
        assert plane.state("m").champion == v2 and len(plane.state("m").actions) == 1


def test_one_command_undoes_an_action(alone) -> None:
    settings = alone()
    with ControlPlane(settings) as plane:
        good, broken = register_pair(plane, "m")
        plane.promote("m", broken)
        [done] = operator_acting_on(
            settings,
            [alert("fresh_champion", broken)],
            lambda: read_actions(settings),
            "the rollback",
        )
        assert plane.state("m").champion == good
        runner = CliRunner()
        undo = runner.invoke(main, ["actions", "undo", done["action_id"]], obj=settings)
        assert undo.exit_code == 0, undo.output
        assert plane.state("m").champion == broken
        seq = plane.state("m").seq
        again = runner.invoke(main, ["actions", "undo", done["action_id"]], obj=settings)
        assert again.exit_code == 0 and "undone already" in again.output
        assert plane.state("m").champion == broken and plane.state("m").seq == seq
        unknown = runner.invoke(main, ["actions", "undo", "nope"], obj=settings)
        assert unknown.exit_code == 1 and "no action 'nope'" in unknown.output
    records = read_actions(settings)
    assert [(r["kind"], r["outcome"]) for r in records] == [("rollback", "done"), ("undo", "done")]
    assert records[1]["version_after"] == broken and records[1]["actor"] != ACTOR
