"""Snapshot registration and publishing, once the checkpoint that holds them commits."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from streams.models import PublishError, RegistryError
from streams.roles.learner.part import LearnerPart
from streams.roles.learner.partition_state import PartitionState

if TYPE_CHECKING:
    from streams.models import ControlPlane
    from streams.roles.learner.partition_state import PartitionState

log = logging.getLogger("lastmile.learner")


REGISTERED_BY = "learner"


class SnapshotPublisher(LearnerPart):
    """Registers the committed snapshots and applies their decision.

    A :class:`~streams.roles.learner.part.LearnerPart`; besides its attributes it reads:"""

    control: ControlPlane

    def committed(self) -> None:
        """The batch's transaction committed: publish the snapshots it checkpointed."""
        for state in self.states.values():
            if not any(e["checkpointed"] for e in state.outbox):
                continue
            published: dict[str, int] = {}
            keep = []
            for entry in state.outbox:
                if not entry["checkpointed"]:
                    keep.append(entry)
                    continue
                try:
                    version = self._publish(state, entry, published)
                except Exception:  # a publish failure of any kind is retried next batch
                    log.exception(
                        "learner: publishing a snapshot of %s failed; retrying after the "
                        "next batch",
                        entry["model"],
                    )
                    keep.append(entry)
                    continue
                published[entry["model"]] = version
            state.outbox = keep
            # The heads moved: the next checkpoint says so.
            state.dirty = True

    def _find_snapshot(self, model: str, entry: Mapping[str, Any]) -> int | None:
        """A version registered from this snapshot before (a crash between registering
        it and checkpointing that), by its line and learned count."""
        tag = _snapshot_tag(entry)
        try:
            numbers = self.registry.version_numbers(model)
        except RegistryError:
            return None
        for number in reversed(numbers):
            if number <= entry["parent"]:
                break
            mv = self.registry.get(model, number)
            if mv.registered_by == REGISTERED_BY and (mv.meta.get("description") or "").startswith(
                tag
            ):
                return number
        return None

    def _publish(
        self, state: PartitionState, entry: dict[str, Any], published: Mapping[str, int]
    ) -> int:
        model = entry["model"]
        line = state.lines.get(model)
        same_line = line is not None and line.line_id == entry["line_id"]
        # Snapshots taken before the previous one was registered grew from it.
        parent = published.get(model, entry["parent"])
        if same_line and line is not None and line.head > parent:
            parent = line.head
        version = self._find_snapshot(model, entry)
        meta = entry["meta"]
        if version is None:
            description = (
                f"{_snapshot_tag(entry)} online learning from v{entry['origin']}, "
                f"{entry['learned']:,} outcomes learned (snapshot by {entry['why']})"
            )
            try:
                mv = self.control.register_and_publish(
                    model,
                    pickle.loads(entry["blob"]),
                    "river",
                    features=meta.get("features") or None,
                    reference_rows=entry["rows"] or None,
                    parent=parent,
                    metrics=entry["metrics"],
                    registered_by=REGISTERED_BY,
                    task=meta.get("task"),
                    labels=meta.get("labels") or None,
                    positive_label=meta.get("positive_label"),
                    description=description,
                )
                version = mv.version
            except PublishError as err:
                # Registered; models.events will hear of it with the next change.
                log.warning("learner: %s", err)
                found = self._find_snapshot(model, entry)
                if found is None:
                    raise
                version = found
            self.counts["published"] += 1
            log.info(
                "learner: %s v%d registered (parent v%d, %d learned)",
                model,
                version,
                parent,
                entry["learned"],
            )
        self.learner_made[(model, version)] = True
        if same_line and line is not None:
            line.head = max(line.head, version)
            line.versions.add(version)
            self._apply_policy(model, version, entry)
        else:
            # A line that ended (a new champion came from outside): kept, not promoted.
            log.info("learner: %s v%d is from an ended line; not promoted", model, version)
        return version

    def _apply_policy(self, model: str, version: int, entry: Mapping[str, Any]) -> None:
        decision = entry["decision"]
        if decision is None:
            return
        try:
            if decision == "champion":
                self.control.promote(model, version)
                self.counts["promoted"] += 1
                log.info("learner: %s v%d promoted to champion (policy auto)", model, version)
            elif decision == "challenger":
                self.control.promote(model, version, "challenger")
                share = self.options.challenger_share
                split = self.control.state(model).split
                # A new challenger gets traffic when there is no split, or when the split
                # gives the challenger none: that was shed for the version it replaces.
                if share > 0 and (not split or not split.get("challenger")):
                    self.control.split(model, {"champion": 100.0 - share, "challenger": share})
        except PublishError as err:
            log.warning("learner: %s", err)


def _snapshot_tag(entry: Mapping[str, Any]) -> str:
    return f"learner snapshot {entry['line_id']}/{entry['learned']}:"
