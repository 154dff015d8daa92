"""lastmile's ClickHouse database: clients, schema migrations, retention (``lastmile db``
is streams.cli.db).

Migrations are the numbered SQL files in ``streams/storage/migrations/`` (``001_tables.sql``,
``002_rollups.sql``, ...), applied in order and recorded in
``<database>.schema_migrations`` with the SHA-256 of each file. ``migrate`` creates
the database, applies what is not recorded yet, and reports an applied file whose
text has changed since (edit a new migration instead; ``--accept-changed`` records
the new checksums when the edit was deliberate and harmless). Every statement must
be idempotent (``IF NOT EXISTS``): a migration interrupted half-way, or two sinks
starting at once, then simply run it again. In the SQL, ``${database}`` stands for
the configured database.

Retention is configuration, not schema: after migrating, :func:`apply_retention`
sets every table's TTL from :func:`retention_days` (``LASTMILE_RETENTION_DAYS``,
default 30; 0 keeps everything). Rows older than the retention are dropped by
ClickHouse, already at insert time.

>>> [m.version for m in load_migrations()][:3]
[1, 2, 3]
>>> split_statements("CREATE TABLE a (x String DEFAULT ';'); -- done; really\\nSELECT 1;")
["CREATE TABLE a (x String DEFAULT ';')", 'SELECT 1']
>>> retention_days(env={"LASTMILE_RETENTION_DAYS": "7"})
7
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from streams.config import ConfigError, Settings
from streams.storage.quoting import quoted_end

log = logging.getLogger("lastmile.db")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
MIGRATIONS_TABLE = "schema_migrations"
RETENTION_ENV = "LASTMILE_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 30
PLACEHOLDER = "${database}"

# Table -> the time column its retention is counted from. The sink's own journal
# and status tables keep a fixed week (in their migration) whatever the setting.
RETENTION_COLUMNS: dict[str, str] = {
    "predictions": "ts",
    "outcomes": "ts",
    "metrics": "window_start",
    "alerts": "ts",
    "actions": "ts",
    "dead_letters": "ts",
    "predictions_1m": "minute",
    "outcomes_1m": "minute",
}

_MIGRATION_NAME = re.compile(r"^(\d+)_([A-Za-z0-9_]+)\.sql$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TTL_DAYS = re.compile(r"\bTTL\s+toDateTime\((\w+)\)\s*\+\s*toIntervalDay\((\d+)\)")
_READS = re.compile(r"^\s*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXISTS|EXPLAIN|CHECK)\b", re.I)


class MigrationError(RuntimeError):
    """The migrations cannot be applied as they are; the message says why and what to do."""


# ------------------------------------------------------------------------- settings


def retention_days(settings: Settings | None = None, env: Mapping[str, str] | None = None) -> int:
    """Days of data to keep (``LASTMILE_RETENTION_DAYS``, default 30; 0: keep everything).

    Read from ``settings.retention_days`` once the setting lives there, else from the
    environment.

    >>> retention_days(env={})
    30
    >>> retention_days(env={"LASTMILE_RETENTION_DAYS": "0"})
    0
    """
    value: Any = getattr(settings, "retention_days", None) if settings is not None else None
    source = "retention_days"
    if value is None:
        raw = (os.environ if env is None else env).get(RETENTION_ENV)
        if raw is None or raw.strip() == "":
            return DEFAULT_RETENTION_DAYS
        value, source = raw, f"${RETENTION_ENV}"
    try:
        days = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {source}: {value!r} is not a whole number of days") from None
    if days < 0:
        raise ConfigError(f"setting {source}: {days} is negative (0 keeps everything)")
    return days


def database_name(settings: Settings) -> str:
    """The configured database, checked to be a plain identifier (it is spliced into SQL)."""
    name = settings.clickhouse_params()["database"]
    if not _IDENTIFIER.match(name):
        raise ConfigError(
            f"clickhouse database {name!r} is not a plain identifier (letters, digits, _)"
        )
    return name


def connect(settings: Settings, database: bool = True, **overrides: Any) -> Any:
    """A clickhouse-connect client for the settings' ClickHouse.

    ``database=False`` connects without selecting the database (to create it).
    No HTTP session: a client is used by one thread at a time, and sessions would
    only make a restarted server refuse it. Keep one client per thread.
    """
    import clickhouse_connect

    params = settings.clickhouse_params()
    if not database:
        params.pop("database")
    options: dict[str, Any] = {
        "autogenerate_session_id": False,
        "connect_timeout": 5,
        "send_receive_timeout": 120,
        "query_retries": 0,
    }
    options.update(overrides)
    return clickhouse_connect.get_client(**params, **options)


# ----------------------------------------------------------------------- migrations


@dataclasses.dataclass(frozen=True)
class Migration:
    """One numbered SQL file."""

    version: int
    name: str
    path: Path
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's text, as written (before ``${database}`` is replaced)."""
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self, database: str) -> list[str]:
        """The file's statements for ``database``, in order."""
        return split_statements(render(self.sql, database))


