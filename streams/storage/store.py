"""The embedded ClickHouse store: one process owns a chDB data directory and serves
ClickHouse's HTTP interface on loopback, so every role and the dashboard talk to it
with clickhouse-connect exactly as they would to a real ClickHouse server.

Why a process of its own: chDB (ClickHouse in-process) lets only one process open a
data directory, and the roles are separate processes. So one store process opens the
directory and frames HTTP around chDB; nothing more. What it speaks is what
clickhouse-connect sends (verified against clickhouse-connect 1.12 and chdb 4.4):

* SQL in the POST body (or ``query=`` in the URL, with the body appended after a
  newline, as ClickHouse does), settings and ``session_id`` / ``database`` /
  ``query_id`` as URL parameters, ``param_<name>`` for server-side ``{name:Type}``
  binding, multipart form bodies for large bound parameters.
* Inserts as ``INSERT ... FORMAT <fmt>`` followed by the data. clickhouse-connect puts
  the statement at the head of the (possibly compressed) body, so the store
  decompresses as ``Content-Encoding`` says (lz4, zstd, gzip, deflate; each
  concatenated frame in turn), finds where the statement ends, and streams the rest
  into chDB's ``send_insert``: no temp file, constant memory. (Measured: binary data
  inline in ``query()`` arrives cut short; ``send_insert`` and ``INSERT ... FROM
  INFILE`` cost the same, and the latter needs a temp file.)
* The protocol probe ``SELECT 1 AS check`` with ``client_protocol_version=54405`` is
  answered with chDB's own Native output, which lacks the 8-byte block-info prefix, so
  the client settles on protocol version 0 and parses every later reply correctly.
* Errors as ClickHouse sends them: status 500 (403 for a failed login), body
  ``Code: N. DB::Exception: ... (NAME) (version V)``, header
  ``X-ClickHouse-Exception-Code: N``.
* Replies are compressed as the client's ``Accept-Encoding`` asks (lz4, zstd, gzip,
  deflate): chDB reports ``enable_http_compression = 1`` by default, so the client
  expects it without sending the setting.

Known differences from a ClickHouse server, for code built on the store: query errors
are always status 500 (a server uses 400/404 for some codes), so go by the exception
code; replies are buffered whole, not streamed, so page through big results; a query
keeps running when its client hangs up; GET queries are not forced read-only;
multi-statement queries are accepted; external data and ClickHouse's own
``compress=1``/``decompress=1`` framing are refused; chDB drops the zone of
``DateTime('tz')`` columns in Native output (``DateTime64(p, 'tz')`` keeps it).

Sessions: chDB allows many connection handles to the one engine of a process, each
with its own current database, ``SET`` settings and temporary tables. Each HTTP
``session_id`` gets a handle of its own (closed after ``session_timeout`` idle
seconds, default 60 as in ClickHouse); requests without a session borrow one from a
pool. Handles run queries concurrently (chDB releases the GIL), so a long read does
not block a writer; one session's requests are serialised, and a second concurrent
request in the same session fails with SESSION_IS_LOCKED as ClickHouse does.
Per-request settings are applied to the handle with ``SET`` and only re-sent when
they change, which costs nothing for a client that always sends the same ones.

Run it: ``python -m streams.storage.store --data-dir DIR --port 8123``. From Python:
:class:`EmbeddedStore` spawns it and waits until it answers ``/ping``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import errno
import fcntl
import hmac
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger("lastmile.store")

LOCK_NAME = "store.lock"
DEFAULT_SESSION_TIMEOUT = 60.0
MAX_SESSION_TIMEOUT = 3600.0
PASSWORD_ENV = "LASTMILE_STORE_PASSWORD"
PID_HEADER = "X-Lastmile-Store-Pid"
_MAX_IDLE_HANDLES = 8
_APPEND_BYTES = 1 << 20  # coalesce small body chunks before handing them to chDB
_COMPRESS_MIN_BYTES = 4096  # below this a compressed reply costs more than it saves

# ClickHouse error codes the store raises itself (chDB supplies all the others).
SYNTAX_ERROR = 62
BAD_ARGUMENTS = 36
NOT_IMPLEMENTED = 48
UNKNOWN_SETTING = 115
ABORTED = 236
CANNOT_DECOMPRESS = 271
SESSION_NOT_FOUND = 372
SESSION_IS_LOCKED = 373
AUTHENTICATION_FAILED = 516
STD_EXCEPTION = 1001
_CODE_NAMES = {
    SYNTAX_ERROR: "SYNTAX_ERROR",
    BAD_ARGUMENTS: "BAD_ARGUMENTS",
    NOT_IMPLEMENTED: "NOT_IMPLEMENTED",
    UNKNOWN_SETTING: "UNKNOWN_SETTING",
    ABORTED: "ABORTED",
    CANNOT_DECOMPRESS: "CANNOT_DECOMPRESS",
    SESSION_NOT_FOUND: "SESSION_NOT_FOUND",
    SESSION_IS_LOCKED: "SESSION_IS_LOCKED",
    AUTHENTICATION_FAILED: "AUTHENTICATION_FAILED",
    STD_EXCEPTION: "STD_EXCEPTION",
}

# URL parameters that steer the HTTP interface itself; everything else that is not a
# ``param_`` binding is a ClickHouse setting and goes to chDB.
_HTTP_PARAMS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "quota_key",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "close_session",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "client_protocol_version",
        "role",
        "stacktrace",
        "with_stacktrace",
        "enable_http_compression",
        "http_zlib_compression_level",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "cancel_http_readonly_queries_on_client_close",
        "http_native_compression_disable_checksumming_on_decompress",
        "add_http_cors_header",
    }
)

_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_WORD = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_CODE = re.compile(r"Code: (\d+)\.")
_VERSION_TRAILER = re.compile(r"\s*\(version [^)]*\)\s*$")
# Statements that change a handle's state for good: a pooled handle that ran one is
# closed afterwards, because a request without a session must leave nothing behind.
_STATEFUL = re.compile(rb"^\s*(SET|USE|CREATE\s+TEMPORARY)\b", re.IGNORECASE)
_LEADING_SELECT = re.compile(r"^\s*(SELECT|WITH)\b", re.IGNORECASE)
_READS = re.compile(r"^\s*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXISTS|EXPLAIN|CHECK)\b", re.IGNORECASE)

_CONTENT_TYPES = {
    "Native": "application/octet-stream",
    "RowBinary": "application/octet-stream",
    "RowBinaryWithNamesAndTypes": "application/octet-stream",
    "Arrow": "application/octet-stream",
    "ArrowStream": "application/octet-stream",
    "Parquet": "application/octet-stream",
    "TabSeparated": "text/tab-separated-values; charset=UTF-8",
    "TSV": "text/tab-separated-values; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8",
    "CSVWithNames": "text/csv; charset=UTF-8",
}


class StoreError(RuntimeError):
    """The store could not start or answer; the message is one line saying why."""


class ClickHouseError(Exception):
    """An error the store reports to its client the way ClickHouse does."""

    def __init__(self, code: int, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    @classmethod
    def make(cls, code: int, text: str, status: int = 500) -> ClickHouseError:
        """Build the exact ``Code: N. DB::Exception: text (NAME)`` shape clients parse."""
        name = _CODE_NAMES.get(code, "UNKNOWN_EXCEPTION")
        return cls(code, f"Code: {code}. DB::Exception: {text}. ({name})", status)

    @classmethod
    def from_chdb(cls, exc: BaseException) -> ClickHouseError:
        """chDB raises RuntimeError whose text holds ClickHouse's own message somewhere."""
        text = str(exc)
        start = text.find("Code: ")
        if start < 0:
            return cls.make(STD_EXCEPTION, text.strip() or type(exc).__name__)
        message = text[start:].strip()
        match = _CODE.match(message)
        return cls(int(match.group(1)) if match else STD_EXCEPTION, message)

    def body(self, version: str) -> bytes:
        """The reply body: the message with ClickHouse's ``(version ...)`` trailer."""
        return f"{_VERSION_TRAILER.sub('', self.message)} (version {version})\n".encode()


