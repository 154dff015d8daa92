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

from streams.storage.store.embedded import EmbeddedStore, ping, store_command
from streams.storage.store.errors import ClickHouseError, StoreError
from streams.storage.store.process import serve
from streams.storage.store.sql import NEED_MORE, split_insert

__all__ = [
    "EmbeddedStore",
    "ping",
    "store_command",
    "StoreError",
    "ClickHouseError",
    "serve",
    "NEED_MORE",
    "split_insert",
]
