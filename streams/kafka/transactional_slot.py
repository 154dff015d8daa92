"""The ``transactional.id`` of a lane: one slot per group and host, kept across restarts."""

from __future__ import annotations

import fcntl
import itertools
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from streams.kafka.takeover import InFlight

__all__ = ["TransactionalSlot"]


class TransactionalSlot:
    """A ``transactional.id`` that a restarted worker takes over but two live lanes never
    share.

    A producer killed inside a transaction leaves it open. Kafka aborts it after
    ``transaction.timeout.ms``; the embedded broker (Tansu) never does, and its
    read_committed readers stop at the open transaction for good, until a producer with
    the *same* id calls ``init_transactions`` and so fences the dead one. So each lane
    claims the lowest free slot of its group: an ``flock`` on a file under
    ``<data_dir>/transactions``, which the OS releases when the process dies. The
    worker restarted in its place claims the same slot, and the same id.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> first = TransactionalSlot(folder, "lastmile-scorer")
    >>> second = TransactionalSlot(folder, "lastmile-scorer")
    >>> first.claim()[-2:], second.claim()[-2:]
    ('-0', '-1')
    >>> first.release()
    >>> TransactionalSlot(folder, "lastmile-scorer").claim()[-2:]
    '-0'
    """

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = folder
        self.name = name
        self._file: IO[bytes] | None = None
        self.id: str | None = None

    def claim(self) -> str:
        """Lock the lowest free slot and return its transactional.id."""
        if self.id is not None:
            return self.id
        self.folder.mkdir(parents=True, exist_ok=True)
        for slot in itertools.count():
            transactional_id = f"{self._prefix}{slot}"
            handle = self._lock(transactional_id)
            if handle is not None:
                self._file, self.id = handle, transactional_id
                return transactional_id
        raise AssertionError("unreachable")

    def unclaimed(self) -> Iterator[str]:
        """The ids of this name's slots on this host that no live lane holds, each locked
        while the caller handles it."""
        if not self.folder.is_dir():
            return
        prefix = self._prefix
        for path in sorted(self.folder.glob(f"{prefix}*.lock")):
            if not path.stem[len(prefix) :].isdigit():
                continue  # another lane whose name starts like this one
            handle = self._lock(path.stem)
            if handle is not None:
                with handle:
                    yield path.stem

    def journal(self, transactional_id: str) -> InFlight:
        """The journal of the transactions sent with `transactional_id`."""
        return InFlight(self.folder / f"{transactional_id}.journal")

    @property
    def _prefix(self) -> str:
        return f"{self.name}-{socket.gethostname()}-"

    def _lock(self, transactional_id: str) -> IO[bytes] | None:
        """The slot's lock file, locked; None when a live lane holds it."""
        handle = (self.folder / f"{transactional_id}.lock").open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        return handle

    def release(self) -> None:
        """Free the slot (the lane's producer is closed by now)."""
        if self._file is not None:
            self._file.close()  # closing drops the flock
            self._file = None
            self.id = None