def load_migrations(directory: Path | str = MIGRATIONS_DIR) -> list[Migration]:
    """Every ``NNN_name.sql`` in ``directory``, by number. Two files with one number
    (or a ``.sql`` file not named so) is an error."""
    found: dict[int, Migration] = {}
    for path in sorted(Path(directory).glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path}: a migration is named NNN_name.sql (e.g. 004_add_x.sql)")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"{path}: number {version} is taken by {found[version].path.name}")
        found[version] = Migration(version, match.group(2), path, path.read_text())
    return [found[v] for v in sorted(found)]


def render(sql: str, database: str) -> str:
    """The SQL with ``${database}`` replaced by the quoted database name.

    >>> render("SELECT 1 FROM ${database}.t", "lastmile")
    'SELECT 1 FROM `lastmile`.t'
    """
    if not _IDENTIFIER.match(database):
        raise ValueError(f"database {database!r} is not a plain identifier")
    return sql.replace(PLACEHOLDER, f"`{database}`")


def split_statements(sql: str) -> list[str]:
    """Split a script on ``;`` outside strings, quoted names and comments.

    ClickHouse runs one statement per request, so a migration file is sent a
    statement at a time. Comments are dropped; statements come back stripped.
    """
    statements: list[str] = []
    current: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end
            continue
        if c == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
            current.append(" ")
            continue
        if c in "'\"`":
            j = quoted_end(sql, i)
            current.append(sql[i : j + 1])
            i = j + 1
            continue
        if c == ";":
            text = "".join(current).strip()
            if text:
                statements.append(text)
            current = []
            i += 1
            continue
        current.append(c)
        i += 1
    text = "".join(current).strip()
    if text:
        statements.append(text)
    return statements


def _ensure_bookkeeping(client: Any, database: str) -> None:
    client.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    # ReplacingMergeTree: two processes migrating at once both record a version;
    # the copies collapse, and readers group by version anyway.
    client.command(
        f"CREATE TABLE IF NOT EXISTS `{database}`.{MIGRATIONS_TABLE} ("
        " version UInt32, name String, checksum String,"
        " applied_at DateTime64(3, 'UTC'), duration_ms UInt32, applied_by String"
        ") ENGINE = ReplacingMergeTree(applied_at) ORDER BY version"
    )


def _applied(client: Any, database: str) -> dict[int, dict[str, Any]]:
    rows = client.query(
        "SELECT version, argMax(name, applied_at) AS last_name,"
        " argMax(checksum, applied_at) AS last_checksum, max(applied_at) AS last_applied_at,"
        " argMax(applied_by, applied_at) AS last_applied_by"
        f" FROM `{database}`.{MIGRATIONS_TABLE} GROUP BY version ORDER BY version"
    ).named_results()
    return {
        int(r["version"]): {
            "name": r["last_name"],
            "checksum": r["last_checksum"],
            "applied_at": r["last_applied_at"],
            "applied_by": r["last_applied_by"],
        }
        for r in rows
    }


def status(
    client: Any, database: str, migrations: Sequence[Migration] | None = None
) -> list[dict[str, Any]]:
    """One row per migration known on disk or in the database, with its ``state``:

    * ``applied``: recorded, and the file is unchanged;
    * ``pending``: not applied yet;
    * ``changed``: applied, but the file's text differs from what was applied;
    * ``missing``: recorded in the database, but no such file (a newer lastmile
      migrated this database, or a file was deleted).
    """
    migrations = load_migrations() if migrations is None else list(migrations)
    _ensure_bookkeeping(client, database)
    applied = _applied(client, database)
    rows: list[dict[str, Any]] = []
    for m in migrations:
        record = applied.get(m.version)
        if record is None:
            state = "pending"
        elif record["checksum"] != m.checksum:
            state = "changed"
        else:
            state = "applied"
        rows.append(
            {
                "version": m.version,
                "name": m.name,
                "state": state,
                "applied_at": record["applied_at"] if record else None,
                "applied_by": record["applied_by"] if record else None,
                "checksum": m.checksum[:12],
            }
        )
    known = {m.version for m in migrations}
    for version, record in sorted(applied.items()):
        if version not in known:
            rows.append(
                {
                    "version": version,
                    "name": record["name"],
                    "state": "missing",
                    "applied_at": record["applied_at"],
                    "applied_by": record["applied_by"],
                    "checksum": str(record["checksum"])[:12],
                }
            )
    return sorted(rows, key=lambda r: r["version"])