# --------------------------------------------------------------------------- SQL


NEED_MORE = object()


def split_insert(text: bytes, final: bool) -> Any:
    """Find where an ``INSERT ... FORMAT <fmt>`` statement ends and its data begins.

    Returns ``(statement, fmt, data_offset)`` for an insert with inline data,
    ``None`` when ``text`` is any other statement (run it as a query), or
    ``NEED_MORE`` when the buffer ends before that is decidable and ``final`` is
    false. Strings, quoted identifiers, comments and parentheses are skipped so a
    column or table named ``format`` does not fool it; ``VALUES``, ``SELECT`` or
    ``WITH`` at the top level mean the statement is plain SQL. Data starts after the
    first newline following the format name, or after the blanks when there is none,
    which is ClickHouse's rule. Only the statement is scanned, never the data.
    """
    n = len(text)
    i = 0
    first = True
    depth = 0
    after_dot = False
    format_at = -1
    more = None if final else NEED_MORE
    while True:
        while i < n:  # blanks and comments
            c = text[i]
            if c in b" \t\r\n\f":
                i += 1
            elif c == 0x23 or text.startswith(b"--", i):  # '#' or '--'
                j = text.find(b"\n", i)
                if j < 0:
                    return more
                i = j + 1
            elif text.startswith(b"/*", i):
                j = text.find(b"*/", i + 2)
                if j < 0:
                    return more
                i = j + 2
            else:
                break
        if i >= n:
            return more
        c = text[i]
        if c in b"'\"`":
            j = i + 1
            while True:
                if j >= n:
                    return more
                if text[j] == 0x5C:  # backslash escape
                    j += 2
                    continue
                if text[j] == c:
                    if j + 1 < n and text[j + 1] == c:  # doubled quote
                        j += 2
                        continue
                    if j + 1 >= n and not final:
                        return more
                    break
                j += 1
            i = j + 1
            after_dot = False
            format_at = -1
            continue
        match = _WORD.match(text, i)
        if match is None:
            if c == 0x28:  # (
                depth += 1
            elif c == 0x29:  # )
                depth -= 1
            after_dot = c == 0x2E  # .
            format_at = -1
            i += 1
            continue
        end = match.end()
        if end >= n and not final:
            return more  # the word may go on in the next chunk
        word = match.group().upper()
        if first:
            if word != b"INSERT":
                return None
            first = False
        elif depth == 0 and not after_dot:
            if format_at >= 0 and word != b"FORMAT":
                j = end
                while j < n and text[j] in b" \t\f":
                    j += 1
                if j < n and text[j] == 0x0D:
                    j += 1
                newline = j < n and text[j] == 0x0A
                if newline:
                    j += 1
                if j >= n and not newline and not final:
                    return more  # the newline that ends the statement may come next
                return text[:format_at], match.group().decode(), j
            if word == b"FORMAT":
                format_at = match.start()
            elif word in (b"VALUES", b"SELECT", b"WITH"):
                return None
        after_dot = False
        i = end


