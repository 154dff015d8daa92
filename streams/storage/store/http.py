"""The HTTP handler and server: ClickHouse's HTTP interface framed around chDB."""

from __future__ import annotations

import base64
import contextlib
import hmac
import os
import re
import socket
import sys
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from streams.storage.store.compression import compress_reply, decompress_stream
from streams.storage.store.engine import Engine, Handle, prepare_handle, query_summary
from streams.storage.store.errors import ClickHouseError
from streams.storage.store.protocol import (
    APPEND_BYTES,
    AUTHENTICATION_FAILED,
    BAD_ARGUMENTS,
    CONTENT_TYPES,
    DEFAULT_SESSION_TIMEOUT,
    HTTP_PARAMS,
    LEADING_SELECT,
    MAX_SESSION_TIMEOUT,
    NOT_IMPLEMENTED,
    PID_HEADER,
    READS,
    STATEFUL,
    STD_EXCEPTION,
    SYNTAX_ERROR,
    TRAILING_FORMAT,
    log,
)
from streams.storage.store.sql import NEED_MORE, native_header, output_format, split_insert

__all__ = ["StoreServer"]


class StoreServer(ThreadingHTTPServer):
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
    server: StoreServer

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
        except Exception as exc:  # any failure must become an error reply, not a dropped connection
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
        except Exception:  # draining is best effort: the connection closes anyway
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
        body = decompress_stream(raw, self.headers.get("Content-Encoding", ""))

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
            k: v for k, v in params.items() if k not in HTTP_PARAMS and not k.startswith("param_")
        }
        binds = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
        default_format = (
            params.get("default_format")
            or self.headers.get("X-ClickHouse-Format")
            or "TabSeparated"
        )

        with engine.handle(session_id, timeout, params.get("session_check") == "1") as handle:
            prepare_handle(handle, database, settings)
            if split is None:
                if session_id is None and STATEFUL.match(head):
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
            reply, encoding = compress_reply(reply, accept)
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
        self, handle: Handle, sql_bytes: bytes, binds: dict[str, str], default_format: str
    ) -> tuple[bytes, dict[str, str]]:
        try:
            sql = sql_bytes.decode()
        except UnicodeDecodeError:
            raise ClickHouseError.make(BAD_ARGUMENTS, "The query is not valid UTF-8") from None
        fmt = output_format(sql, default_format)
        try:
            result = handle.session.query(sql, default_format, params=binds)
        except Exception as exc:  # chDB raises untyped errors; from_chdb reads their code
            raise ClickHouseError.from_chdb(exc) from None
        reply = result.bytes()
        if not reply and fmt == "Native" and LEADING_SELECT.match(sql):
            reply = _empty_native(handle, sql, binds)
        summary = query_summary(
            result.rows_read(),
            result.bytes_read(),
            result.rows_written(),
            result.bytes_written(),
            0,
            len(reply),
            result.elapsed(),
        )
        headers = {
            "Content-Type": CONTENT_TYPES.get(fmt, "text/plain; charset=UTF-8"),
            "X-ClickHouse-Summary": summary,
        }
        # A server names the output format only for statements that have output; for
        # DDL clickhouse-connect's command() then returns a QuerySummary, not "".
        if reply or READS.match(sql) or TRAILING_FORMAT.search(sql[-200:]):
            headers["X-ClickHouse-Format"] = fmt
        return reply, headers

    def _insert(
        self,
        handle: Handle,
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
        except Exception as exc:  # chDB raises untyped errors; from_chdb reads their code
            raise ClickHouseError.from_chdb(exc) from None
        try:
            pending: list[bytes] = []
            size = 0
            first = bytes(memoryview(head)[offset:])
            chunks = [first] if first else []
            for chunk in _chain(chunks, body):
                pending.append(chunk)
                size += len(chunk)
                if size >= APPEND_BYTES:
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
        except Exception as exc:  # chDB raises untyped errors; from_chdb reads their code
            with contextlib.suppress(Exception):
                inserter.cancel()
            raise ClickHouseError.from_chdb(exc) from None
        summary = query_summary(
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


def _empty_native(handle: Handle, sql: str, binds: dict[str, str]) -> bytes:
    """chDB writes nothing for an empty Native result; a server sends the header block.

    Without it clickhouse-connect returns no column names (and ``query_df`` a frame
    without columns), so ask chDB for the result's columns and send them with no rows.
    """
    select = TRAILING_FORMAT.sub("", sql).rstrip().rstrip(";")
    try:
        described = handle.session.query(
            f"DESCRIBE ({select})", "TabSeparated", params=binds
        ).bytes()
    except Exception:  # a query DESCRIBE refuses just gets no header
        return b""
    columns = []
    for line in described.decode().splitlines():
        fields = line.split("\t")
        if len(fields) >= 2:
            columns.append((_unescape_tsv(fields[0]), _unescape_tsv(fields[1])))
    return native_header(columns) if columns else b""


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
