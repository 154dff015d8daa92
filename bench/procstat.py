"""CPU time of a process or thread, read from Linux's /proc: the benches' one reader."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cpu_seconds"]

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(
    pid: int | str | None = "self", tid: int | None = None, gone: float | None = None
) -> float:
    """User + system CPU seconds so far of process `pid` (this one by default), or of its
    thread `tid`; `gone` when the process is not there (None: raise OSError).

    >>> cpu_seconds() > 0
    True
    >>> cpu_seconds(None, gone=0.0)
    0.0
    """
    path = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    try:
        stat = Path(path).read_text()
    except OSError:
        if gone is None:
            raise
        return gone
    # The command name may hold spaces: the fields start after its closing parenthesis.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
