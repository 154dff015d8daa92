"""``lastmile db``: migrate, inspect and query the ClickHouse schema from a shell.

The logic is :mod:`streams.storage.db`'s; this module turns it into commands and
failures into one clear line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import click

from streams.config import ConfigError, Settings, load_settings
from streams.storage.db import (
    MigrationError,
    apply_retention,
    connect,
    database_name,
    migrate,
    retention_days,
    run_sql,
    status,
)

__all__ = ["db_group", "migrate_command", "status_command", "query_command"]


def _cli_settings() -> tuple[Settings, str]:
    settings = load_settings()
    return settings, database_name(settings)


@contextlib.contextmanager
def _client(settings: Settings, database: bool = True) -> Iterator[Any]:
    """A client of the server, closed after; a failure becomes one line that names it."""
    try:
        client = connect(settings, database=database)
        try:
            yield client
        finally:
            client.close()
    except (MigrationError, ConfigError) as err:
        raise click.ClickException(str(err)) from None
    except Exception as err:  # the CLI words every failure, naming the server
        raise click.ClickException(_describe_failure(settings, err)) from None


def _describe_failure(settings: Settings, err: Exception) -> str:
    from clickhouse_connect.driver.exceptions import OperationalError

    if isinstance(err, OperationalError):
        return f"cannot reach ClickHouse at {settings.clickhouse_http_url} ({err})"
    return str(err).split("\n")[0]


@click.group("db", context_settings={"help_option_names": ["-h", "--help"]})
def db_group() -> None:
    """The ClickHouse database: migrations, status and ad-hoc SQL.

    \b
    Examples:
        lastmile db migrate
        lastmile db status
        lastmile db query "SELECT model, count() FROM predictions GROUP BY model"
    """


@db_group.command("migrate")
@click.option(
    "--accept-changed",
    is_flag=True,
    help="Record the new checksum of applied migrations whose file changed (runs nothing).",
)
def migrate_command(accept_changed: bool) -> None:
    """Create the database and tables: apply the pending migrations, set retention.

    Idempotent: run it as often as you like. Fails when an applied migration's
    file was edited since (see `lastmile db status`).
    """
    settings, database = _cli_settings()
    with _client(settings, database=False) as client:
        applied = migrate(client, database, accept_changed=accept_changed)
        days = retention_days(settings)
        changed = apply_retention(client, database, days)
    if applied:
        for m in applied:
            click.echo(f"applied {m.path.name}")
    else:
        click.echo(f"database {database}: up to date")
    if changed:
        shown = f"{days} days" if days else "no limit"
        click.echo(f"retention {shown} set on {', '.join(changed)}")


@db_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def status_command(as_json: bool) -> None:
    """List the migrations and whether each is applied, pending or changed.

    Exits 1 when something is pending, changed or missing.
    """
    from streams.cli.tables import echo_rows

    settings, database = _cli_settings()
    with _client(settings, database=False) as client:
        rows = status(client, database)
    echo_rows(rows, as_json, None if as_json else ["version", "name", "state", "applied_at"])
    if any(r["state"] != "applied" for r in rows):
        raise SystemExit(1)


@db_group.command("query")
@click.argument("sql")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def query_command(sql: str, as_json: bool) -> None:
    """Run one SQL statement against the lastmile database and print the result.

    Table names need no database prefix.

    \b
    Examples:
        lastmile db query "SELECT count() FROM predictions"
        lastmile db query --json "SELECT * FROM sink_status FINAL"
    """
    from streams.cli.tables import echo_rows

    settings, _database = _cli_settings()
    with _client(settings) as client:
        rows = run_sql(client, sql)
    echo_rows(rows, as_json)
