"""Compression of request and reply bodies, as ``Content-Encoding`` and
``Accept-Encoding`` say (lz4, zstd, gzip, deflate)."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from typing import Any

from streams.storage.store.errors import ClickHouseError
from streams.storage.store.protocol import CANNOT_DECOMPRESS, COMPRESS_MIN_BYTES, NOT_IMPLEMENTED

__all__ = ["decompress_stream", "compress_reply"]


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


def decompress_stream(chunks: Iterator[bytes], encoding: str) -> Iterator[bytes]:
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
            except Exception as exc:  # lz4/zstd/zlib each raise their own types
                raise ClickHouseError.make(
                    CANNOT_DECOMPRESS, f"Cannot decompress {encoding} request body: {exc}"
                ) from None
            if out:
                yield out
            data = b""
            if getattr(decompressor, "eof", False):
                data = decompressor.unused_data
                decompressor = factory()


def compress_reply(body: bytes, accept: str) -> tuple[bytes, str | None]:
    """Compress a reply with the first method the client lists that is cheap here."""
    if len(body) < COMPRESS_MIN_BYTES:
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
