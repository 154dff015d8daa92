"""What every role is to the worker: the contract between :mod:`streams.app` and a role.

A role factory (``streams.app.ROLES``) returns a :class:`Role`: a batch lane
(:class:`~streams.kafka.lane.BatchLane`: scorer, monitor, learner) or the sink
(:class:`~streams.roles.sink.Sink`), which is no lane but keeps the same promises.
The worker starts it, watches ``failed``, shows ``stats`` on its status page and
stops it; a role may add ``details()`` to its status, which the worker asks for
only where it is there.

>>> class Idle:
...     group_id = "lastmile-idle"
...     failed = False
...     stats = None
...     def start(self) -> None: ...
...     def stop(self, timeout: float = 30.0) -> None: ...
>>> isinstance(Idle(), Role)
True
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["Role", "RoleStats"]


@runtime_checkable
class RoleStats(Protocol):
    """The counters of a role: the worker logs ``last_error`` and shows ``as_dict()``."""

    last_error: str | None

    def as_dict(self) -> dict[str, object]:
        """The counters as JSON-ready values for ``/lastmile/status``."""
        ...


@runtime_checkable
class Role(Protocol):
    """A role running beside the Faust app, on a thread of its own."""

    group_id: str  # its Kafka consumer group, logged at start
    failed: bool  # set when its thread died: the worker then exits to be restarted
    stats: RoleStats

    def start(self) -> None:
        """Start the role's thread; returns at once."""
        ...

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the role to stop and wait up to ``timeout`` seconds for its thread."""
        ...
