"""Alert rules: parsing with clear errors, and firing/resolving semantics."""

from __future__ import annotations

import json

import pytest

from monitors.events import MetricValue
from monitors.rules import DEFAULT_RULES, Rule, RuleEngine, RuleError, load_rules, parse_rules


def mv(i, value, metric="missing_rate", feature="age", model="churn", version="3", n=1000):
    return MetricValue(model, version, 60.0 * i, 60.0 * (i + 1), metric, feature, value, n=n)


def run(engine, values, **kw):
    return [(a.state, i) for i, v in enumerate(values) for a in engine.evaluate(mv(i, v, **kw))]


def test_fires_only_after_for_consecutive_windows():
    engine = RuleEngine([Rule("r", "quality", "missing_rate", 0.2, for_windows=3)])
    assert run(engine, [0.3, 0.3, 0.1, 0.3, 0.3, 0.3, 0.3]) == [("firing", 5)]


def test_dedupes_while_firing_and_resolves_with_hysteresis():
    engine = RuleEngine([Rule("r", "quality", "missing_rate", 0.2, resolve=0.1)])
    # 0.15 is below the threshold but above the resolve level: still firing.
    assert run(engine, [0.3, 0.5, 0.15, 0.19, 0.3, 0.05, 0.25]) == [
        ("firing", 0),
        ("resolved", 5),
        ("firing", 6),
    ]


def test_cooldown_suppresses_refiring():
    engine = RuleEngine([Rule("r", "quality", "missing_rate", 0.2, cooldown=300)])
    # Windows are 60 s: fired at end 60, resolved, breached again at end 180 and 240
    # (within 300 s of the firing), fires at end 360 once the cooldown has passed.
    states = run(engine, [0.3, 0.0, 0.3, 0.3, 0.3, 0.3, 0.3])
    assert states == [("firing", 0), ("resolved", 1), ("firing", 5)]


def test_below_direction_and_alert_fields():
    rule = Rule("acc", "performance", "accuracy", 0.7, direction="below", resolve=0.75)
    engine = RuleEngine([rule])
    alerts = engine.evaluate_many(
        [mv(0, 0.65, "accuracy", None), mv(1, 0.72, "accuracy", None), mv(2, 0.8, "accuracy", None)]
    )
    assert [(a.state, a.value, a.threshold, a.ts) for a in alerts] == [
        ("firing", 0.65, 0.7, 60.0),
        ("resolved", 0.8, 0.75, 180.0),
    ]
    a = alerts[0]
    assert (a.model, a.version, a.kind, a.metric, a.feature, a.severity, a.rule) == (
        "churn",
        "3",
        "performance",
        "accuracy",
        None,
        "warning",
        "acc",
    )


def test_alerts_are_keyed_per_feature_version_and_rule():
    rules = [
        Rule("warn", "quality", "missing_rate", 0.2),
        Rule("crit", "quality", "missing_rate", 0.5, severity="critical"),
    ]
    engine = RuleEngine(rules)
    alerts = engine.evaluate_many(
        [
            mv(0, 0.3, feature="age"),
            mv(0, 0.6, feature="income"),
            mv(0, 0.3, feature="age", version="4"),
            mv(1, 0.3, feature="age"),  # still firing: no new alert
        ]
    )
    assert sorted((a.rule, a.version, a.feature) for a in alerts) == [
        ("crit", "3", "income"),
        ("warn", "3", "age"),
        ("warn", "3", "income"),
        ("warn", "4", "age"),
    ]
    assert len(engine.firing()) == 4


def test_replayed_windows_are_ignored():
    engine = RuleEngine([Rule("r", "quality", "missing_rate", 0.2, for_windows=2)])
    events = [mv(0, 0.3), mv(0, 0.3), mv(0, 0.3)]  # one window delivered three times
    assert engine.evaluate_many(events) == []
    assert [a.state for a in engine.evaluate(mv(1, 0.3))] == ["firing"]


