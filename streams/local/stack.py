"""The embedded stack: every lastmile service on one machine, supervised.

``lastmile up`` builds a :class:`Stack` from the settings: the broker and the
ClickHouse store unless the settings point at real servers, then the roles and
the dashboard. It starts them in order, waits for each to be ready, restarts a
child that dies (with backoff, logged), and stops them all on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from streams.config import Settings
from streams.local.broker import EmbeddedBroker, broker_ready
from streams.local.processes import ManagedProcess, ProcessError

log = logging.getLogger("lastmile.stack")

STATE_FILE = "stack.json"
MAX_BACKOFF_S = 30.0


def clickhouse_ready(settings: Settings, timeout: float = 1.0) -> bool:
    """True when the ClickHouse HTTP interface of the settings answers ``/ping``."""
    try:
        response = httpx.get(f"{settings.clickhouse_http_url}/ping", timeout=timeout)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def http_ready(url: str, timeout: float = 1.0) -> bool:
    """True when ``url`` answers anything over HTTP."""
    try:
        httpx.get(url, timeout=timeout)
    except httpx.HTTPError:
        return False
    return True


@dataclass
class Service:
    """One supervised child and what to tell a person about it."""

    process: ManagedProcess
    where: str
    start_timeout: float = 60.0
    after_start: Callable[[], None] | None = None
    failures: int = 0
    next_restart: float = 0.0


@dataclass
class Stack:
    """The services of one machine, in start order.

    >>> from streams.config import load_settings
    >>> stack = Stack(load_settings(env={"LASTMILE_KAFKA_BOOTSTRAP": "kafka:9092",
    ...     "LASTMILE_CLICKHOUSE_URL": "http://ch:8123/lastmile"}, toml_path=None))
    >>> [s.process.name for s in stack.services]
    []
    """

    settings: Settings
    services: list[Service] = field(default_factory=list)
    on_event: Callable[[str], None] = print

    roles: list[str] = field(default_factory=list)
    demo: bool = False
    dashboard: bool = False

    def __post_init__(self) -> None:
        if not self.services:
            self.services = embedded_services(self.settings) + role_services(
                self.settings, self.roles
            )
            if self.dashboard:
                self.services.append(dashboard_service(self.settings))
            if self.demo:
                self.services += demo_services(self.settings)

    @property
    def state_path(self) -> Path:
        return self.settings.data_dir / STATE_FILE

    def start(self) -> None:
        """Start every service in order; on a failure stop what started and raise."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        started: list[Service] = []
        try:
            for service in self.services:
                began = time.monotonic()
                service.process.start(timeout=service.start_timeout)
                if service.after_start:
                    service.after_start()
                started.append(service)
                self.on_event(
                    f"  {service.process.name:<12} {service.where:<32} "
                    f"ready in {time.monotonic() - began:.1f} s (pid {service.process.pid})"
                )
        except BaseException:  # also on Ctrl-C: stop what started
            for service in reversed(started):
                service.process.stop()
            raise
        self.write_state()

    def stop(self) -> None:
        """Stop every service, last started first."""
        for service in reversed(self.services):
            service.process.stop()
        with contextlib.suppress(FileNotFoundError):
            self.state_path.unlink()

    def supervise(self, stop: threading.Event, poll: float = 0.5) -> None:
        """Restart children that die, with exponential backoff, until ``stop`` is set."""
        while not stop.wait(poll):
            for service in self.services:
                process = service.process
                if process.alive:
                    continue
                now = time.monotonic()
                if service.next_restart == 0.0:
                    service.failures += 1
                    delay = min(MAX_BACKOFF_S, 2.0 ** (service.failures - 1))
                    service.next_restart = now + delay
                    log.warning(
                        "%s exited with code %s; restarting in %.0f s (restart #%d)",
                        process.name,
                        process.returncode,
                        delay,
                        service.failures,
                    )
                    continue
                if now < service.next_restart:
                    continue
                service.next_restart = 0.0
                try:
                    process.start(timeout=service.start_timeout)
                    if service.after_start:
                        service.after_start()
                    process.restarts += 1
                    log.warning("%s restarted (pid %s)", process.name, process.pid)
                    self.write_state()
                except ProcessError as err:
                    log.error("%s failed to restart: %s", process.name, err)

    def write_state(self) -> None:
        """Record who runs where, for ``lastmile status``."""
        state = {
            "supervisor_pid": os.getpid(),
            "started_at": time.time(),
            "services": [
                {"name": s.process.name, "pid": s.process.pid, "where": s.where}
                for s in self.services
            ],
        }
        self.state_path.write_text(json.dumps(state, indent=2))


