"""The Faust app ``lastmile`` and its roles.

Every role is a part of one Faust app: the app gives each worker its web server
(``/lastmile/status``), timers and lifecycle; each role is a
:class:`~streams.roles.contract.Role` on a thread beside it (the fast roles a
:class:`~streams.kafka.lane.BatchLane`, the sink a loop of its own). ``lastmile worker`` runs
all roles in one process, ``lastmile worker --roles scorer`` just one; start any
number of workers: Kafka partitions are the unit of scale.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

import faust
from mode import Service

from streams.config import Settings
from streams.roles.contract import Role

log = logging.getLogger("lastmile.app")

# What builds a role from the settings; it touches no broker until the role starts.
RoleFactory = Callable[[Settings], Role]


def _scorer(settings: Settings) -> Role:
    from streams.roles.scorer import scorer_lane

    return scorer_lane(settings)


def _monitor(settings: Settings) -> Role:
    from streams.roles.monitor import monitor_lane

    return monitor_lane(settings)


def _sink(settings: Settings) -> Role:
    from streams.roles.sink import sink_lane

    return sink_lane(settings)


def _learner(settings: Settings) -> Role:
    from streams.roles.learner import learner_lane

    return learner_lane(settings)


def _gateway(settings: Settings) -> Role:
    from streams.roles.gateway import gateway_role

    return gateway_role(settings)


def _operator(settings: Settings) -> Role:
    from streams.roles.operator import operator_lane

    return operator_lane(settings)


# Role name -> factory of its lane. Roles are imported lazily so a worker pays only
# for the roles it runs.
ROLES: dict[str, RoleFactory] = {
    "scorer": _scorer,
    "monitor": _monitor,
    "sink": _sink,
    "learner": _learner,
    "gateway": _gateway,
    "operator": _operator,
}


def parse_roles(text: str | None) -> list[str]:
    """``"scorer,sink"`` -> ``["scorer", "sink"]``; empty means every role."""
    if not text:
        return list(ROLES)
    roles = [r.strip() for r in text.split(",") if r.strip()]
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ValueError(f"unknown role(s) {', '.join(unknown)}; known: {', '.join(ROLES)}")
    return roles


def faust_broker_settings(settings: Settings) -> dict[str, object]:
    """Faust/aiokafka settings matching the librdkafka ones of :class:`Settings`."""
    conf: dict[str, object] = {"broker": f"kafka://{settings.kafka_bootstrap_servers}"}
    if settings.fast_group_join:
        conf.update(
            broker_session_timeout=6.0,
            broker_heartbeat_interval=1.0,
            broker_rebalance_timeout=10.0,
        )
    if settings.kafka_sasl_mechanism:
        conf["broker_credentials"] = faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=_ssl_context(settings),
        )
    elif (settings.kafka_security_protocol or "").upper() == "SSL":
        conf["broker_credentials"] = _ssl_context(settings)
    return conf


def _ssl_context(settings: Settings) -> object | None:
    if "SSL" not in (settings.kafka_security_protocol or "").upper():
        return None
    import ssl

    context = ssl.create_default_context(cafile=settings.kafka_ssl_ca_location)
    if settings.kafka_ssl_certificate_location:
        context.load_cert_chain(
            settings.kafka_ssl_certificate_location, settings.kafka_ssl_key_location
        )
    return context


def create_app(settings: Settings, roles: list[str], web_port: int | None = None) -> faust.App:
    """The Faust app running ``roles`` against the settings' Kafka."""
    # Faust makes its own folder but not the parents: a fresh data_dir would crash the worker.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        "lastmile",
        **faust_broker_settings(settings),
        web_host="127.0.0.1" if settings.embedded_kafka else "0.0.0.0",
        web_port=web_port or settings.web_port,
        datadir=str(settings.data_dir / "faust"),
        store="memory://",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        topic_allow_declare=True,
        logging_config=None,
    )
    lanes: dict[str, Role] = {role: ROLES[role](settings) for role in roles}
    app.lastmile_lanes = lanes  # type: ignore[attr-defined]

    class Lanes(Service):
        """Starts the batch lanes with the app and stops them with it."""

        async def on_start(self) -> None:
            for role, lane in lanes.items():
                lane.start()
                log.info("role %s started (group %s)", role, lane.group_id)

        async def on_stop(self) -> None:
            loop = asyncio.get_running_loop()
            for lane in lanes.values():
                await loop.run_in_executor(None, lane.stop)

        @Service.task
        async def _watch(self) -> None:
            # A lane whose thread died would leave its partitions unserved: crash the
            # worker so the supervisor (or the orchestrator) restarts it cleanly.
            while not self.should_stop:
                await self.sleep(1.0)
                for role, lane in lanes.items():
                    if lane.failed:
                        log.critical("role %s failed: %s; exiting", role, lane.stats.last_error)
                        os._exit(70)

    app.service(Lanes)

    from streams.metrics import attach_roles, render

    attach_roles(lanes, settings)

    @app.page("/metrics")
    async def metrics_page(web: object, request: object) -> object:
        # Off the event loop: reading the lag asks the broker (cached for seconds).
        body, content_type = await asyncio.get_running_loop().run_in_executor(None, render)
        return web.bytes(body, headers={"Content-Type": content_type})  # type: ignore[attr-defined]

    @app.page("/lastmile/status")
    async def status_page(web: object, request: object) -> object:
        return web.json(  # type: ignore[attr-defined]
            {
                "pid": os.getpid(),
                "roles": {
                    r: {**lane.stats.as_dict(), **getattr(lane, "details", dict)()}
                    for r, lane in lanes.items()
                },
            }
        )

    return app