def migrate(
    client: Any,
    database: str,
    migrations: Sequence[Migration] | None = None,
    *,
    accept_changed: bool = False,
    strict: bool = True,
    on_apply: Callable[[Migration, float], None] | None = None,
) -> list[Migration]:
    """Create the database and apply the pending migrations in order; return them.

    An applied migration whose file changed raises :class:`MigrationError` before
    anything runs (``strict``), or is logged and left alone (``strict=False``, what
    the sink does so a deployed worker never stops over it). ``accept_changed``
    records the new checksums without running the files again.
    """
    migrations = load_migrations() if migrations is None else list(migrations)
    rows = status(client, database, migrations)
    changed = [r for r in rows if r["state"] == "changed"]
    if changed and accept_changed:
        by_version = {m.version: m for m in migrations}
        for r in changed:
            _record(client, database, by_version[r["version"]], 0.0, "accepted change")
        log.warning("recorded new checksums of changed migrations %s", _names(changed))
    elif changed:
        message = (
            f"applied migration(s) {_names(changed)} changed since they were applied; "
            "restore the file(s) and put the change in a new migration, or run "
            "`lastmile db migrate --accept-changed` if the edit changes nothing applied"
        )
        if strict:
            raise MigrationError(message)
        log.warning("%s", message)
    pending = {r["version"] for r in rows if r["state"] == "pending"}
    done: list[Migration] = []
    for m in migrations:
        if m.version not in pending:
            continue
        started = time.monotonic()
        for statement in m.statements(database):
            try:
                client.command(statement)
            except Exception as err:  # a client raises many types; each is a migration failure
                if _unreachable(err):
                    raise  # ClickHouse went away: not the migration's fault; run it again
                raise MigrationError(
                    f"migration {m.path.name} failed at: {_first_line(statement)}: {err}"
                ) from err
        elapsed = time.monotonic() - started
        _record(client, database, m, elapsed, _who())
        log.info("applied migration %s in %.2f s", m.path.name, elapsed)
        if on_apply is not None:
            on_apply(m, elapsed)
        done.append(m)
    return done


def _unreachable(err: BaseException) -> bool:
    from clickhouse_connect.driver.exceptions import OperationalError

    return isinstance(err, OperationalError)


def _record(client: Any, database: str, m: Migration, elapsed: float, who: str) -> None:
    client.command(
        f"INSERT INTO `{database}`.{MIGRATIONS_TABLE} "
        "(version, name, checksum, applied_at, duration_ms, applied_by) VALUES "
        "({v:UInt32}, {n:String}, {c:String}, now64(3), {d:UInt32}, {w:String})",
        parameters={
            "v": m.version,
            "n": m.name,
            "c": m.checksum,
            "d": int(elapsed * 1000),
            "w": who,
        },
    )


def _names(rows: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(f"{r['version']:03d}_{r['name']}" for r in rows)


def _first_line(statement: str) -> str:
    line = statement.strip().splitlines()[0] if statement.strip() else ""
    return line if len(line) <= 80 else line[:77] + "..."


def _who() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# ------------------------------------------------------------------------ retention


def ttl_expression(column: str, days: int) -> str:
    """The TTL clause lastmile sets for ``days`` of retention on ``column``.

    >>> ttl_expression("ts", 30)
    'toDateTime(ts) + toIntervalDay(30)'
    """
    return f"toDateTime({column}) + toIntervalDay({int(days)})"


def current_retention(client: Any, database: str) -> dict[str, int | None]:
    """Table -> the retention in days its TTL says now (None: no TTL)."""
    rows = client.query(
        "SELECT name, engine_full FROM system.tables WHERE database = {db:String}",
        parameters={"db": database},
    ).result_rows
    out: dict[str, int | None] = {}
    for name, engine in rows:
        if name in RETENTION_COLUMNS:
            match = _TTL_DAYS.search(engine or "")
            out[name] = int(match.group(2)) if match else None
    return out


def apply_retention(client: Any, database: str, days: int) -> list[str]:
    """Set every data table's TTL to ``days`` (0 removes it); return the tables changed.

    Existing parts are not rewritten (``materialize_ttl_after_modify = 0``): expired
    partitions are dropped as merges reach them, and rows arrive already filtered.
    """
    changed = []
    for table, ttl_days in current_retention(client, database).items():
        wanted = days or None
        if ttl_days == wanted:
            continue
        if wanted is None:
            client.command(f"ALTER TABLE `{database}`.{table} REMOVE TTL")
        else:
            client.command(
                f"ALTER TABLE `{database}`.{table} MODIFY TTL "
                f"{ttl_expression(RETENTION_COLUMNS[table], wanted)}",
                settings={"materialize_ttl_after_modify": 0},
            )
        changed.append(table)
    if changed:
        log.info("retention set to %s on %s", f"{days} days" if days else "forever", changed)
    return changed


def ensure_schema(
    settings: Settings, *, strict: bool = False, accept_changed: bool = False
) -> list[Migration]:
    """Migrate the settings' database and set its retention; what the sink runs on start."""
    database = database_name(settings)
    client = connect(settings, database=False)
    try:
        applied = migrate(client, database, strict=strict, accept_changed=accept_changed)
        apply_retention(client, database, retention_days(settings))
        return applied
    finally:
        client.close()


# ------------------------------------------------------------------------- queries


def run_sql(client: Any, sql: str) -> list[dict[str, Any]]:
    """Rows of a query as dicts; for a statement that returns nothing (DDL, INSERT),
    one row saying what it did."""
    if _READS.match(sql):
        result = client.query(sql)
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]
    summary = client.command(sql)
    if hasattr(summary, "written_rows"):
        return [{"result": "ok", "written_rows": summary.written_rows}]
    return [{"result": "ok" if summary in (None, "") else summary}]