def _quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _quote_value(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _output_format(sql: str, default: str) -> str:
    match = _TRAILING_FORMAT.search(sql[-200:])
    return match.group(1) if match else default


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _native_header(columns: list[tuple[str, str]]) -> bytes:
    """A Native block with columns and zero rows, as a ClickHouse server sends it."""
    out = bytearray(_varint(len(columns)) + _varint(0))
    for name, type_name in columns:
        for text in (name.encode(), type_name.encode()):
            out += _varint(len(text)) + text
    return bytes(out)


# ------------------------------------------------------------------ compression


def _decompressor_factory(encoding: str) -> Callable[[], Any]:
    """One decompressor per frame: clickhouse-connect compresses each block separately."""
    if encoding == "lz4":
        import lz4.frame

        return lz4.frame.LZ4FrameDecompressor
    if encoding == "zstd":
        import zstandard

        return lambda: zstandard.ZstdDecompressor().decompressobj()
    if encoding in ("gzip", "x-gzip"):
        return lambda: zlib.decompressobj(wbits=31)
    if encoding == "deflate":
        return zlib.decompressobj
    if encoding == "br":
        try:
            import brotli  # type: ignore[import-not-found]
        except ImportError:
            pass
        else:
            return brotli.Decompressor
    raise ClickHouseError.make(
        NOT_IMPLEMENTED, f"Unknown Content-Encoding of the request: {encoding}"
    )


def _decompress_stream(chunks: Iterator[bytes], encoding: str) -> Iterator[bytes]:
    encoding = encoding.strip().lower()
    if not encoding or encoding == "identity":
        yield from chunks
        return
    factory = _decompressor_factory(encoding)
    decompressor = factory()
    for chunk in chunks:
        data = chunk
        while data:
            try:
                out = decompressor.decompress(data)
            except Exception as exc:
                raise ClickHouseError.make(
                    CANNOT_DECOMPRESS, f"Cannot decompress {encoding} request body: {exc}"
                ) from None
            if out:
                yield out
            data = b""
            if getattr(decompressor, "eof", False):
                data = decompressor.unused_data
                decompressor = factory()


def _compress(body: bytes, accept: str) -> tuple[bytes, str | None]:
    """Compress a reply with the first method the client lists that is cheap here."""
    if len(body) < _COMPRESS_MIN_BYTES:
        return body, None
    for token in accept.split(","):
        method = token.split(";")[0].strip().lower()
        if method == "lz4":
            import lz4.frame

            return lz4.frame.compress(body), "lz4"
        if method == "zstd":
            import zstandard

            return zstandard.ZstdCompressor(level=1).compress(body), "zstd"
        if method == "gzip":
            co = zlib.compressobj(3, wbits=31)
            return co.compress(body) + co.flush(), "gzip"
        if method == "deflate":
            return zlib.compress(body, 3), "deflate"
    return body, None


# ----------------------------------------------------------------------- engine


class _Handle:
    """One chDB connection handle: a ClickHouse session's state and its lock."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.lock = threading.Lock()
        self.applied: dict[str, str] = {}  # settings set from URL parameters
        self.database: str | None = "default"
        self.timeout = DEFAULT_SESSION_TIMEOUT
        self.expires = 0.0
        self.dirty = False

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.session.close()


class Engine:
    """The chDB engine of this process and its connection handles.

    The first handle opens the data directory and stays open until :meth:`close`;
    the others come and go with sessions. All bookkeeping is under one lock; chDB
    calls are made outside it, under the handle's own lock.
    """

    def __init__(self, path: Path) -> None:
        import chdb.session

        self._session_class = chdb.session.Session
        self.path = str(path)
        self._base = self._session_class(self.path)
        row = self._base.query("SELECT version(), timezone()", "TabSeparated").bytes()
        self.version, self.timezone = row.decode().strip().split("\t")
        self._lock = threading.Condition()
        self._idle: list[_Handle] = []
        self._sessions: dict[str, _Handle] = {}
        self._active = 0
        self._closed = False
        self._reaper = threading.Thread(target=self._reap, name="store-sessions", daemon=True)
        self._reaper.start()

    def _new_handle(self) -> _Handle:
        try:
            return _Handle(self._session_class(self.path))
        except Exception as exc:
            raise ClickHouseError.from_chdb(exc) from None

    @contextlib.contextmanager
    def handle(self, session_id: str | None, timeout: float, check: bool) -> Iterator[_Handle]:
        """Lend the handle of ``session_id`` (or a pooled one) for one request."""
        with self._lock:
            if self._closed:
                raise ClickHouseError.make(ABORTED, "The store is shutting down")
            if session_id:
                handle = self._sessions.get(session_id)
                if handle is None:
                    if check:
                        raise ClickHouseError.make(
                            SESSION_NOT_FOUND, f"Session {session_id} not found"
                        )
                    handle = self._sessions[session_id] = self._new_handle()
                if not handle.lock.acquire(blocking=False):
                    raise ClickHouseError.make(
                        SESSION_IS_LOCKED, f"Session {session_id} is locked by a concurrent client"
                    )
                handle.timeout = timeout
            else:
                handle = self._idle.pop() if self._idle else self._new_handle()
                handle.lock.acquire()
            self._active += 1
        try:
            yield handle
        finally:
            retired = None
            with self._lock:
                handle.expires = time.monotonic() + handle.timeout
                handle.lock.release()
                if not session_id:
                    if handle.dirty or self._closed or len(self._idle) >= _MAX_IDLE_HANDLES:
                        retired = handle
                    else:
                        self._idle.append(handle)
                self._active -= 1
                self._lock.notify_all()
            if retired is not None:
                retired.close()

    def _reap(self) -> None:
        """Close sessions idle longer than their timeout, as ClickHouse does."""
        while True:
            time.sleep(2.0)
            expired = []
            with self._lock:
                if self._closed:
                    return
                now = time.monotonic()
                for sid, handle in list(self._sessions.items()):
                    if handle.expires < now and handle.lock.acquire(blocking=False):
                        del self._sessions[sid]
                        expired.append(handle)
            for handle in expired:
                handle.close()

    def close(self, timeout: float = 8.0) -> None:
        """Refuse new work, wait for what runs, then close every handle.

        Closing the last handle shuts the engine down, so the next store finds the
        data directory intact and unlocked.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            deadline = time.monotonic() + timeout
            while self._active and time.monotonic() < deadline:
                self._lock.wait(0.1)
            if self._active:
                log.warning("closing chDB with %d request(s) still running", self._active)
            handles = self._idle + list(self._sessions.values())
            self._idle, self._sessions = [], {}
        for handle in handles:
            handle.close()
        with contextlib.suppress(Exception):
            self._base.close()


def _prepare(handle: _Handle, database: str | None, settings: dict[str, str]) -> None:
    """Bring a handle to the request's database and settings, sending only changes."""
    session = handle.session
    if "readonly" in settings:
        handle.dirty = True  # readonly cannot be undone on this handle
    try:
        if database and database != handle.database:
            handle.database = None
            session.query(f"USE {_quote_identifier(database)}", "TabSeparated")
            handle.database = database
        for key, value in settings.items():
            if handle.applied.get(key) != value:
                if not _SETTING_NAME.match(key):
                    raise ClickHouseError.make(UNKNOWN_SETTING, f"Unknown setting '{key}'")
                session.query(f"SET {key} = {_quote_value(value)}", "TabSeparated")
                handle.applied[key] = value
    except ClickHouseError:
        raise
    except Exception as exc:
        raise ClickHouseError.from_chdb(exc) from None
    for key in [k for k in handle.applied if k not in settings]:
        del handle.applied[key]
        try:
            session.query(f"SET {key} = DEFAULT", "TabSeparated")
        except Exception as exc:
            # e.g. after readonly = 1 nothing can be changed: do not fail this request
            # for the last one's setting, but do not lend the handle out again either.
            log.debug("cannot reset %s: %s", key, exc)
            handle.dirty = True


def _summary(
    read_rows: int,
    read_bytes: int,
    written_rows: int,
    written_bytes: int,
    result_rows: int,
    result_bytes: int,
    elapsed: float,
) -> str:
    """X-ClickHouse-Summary: ClickHouse sends every figure as a string."""
    return json.dumps(
        {
            "read_rows": str(read_rows),
            "read_bytes": str(read_bytes),
            "written_rows": str(written_rows),
            "written_bytes": str(written_bytes),
            "total_rows_to_read": "0",
            "result_rows": str(result_rows),
            "result_bytes": str(result_bytes),
            "elapsed_ns": str(int(elapsed * 1e9)),
        },
        separators=(",", ":"),
    )


# ------------------------------------------------------------------------- HTTP


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], engine: Engine, credentials: tuple[str, str] | None
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.engine = engine
        self.credentials = credentials
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up is not news; anything else is logged, not printed raw."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            log.debug("connection from %s dropped", client_address)
        else:
            log.exception("error on the connection from %s", client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "lastmile-store"
    sys_version = ""
    timeout = 600  # an idle keep-alive connection is dropped after this many seconds
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this Nagle holds the body back.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet: one line per request would drown the errors that matter."""

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("http: " + format, *args)

    # -- plumbing

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _reply_error(self, error: ClickHouseError, query_id: str) -> None:
        engine = self.server.engine
        self._reply(
            error.status,
            error.body(engine.version),
            {
                "Content-Type": "text/plain; charset=UTF-8",
                "X-ClickHouse-Exception-Code": str(error.code),
                "X-ClickHouse-Query-Id": query_id,
                "X-ClickHouse-Timezone": engine.timezone,
            },
        )

    def _ok(self) -> None:
        self._reply(
            200,
            b"Ok.\n",
            {"Content-Type": "text/html; charset=UTF-8", PID_HEADER: str(os.getpid())},
        )

    def _raw_body(self) -> Iterator[bytes]:
        """The request body as it arrives, Content-Length framed or chunked."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                line = self.rfile.readline(1 << 16)
                if not line:
                    raise ConnectionError("client went away in a chunked body")
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise ConnectionError("malformed chunked request body") from None
                if size == 0:
                    while self.rfile.readline(1 << 16) not in (b"\r\n", b"\n", b""):
                        pass
                    return
                data = self.rfile.read(size)
                self.rfile.readline(1 << 16)  # the CRLF after the chunk
                if len(data) < size:
                    raise ConnectionError("client went away in a chunked body")
                yield data
        else:
            remaining = int(self.headers.get("Content-Length") or 0)
            while remaining > 0:
                data = self.rfile.read(min(remaining, 1 << 20))
                if not data:
                    raise ConnectionError("client went away in the body")
                remaining -= len(data)
                yield data

    def _authenticate(self, params: dict[str, str]) -> None:
        expected = self.server.credentials
        if expected is None:
            return
        user = self.headers.get("X-ClickHouse-User") or params.get("user")
        password = self.headers.get("X-ClickHouse-Key") or params.get("password") or ""
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            with contextlib.suppress(ValueError):
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        user = user or "default"
        ok = hmac.compare_digest(user.encode(), expected[0].encode()) & hmac.compare_digest(
            password.encode(), expected[1].encode()
        )
        if not ok:
            raise ClickHouseError.make(
                AUTHENTICATION_FAILED,
                f"{user}: Authentication failed: password is incorrect, "
                "or there is no user with such name",
                status=403,
            )

    # -- verbs

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path in ("/ping", "/replicas_status") or (
            url.path == "/" and "query=" not in url.query
        ):
            self._ok()
            return
        self._serve(url)

    def do_POST(self) -> None:
        self._serve(urlsplit(self.path))

    def _serve(self, url: Any) -> None:
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        query_id = params.get("query_id") or str(uuid.uuid4())
        body = self._raw_body()
        try:
            if url.path not in ("/", ""):
                raise ClickHouseError.make(
                    BAD_ARGUMENTS, f"There is no handle {url.path}", status=404
                )
            self._authenticate(params)
            self._execute(params, body, query_id)
        except ClickHouseError as error:
            if error.code != AUTHENTICATION_FAILED:
                log.warning("request failed: %s", (error.message.splitlines() or [""])[0][:500])
            self._drain(body)
            self._reply_error(error, query_id)
        except (ConnectionError, TimeoutError, OSError) as exc:
            log.debug("connection lost: %s", exc)
            self.close_connection = True
        except Exception as exc:
            log.exception("unexpected error serving a request")
            self._drain(body)
            self._reply_error(
                ClickHouseError.make(STD_EXCEPTION, f"{type(exc).__name__}: {exc}"), query_id
            )

    def _drain(self, body: Iterator[bytes]) -> None:
        """Read what the client still sends, so it gets to read the error reply."""
        try:
            for _ in body:
                pass
        except Exception:
            self.close_connection = True

    def _execute(self, params: dict[str, str], raw: Iterator[bytes], query_id: str) -> None:
        engine = self.server.engine
        if params.get("compress") == "1" or params.get("decompress") == "1":
            raise ClickHouseError.make(
                NOT_IMPLEMENTED,
                "ClickHouse's native compress/decompress HTTP parameters are not supported",
            )
        content_type = self.headers.get("Content-Type", "")
        if content_type.startswith("multipart/form-data"):
            self._merge_form(params, b"".join(raw), content_type)
            raw = iter(())
        body = _decompress_stream(raw, self.headers.get("Content-Encoding", ""))

        query_param = params.get("query", "")
        head = bytearray(query_param.encode() + b"\n" if query_param else b"")
        exhausted = False
        while True:
            split = split_insert(head, final=exhausted)
            if split is not NEED_MORE:
                break
            chunk = next(body, None)
            if chunk is None:
                exhausted = True
            else:
                head += chunk
        if not exhausted and split is None:
            head += b"".join(body)
        if not head.strip():
            raise ClickHouseError.make(SYNTAX_ERROR, "Empty query")

        session_id = params.get("session_id") or None
        timeout = DEFAULT_SESSION_TIMEOUT
        if "session_timeout" in params:
            try:
                timeout = min(float(params["session_timeout"]), MAX_SESSION_TIMEOUT)
            except ValueError:
                raise ClickHouseError.make(BAD_ARGUMENTS, "Invalid session timeout") from None
        database = params.get("database") or self.headers.get("X-ClickHouse-Database") or None
        if database is None and session_id is None:
            database = "default"
        settings = {
            k: v for k, v in params.items() if k not in _HTTP_PARAMS and not k.startswith("param_")
        }
        binds = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
        default_format = (
            params.get("default_format")
            or self.headers.get("X-ClickHouse-Format")
            or "TabSeparated"
        )

        with engine.handle(session_id, timeout, params.get("session_check") == "1") as handle:
            _prepare(handle, database, settings)
            if split is None:
                if session_id is None and _STATEFUL.match(head):
                    handle.dirty = True
                elif session_id is not None and re.match(rb"^\s*USE\b", head, re.IGNORECASE):
                    handle.database = None  # re-apply the database parameter next time
                reply, headers = self._query(handle, bytes(head), binds, default_format)
            else:
                reply, headers = self._insert(handle, split, head, body)

        headers["X-ClickHouse-Query-Id"] = query_id
        headers["X-ClickHouse-Timezone"] = engine.timezone
        headers["X-ClickHouse-Server-Display-Name"] = "lastmile-store"
        accept = self.headers.get("Accept-Encoding", "")
        # chDB reports enable_http_compression = 1 by default (a server says 0), so a
        # client that asks with Accept-Encoding expects a compressed reply without
        # sending the setting; honour it unless the request turns it off.
        if accept and params.get("enable_http_compression", "1") != "0":
            reply, encoding = _compress(reply, accept)
            if encoding:
                headers["Content-Encoding"] = encoding
        self._reply(200, reply, headers)

    def _merge_form(self, params: dict[str, str], data: bytes, content_type: str) -> None:
        """Large bound parameters arrive as multipart form fields (query, param_*)."""
        from email.parser import BytesParser
        from email.policy import HTTP

        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + data
        )
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if part.get_filename():
                raise ClickHouseError.make(
                    NOT_IMPLEMENTED, "External data is not supported by the store"
                )
            if name:
                payload = part.get_payload(decode=True) or b""
                params[str(name)] = payload.decode()

    def _query(
        self, handle: _Handle, sql_bytes: bytes, binds: dict[str, str], default_format: str
    ) -> tuple[bytes, dict[str, str]]:
        try:
            sql = sql_bytes.decode()
        except UnicodeDecodeError:
            raise ClickHouseError.make(BAD_ARGUMENTS, "The query is not valid UTF-8") from None
        fmt = _output_format(sql, default_format)
        try:
            result = handle.session.query(sql, default_format, params=binds)
        except Exception as exc:
            raise ClickHouseError.from_chdb(exc) from None
        reply = result.bytes()
        if not reply and fmt == "Native" and _LEADING_SELECT.match(sql):
            reply = _empty_native(handle, sql, binds)
        summary = _summary(
            result.rows_read(),
            result.bytes_read(),
            result.rows_written(),
            result.bytes_written(),
            0,
            len(reply),
            result.elapsed(),
        )
        headers = {
            "Content-Type": _CONTENT_TYPES.get(fmt, "text/plain; charset=UTF-8"),
            "X-ClickHouse-Summary": summary,
        }
        # A server names the output format only for statements that have output; for
        # DDL clickhouse-connect's command() then returns a QuerySummary, not "".
        if reply or _READS.match(sql) or _TRAILING_FORMAT.search(sql[-200:]):
            headers["X-ClickHouse-Format"] = fmt
        return reply, headers

    def _insert(
        self,
        handle: _Handle,
        split: tuple[bytes, str, int],
        head: bytearray,
        body: Iterator[bytes],
    ) -> tuple[bytes, dict[str, str]]:
        statement, fmt, offset = split
        try:
            text = statement.decode().strip()
        except UnicodeDecodeError:
            raise ClickHouseError.make(BAD_ARGUMENTS, "The query is not valid UTF-8") from None
        try:
            inserter = handle.session.send_insert(text, fmt)
        except Exception as exc:
            raise ClickHouseError.from_chdb(exc) from None
        try:
            pending: list[bytes] = []
            size = 0
            first = bytes(memoryview(head)[offset:])
            chunks = [first] if first else []
            for chunk in _chain(chunks, body):
                pending.append(chunk)
                size += len(chunk)
                if size >= _APPEND_BYTES:
                    inserter.append(pending[0] if len(pending) == 1 else b"".join(pending))
                    pending, size = [], 0
            if pending:
                inserter.append(pending[0] if len(pending) == 1 else b"".join(pending))
            result = inserter.finish()
        except ClickHouseError:
            with contextlib.suppress(Exception):
                inserter.cancel()
            raise
        except (ConnectionError, TimeoutError):
            with contextlib.suppress(Exception):
                inserter.cancel()
            raise
        except Exception as exc:
            with contextlib.suppress(Exception):
                inserter.cancel()
            raise ClickHouseError.from_chdb(exc) from None
        summary = _summary(
            0,
            0,
            result.rows_written,
            result.bytes_written,
            result.rows_written,
            result.bytes_written,
            result.elapsed,
        )
        return b"", {"Content-Type": "text/plain; charset=UTF-8", "X-ClickHouse-Summary": summary}


