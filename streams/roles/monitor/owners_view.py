"""What the Prometheus collector reads of a monitor role (``role.monitor``: its tally
and its alert states), over the owners of a partitioned monitor worker."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client.samples import Sample

from monitors.rules import Rule
from streams.metrics.tallies import MonitorTally

__all__ = ["OwnersView"]


class OwnersView:
    """The owners of one worker seen as one monitor: their tallies summed, the alerts
    firing in any of them. Each repartition partition keeps its tally across
    reassignments (:meth:`tally_of`), so the worker's counters only grow.

    Read from the collector's thread while the lane's changes the owners: a dict that
    changed size during the read is read again."""

    def __init__(self, owners: Callable[[], Mapping[int, Any]], rule_list: list[Rule]) -> None:
        self._owners = owners
        self.rule_list = rule_list
        self.tallies: dict[int, MonitorTally] = {}

    def tally_of(self, partition: int) -> MonitorTally:
        """The tally of `partition`'s owner (a new owner continues its predecessor's)."""
        return self.tallies.setdefault(partition, MonitorTally())

    @property
    def tally(self) -> OwnersView:
        return self

    @property
    def rules(self) -> OwnersView:
        return self

    def families(self) -> list[Any]:
        """The tallies' metric families, samples of one name and labels summed.

        >>> view = OwnersView(dict, [])
        >>> for p in (0, 1):
        ...     view.tally_of(p).batch([], [{"stage": "score", "error_type": "bad"}], [])
        ...     view.tally_of(p).committed()
        >>> dead = [f for f in view.families() if f.name == "lastmile_dead_letters"][0]
        >>> [(s.labels, s.value) for s in dead.samples]
        [({'reason': 'bad', 'stage': 'score'}, 2.0)]
        """
        families: dict[str, Any] = {}
        sums: dict[str, dict[tuple[str, tuple], float]] = {}
        for tally in list(self.tallies.values()):
            for family in tally.families():
                families.setdefault(family.name, family)
                summed = sums.setdefault(family.name, {})
                for s in family.samples:
                    key = (s.name, tuple(sorted(s.labels.items())))
                    summed[key] = summed.get(key, 0.0) + s.value
        for name, family in families.items():
            family.samples = [Sample(n, dict(labels), v) for (n, labels), v in sums[name].items()]
        return list(families.values())

    def firing(self) -> list[tuple]:
        """The keys of the alerts firing in any owner."""
        for _ in range(3):
            try:
                owners = list(self._owners().values())
                break
            except RuntimeError:  # the lane changed the owners meanwhile
                continue
        else:
            return []
        return [key for owner in owners for key in owner.rules.firing()]
