"""The operator's decisions and guards without a broker: a real registry on disk and a
control plane that does not publish; alerts go in as encoded Alert messages."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest
from sample_records import accuracy_alert

from monitors.rules import RuleError, parse_rules
from schemas import Codec
from streams.config import ConfigError, load_settings
from streams.models import ControlPlane
from streams.roles.operator import Operator, OperatorSettings, action_id

CODEC = Codec()
NOW_MS = int(time.time() * 1000)  # promotions in the fixture are stamped with the wall clock

RULES = """
rules:
  - {name: acc, kind: performance, metric: accuracy, direction: below, threshold: 0.7,
     action: rollback, within: 24h}
  - {name: arm, kind: performance, metric: accuracy, direction: below, threshold: 0.6,
     action: shed}
  - {name: better, kind: performance, metric: comparison_decision, threshold: 1,
     action: promote}
  - {name: plain, kind: performance, metric: accuracy, direction: below, threshold: 0.5}
"""


class Message:
    """What the handler reads of a Kafka message."""

    def __init__(self, value: bytes, headers: Any, offset: int = 0) -> None:
        self._value, self._headers, self._offset = value, headers, offset

    def value(self) -> bytes:
        return self._value

    def headers(self) -> Any:
        return self._headers

    def topic(self) -> str:
        return "monitor.alerts"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return b"m"

    def timestamp(self) -> tuple[int, int]:
        return (1, NOW_MS)


def alert(rule: str = "acc", version: int | None = 2, ts: int = NOW_MS - 5_000, **kw: Any):
    return Message(*CODEC.encode("Alert", accuracy_alert(rule, version, 0.3, ts, **kw)))


class Clock:
    def __init__(self) -> None:
        self.now = NOW_MS / 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Any]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    settings = load_settings(env={}, toml_path=None, data_dir=tmp_path, monitor_rules=str(rules))
    plane = ControlPlane(settings, publish=False, actor="lastmile-operator")
    from river import linear_model

    for _ in range(3):
        plane.register_and_publish("m", linear_model.LogisticRegression(), "river", features=["x"])
    plane.promote("m", 1)
    plane.promote("m", 2)
    clock = Clock()

    def make(**options: Any) -> Operator:
        base = OperatorSettings.from_settings(settings)
        return Operator(
            settings, dataclasses.replace(base, **options), plane=plane, codec=CODEC, clock=clock
        )

    return {"settings": settings, "plane": plane, "clock": clock, "make": make}


def decode(outputs: list) -> list[dict[str, Any]]:
    return [CODEC.decode(o.value, o.headers, "Action") for o in outputs]


def test_a_fresh_broken_champion_is_rolled_back_with_its_provenance(world) -> None:
    operator = world["make"]()
    [record] = decode(operator.process([alert()]))
    assert (record["kind"], record["outcome"], record["mode"]) == ("rollback", "done", "enforce")
    assert (record["version_before"], record["version_after"]) == (2, 1)
    assert record["message"] == "rolled back m from v2 to v1"
    assert record["actor"] == "lastmile-operator"
    state = world["plane"].state("m")
    assert state.champion == 1
    [logged] = state.actions
    assert logged["action_id"] == record["action_id"]
    assert (logged["rule"], logged["metric"], logged["value"], logged["threshold"]) == (
        "acc",
        "accuracy",
        "0.3",
        "0.7",
    )
    assert logged["window_end"] == str(NOW_MS - 5_000)


def test_dry_run_changes_nothing_and_records_what_it_would_do(world) -> None:
    operator = world["make"](mode="dry-run")
    before = world["plane"].state("m")
    [record] = decode(operator.process([alert()]))
    assert (record["outcome"], record["mode"]) == ("would", "dry-run")
    assert record["message"] == "would roll back m from v2 to v1"
    after = world["plane"].state("m")
    assert after.champion == 2 and after.seq == before.seq and after.actions == []


def test_two_alerts_within_the_cooldown_cause_one_action(world) -> None:
    operator = world["make"](cooldown=600.0)
    world["plane"].promote("m", 3)  # v3 fresh: the first alert rolls it back to v2
    first = decode(operator.process([alert(version=3)]))
    world["clock"].now += 60
    second = decode(operator.process([alert(version=2, ts=NOW_MS + 55_000)]))
    assert [r["outcome"] for r in first + second] == ["done", "skipped"]
    assert second[0]["reason"] == "cooldown"
    assert world["plane"].state("m").champion == 2


def test_the_hourly_cap_holds_after_the_cooldown(world) -> None:
    operator = world["make"](cooldown=1.0, max_per_hour=1)
    world["plane"].promote("m", 3)
    decode(operator.process([alert(version=3)]))
    world["clock"].now += 120
    [record] = decode(operator.process([alert(version=2, ts=NOW_MS + 115_000)]))
    assert (record["outcome"], record["reason"]) == ("skipped", "cap")


def test_never_past_the_first_version(world) -> None:
    operator = world["make"]()
    world["plane"].rollback("m")  # champion v1, the first one
    [record] = decode(operator.process([alert(version=1)]))
    assert (record["outcome"], record["reason"]) == ("skipped", "first_version")
    assert world["plane"].state("m").champion == 1


def test_a_stale_alert_is_not_acted_on(world) -> None:
    operator = world["make"]()
    [record] = decode(operator.process([alert(ts=NOW_MS - 71_000)]))
    assert (record["outcome"], record["reason"]) == ("skipped", "stale")
    assert world["plane"].state("m").champion == 2


def test_an_old_champion_only_alerts(world) -> None:
    operator = world["make"]()
    world["clock"].now += 2 * 86400
    [record] = decode(operator.process([alert(ts=NOW_MS + 2 * 86400_000 - 1000)]))
    assert (record["outcome"], record["reason"]) == ("skipped", "outside_within")


def test_resolved_alerts_and_rules_without_action_do_nothing(world) -> None:
    operator = world["make"]()
    assert operator.process([alert(state="resolved"), alert(rule="plain")]) == []
    assert world["plane"].state("m").champion == 2


def test_shed_sets_the_challenger_weight_to_zero(world) -> None:
    plane = world["plane"]
    plane.promote("m", 3, alias="challenger")
    plane.split("m", {"champion": 90, "challenger": 10})
    operator = world["make"]()
    skipped, done = decode(operator.process([alert("arm", version=2), alert("arm", version=3)]))
    assert (skipped["outcome"], skipped["reason"]) == ("skipped", "not_target")
    assert done["outcome"] == "done"
    assert (done["split_before"], done["split_after"]) == (
        "champion=90,challenger=10",
        "champion=90,challenger=0",
    )
    assert plane.state("m").split == {"champion": 90.0, "challenger": 0.0}


def test_promote_makes_the_challenger_champion(world) -> None:
    plane = world["plane"]
    plane.promote("m", 3, alias="challenger")
    operator = world["make"]()
    [record] = decode(operator.process([alert("better", version=None)]))
    assert (record["outcome"], record["version_before"], record["version_after"]) == ("done", 2, 3)
    assert plane.state("m").champion == 3


def test_a_replayed_alert_after_a_crash_changes_nothing_twice(world) -> None:
    """The operator died after the control change, before committing the alert's offset:
    its successor reads the alert again, finds the action in the state's log and only
    records it."""
    crashed = world["make"]()
    crashed.process([alert()])  # its outputs never committed
    seq = world["plane"].state("m").seq
    successor = world["make"]()
    successor.restore([])  # the actions topic holds nothing of the crashed batch
    world["clock"].now += 600  # the alert is stale by now: it is still recorded as done
    [record] = decode(successor.process([alert()]))
    assert (record["outcome"], record["reason"]) == ("done", "replayed")
    assert (record["version_before"], record["version_after"]) == (2, 1)
    state = world["plane"].state("m")
    assert state.champion == 1 and state.seq == seq and len(state.actions) == 1


def test_an_action_already_published_is_not_published_again(world) -> None:
    first = world["make"]()
    [record] = decode(first.process([alert()]))
    again = world["make"]()
    again.restore([record])
    assert again.process([alert()]) == []
    assert record["action_id"] == action_id({"alert_id": "acc-2", "ts": NOW_MS - 5_000})


def test_an_undecodable_alert_is_a_dead_letter(world) -> None:
    operator = world["make"]()
    [out] = operator.process([Message(b"\x00garbage", [])])
    assert out.topic == world["settings"].topic_dlq
    letter = CODEC.decode(out.value, out.headers, "DeadLetter")
    assert letter["original_value"] == b"\x00garbage"


def test_bad_settings_and_rules_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="LASTMILE_ACTIONS_COOLDOWN"):
        OperatorSettings.from_settings(
            load_settings(env={"LASTMILE_ACTIONS_COOLDOWN": "soon"}, toml_path=None)
        )
    with pytest.raises(RuleError, match="field 'within': only means something with an action"):
        parse_rules([{"name": "x", "kind": "performance", "metric": "a", "threshold": 1,
                      "within": "1h"}])  # fmt: skip
    with pytest.raises(RuleError, match="field 'within'"):
        parse_rules([{"name": "x", "kind": "performance", "metric": "a", "threshold": 1,
                      "action": "rollback", "within": "soon"}])  # fmt: skip
