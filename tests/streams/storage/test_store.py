"""The embedded ClickHouse store, as its clients see it: real store processes on free
ports, clickhouse-connect as the client (httpx where the raw HTTP reply matters).

One store serves most tests (module fixture); tests about start-up, restart and
locking run stores of their own.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import clickhouse_connect
import httpx
import pandas as pd
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from streams.storage.store import (
    NEED_MORE,
    EmbeddedStore,
    StoreError,
    ping,
    split_insert,
    store_command,
)

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStore]:
    root = tmp_path_factory.mktemp("store")
    with EmbeddedStore(root / "data", free_port(), log_path=root / "store.log") as running:
        yield running


def client(store: EmbeddedStore, **kwargs: object) -> clickhouse_connect.driver.Client:
    return clickhouse_connect.get_client(host=store.host, port=store.port, **kwargs)


def table_name() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


EVENTS = (
    "CREATE TABLE {name} (id UInt64, name String, score Float64, "
    "ts DateTime64(3), tag LowCardinality(String), n Nullable(Int32)) "
    "ENGINE = MergeTree ORDER BY id"
)
COLUMNS = ["id", "name", "score", "ts", "tag", "n"]


def rows(start: int, count: int) -> list[list[object]]:
    base = dt.datetime(2026, 1, 1)
    return [
        [i, f"name-{i}", i / 4, base + dt.timedelta(seconds=i), f"tag{i % 3}", i if i % 2 else None]
        for i in range(start, start + count)
    ]


# ------------------------------------------------------------------ the protocol


def test_ping(store: EmbeddedStore) -> None:
    assert ping(store.url)
    reply = httpx.get(f"{store.url}/ping")
    assert reply.status_code == 200 and reply.text == "Ok.\n"
    assert not ping(f"http://127.0.0.1:{free_port()}", timeout=0.5)


def test_client_settles_on_protocol_version_0(store: EmbeddedStore) -> None:
    """chDB's Native lacks the block-info prefix; the probe must say so."""
    c = client(store)
    assert c.protocol_version == 0
    assert c.server_version.startswith("26.")


def test_command(store: EmbeddedStore) -> None:
    c = client(store)
    name = table_name()
    summary = c.command(EVENTS.format(name=name))
    assert hasattr(summary, "written_rows")  # DDL answers with an empty body
    assert c.command("SELECT 41 + 1") == 42
    assert c.command("SELECT 'a', 'b'") == ["a", "b"]
    assert c.command(f"EXISTS TABLE {name}") == 1


def test_query_parameters_and_settings(store: EmbeddedStore) -> None:
    c = client(store)
    result = c.query(
        "SELECT {n:UInt64} * 2 AS doubled, {s:String} AS s, {a:Array(String)} AS a",
        parameters={"n": 21, "s": "it's \\ \t odd", "a": ["x", "y'z"]},
    )
    assert result.result_rows == [(42, "it's \\ \t odd", ["x", "y'z"])]
    # client-side binding too
    assert c.query("SELECT %(v)s + 1", parameters={"v": 1}).result_rows == [(2,)]
    # a per-query setting applies to that query only
    one = c.query("SELECT getSetting('max_threads')", settings={"max_threads": 1})
    assert one.result_rows == [(1,)]
    default = c.query("SELECT getSetting('max_threads')").result_rows[0][0]
    assert default != 1 or (os.cpu_count() or 1) == 1
    limited = c.query("SELECT number FROM numbers(100)", settings={"limit": 10})
    assert limited.row_count == 10
    with pytest.raises(DatabaseError, match="UNKNOWN_SETTING"):
        c.query("SELECT 1", settings={"no_such_setting_xyz": 1})
    assert c.query("SELECT 1").result_rows == [(1,)]  # the failed setting left nothing behind


def test_large_parameters_go_as_a_form(store: EmbeddedStore) -> None:
    """clickhouse-connect switches to a multipart form when bound values are large."""
    big = "x" * 20_000
    c = client(store)
    assert c.query("SELECT length({s:String})", parameters={"s": big}).result_rows == [(20_000,)]