def _chain(first: list[bytes], rest: Iterator[bytes]) -> Iterator[bytes]:
    yield from first
    yield from rest


def _empty_native(handle: _Handle, sql: str, binds: dict[str, str]) -> bytes:
    """chDB writes nothing for an empty Native result; a server sends the header block.

    Without it clickhouse-connect returns no column names (and ``query_df`` a frame
    without columns), so ask chDB for the result's columns and send them with no rows.
    """
    select = _TRAILING_FORMAT.sub("", sql).rstrip().rstrip(";")
    try:
        described = handle.session.query(
            f"DESCRIBE ({select})", "TabSeparated", params=binds
        ).bytes()
    except Exception:
        return b""
    columns = []
    for line in described.decode().splitlines():
        fields = line.split("\t")
        if len(fields) >= 2:
            columns.append((_unescape_tsv(fields[0]), _unescape_tsv(fields[1])))
    return _native_header(columns) if columns else b""


def _unescape_tsv(text: str) -> str:
    if "\\" not in text:
        return text
    return re.sub(
        r"\\(.)",
        lambda m: {"t": "\t", "n": "\n", "r": "\r", "0": "\0", "b": "\b", "f": "\f"}.get(
            m.group(1), m.group(1)
        ),
        text,
    )


# ---------------------------------------------------------------------- process


