"""Everything on this machine: the embedded broker, managed processes, the stack of
services ``lastmile up`` runs, and simulated traffic for it (:mod:`streams.local.simulate`,
:mod:`streams.local.traffic_producer`, :mod:`streams.local.demo_models`, imported on
their own: they need River)."""

from __future__ import annotations

from streams.faces import lazy_exports

# Each submodule and its public names, imported on first use (streams/faces.py).
_NAMES = {
    "streams.local.broker": ("BrokerError", "EmbeddedBroker", "broker_ready"),
    "streams.local.processes": ("ManagedProcess", "ProcessError", "free_port", "wait_for"),
    "streams.local.stack": ("Service", "Stack"),
}
_HOMES = {name: module for module, names in _NAMES.items() for name in names}
__all__ = list(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES, globals())
