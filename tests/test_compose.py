"""docker-compose.yml: no Docker engine runs here, so read the file and check it
against what the code reads."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
import yaml

from streams.cli.main import main
from streams.config import FIELDS, load_settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
LASTMILE = {name: s for name, s in SERVICES.items() if s.get("image", "").startswith("lastmile")}


def test_the_stack_has_kafka_clickhouse_every_role_and_the_dashboard() -> None:
    roles = {"scorer", "sink", "monitor", "learner", "dashboard"}
    assert {"kafka", "clickhouse", "init"} | roles <= set(SERVICES)
    assert (ROOT / "Dockerfile").exists()
    assert all(s.get("build") == "." for s in LASTMILE.values())


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_images_are_pinned(name: str) -> None:
    image = SERVICES[name]["image"]
    assert ":" in image and not image.endswith(":latest"), image


def test_kafka_runs_in_kraft_mode_with_a_healthcheck() -> None:
    env = SERVICES["kafka"]["environment"]
    assert "broker" in env["KAFKA_PROCESS_ROLES"] and "controller" in env["KAFKA_PROCESS_ROLES"]
    assert "KAFKA_ZOOKEEPER_CONNECT" not in env
    assert SERVICES["kafka"]["healthcheck"]["test"]
    assert SERVICES["clickhouse"]["healthcheck"]["test"]
    assert SERVICES["kafka"]["volumes"] and SERVICES["clickhouse"]["volumes"]


@pytest.mark.parametrize("name", sorted(LASTMILE))
def test_every_lastmile_setting_is_one_the_code_reads(name: str) -> None:
    env = {k: str(v) for k, v in LASTMILE[name]["environment"].items()}
    for key in env:
        assert key.startswith("LASTMILE_"), key
        assert key.removeprefix("LASTMILE_").lower() in FIELDS, f"{name}: {key} is read by nothing"
    # Compose substitutes ${VAR:-default}; check the values with the defaults applied.
    resolved = {k: _substitute(v) for k, v in env.items()}
    settings = load_settings(env=resolved, toml_path=None)
    assert not settings.embedded_kafka and not settings.embedded_clickhouse

    kafka_listener = SERVICES["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert kafka_listener.split("://", 1)[1] == settings.kafka_bootstrap_servers

    ch_env = SERVICES["clickhouse"]["environment"]
    params = settings.clickhouse_params()
    assert params["host"] == "clickhouse" and params["port"] == 8123
    assert params["username"] == ch_env["CLICKHOUSE_USER"]
    assert params["password"] == _substitute(ch_env["CLICKHOUSE_PASSWORD"])
    assert params["database"] == ch_env["CLICKHOUSE_DB"]


@pytest.mark.parametrize("name", sorted(LASTMILE))
def test_every_command_is_a_lastmile_command(name: str) -> None:
    args = LASTMILE[name]["command"]
    ctx = click.Context(main)
    command = main.get_command(ctx, args[0])
    assert command is not None, f"{name}: lastmile has no command {args[0]!r}"
    if "--roles" in args:
        from streams.app import parse_roles

        parse_roles(args[args.index("--roles") + 1])
    # The options parse as the command defines them.
    command.make_context(args[0], list(args[1:]), resilient_parsing=True)


def test_roles_wait_for_healthy_servers_and_the_init_job() -> None:
    for name, service in LASTMILE.items():
        depends = service["depends_on"]
        if name == "init":
            assert depends["kafka"]["condition"] == "service_healthy"
            assert depends["clickhouse"]["condition"] == "service_healthy"
        else:
            assert depends["init"]["condition"] == "service_completed_successfully"


def test_dashboard_is_published_on_loopback_only() -> None:
    ports = SERVICES["dashboard"]["ports"]
    assert all(p.startswith("127.0.0.1:") for p in ports)
    settings = load_settings(
        env={k: _substitute(str(v)) for k, v in SERVICES["dashboard"]["environment"].items()},
        toml_path=None,
    )
    assert ports[0].rsplit(":", 1)[1] == str(settings.dashboard_port)


def _substitute(value: str) -> str:
    """Apply compose's ``${NAME:-default}`` with the environment empty."""
    import re

    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


# -- Prometheus and Grafana ---------------------------------------------------------------

OPERATE = ROOT / "docs" / "operate"


def _mounts(service: str) -> dict[str, Path]:
    """Container path -> repository path of a service's bind mounts."""
    out = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            out[target] = ROOT / source
    return out


def test_prometheus_scrapes_every_worker_on_its_web_port() -> None:
    mounts = _mounts("prometheus")
    config_path = mounts["/etc/prometheus/prometheus.yml"]
    assert config_path == OPERATE / "prometheus.yml" and config_path.exists()
    config = yaml.safe_load(config_path.read_text())
    scraped = {}
    for job in config["scrape_configs"]:
        for sd in job["dns_sd_configs"]:
            for name in sd["names"]:
                scraped[name] = sd["port"]
    workers = {n for n, s in LASTMILE.items() if s["command"][0] == "worker"}
    assert workers == {"scorer", "sink", "monitor", "learner", "operator", "gateway"}
    assert set(scraped) == workers
    for name in workers:
        env = {k: _substitute(str(v)) for k, v in LASTMILE[name]["environment"].items()}
        settings = load_settings(env=env, toml_path=None)
        assert scraped[name] == settings.web_port, name
        # Not embedded, so the worker listens beyond loopback (streams.app.create_app).
        assert not settings.embedded_kafka


def test_grafana_is_provisioned_from_the_repository() -> None:
    mounts = _mounts("grafana")
    provisioning = mounts["/etc/grafana/provisioning"]
    dashboards = mounts["/var/lib/grafana/dashboards"]
    source = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    url = source["datasources"][0]["url"]
    assert url == "http://prometheus:9090"
    assert any(p.endswith(":9090") for p in SERVICES["prometheus"]["ports"])
    provider = yaml.safe_load((provisioning / "dashboards" / "lastmile.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (dashboards / Path(home).name).exists()


def test_the_dashboard_shows_traffic_latency_lag_drift_and_alerts() -> None:
    import json

    dashboard = json.loads((OPERATE / "grafana" / "dashboards" / "lastmile.json").read_text())
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows == ["Traffic", "Latency", "Lag", "Drift", "Alerts"]
    graphs = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert graphs and all(p["targets"] and all(t["expr"] for t in p["targets"]) for p in graphs)
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


@pytest.mark.parametrize("name", ["prometheus", "grafana"])
def test_prometheus_and_grafana_are_published_on_loopback_only(name: str) -> None:
    assert all(p.startswith("127.0.0.1:") for p in SERVICES[name]["ports"])