def _fail(message: str) -> int:
    """A fatal start-up error: one line on stderr (the last one), exit code 1."""
    sys.stderr.write(f"lastmile store: {message}\n")
    sys.stderr.flush()
    return 1


def _lock_data_dir(data_dir: Path) -> tuple[int | None, str | None]:
    """Create the data directory and take its lock; (fd, None) or (None, reason)."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return None, f"cannot create data directory {data_dir}: {err.strerror or err}"
    if not data_dir.is_dir():
        return None, f"data directory {data_dir} is not a directory"
    if not os.access(data_dir, os.W_OK | os.X_OK):
        return None, f"data directory {data_dir} is not writable"
    lock_path = data_dir / LOCK_NAME
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        return None, f"data directory {data_dir} is not writable: {err.strerror or err}"
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = ""
        with contextlib.suppress(OSError, ValueError):
            holder = os.pread(fd, 64, 0).decode().strip()
        os.close(fd)
        who = f" (pid {holder})" if holder else ""
        return None, f"data directory {data_dir} is already in use by another store{who}"
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd, None


def _chdb_holder(data_dir: Path) -> str | None:
    """None when no other process has chDB open on ``data_dir``, else " (pid N)" or "".

    chDB, like ClickHouse, flocks ``<data_dir>/status``; a process that opened the
    directory without this store (a direct ``chdb://`` client, say) holds it. Checked
    first because chDB's own failure is a vague "Error initializing EmbeddedServer".
    """
    status = data_dir / "status"
    try:
        fd = os.open(status, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        match = re.search(rb"PID: (\d+)", os.pread(fd, 256, 0))
        return f" (pid {match.group(1).decode()})" if match else ""
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def serve(
    data_dir: Path, port: int, host: str = "127.0.0.1", credentials: tuple[str, str] | None = None
) -> int:
    """Run the store in this process until SIGTERM or SIGINT; returns the exit code."""
    data_dir = Path(data_dir).resolve()
    fd, reason = _lock_data_dir(data_dir)
    if fd is None:
        return _fail(reason or "cannot lock the data directory")
    try:
        server = _Server((host, port), engine=None, credentials=credentials)  # type: ignore[arg-type]
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            return _fail(f"cannot listen on {host}:{port}: port {port} is already in use")
        return _fail(f"cannot listen on {host}:{port}: {err.strerror or err}")
    holder = _chdb_holder(data_dir)
    if holder is not None:
        server.server_close()
        return _fail(f"data directory {data_dir} is open in another chDB process{holder}")
    try:
        engine = Engine(data_dir)
    except Exception as exc:
        server.server_close()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return _fail(f"cannot open chDB in {data_dir}: {first}")
    server.engine = engine

    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="store-http", daemon=True
    )
    thread.start()
    shown = f"[{host}]" if ":" in host else host
    log.info(
        "listening on http://%s:%d, data dir %s (chDB %s, pid %d)",
        shown,
        port,
        data_dir,
        engine.version,
        os.getpid(),
    )
    while not stop.wait(0.5):
        pass
    server.shutdown()
    engine.close()
    server.server_close()
    os.ftruncate(fd, 0)  # no pid: nobody holds the directory now
    os.close(fd)
    return 0


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


# ------------------------------------------------------------------ from Python


def store_command(data_dir: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    """The argv that runs the store as its own process with this interpreter."""
    return [
        sys.executable,
        "-m",
        "streams.storage.store",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        "--host",
        host,
    ]


def _ping_pid(url: str, timeout: float) -> int | None:
    """The pid of the store answering ``/ping`` at ``url`` (0 if not a store), or None."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/ping", timeout=timeout) as response:
            if response.status != 200 or response.read().strip() != b"Ok.":
                return None
            return int(response.headers.get(PID_HEADER) or 0)
    except (OSError, ValueError, urllib.error.URLError):
        return None


