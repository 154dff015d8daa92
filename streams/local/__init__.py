"""Everything on this machine: the embedded broker, managed processes, the stack of
services ``lastmile up`` runs, and simulated traffic for it (:mod:`streams.local.simulate`,
:mod:`streams.local.traffic_producer`, :mod:`streams.local.demo_models`, imported on
their own: they need River)."""

from __future__ import annotations

from streams.faces import lazy_exports

# Where each public name lives. They load on first use (PEP 562), so a command that
# needs one submodule does not pay for importing the others.
_HOMES = {
    "BrokerError": "streams.local.broker",
    "EmbeddedBroker": "streams.local.broker",
    "broker_ready": "streams.local.broker",
    "ManagedProcess": "streams.local.processes",
    "ProcessError": "streams.local.processes",
    "free_port": "streams.local.processes",
    "wait_for": "streams.local.processes",
    "Service": "streams.local.stack",
    "Stack": "streams.local.stack",
}

__all__ = list(_HOMES)

__getattr__, __dir__ = lazy_exports(__name__, _HOMES, globals())