def test_insert_query_df_query_arrow(store: EmbeddedStore) -> None:
    c = client(store)
    name = table_name()
    c.command(EVENTS.format(name=name))
    summary = c.insert(name, rows(0, 100), column_names=COLUMNS)
    assert summary.written_rows == 100
    df = pd.DataFrame(
        {
            "id": [1000, 1001],
            "name": ["df-a", "df-b"],
            "score": [0.5, 1.5],
            "ts": pd.to_datetime(["2026-02-01 00:00:00", "2026-02-01 00:00:01"]),
            "tag": ["x", "y"],
            "n": pd.array([7, None], dtype="Int32"),
        }
    )
    assert c.insert_df(name, df).written_rows == 2

    result = c.query(f"SELECT * FROM {name} WHERE id < 3 ORDER BY id")
    assert result.column_names == tuple(COLUMNS)
    assert result.result_rows[1] == (1, "name-1", 0.25, dt.datetime(2026, 1, 1, 0, 0, 1), "tag1", 1)
    assert result.result_rows[0][5] is None

    frame = c.query_df(f"SELECT id, name, n FROM {name} WHERE id >= 1000 ORDER BY id")
    assert frame["name"].tolist() == ["df-a", "df-b"]
    assert frame["n"].iloc[0] == 7 and pd.isna(frame["n"].iloc[1])

    table = c.query_arrow(f"SELECT id, score FROM {name} ORDER BY id")
    assert table.num_rows == 102
    assert table.column("score").to_pylist()[:3] == [0.0, 0.25, 0.5]

    empty = c.query(f"SELECT id, name FROM {name} WHERE id > 1e9")
    assert empty.row_count == 0 and empty.column_names == ("id", "name")
    assert c.query(f"SELECT * FROM {name} LIMIT 0").column_names == tuple(COLUMNS)


def test_raw_insert_and_command_data(store: EmbeddedStore) -> None:
    """Other ways in: statement and CSV in one body; VALUES data after the query."""
    c = client(store)
    name = table_name()
    c.command(f"CREATE TABLE {name} (a UInt32, b String) ENGINE = MergeTree ORDER BY a")
    c.raw_insert(name, ["a", "b"], insert_block=b"1,one\n2,two\n", fmt="CSV")
    c.command(f"INSERT INTO {name} VALUES", data="(3, 'three'), (4, 'four')")
    c.command(f'INSERT INTO {name} FORMAT JSONEachRow {{"a": 5, "b": "five"}}')
    assert c.query(f"SELECT groupArray(b) FROM (SELECT b FROM {name} ORDER BY a)").result_rows == [
        (["one", "two", "three", "four", "five"],)
    ]


@pytest.mark.parametrize("compress", [False, "lz4", "zstd", "gzip"])
def test_compressed_inserts_and_reads(store: EmbeddedStore, compress: bool | str) -> None:
    c = client(store, compress=compress)
    name = table_name()
    c.command(EVENTS.format(name=name))
    for start in (0, 3000):
        c.insert(name, rows(start, 3000), column_names=COLUMNS)
    assert c.query(f"SELECT count(), sum(id) FROM {name}").result_rows == [(6000, sum(range(6000)))]
    assert c.query(f"SELECT * FROM {name}").row_count == 6000


