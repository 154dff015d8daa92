"""Configuration: defaults for the embedded stack, lastmile.toml, LASTMILE_* variables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.cli.main import main
from streams.config import (
    ConfigError,
    describe,
    load_settings,
    load_settings_with_sources,
    settings_env,
)


def test_defaults_suit_the_embedded_stack() -> None:
    s = load_settings(env={}, toml_path=None)
    assert s.embedded_kafka and s.embedded_clickhouse
    assert s.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert s.clickhouse_params()["port"] == 8123
    assert s.clickhouse_params()["database"] == "lastmile"
    assert s.registry_location == str(Path(".lastmile") / "registry")
    assert s.topics["requests"] == "scoring.requests"
    assert s.topic_model_events == "models.events"
    assert s.dashboard_host == "127.0.0.1"


def test_environment_beats_toml_beats_default(tmp_path: Path) -> None:
    toml = tmp_path / "lastmile.toml"
    toml.write_text('kafka_port = 19092\ntopic_requests = "in"\n[kafka_client]\n"linger.ms" = 5\n')
    s, sources = load_settings_with_sources(
        env={"LASTMILE_TOPIC_REQUESTS": "from-env"}, toml_path=toml
    )
    assert s.kafka_port == 19092 and sources["kafka_port"] == str(toml)
    assert s.topic_requests == "from-env"
    assert sources["topic_requests"] == "$LASTMILE_TOPIC_REQUESTS"
    assert s.kafka_config()["linger.ms"] == "5"
    assert sources["topic_outcomes"] == "default"


def test_kafka_client_wins_over_lastmile_defaults_not_over_its_delivery_settings() -> None:
    env = {"LASTMILE_KAFKA_CLIENT": '{"linger.ms": 50, "fetch.wait.max.ms": 100}'}
    s = load_settings(env=env, toml_path=None)
    # The embedded broker's defaults (linger 20 ms, fetch wait 10 ms) give way to the user's.
    assert s.producer_config()["linger.ms"] == "50"
    assert s.producer_config(linger_ms=2)["linger.ms"] == "50"
    assert s.consumer_config("g")["fetch.wait.max.ms"] == "100"
    # What the delivery guarantee rests on stays lastmile's.
    assert s.producer_config()["acks"] == "all"
    assert s.consumer_config("g")["enable.auto.commit"] is False
    # Without the user's word, the caller's default linger applies.
    assert load_settings(env={}, toml_path=None).producer_config(linger_ms=2)["linger.ms"] == 2

    for key in ("acks", "enable.auto.commit", "isolation.level", "transactional.id"):
        with pytest.raises(ConfigError, match=f"kafka_client: '{key}' is set by lastmile"):
            load_settings(env={"LASTMILE_KAFKA_CLIENT": f'{{"{key}": "1"}}'}, toml_path=None)


def test_lastmile_config_variable_names_the_file(tmp_path: Path) -> None:
    toml = tmp_path / "other.toml"
    toml.write_text("[lastmile]\ndashboard_port = 9000\n")
    assert load_settings(env={"LASTMILE_CONFIG": str(toml)}).dashboard_port == 9000
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(env={"LASTMILE_CONFIG": str(tmp_path / "missing.toml")})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LASTMILE_KAFKA_PORT": "ninety"}, "kafka_port"),
        ({"LASTMILE_KAFKA_PORT": "70000"}, "between 1 and 65535"),
        ({"LASTMILE_KAFKA_CLIENT": "[1, 2]"}, "JSON object"),
        ({"LASTMILE_KAFKA_FAST_GROUP_JOIN": "maybe"}, "true or false"),
        # "auto" only for a setting with an automatic value: unset, this one would have
        # made the scorer at least once without a word.
        ({"LASTMILE_SCORER_EXACTLY_ONCE": "auto"}, "true or false"),
        ({"LASTMILE_SCORER_EXACTLY_ONCE": ""}, "true or false"),
    ],
)
def test_bad_values_name_the_setting_and_source(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        load_settings(env=env, toml_path=None)
    assert next(iter(env)) in str(err.value)


def test_auto_leaves_a_setting_with_an_automatic_value_unset() -> None:
    env = {"LASTMILE_KAFKA_FAST_GROUP_JOIN": "auto"}
    assert load_settings(env=env, toml_path=None).kafka_fast_group_join is None


def test_unknown_toml_key_is_an_error(tmp_path: Path) -> None:
    toml = tmp_path / "lastmile.toml"
    toml.write_text("kafka_prot = 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'kafka_prot'"):
        load_settings(env={}, toml_path=toml)


def test_sasl_and_ssl_pass_through_to_every_client() -> None:
    s = load_settings(
        env={
            "LASTMILE_KAFKA_BOOTSTRAP": "broker-1:9093,broker-2:9093",
            "LASTMILE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "LASTMILE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "LASTMILE_KAFKA_SASL_USERNAME": "svc",
            "LASTMILE_KAFKA_SASL_PASSWORD": "hunter2",
            "LASTMILE_KAFKA_SSL_CA_LOCATION": "/etc/ca.pem",
        },
        toml_path=None,
    )
    for conf in (s.kafka_config(), s.producer_config(), s.consumer_config("g")):
        assert conf["bootstrap.servers"] == "broker-1:9093,broker-2:9093"
        assert conf["security.protocol"] == "SASL_SSL"
        assert conf["sasl.mechanisms"] == "SCRAM-SHA-512"
        assert conf["sasl.username"] == "svc" and conf["sasl.password"] == "hunter2"
        assert conf["ssl.ca.location"] == "/etc/ca.pem"
    # Real Kafka keeps librdkafka's own timeouts; the embedded broker gets short ones.
    assert "session.timeout.ms" not in s.consumer_config("g")
    assert load_settings(env={}, toml_path=None).consumer_config("g")["session.timeout.ms"] == 6000


def test_clickhouse_url_carries_credentials_and_database() -> None:
    s = load_settings(
        env={"LASTMILE_CLICKHOUSE_URL": "https://ml:s%40cret@ch.internal:8443/prod"}, toml_path=None
    )
    params = s.clickhouse_params()
    assert params == {
        "host": "ch.internal",
        "port": 8443,
        "secure": True,
        "username": "ml",
        "password": "s@cret",
        "database": "prod",
    }
    assert not s.embedded_clickhouse
    with pytest.raises(ConfigError, match="not an http"):
        bad = load_settings(env={"LASTMILE_CLICKHOUSE_URL": "ch.internal"}, toml_path=None)
        bad.clickhouse_params()


def test_config_command_masks_secrets() -> None:
    env = {
        "LASTMILE_CLICKHOUSE_URL": "http://ml:topsecret@ch:8123/lastmile",
        "LASTMILE_KAFKA_SASL_PASSWORD": "hunter2",
        "LASTMILE_KAFKA_CLIENT": '{"ssl.key.password": "keypass", "linger.ms": "5"}',
    }
    result = CliRunner().invoke(main, ["config", "--json"], env=env)
    assert result.exit_code == 0, result.output
    for secret in ("topsecret", "hunter2", "keypass"):
        assert secret not in result.output
    rows = {row["setting"]: row for row in json.loads(result.output)}
    assert rows["clickhouse_url"]["value"] == "http://ml:***@ch:8123/lastmile"
    assert rows["kafka_sasl_password"]["value"] == "***"
    assert rows["kafka_sasl_password"]["source"] == "$LASTMILE_KAFKA_SASL_PASSWORD"
    assert set(describe(load_settings(env={}, toml_path=None))[0]) >= {"setting", "env", "doc"}


def test_config_command_reports_a_bad_value_in_one_line() -> None:
    result = CliRunner().invoke(main, ["config"], env={"LASTMILE_KAFKA_PORT": "x"})
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0
    assert "LASTMILE_KAFKA_PORT" in result.output


def test_sections_read_from_a_table_flat_keys_and_the_environment(tmp_path: Path) -> None:
    toml = tmp_path / "lastmile.toml"
    toml.write_text(
        'learner_join_ttl = "2d"\n'
        '[learner]\npolicy = "auto"\ngroup = "g-toml"\n'
        '[monitor]\nwindow = "5m"\nsegments = ["plan", "variant"]\n'
    )
    env = {"LASTMILE_LEARNER_GROUP": "g-env", "LASTMILE_MONITOR_DETECTORS": ""}
    s, sources = load_settings_with_sources(env=env, toml_path=toml)
    assert (s.learner.policy, s.learner.join_ttl, s.learner.group_id) == ("auto", 172800.0, "g-env")
    assert (s.monitor.window, s.monitor.step, s.monitor.segments) == (
        300.0,
        300.0,
        ("plan", "variant"),
    )
    # An empty list is a choice; an empty scalar keeps its default.
    assert s.monitor.detectors == ()
    assert load_settings(env={"LASTMILE_LEARNER_POLICY": " "}, toml_path=None).learner.policy == (
        "challenger"
    )
    assert sources["learner_policy"] == sources["learner_join_ttl"] == str(toml)
    assert sources["learner_group"] == "$LASTMILE_LEARNER_GROUP"
    assert sources["monitor_rules"] == "default"


def test_a_section_refuses_a_bad_value_naming_its_source(tmp_path: Path) -> None:
    toml = tmp_path / "lastmile.toml"
    toml.write_text('[learner]\npolcy = "auto"\n')
    with pytest.raises(ConfigError, match=r"unknown setting 'polcy' in \[learner\]"):
        load_settings(env={}, toml_path=toml)
    toml.write_text('[learner]\npolicy = "sometimes"\n')
    with pytest.raises(ConfigError, match=f"use auto | challenger | manual .from {toml}") as err:
        load_settings(env={}, toml_path=toml)
    assert err.value.key == "learner_policy"
    with pytest.raises(ConfigError, match=r"LASTMILE_MONITOR_WINDOW.*not a duration"):
        load_settings(env={"LASTMILE_MONITOR_WINDOW": "soon"}, toml_path=None)
    with pytest.raises(ConfigError, match=r"detector 'score:nope'.*LASTMILE_MONITOR_DETECTORS"):
        load_settings(env={"LASTMILE_MONITOR_DETECTORS": "score:nope"}, toml_path=None)


def test_config_lists_every_section_setting_with_its_source() -> None:
    env = {
        "LASTMILE_MONITOR_WEBHOOKS": "http://u:hookpass@a/hook,http://b/hook",
        "LASTMILE_LEARNER_SNAPSHOT_INTERVAL": "10m",
    }
    result = CliRunner().invoke(main, ["config", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert "hookpass" not in result.output
    rows = {row["setting"]: row for row in json.loads(result.output)}
    assert rows["monitor_webhooks"]["value"] == "http://u:***@a/hook,http://b/hook"
    assert rows["learner_snapshot_interval"]["value"] == "10m"
    assert rows["learner_snapshot_interval"]["source"] == "$LASTMILE_LEARNER_SNAPSHOT_INTERVAL"
    assert rows["learner_group"]["env"] == "LASTMILE_LEARNER_GROUP"
    assert rows["monitor_window"] == {**rows["monitor_window"], "value": "1m", "source": "default"}
    assert "learner" not in rows and "monitor" not in rows


def test_settings_env_gives_a_child_process_the_same_settings() -> None:
    s = load_settings(
        env={"LASTMILE_LEARNER_CHECKPOINT_INTERVAL": "0.3", "LASTMILE_MONITOR_SEGMENTS": "plan"},
        toml_path=None,
        kafka_port=19092,
    )
    assert load_settings(env=settings_env(s), toml_path=None) == s
