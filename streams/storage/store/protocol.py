"""The ClickHouse HTTP interface as the store speaks it: its error codes, its own URL
parameters, reply content types, and the statements that need special handling."""

from __future__ import annotations

import logging
import re

__all__ = [
    "LOCK_NAME",
    "DEFAULT_SESSION_TIMEOUT",
    "MAX_SESSION_TIMEOUT",
    "PASSWORD_ENV",
    "PID_HEADER",
    "MAX_IDLE_HANDLES",
    "APPEND_BYTES",
    "COMPRESS_MIN_BYTES",
    "SYNTAX_ERROR",
    "BAD_ARGUMENTS",
    "NOT_IMPLEMENTED",
    "UNKNOWN_SETTING",
    "ABORTED",
    "CANNOT_DECOMPRESS",
    "SESSION_NOT_FOUND",
    "SESSION_IS_LOCKED",
    "AUTHENTICATION_FAILED",
    "STD_EXCEPTION",
    "CODE_NAMES",
    "HTTP_PARAMS",
    "SETTING_NAME",
    "SQL_WORD",
    "TRAILING_FORMAT",
    "EXCEPTION_CODE",
    "VERSION_TRAILER",
    "STATEFUL",
    "LEADING_SELECT",
    "READS",
    "CONTENT_TYPES",
]


log = logging.getLogger("lastmile.store")

LOCK_NAME = "store.lock"
DEFAULT_SESSION_TIMEOUT = 60.0
MAX_SESSION_TIMEOUT = 3600.0
PASSWORD_ENV = "LASTMILE_STORE_PASSWORD"
PID_HEADER = "X-Lastmile-Store-Pid"
MAX_IDLE_HANDLES = 8
APPEND_BYTES = 1 << 20  # coalesce small body chunks before handing them to chDB
COMPRESS_MIN_BYTES = 4096  # below this a compressed reply costs more than it saves

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
CODE_NAMES = {
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
HTTP_PARAMS = frozenset(
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

SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SQL_WORD = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")
TRAILING_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
EXCEPTION_CODE = re.compile(r"Code: (\d+)\.")
VERSION_TRAILER = re.compile(r"\s*\(version [^)]*\)\s*$")
# Statements that change a handle's state for good: a pooled handle that ran one is
# closed afterwards, because a request without a session must leave nothing behind.
STATEFUL = re.compile(rb"^\s*(SET|USE|CREATE\s+TEMPORARY)\b", re.IGNORECASE)
LEADING_SELECT = re.compile(r"^\s*(SELECT|WITH)\b", re.IGNORECASE)
READS = re.compile(r"^\s*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXISTS|EXPLAIN|CHECK)\b", re.IGNORECASE)

CONTENT_TYPES = {
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