@pytest.mark.parametrize("encoding", ["lz4", "zstd", "gzip", "deflate"])
def test_body_of_concatenated_frames(store: EmbeddedStore, encoding: str) -> None:
    """clickhouse-connect compresses each block as a frame of its own; all must be read."""
    import gzip
    import zlib

    import lz4.frame
    import zstandard

    compressors = {
        "lz4": lz4.frame.compress,
        "zstd": zstandard.ZstdCompressor().compress,
        "gzip": gzip.compress,
        "deflate": zlib.compress,
    }
    name = table_name()
    client(store).command(f"CREATE TABLE {name} (a UInt32, b String) ENGINE = MergeTree ORDER BY a")
    body = f"INSERT INTO {name} FORMAT CSV\n".encode()
    body += b"".join(b"%d,row %d\n" % (i, i) for i in range(5000))
    cut = [0, 7, len(body) // 2, len(body)]  # frames split inside the statement and a row
    pieces = [body[a:b] for a, b in zip(cut, cut[1:], strict=False)]
    if encoding == "deflate":
        payload = compressors[encoding](body)  # one zlib stream: deflate has no frames
    else:
        payload = b"".join(compressors[encoding](piece) for piece in pieces)
    reply = httpx.post(store.url, content=payload, headers={"Content-Encoding": encoding})
    assert reply.status_code == 200, reply.text
    assert client(store).command(f"SELECT count(), sum(a) FROM {name}") == [
        "5000",
        str(sum(range(5000))),
    ]


def test_reply_compressed_when_asked(store: EmbeddedStore) -> None:
    """chDB's enable_http_compression defaults to 1, so Accept-Encoding alone is enough."""
    import lz4.frame

    sql = b"SELECT number FROM numbers(20000) FORMAT TabSeparated"
    reply = httpx.post(store.url, content=sql, headers={"Accept-Encoding": "lz4"})
    assert reply.status_code == 200 and reply.headers["Content-Encoding"] == "lz4"
    assert lz4.frame.decompress(reply.content).split(b"\n")[19999] == b"19999"
    plain = httpx.post(
        store.url,
        params={"enable_http_compression": "0"},
        content=sql,
        headers={"Accept-Encoding": "lz4"},
    )
    assert "Content-Encoding" not in plain.headers and plain.text.split("\n")[5] == "5"


def test_sessions(store: EmbeddedStore) -> None:
    a = client(store, session_id=f"a-{uuid.uuid4()}")
    b = client(store, session_id=f"b-{uuid.uuid4()}")
    a.command("CREATE TEMPORARY TABLE scratch (x UInt8)")
    a.command("INSERT INTO scratch VALUES (7)")
    assert a.query("SELECT x FROM scratch").result_rows == [(7,)]
    with pytest.raises(DatabaseError, match="UNKNOWN_TABLE"):
        b.query("SELECT x FROM scratch")
    a.command("SET max_threads = 1")
    assert a.command("SELECT getSetting('max_threads')") == 1
    assert b.command("SELECT getSetting('max_threads')") != 1 or (os.cpu_count() or 1) == 1
    # without a session, a SET and a temporary table vanish with the request
    none = client(store, autogenerate_session_id=False)
    none.command("SET max_threads = 1")
    assert none.command("SELECT getSetting('max_threads')") != 1 or (os.cpu_count() or 1) == 1


def test_database_parameter(store: EmbeddedStore) -> None:
    db = f"db_{uuid.uuid4().hex[:8]}"
    client(store).command(f"CREATE DATABASE {db}")
    c = client(store, database=db)
    c.command("CREATE TABLE here (a UInt8) ENGINE = MergeTree ORDER BY a")
    c.insert("here", [[1], [2]], column_names=["a"])
    assert client(store).command(f"SELECT count() FROM {db}.here") == 2
    reply = httpx.post(
        store.url, content=b"SELECT currentDatabase()", headers={"X-ClickHouse-Database": db}
    )
    assert reply.text.strip() == db


def test_errors_as_clickhouse_sends_them(store: EmbeddedStore) -> None:
    c = client(store)
    with pytest.raises(DatabaseError) as err:
        c.query("SELEC 1")
    assert err.value.code == 62
    assert "Code: 62" in str(err.value) and "Syntax error" in str(err.value)
    with pytest.raises(DatabaseError, match="Code: 60.*UNKNOWN_TABLE"):
        c.query("SELECT * FROM no_such_table_here")
    with pytest.raises(DatabaseError, match="UNKNOWN_TABLE"):
        c.insert("no_such_table_here", [[1]], column_names=["a"], column_type_names=["UInt8"])

    reply = httpx.post(store.url, content=b"SELEC 1")
    assert reply.status_code == 500
    assert reply.headers["X-ClickHouse-Exception-Code"] == "62"
    assert reply.text.startswith("Code: 62. DB::Exception: Syntax error")
    assert "(SYNTAX_ERROR)" in reply.text
    # the connection stays usable after an error
    assert c.command("SELECT 1") == 1


def test_one_writer_three_readers(store: EmbeddedStore) -> None:
    name = table_name()
    client(store).command(EVENTS.format(name=name))
    batches, batch_rows = 12, 2000
    errors: list[BaseException] = []
    done = threading.Event()
    reads = [0, 0, 0]

    def writer() -> None:
        try:
            c = client(store)
            for i in range(batches):
                c.insert(name, rows(i * batch_rows, batch_rows), column_names=COLUMNS)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            done.set()

    def reader(slot: int) -> None:
        try:
            c = client(store)
            while not done.is_set():
                if slot == 0:  # a long read must not hold the writer up
                    c.query("SELECT sum(number) FROM numbers(30000000)")
                else:
                    c.query(f"SELECT tag, count(), avg(score) FROM {name} GROUP BY tag")
                    c.query_df(f"SELECT * FROM {name} ORDER BY id DESC LIMIT 500")
                reads[slot] += 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=reader, args=(i,)) for i in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert all(reads), reads
    assert client(store).command(f"SELECT count() FROM {name}") == batches * batch_rows


def test_concurrent_requests_in_one_session_are_refused(store: EmbeddedStore) -> None:
    """As in ClickHouse: a session serves one request at a time."""
    sid = f"busy-{uuid.uuid4()}"
    params = {"session_id": sid}
    results: list[httpx.Response] = []
    slow = threading.Thread(
        target=lambda: results.append(
            httpx.post(store.url, params=params, content=b"SELECT sleep(1)", timeout=10)
        )
    )
    slow.start()
    time.sleep(0.3)
    busy = httpx.post(store.url, params=params, content=b"SELECT 1")
    slow.join()
    assert busy.status_code == 500 and busy.headers["X-ClickHouse-Exception-Code"] == "373"
    assert results[0].status_code == 200


# ------------------------------------------------------------ the process itself