def embedded_services(settings: Settings) -> list[Service]:
    """The broker and the store, unless the settings point at real servers."""
    services = []
    logs = settings.data_dir / "logs"
    if settings.embedded_kafka:
        broker = EmbeddedBroker(settings.data_dir / "broker", settings.kafka_port)

        services.append(
            Service(broker, f"kafka://{broker.bootstrap}", 30.0, lambda: prepare_kafka(settings))
        )
    if settings.embedded_clickhouse:
        from streams.storage.store import store_command

        store = ManagedProcess(
            "clickhouse",
            store_command(settings.data_dir / "clickhouse", settings.clickhouse_port),
            ready=lambda: clickhouse_ready(settings),
            log_path=logs / "clickhouse.log",
        )
        services.append(
            Service(
                store,
                f"http://127.0.0.1:{settings.clickhouse_port}",
                60.0,
                lambda: prepare_clickhouse(settings),
            )
        )
    return services


def prepare_kafka(settings: Settings) -> None:
    """Create the topics and re-announce the registry's models.

    The embedded broker keeps topics in memory only, so after a restart the
    control plane topic is empty while the registry on disk still knows every
    model: announcing each model's state again lets the scorers find them.
    """
    from streams.kafka.topics import ensure_topics
    from streams.models import ControlPlane

    ensure_topics(settings)
    with ControlPlane(settings) as plane:
        announced = plane.announce()
    if announced:
        log.info("announced %d model(s) from the registry", len(announced))


def prepare_clickhouse(settings: Settings) -> None:
    """Apply the migrations: the dashboard and the sink find their tables."""
    from streams.storage.db import ensure_schema

    applied = ensure_schema(settings)
    if applied:
        log.info("applied migrations %s", ", ".join(m.name for m in applied))


def dashboard_service(settings: Settings) -> Service:
    """The Streamlit dashboard, bound to ``dashboard_host:dashboard_port``."""
    url = f"http://{settings.dashboard_host}:{settings.dashboard_port}"
    dashboard = ManagedProcess(
        "dashboard",
        lastmile_command("dashboard"),
        ready=lambda: http_ready(f"{url}/_stcore/health"),
        log_path=settings.data_dir / "logs" / "dashboard.log",
    )
    return Service(dashboard, url, 90.0)


def lastmile_command(*args: str) -> list[str]:
    """argv running a lastmile subcommand with this interpreter."""
    return [sys.executable, "-m", "streams.cli.main", *args]


def role_services(settings: Settings, roles: list[str]) -> list[Service]:
    """One worker process per role, each with its own Faust web port."""
    services = []
    for offset, role in enumerate(roles):
        port = settings.web_port + offset
        url = f"http://127.0.0.1:{port}/lastmile/status"
        ready = url
        if role == "gateway":  # up when its own port answers; shown by that address
            url = f"http://127.0.0.1:{settings.gateway_port}/v2"
            ready = f"{url}/health/ready"
        worker = ManagedProcess(
            role,
            lastmile_command("worker", "--roles", role, "--web-port", str(port)),
            ready=lambda ready=ready: http_ready(ready),
            log_path=settings.data_dir / "logs" / f"{role}.log",
        )
        services.append(Service(worker, url, 90.0))
    return services


def demo_services(settings: Settings) -> list[Service]:
    """Simulated traffic for the demo: requests of the fraud model, their labels
    ``demo_label_delay`` seconds later, and after ``demo_drift_after`` seconds a drift of
    both its inputs (salary and age shift, as an upstream change would) and its concept
    (the labels follow a new rule): the drift page, the alerts and the performance page
    all show it."""
    rate = settings.demo_rate
    drift_at = int(rate * settings.demo_drift_after)
    simulate = ManagedProcess(
        "simulate",
        lastmile_command(
            "simulate",
            "--model",
            "fraud",
            "--rate",
            f"{rate:g}",
            "--count",
            "0",
            "--drift-at",
            str(drift_at),
            "--drift-type",
            "both",
            "--label-delay",
            f"{settings.demo_label_delay:g}",
            "--bad-fraction",
            "0.005",
        ),
        log_path=settings.data_dir / "logs" / "simulate.log",
    )
    where = f"fraud: {rate:g} requests/s, drift after {settings.demo_drift_after:g} s"
    return [Service(simulate, where, 10.0)]


def status(settings: Settings) -> list[dict[str, str]]:
    """What is up: one row per part of the stack, probed now."""
    rows = []
    kafka_where = settings.kafka_bootstrap_servers
    rows.append(
        {
            "service": "kafka",
            "where": kafka_where,
            "kind": "embedded" if settings.embedded_kafka else "external",
            "state": "up" if broker_ready(kafka_where, timeout=2.0) else "down",
        }
    )
    rows.append(
        {
            "service": "clickhouse",
            "where": settings.clickhouse_http_url,
            "kind": "embedded" if settings.embedded_clickhouse else "external",
            "state": "up" if clickhouse_ready(settings) else "down",
        }
    )
    state_path = settings.data_dir / STATE_FILE
    if state_path.exists():
        state = json.loads(state_path.read_text())
        for service in state.get("services", []):
            if service["name"] in ("broker", "clickhouse"):
                continue
            up = pid_alive(service.get("pid"))
            where = service["where"]
            if up and where.startswith("http"):
                up = http_ready(where)
            rows.append(
                {
                    "service": service["name"],
                    "where": where,
                    "kind": "local",
                    "state": "up" if up else "down",
                }
            )
    return rows


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
