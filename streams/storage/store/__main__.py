"""``python -m streams.storage.store``: run the store process."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from streams.storage.store.process import serve
from streams.storage.store.protocol import PASSWORD_ENV


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m streams.storage.store",
        description=(
            "The embedded ClickHouse store of lastmile: opens a chDB data directory "
            "(only one process may) and serves ClickHouse's HTTP interface on it, so "
            "clickhouse-connect clients use it as they would a ClickHouse server. "
            "Stops cleanly on SIGTERM or Ctrl-C."
        ),
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        required=True,
        help="chDB data directory (created if missing; locked while the store runs)",
    )
    parser.add_argument("--port", type=int, default=8123, help="HTTP port (default 8123)")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: loopback only)",
    )
    parser.add_argument(
        "--user", default=None, help="require this user name (default: no authentication)"
    )
    parser.add_argument(
        "--password",
        default=None,
        help=f"password for --user (default: ${PASSWORD_ENV}, else empty)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s lastmile store %(levelname)s %(message)s",
    )
    credentials = None
    if args.user:
        password = args.password if args.password is not None else os.environ.get(PASSWORD_ENV, "")
        credentials = (args.user, password)
    return serve(args.data_dir, args.port, args.host, credentials)


if __name__ == "__main__":
    sys.exit(main())
