"""SQL rewriting: where an ``INSERT ... FORMAT`` statement ends in a streamed body,
quoting, the output format a query asks for, and Native headers for empty replies."""

from __future__ import annotations

from typing import Any

from streams.storage.quoting import quoted_end
from streams.storage.store.protocol import SQL_WORD, TRAILING_FORMAT

__all__ = [
    "NEED_MORE",
    "split_insert",
    "quote_identifier",
    "quote_value",
    "output_format",
    "native_header",
]


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
            j = quoted_end(text, i)
            if j >= n or (j + 1 >= n and not final):
                return more  # unclosed, or a doubled quote may go on in the next chunk
            i = j + 1
            after_dot = False
            format_at = -1
            continue
        match = SQL_WORD.match(text, i)
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


def quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_value(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def output_format(sql: str, default: str) -> str:
    match = TRAILING_FORMAT.search(sql[-200:])
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


def native_header(columns: list[tuple[str, str]]) -> bytes:
    """A Native block with columns and zero rows, as a ClickHouse server sends it."""
    out = bytearray(_varint(len(columns)) + _varint(0))
    for name, type_name in columns:
        for text in (name.encode(), type_name.encode()):
            out += _varint(len(text)) + text
    return bytes(out)