def test_restart_and_crash_keep_the_data(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with EmbeddedStore(data, free_port()) as first:
        c = client(first)
        c.command(EVENTS.format(name="kept"))
        c.insert("kept", rows(0, 500), column_names=COLUMNS)
    with EmbeddedStore(data, free_port()) as second:  # after a clean stop
        c = client(second)
        assert c.command("SELECT count() FROM kept") == 500
        c.insert("kept", rows(500, 500), column_names=COLUMNS)
        second.kill()
    with EmbeddedStore(data, free_port()) as third:  # after SIGKILL: the lock is gone too
        assert client(third).command("SELECT count(), max(id) FROM kept") == ["1000", "999"]
        pid = third.pid
    assert pid is not None and not ping(third.url)
    third.stop()  # idempotent
    first.stop()


def test_second_store_on_the_same_directory_fails_at_once(store: EmbeddedStore) -> None:
    started = time.monotonic()
    with pytest.raises(StoreError) as err:
        EmbeddedStore(store.data_dir, free_port()).start()
    assert time.monotonic() - started < 10
    message = str(err.value)
    assert "already in use by another store" in message and str(store.pid) in message
    assert "\n" not in message
    assert ping(store.url)  # the first one is unharmed


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            store_command(tmp_path / "data", port), capture_output=True, text=True, timeout=30
        )
        assert proc.returncode != 0
        assert proc.stderr.strip().splitlines()[-1] == (
            f"lastmile store: cannot listen on 127.0.0.1:{port}: port {port} is already in use"
        )
        with pytest.raises(StoreError, match=f"port {port} is already in use"):
            EmbeddedStore(tmp_path / "data", port).start()


def test_unwritable_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    proc = subprocess.run(
        store_command(blocker / "data", free_port()), capture_output=True, text=True, timeout=30
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lastmile store: cannot create data directory")


def test_help() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "streams.storage.store", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert proc.returncode == 0 and "--data-dir" in proc.stdout and "--port" in proc.stdout


def test_user_and_password(tmp_path: Path) -> None:
    port = free_port()
    argv = store_command(tmp_path / "data", port) + ["--user", "lm"]
    proc = subprocess.Popen(
        argv, env={**os.environ, "LASTMILE_STORE_PASSWORD": "s3cret"}, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while not ping(f"http://127.0.0.1:{port}") and time.monotonic() < deadline:
            time.sleep(0.05)
        c = clickhouse_connect.get_client(
            host="127.0.0.1", port=port, username="lm", password="s3cret"
        )
        assert c.command("SELECT 1") == 1
        with pytest.raises(DatabaseError, match="AUTHENTICATION_FAILED"):
            clickhouse_connect.get_client(
                host="127.0.0.1", port=port, username="lm", password="wrong"
            )
        reply = httpx.post(f"http://127.0.0.1:{port}", content=b"SELECT 1")
        assert reply.status_code == 403 and reply.headers["X-ClickHouse-Exception-Code"] == "516"
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


# ------------------------------------------------------------- statement split


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"INSERT INTO t FORMAT Native\n\x00\x01", (b"INSERT INTO t ", "Native", 28)),
        (b"INSERT INTO t (a, format) FORMAT CSV 1,2", (b"INSERT INTO t (a, format) ", "CSV", 37)),
        (b"INSERT INTO format FORMAT TSV\r\nx", (b"INSERT INTO format ", "TSV", 31)),
        (
            b"INSERT INTO db.format SETTINGS x='FORMAT Y' FORMAT CSV\n",
            (b"INSERT INTO db.format SETTINGS x='FORMAT Y' ", "CSV", 55),
        ),
        (
            b"/* c */ INSERT -- FORMAT X\nINTO t FORMAT JSONEachRow {}",
            (b"/* c */ INSERT -- FORMAT X\nINTO t ", "JSONEachRow", 53),
        ),
        (b"INSERT INTO t VALUES (1, 'FORMAT CSV')", None),
        (b"INSERT INTO t SELECT * FROM s FORMAT Native", None),
        (b"SELECT 1 FORMAT Native", None),
        (b"", None),
    ],
)
def test_split_insert(text: bytes, expected: object) -> None:
    assert split_insert(text, final=True) == expected


def test_split_insert_waits_for_the_end_of_the_statement() -> None:
    assert split_insert(b"INSERT INTO t FORM", final=False) is NEED_MORE
    assert split_insert(b"INSERT INTO t FORMAT Native", final=False) is NEED_MORE
    assert split_insert(b"INSERT INTO t FORMAT Native  ", final=False) is NEED_MORE
    assert split_insert(b"INSERT INTO t FORMAT Native \n", final=False) == (
        b"INSERT INTO t ",
        "Native",
        29,
    )
    assert split_insert(b"INSERT INTO t FORMAT Native", final=True) == (
        b"INSERT INTO t ",
        "Native",
        27,
    )
