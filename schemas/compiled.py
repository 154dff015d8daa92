"""One current schema, compiled: everything the codec needs about it.

A :class:`CompiledSchema` holds the schema's generated reader and writer
(:mod:`schemas.codegen`), its msgspec JSON decoder (:mod:`schemas.json_types`), the
headers of the header format, and a reader per known writer version (by fingerprint,
and by Schema Registry id once seen): the current version through the generated reader,
older ones resolved by fastavro against the current schema. Bad bytes become one
:class:`~schemas.errors.DecodeError`.

>>> from schemas.catalog import SchemaSet
>>> info = SchemaSet.load().current["Outcome"]
>>> cur = CompiledSchema(info, [info], finite=True, accepts_json=True)
>>> body = cur.fast_write({"request_id": "r", "model": "m", "event_time": 0})
>>> cur.read_current(body, 0)["model"], cur.headers[0]
('m', ('lastmile.schema', b'lastmile.v1.Outcome'))
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import fastavro

from schemas.catalog import (
    HEADER_FINGERPRINT,
    HEADER_SCHEMA,
    MAX_MESSAGE_BYTES,
    SchemaInfo,
    UnsupportedSchema,
)
from schemas.codegen import CodeGen
from schemas.errors import DecodeError, shorten
from schemas.json_types import json_decoder
from schemas.walker import Invalid, conform, validate_error

__all__ = ["CompiledSchema"]


class CompiledSchema:
    """Everything the codec needs about one current schema: fast paths and readers."""

    def __init__(
        self, info: SchemaInfo, known: Iterable[SchemaInfo], finite: bool, accepts_json: bool
    ):
        self.info = info
        self.name = info.name
        self.full_name_b = info.full_name.encode()
        self.fp_b = info.fingerprint.encode()
        self.finite = finite
        self.accepts_json = accepts_json
        self.headers = ((HEADER_SCHEMA, self.full_name_b), (HEADER_FINGERPRINT, self.fp_b))
        try:
            self.fast_read, self.fast_write, self.source = CodeGen(finite).build(info.tree)
        except UnsupportedSchema:
            self.fast_read = self.fast_write = None
            self.source = ""
        self.projections: dict[tuple[str, ...], Callable | None] = {}

        self.json_decode = json_decoder(info.tree)
        # fingerprint (bytes) -> reader(value, start) -> record
        self.readers: dict[bytes, Callable[[bytes, int], dict]] = {self.fp_b: self.read_current}
        for other in known:
            if other.name == self.name and other.fingerprint != info.fingerprint:
                self.readers[other.fingerprint.encode()] = self.resolver(other)
        self.by_id: dict[int, Callable[[bytes, int], dict]] = {}
        self.max_bytes = MAX_MESSAGE_BYTES

    def read_current(self, value: bytes, start: int) -> dict:
        fast = self.fast_read
        if fast is not None:
            try:
                rec, pos = fast(value, start)
                if pos == len(value):
                    return rec
            except Exception:  # the fast reader bails in any way; the slow one words the error
                pass
        return self.read_slow(value, start, self.info.plain, None, self.info)

    def projection_writer(self, given: tuple[str, ...]) -> Callable | None:
        """The generated writer of records projected from a dict and `given` values (see
        ``CodeGen.build_projection``); None when the schema has no fast writer."""
        if given not in self.projections:
            writer = None
            if self.fast_write is not None:
                with contextlib.suppress(UnsupportedSchema):
                    writer = CodeGen(self.finite).build_projection(self.info.tree, given)
            self.projections[given] = writer
        return self.projections[given]

    def project(self, base: Mapping[str, Any], given: tuple[str, ...], values: tuple) -> dict:
        """The record a projection writer writes, as a dict (the slow path's input)."""
        record = {f["name"]: base[f["name"]] for f in self.info.tree["fields"] if f["name"] in base}
        record.update(zip(given, values, strict=True))
        return record

    def from_json_bytes(self, value: bytes | str) -> dict | None:
        """The record in JSON text through msgspec (one C pass), or None when msgspec
        refuses it: then orjson and the walker coerce, or say what is wrong."""
        fast = self.json_decode
        return fast(value) if fast is not None else None

    def conform_json(self, obj: Any) -> dict:
        """The record in a parsed JSON object; :class:`DecodeError` when it breaks the schema."""
        try:
            return conform(self.info.tree, obj, "", True, True)
        except Invalid as err:
            raise validate_error(self.name, err) from None

    def resolver(self, writer: SchemaInfo) -> Callable[[bytes, int], dict]:
        def read(value: bytes, start: int) -> dict:
            return self.read_slow(value, start, writer.plain, self.info.plain, writer)

        return read

    def read_slow(
        self, value: bytes, start: int, writer: dict, reader: dict | None, written_by: SchemaInfo
    ) -> dict:
        bio = io.BytesIO(value)
        bio.seek(start)
        what = written_by.full_name
        try:
            record = fastavro.schemaless_reader(bio, writer, reader)
        except EOFError:
            raise DecodeError(
                f"truncated Avro: the value ends in the middle of a {what} "
                f"(it is {len(value)} bytes long)",
                schema=self.name,
            ) from None
        except UnicodeDecodeError:
            raise DecodeError(
                f"corrupt Avro: a string in the {what} is not valid UTF-8", schema=self.name
            ) from None
        except Exception as err:  # fastavro raises many kinds on garbage
            raise DecodeError(
                f"corrupt Avro: the bytes are not a {what} ({type(err).__name__}: "
                f"{shorten(str(err), 120)})",
                schema=self.name,
            ) from None
        left = len(value) - bio.tell()
        if left:
            raise DecodeError(
                f"corrupt Avro: {left} byte(s) left over after the end of the {what}: "
                "the bytes were not written with the schema the message claims",
                schema=self.name,
            )
        if not isinstance(record, dict):
            raise DecodeError(f"corrupt Avro: not a {what} record", schema=self.name)
        if self.finite:
            try:
                conform(self.info.tree, record, "", False, True)
            except Invalid as err:
                raise validate_error(self.name, err) from None
        return record
