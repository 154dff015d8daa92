"""The ClickHouse schema: migrations, retention, the views, and ``lastmile db``.

Unit tests need nothing; the others run against the session's embedded ClickHouse
store (chDB 26.9 behind the HTTP interface), each in a database of its own.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.cli.db import db_group
from streams.config import ConfigError, load_settings
from streams.storage import db

# -------------------------------------------------------------------------- unit


def test_split_statements_ignores_semicolons_in_strings_and_comments() -> None:
    sql = """
    -- a comment; with a semicolon
    CREATE TABLE t (s String DEFAULT 'a;b', `odd;name` UInt8) ENGINE = Memory;
    /* block; comment */ SELECT 'it''s; fine', "q;" ;
    SELECT 3
    """
    assert db.split_statements(sql) == [
        "CREATE TABLE t (s String DEFAULT 'a;b', `odd;name` UInt8) ENGINE = Memory",
        """SELECT 'it''s; fine', "q;\"""",
        "SELECT 3",
    ]


def test_migrations_are_numbered_in_order_and_render_the_database() -> None:
    migrations = db.load_migrations()
    assert [m.version for m in migrations] == sorted(m.version for m in migrations)
    assert migrations[0].version == 1
    for m in migrations:
        statements = m.statements("lm_x")
        assert statements, m.path
        assert all("${database}" not in s for s in statements)
        # Every statement is idempotent: safe to run again after a half-done migration.
        for s in statements:
            assert "IF NOT EXISTS" in s.upper(), (m.path.name, s[:80])


def test_bad_migration_names_are_refused(tmp_path: Path) -> None:
    (tmp_path / "001_a.sql").write_text("SELECT 1")
    (tmp_path / "1_b.sql").write_text("SELECT 1")
    with pytest.raises(db.MigrationError, match="number 1 is taken"):
        db.load_migrations(tmp_path)
    (tmp_path / "1_b.sql").unlink()
    (tmp_path / "two.sql").write_text("SELECT 1")
    with pytest.raises(db.MigrationError, match="NNN_name.sql"):
        db.load_migrations(tmp_path)


def test_render_refuses_odd_database_names() -> None:
    with pytest.raises(ValueError):
        db.render("SELECT 1 FROM ${database}.t", "x`; DROP")


def test_retention_setting() -> None:
    assert db.retention_days(env={}) == db.DEFAULT_RETENTION_DAYS == 30
    assert db.retention_days(env={"LASTMILE_RETENTION_DAYS": "90"}) == 90
    assert db.retention_days(env={"LASTMILE_RETENTION_DAYS": " "}) == 30
    with pytest.raises(ConfigError, match="LASTMILE_RETENTION_DAYS"):
        db.retention_days(env={"LASTMILE_RETENTION_DAYS": "a month"})
    with pytest.raises(ConfigError, match="negative"):
        db.retention_days(env={"LASTMILE_RETENTION_DAYS": "-1"})


def test_database_name_must_be_an_identifier() -> None:
    settings = load_settings(env={}, toml_path=None, clickhouse_database="bad-name")
    with pytest.raises(ConfigError):
        db.database_name(settings)


# ---------------------------------------------------------------- against chDB


