"""A stream of JSON documents, read as jq reads them: one per line, pretty-printed over
several lines, or concatenated (``{"a":1}{"a":2}``), in any mix.

Reading is incremental (a line at a time, the buffer bounded by ``max_document``), so
a huge input is never held in memory whole. Malformed input does not stop the stream:
it comes out as a :class:`Document` with ``error`` set, whose ``text`` is the span
skipped; reading resumes at the next line that can start a document (one that is not
indented and does not begin with a closing ``}`` or ``]``), so one broken
pretty-printed document is one error, not one per line.

>>> import io
>>> stream = io.BytesIO(b'{"a": 1}{"a": 2}\\n{\\n  "a": 3\\n}\\n{oops\\n[4]\\n')
>>> for d in iter_documents(stream):
...     print(d.number, d.line, d.text, d.error is None)
1 1 b'{"a": 1}' True
2 1 b'{"a": 2}' True
3 2 b'{\\n  "a": 3\\n}' True
4 5 b'{oops' False
5 6 b'[4]' True
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import orjson

__all__ = ["Document", "iter_documents", "MAX_DOCUMENT_BYTES"]

#: The largest document (bytes) the reader buffers before calling it malformed.
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024

_WHITESPACE = b" \t\r\n"
# Python's json scanner works on str; its raw_decode gives the end of one value.
_DECODER = json.JSONDecoder()


@dataclass(frozen=True, slots=True)
class Document:
    """One JSON document of the stream (or one malformed span, when ``error`` is set)."""

    #: 1-based position in the stream, malformed spans counted.
    number: int
    #: 1-based line on which the document starts.
    line: int
    #: The document's bytes, surrounding whitespace stripped.
    text: bytes
    #: Why the span is not JSON, or None for a well-formed document.
    error: str | None = None


def _can_start_document(line: bytes) -> bool:
    """Whether reading may resume at this line after malformed input."""
    return bool(line.strip()) and line[:1] not in (b" ", b"\t", b"}", b"]")


def iter_documents(
    lines: Iterable[bytes], max_document: int = MAX_DOCUMENT_BYTES
) -> Iterator[Document]:
    """The JSON documents of ``lines`` (a binary file, or any iterable of byte lines)."""
    number = 0
    buffer = ""  # text not yet decoded; always starts at a document (or is blank)
    buffer_line = 1  # the line number where ``buffer`` starts
    buffer_size = 0
    skipping = False  # after malformed input: lines until one can start a document
    skipped: list[bytes] = []
    skipped_line = 0
    skipped_error = ""
    line_number = 0

    def malformed() -> Document:
        nonlocal number
        number += 1
        return Document(number, skipped_line, b"".join(skipped).strip(), skipped_error)

    for raw in lines:
        line_number += 1
        if skipping:
            if not _can_start_document(raw):
                skipped.append(raw)
                continue
            skipping = False
            yield malformed()
        if not buffer:
            stripped = raw.strip(_WHITESPACE)
            if not stripped:
                continue
            # Fast path, JSON lines: a whole line that is one document.
            try:
                orjson.loads(stripped)
            except orjson.JSONDecodeError:
                pass
            else:
                number += 1
                yield Document(number, line_number, stripped)
                continue
            buffer_line, buffer_size = line_number, 0
        text = raw.decode("utf-8", errors="surrogateescape")
        buffer += text
        buffer_size += len(raw)
        # Decode every complete document in the buffer; keep an incomplete tail.
        while buffer:
            start = len(buffer) - len(buffer.lstrip())
            if start == len(buffer):
                buffer = ""
                break
            buffer_line += buffer.count("\n", 0, start)
            buffer = buffer[start:]
            try:
                _, end = _DECODER.raw_decode(buffer)
            except json.JSONDecodeError as err:
                if err.pos >= len(buffer.rstrip()) and buffer_size <= max_document:
                    break  # the document goes on in the lines to come
                skipping, skipped_line = True, buffer_line
                skipped_error = (
                    f"invalid JSON: {err.msg} (line {buffer_line + err.lineno - 1}, "
                    f"column {err.colno})"
                    if buffer_size <= max_document
                    else f"a document larger than {max_document:,} bytes"
                )
                skipped = [buffer.encode("utf-8", errors="surrogateescape")]
                buffer = ""
                break
            number += 1
            yield Document(
                number, buffer_line, buffer[:end].encode("utf-8", errors="surrogateescape")
            )
            buffer_line += buffer.count("\n", 0, end)
            buffer = buffer[end:]
        if not buffer:
            buffer_size = 0
    if skipping:
        yield malformed()
    elif buffer.strip():
        number += 1
        try:
            _DECODER.raw_decode(buffer)
            reason = "invalid JSON: unexpected end of input"
        except json.JSONDecodeError as err:
            reason = f"invalid JSON: {err.msg} at the end of the input"
        yield Document(
            number, buffer_line, buffer.strip().encode("utf-8", errors="surrogateescape"), reason
        )
