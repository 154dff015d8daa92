"""`lastmile up` and `lastmile status`, run as a user runs them: as processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from streams.local.broker import broker_ready
from streams.local.processes import free_port, free_ports, port_in_use, wait_for

LASTMILE = [sys.executable, "-m", "streams.cli.main"]


def stack_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")}
    env.update(
        LASTMILE_DATA_DIR=str(tmp_path / "data"),
        LASTMILE_KAFKA_PORT=str(free_port()),
        LASTMILE_CLICKHOUSE_PORT=str(free_port()),
        LASTMILE_DASHBOARD_PORT=str(free_port()),
        **extra,
    )
    return env


def start_up(env: dict[str, str], tmp_path: Path, *args: str) -> tuple[subprocess.Popen, Path]:
    out = tmp_path / "up.out"
    process = subprocess.Popen(
        [*LASTMILE, "up", *args], env=env, stdout=out.open("w"), stderr=subprocess.STDOUT
    )
    return process, out


def test_up_runs_the_stack_restarts_a_dead_child_and_stops_everything(tmp_path: Path) -> None:
    env = stack_env(tmp_path, LASTMILE_WEB_PORT=str(free_ports(8)))
    process, out = start_up(env, tmp_path, "--roles", "scorer,sink")
    try:
        assert wait_for(lambda: "lastmile: up" in out.read_text(), 120), out.read_text()
        text = out.read_text()
        assert f"kafka://127.0.0.1:{env['LASTMILE_KAFKA_PORT']}" in text
        assert f"http://127.0.0.1:{env['LASTMILE_CLICKHOUSE_PORT']}" in text

        status = subprocess.run(
            [*LASTMILE, "status", "--json"], env=env, capture_output=True, text=True, timeout=60
        )
        assert status.returncode == 0, status.stdout + status.stderr
        rows = {row["service"]: row for row in json.loads(status.stdout)}
        assert rows["kafka"]["state"] == "up" and rows["kafka"]["kind"] == "embedded"
        assert rows["clickhouse"]["state"] == "up"
        assert rows["scorer"]["state"] == "up"
        assert rows["dashboard"]["state"] == "up"
        for role in ("scorer", "sink"):
            page = httpx.get(rows[role]["where"], timeout=10)
            assert page.status_code == 200, page.text
            assert role in page.json()["roles"]

        state = json.loads((tmp_path / "data" / "stack.json").read_text())
        pids = {s["name"]: s["pid"] for s in state["services"]}
        os.kill(pids["clickhouse"], signal.SIGKILL)
        assert wait_for(lambda: "clickhouse restarted" in out.read_text(), 60), out.read_text()
        ch_port = int(env["LASTMILE_CLICKHOUSE_PORT"])
        assert wait_for(lambda: port_in_use(ch_port), 30)

        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert "lastmile: stopped" in out.read_text()
    assert not port_in_use(int(env["LASTMILE_KAFKA_PORT"]))
    assert not port_in_use(int(env["LASTMILE_CLICKHOUSE_PORT"]))
    status = subprocess.run([*LASTMILE, "status"], env=env, capture_output=True, timeout=60)
    assert status.returncode == 1


def test_port_in_use_fails_in_one_line_and_leaves_nothing_running(tmp_path: Path) -> None:
    env = stack_env(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(env["LASTMILE_CLICKHOUSE_PORT"])))
        taken.listen()
        result = subprocess.run(
            [*LASTMILE, "up", "--no-dashboard"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("lastmile:")]
    assert len(errors) == 1, result.stderr
    assert env["LASTMILE_CLICKHOUSE_PORT"] in errors[0]
    # The broker had started before the store failed: it must be gone again.
    assert not broker_ready(f"127.0.0.1:{env['LASTMILE_KAFKA_PORT']}", timeout=1)


def test_clickhouse_url_that_does_not_answer_is_one_clear_line(tmp_path: Path) -> None:
    dead = free_port()
    env = stack_env(tmp_path, LASTMILE_CLICKHOUSE_URL=f"http://127.0.0.1:{dead}/lastmile")
    result = subprocess.run(
        [*LASTMILE, "status"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "clickhouse" in result.stdout and "down" in result.stdout


@pytest.mark.usefixtures("clickhouse")
def test_external_servers_mean_no_embedded_ones(tmp_path: Path, broker, clickhouse) -> None:
    env = stack_env(
        tmp_path,
        LASTMILE_KAFKA_BOOTSTRAP=broker.bootstrap,
        LASTMILE_CLICKHOUSE_URL=f"{clickhouse.url}/lastmile",
    )
    process, out = start_up(env, tmp_path, "--roles", "", "--no-dashboard")
    try:
        assert wait_for(lambda: "lastmile: up" in out.read_text(), 60), out.read_text()
        time.sleep(0.5)
        state = json.loads((tmp_path / "data" / "stack.json").read_text())
        assert [s["name"] for s in state["services"]] == []
        assert not port_in_use(int(env["LASTMILE_KAFKA_PORT"]))
        status = subprocess.run(
            [*LASTMILE, "status", "--json"], env=env, capture_output=True, text=True, timeout=60
        )
        rows = {row["service"]: row for row in json.loads(status.stdout)}
        assert rows["kafka"]["kind"] == "external" and rows["kafka"]["state"] == "up"
        assert rows["clickhouse"]["kind"] == "external" and rows["clickhouse"]["state"] == "up"
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