@pytest.fixture
def database(clickhouse: object) -> tuple[object, str]:
    """A settings object for a database of its own, and its name."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    settings = load_settings(
        env={}, toml_path=None, clickhouse_port=clickhouse.port, clickhouse_database=name
    )
    return settings, name


def test_migrate_creates_everything_and_is_idempotent(database: tuple) -> None:
    settings, name = database
    client = db.connect(settings, database=False)
    try:
        applied = db.migrate(client, name)
        assert [m.version for m in applied] == [m.version for m in db.load_migrations()]
        assert db.migrate(client, name) == []
        rows = db.status(client, name)
        assert {r["state"] for r in rows} == {"applied"}
        tables = {
            r[0]
            for r in client.query(
                "SELECT name FROM system.tables WHERE database = {d:String}", parameters={"d": name}
            ).result_rows
        }
        for table in (
            "predictions",
            "outcomes",
            "metrics",
            "alerts",
            "model_versions",
            "dead_letters",
            "schema_migrations",
            "sink_batches",
            "sink_status",
            "predictions_1m",
            "outcomes_1m",
            "prediction_outcomes",
        ):
            assert table in tables
        # Running every statement again (a migration interrupted half-way) is harmless.
        for m in db.load_migrations():
            for statement in m.statements(name):
                client.command(statement)
    finally:
        client.close()


def test_an_edited_applied_migration_is_reported(database: tuple, tmp_path: Path) -> None:
    settings, name = database
    folder = tmp_path / "migrations"
    shutil.copytree(db.MIGRATIONS_DIR, folder)
    client = db.connect(settings, database=False)
    try:
        shipped = db.load_migrations(folder)
        db.migrate(client, name, shipped)
        nxt = max(m.version for m in shipped) + 1  # the next migration, whatever ships
        first = folder / "001_tables.sql"
        first.write_text(first.read_text() + "\n-- an innocent-looking edit\n")
        (folder / f"{nxt:03d}_more.sql").write_text(
            "CREATE TABLE IF NOT EXISTS ${database}.extra (x UInt8) ENGINE = MergeTree ORDER BY x;"
        )
        migrations = db.load_migrations(folder)
        states = {r["version"]: r["state"] for r in db.status(client, name, migrations)}
        assert states == {
            **{m.version: "applied" for m in shipped},
            1: "changed",
            nxt: "pending",
        }
        with pytest.raises(db.MigrationError, match="001_tables changed"):
            db.migrate(client, name, migrations)
        # Nothing ran: strict validation comes first.
        assert db.status(client, name, migrations)[-1]["state"] == "pending"
        # What a deployed sink does: warn, and apply the rest.
        assert [m.version for m in db.migrate(client, name, migrations, strict=False)] == [nxt]
        db.migrate(client, name, migrations, accept_changed=True)
        assert {r["state"] for r in db.status(client, name, migrations)} == {"applied"}
        # A version the files no longer have (a newer lastmile migrated this database).
        (folder / f"{nxt:03d}_more.sql").unlink()
        rows = db.status(client, name, db.load_migrations(folder))
        assert {r["version"]: r["state"] for r in rows}[nxt] == "missing"
    finally:
        client.close()


def test_retention_is_set_changed_and_removed(database: tuple) -> None:
    settings, name = database
    client = db.connect(settings, database=False)
    try:
        db.migrate(client, name)
        assert set(db.apply_retention(client, name, 30)) == set(db.RETENTION_COLUMNS)
        assert set(db.current_retention(client, name).values()) == {30}
        assert db.apply_retention(client, name, 30) == []
        db.apply_retention(client, name, 7)
        assert set(db.current_retention(client, name).values()) == {7}
        db.apply_retention(client, name, 0)
        assert set(db.current_retention(client, name).values()) == {None}
    finally:
        client.close()


def test_rollups_and_views_answer_what_the_dashboard_asks(database: tuple) -> None:
    """Rows straight into the tables (the sink's path is tested in test_sink.py)."""
    settings, name = database
    db.ensure_schema(settings)
    client = db.connect(settings)
    try:
        client.command("""
            INSERT INTO predictions (request_id, model, version, variant, score, label,
                features_num, features_cat, event_time, ts, latency_ms,
                kafka_partition, kafka_offset)
            SELECT concat('r', toString(number)), 'fraud', 1, 'champion', number / 100,
                   if(number % 2 = 0, 'yes', 'no'), map('x', toFloat64(number)),
                   map('plan', 'gold'), now64(3), now64(3) - toIntervalSecond(number),
                   toFloat32(number % 10), 0, number
            FROM numbers(100)""")
        client.command("""
            INSERT INTO outcomes (request_id, model, label, ts, kafka_partition, kafka_offset)
            SELECT concat('r', toString(number)), 'fraud', 'yes', now64(3), 0, number
            FROM numbers(50)""")
        # A duplicate outcome for r0 must not double its row in the join.
        client.command("""
            INSERT INTO outcomes (request_id, model, label, ts, kafka_partition, kafka_offset)
            VALUES ('r0', 'fraud', 'yes', now64(3), 1, 0)""")
        n, q, hist, labels = client.query("""
            SELECT sum(n), quantilesTDigestMerge(0.5, 0.99)(latency_q), sumMap(score_hist),
                   sumMap(labels)
            FROM predictions_1m WHERE model = 'fraud'""").result_rows[0]
        assert n == 100
        assert 3 <= q[0] <= 6 and q[1] >= 8
        assert sum(hist.values()) == 100 and set(hist) == set(range(20))
        assert labels == {"yes": 50, "no": 50}
        rows, matched, right = client.query("""
            SELECT count(), countIf(has_outcome), countIf(has_outcome AND label = outcome_label)
            FROM prediction_outcomes(since = now64(3) - INTERVAL 1 HOUR,
                                     until = now64(3) + INTERVAL 1 MINUTE)""").result_rows[0]
        assert (rows, matched, right) == (100, 50, 25)
        assert client.query("SELECT sum(features_num['x']) FROM predictions").result_rows[0][
            0
        ] == sum(range(100))
    finally:
        client.close()


# ----------------------------------------------------------------------- the CLI


def _env(clickhouse: object, name: str) -> dict[str, str | None]:
    # None unsets a variable for the command: no config file, no real server.
    return {
        "LASTMILE_CLICKHOUSE_PORT": str(clickhouse.port),
        "LASTMILE_CLICKHOUSE_DATABASE": name,
        "LASTMILE_CONFIG": None,
        "LASTMILE_CLICKHOUSE_URL": None,
    }


def test_cli_migrate_status_and_query(clickhouse: object) -> None:
    name = f"t_{uuid.uuid4().hex[:10]}"
    env = _env(clickhouse, name)
    runner = CliRunner()

    result = runner.invoke(db_group, ["status"], env=env)
    assert result.exit_code == 1, result.output
    assert "pending" in result.output

    result = runner.invoke(db_group, ["migrate"], env=env)
    assert result.exit_code == 0, result.output
    assert "applied 001_tables.sql" in result.output
    assert "retention 30 days" in result.output

    result = runner.invoke(db_group, ["migrate"], env=env)
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output

    result = runner.invoke(db_group, ["status", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert {r["state"] for r in json.loads(result.output)} == {"applied"}

    result = runner.invoke(
        db_group,
        # UNION ALL alone leaves the row order to ClickHouse's threads: order it.
        [
            "query",
            "SELECT * FROM (SELECT 1 AS one, 'a' AS letter UNION ALL SELECT 2, 'b') ORDER BY one",
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert result.output.split("\n")[0].split() == ["one", "letter"]
    assert result.output.split("\n")[2].split() == ["2", "b"]

    result = runner.invoke(
        db_group, ["query", "--json", "SELECT count() AS n FROM predictions"], env=env
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [{"n": 0}]

    result = runner.invoke(db_group, ["query", "SELECT nope FROM predictions"], env=env)
    assert result.exit_code == 1
    assert "Unknown" in result.output or "UNKNOWN" in result.output

    result = runner.invoke(db_group, ["--help"])
    assert result.exit_code == 0 and "migrate" in result.output and "query" in result.output


def test_cli_says_when_clickhouse_is_unreachable() -> None:
    from streams.local.processes import free_port

    env = {
        "LASTMILE_CLICKHOUSE_PORT": str(free_port()),
        "LASTMILE_CONFIG": None,
        "LASTMILE_CLICKHOUSE_URL": None,
    }
    result = CliRunner().invoke(db_group, ["migrate"], env=env)
    assert result.exit_code == 1
    assert "cannot reach ClickHouse" in result.output


def test_docstring_examples_run() -> None:
    import doctest

    from streams.roles import sink

    for module in (db, sink):
        result = doctest.testmod(module)
        assert result.failed == 0, module.__name__
        assert result.attempted > 0, module.__name__
