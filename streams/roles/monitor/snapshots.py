"""The state topic: created compacted when missing, and read back for the newest
complete snapshot of a monitor group."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from monitors.state import SnapshotReader
from streams.config import Settings
from streams.kafka.takeover import tagged_with

__all__ = ["ensure_state_topic", "read_snapshot"]


def ensure_state_topic(settings: Settings, topic: str, timeout: float = 15.0) -> None:
    """Create the compacted state topic (one partition) when it does not exist."""
    from streams.kafka.topics import compacted_topic, create_missing

    create_missing(settings, [compacted_topic(settings, topic)], timeout)


def read_snapshot(
    settings: Settings,
    topic: str,
    group: str,
    timeout: float = 60.0,
    ignore_tags: Iterable[str] = (),
) -> tuple[int, dict[str, Any]] | None:
    """The newest complete snapshot of `group` in the state topic, or None.

    Reads every partition from the start to its end under ``read_committed``; a newer
    snapshot cut short (readable on the embedded broker after a crash) leaves the last
    complete one in force. Chunks of the transactions `ignore_tags` names (left readable
    by a killed predecessor, never committed: :mod:`streams.kafka.takeover`) are skipped.
    """
    from streams.kafka.topics import read_to_end

    prefix = f"{group}/".encode()
    reader = SnapshotReader()
    ignored = {tag.encode() for tag in ignore_tags}
    for msg in read_to_end(settings, topic, f"{group}-restore", timeout):
        if ignored and tagged_with(msg.headers(), ignored):
            continue
        key = msg.key() or b""
        if key.startswith(prefix) and key[len(prefix) :].isdigit():
            reader.add(int(key[len(prefix) :]), msg.value())
    return reader.result()