def ping(url: str, timeout: float = 1.0) -> bool:
    """True when ``GET {url}/ping`` answers ``Ok.`` (any ClickHouse-compatible server)."""
    return _ping_pid(url, timeout) is not None


class EmbeddedStore:
    """The store as a child process: start it, wait for ``/ping``, stop it.

    >>> import tempfile
    >>> with EmbeddedStore(Path(tempfile.mkdtemp()), 18123) as store:  # doctest: +SKIP
    ...     ping(store.url)
    True
    """

    def __init__(
        self, data_dir: Path, port: int, host: str = "127.0.0.1", log_path: Path | None = None
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port
        self.host = host
        self.log_path = Path(log_path) if log_path is not None else None
        self._process: subprocess.Popen[bytes] | None = None
        self._relay: threading.Thread | None = None
        self._tail: list[str] = []
        self._log_offset = 0

    @property
    def url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        """Spawn the store and return once it answers ``/ping``.

        Raises :class:`StoreError` with the store's own one-line reason when it exits
        first (data directory locked or unwritable, port taken, ...), and leaves
        nothing running when it is not ready in time.
        """
        if self.alive:
            return
        if _ping_pid(self.url, 0.5) is not None:
            raise StoreError(
                f"cannot listen on {self.host}:{self.port}: port {self.port} is already in use"
            )
        log_file: IO[bytes] | None = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            log_file = self.log_path.open("ab")
            self._log_offset = log_file.tell()
        self._tail = []
        try:
            self._process = subprocess.Popen(
                store_command(self.data_dir, self.port, self.host),
                stdin=subprocess.DEVNULL,
                stdout=log_file if log_file is not None else subprocess.DEVNULL,
                stderr=log_file if log_file is not None else subprocess.PIPE,
                start_new_session=True,  # Ctrl-C reaches the parent, which stops the store
            )
        except OSError as err:
            raise StoreError(f"cannot run {sys.executable}: {err}") from None
        finally:
            if log_file is not None:
                log_file.close()
        if self._process.stderr is not None:
            self._relay = threading.Thread(
                target=self._relay_stderr,
                args=(self._process.stderr,),
                name="store-stderr",
                daemon=True,
            )
            self._relay.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise StoreError(self._last_words())
            if _ping_pid(self.url, 0.5) == self._process.pid:
                return
            time.sleep(0.05)
        self.kill()
        raise StoreError(f"the store did not answer {self.url}/ping within {timeout:.0f} s")

    def _relay_stderr(self, stream: IO[bytes]) -> None:
        """Pass the child's stderr on to ours, remembering the last lines for errors."""
        for raw in stream:
            line = raw.decode(errors="replace").rstrip()
            if line:
                self._tail = (self._tail + [line])[-20:]
            with contextlib.suppress(Exception):
                sys.stderr.write(line + "\n")
        stream.close()

    def _last_words(self) -> str:
        code = self._process.returncode if self._process is not None else None
        if self._relay is not None:
            self._relay.join(2.0)
        lines = list(self._tail)
        if self.log_path is not None and self.log_path.exists():
            with self.log_path.open("rb") as f:
                f.seek(self._log_offset)
                lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines()]
        lines = [ln for ln in lines if ln]
        if not lines:
            return f"the store exited with code {code} before answering"
        message = lines[-1]
        return message.removeprefix("lastmile store: ")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (the store closes chDB cleanly), SIGKILL after ``timeout``. Idempotent."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("the store did not stop within %.0f s; killing it", timeout)
                self.kill()
        process.wait()
        if self._relay is not None:
            self._relay.join(2.0)

    def kill(self) -> None:
        """SIGKILL at once: what a crash looks like (for crash tests)."""
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait()

    def __enter__(self) -> EmbeddedStore:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
