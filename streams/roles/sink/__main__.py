"""``python -m streams.roles.sink``: the sink alone, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streams.config import load_settings
from streams.roles.sink.options import SinkOptions
from streams.roles.sink.role import Sink


def rss_kb() -> int:
    """This process's resident set size in kB (0 where /proc is not there)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m streams.roles.sink``: run the sink alone until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m streams.roles.sink",
        description=(
            "Run lastmile's sink role on its own: consume every lastmile topic and write "
            "it to ClickHouse (settings from LASTMILE_* / lastmile.toml). Stops on SIGTERM."
        ),
    )
    parser.add_argument("--group-id", default=None, help="consumer group (default lastmile-sink)")
    parser.add_argument("--batch-rows", type=int, default=None, help="rows per insert (50000)")
    parser.add_argument("--batch-seconds", type=float, default=None, help="batch age bound (1.0)")
    parser.add_argument("--buffer-rows", type=int, default=None, help="pause at (200000)")
    parser.add_argument(
        "--stats-file",
        type=Path,
        default=None,
        help="write stats (and RSS) as JSON to this file 5 times a second",
    )
    parser.add_argument("--no-migrate", action="store_true", help="do not migrate on start")
    args = parser.parse_args(argv)
    settings = load_settings()
    logging.basicConfig(
        level=getattr(logging, settings.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    overrides = {
        k: v
        for k, v in {
            "group_id": args.group_id,
            "batch_rows": args.batch_rows,
            "batch_seconds": args.batch_seconds,
            "buffer_rows": args.buffer_rows,
        }.items()
        if v is not None
    }
    sink = Sink(
        settings, SinkOptions.from_settings(settings, **overrides), migrate=not args.no_migrate
    )
    stop = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    sink.start()
    write_stats: Callable[[], None] = lambda: None  # noqa: E731
    if args.stats_file is not None:
        path: Path = args.stats_file

        def write_stats() -> None:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({**sink.stats.as_dict(), "rss_kb": rss_kb()}))
            tmp.replace(path)

    while not stop.wait(0.2):
        write_stats()
        if sink.failed or (sink._thread is not None and not sink._thread.is_alive()):
            break
    sink.stop()
    write_stats()
    return 70 if sink.failed else 0


if __name__ == "__main__":
    sys.exit(main())