def test_selectors():
    rule = Rule(
        "r",
        "drift",
        "drift",
        0.5,
        features=("x*", "plan"),
        exclude=("x_secret",),
        models=("churn*",),
        min_n=100,
    )
    assert rule.matches(mv(0, 1, "drift", "x1"))
    assert rule.matches(mv(0, 1, "drift", "plan"))
    assert not rule.matches(mv(0, 1, "drift", "x_secret"))
    assert not rule.matches(mv(0, 1, "drift", "age"))
    assert not rule.matches(mv(0, 1, "drift", None))  # model-level: only "*" selects it
    assert not rule.matches(mv(0, 1, "drift", "x1", model="fraud"))
    assert not rule.matches(mv(0, 1, "drift", "x1", n=10))
    assert not rule.matches(mv(0, 1, "psi", "x1"))
    assert Rule("all", "drift", "drift_share", 0.5).matches(mv(0, 1, "drift_share", None))


def test_state_roundtrip_keeps_streaks_cooldowns_and_firing():
    rules = [Rule("r", "quality", "missing_rate", 0.2, for_windows=2, cooldown=600)]
    a = RuleEngine(rules)
    a.evaluate_many([mv(0, 0.3), mv(1, 0.3), mv(2, 0.0), mv(3, 0.3)])
    b = RuleEngine.from_dict(json.loads(json.dumps(a.to_dict())), rules)
    tail = [mv(i, 0.3) for i in range(4, 14)]
    assert a.evaluate_many(tail) == b.evaluate_many(tail)
    assert b.firing() == a.firing() != []


def test_default_rules_load_and_are_sensible():
    rules = {r.name: r for r in load_rules()}
    assert DEFAULT_RULES.name == "rules.yaml"
    assert {r.kind for r in rules.values()} == {"drift", "performance", "quality", "latency"}
    assert (
        rules["feature_drift"].metric == "drift" and "__score__" in rules["feature_drift"].exclude
    )
    assert rules["accuracy_drop"].direction == "below"
    for name in ("dead_letters", "missing_values", "latency_p99", "dataset_drift"):
        assert name in rules
    engine = RuleEngine.from_yaml()
    alerts = engine.evaluate_many([mv(i, 1.0, "drift", "age") for i in range(2)])
    assert [(a.rule, a.state) for a in alerts] == [("feature_drift", "firing")]


#: A valid rule; each bad one below differs from it in one field.
GOOD_RULE = {"name": "x", "kind": "drift", "metric": "psi", "threshold": 1}


@pytest.mark.parametrize(
    "change,field,message",
    [
        ({"name": None}, "name", "name"),
        ({"kind": None}, "kind", "required"),
        ({"kind": "weather"}, "kind", "one of"),
        ({"threshold": "hi"}, "threshold", "number"),
        ({"for": 0}, "for", ">= 1"),
        ({"severity": "meh"}, "severity", "one of"),
        ({"direction": "up"}, "direction", "above"),
        ({"resolve": 2}, "resolve", "hysteresis"),
        ({"cooldown": "soon"}, "cooldown", "duration"),
        ({"features": 3}, "features", "glob"),
        ({"treshold": 2}, "treshold", "unknown field"),
    ],
)
def test_invalid_rules_name_file_rule_and_field(tmp_path, change, field, message):
    import yaml

    # None removes the field.
    rule = {k: v for k, v in {**GOOD_RULE, **change}.items() if v is not None}
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"rules": [rule]}))
    with pytest.raises(RuleError) as info:
        load_rules(path)
    err = info.value
    assert err.file == str(path) and err.field == field
    assert err.rule == rule.get("name", "")
    assert message in str(err) and str(path) in str(err)


def test_invalid_yaml_and_structure(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: x\n    kind: [drift\n")
    with pytest.raises(RuleError, match=r"bad.yaml: invalid YAML at line \d+"):
        load_rules(bad)
    with pytest.raises(RuleError, match="cannot read"):
        load_rules(tmp_path / "missing.yaml")
    with pytest.raises(RuleError, match="must be a list"):
        parse_rules({"rules": {"name": "x"}})
    with pytest.raises(RuleError, match="top-level"):
        parse_rules({"alerts": []})
    dup = [{"name": "x", "kind": "drift", "metric": "psi", "threshold": 1}] * 2
    with pytest.raises(RuleError, match="duplicate"):
        parse_rules(dup)
    assert parse_rules(None) == []
