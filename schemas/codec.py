"""The codec: lastmile's messages read and written, one :class:`Codec` for every role.

The wire formats (header format, Confluent Schema Registry format, JSON on input topics),
what ``decode`` returns and the decisions behind it are in the package's docstring
(:mod:`schemas`). The pieces the codec is built of are modules of their own: the schema
catalog (:mod:`schemas.catalog`), per-schema compiled readers and writers
(:mod:`schemas.compiled`, :mod:`schemas.codegen`, :mod:`schemas.templates`,
:mod:`schemas.wire`), the validating walker (:mod:`schemas.walker`), the schema registry
(:mod:`schemas.registry`) and the errors (:mod:`schemas.errors`).

>>> codec = Codec()
>>> value, headers = codec.encode("Outcome", {"request_id": "r1", "model": "churn",
...                                           "label": "yes", "event_time": 1700000000000})
>>> codec.decode(value, headers, "Outcome")["label"]
'yes'
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import fastavro
import orjson

from schemas.catalog import (
    FINITE_SCHEMAS,
    HEADER_FINGERPRINT,
    HEADER_SCHEMA,
    JSON_SCHEMAS,
    MAGIC_BYTE,
    MAX_MESSAGE_BYTES,
    TOPIC_SCHEMAS,
    SchemaInfo,
    SchemaSet,
)
from schemas.compiled import CompiledSchema
from schemas.errors import DecodeError, EncodeError, SchemaRegistryUnavailable
from schemas.registry import registry_client, registry_reader
from schemas.walker import Invalid, conform, describe, where

__all__ = ["Codec"]


class Codec:
    """Encode and decode lastmile's messages (the formats are in :mod:`schemas`).

    ``Codec()`` writes the header format; ``Codec(schema_registry_client=client)`` writes
    the Confluent Schema Registry format for topics; ``Codec.from_settings(settings)``
    picks according to ``settings.schema_registry_url``. Both read everything.

    >>> codec = Codec()
    >>> request = {"request_id": "r1", "model": "churn", "event_time": 1700000000000,
    ...            "features": {"age": 42, "income": 5.2e4, "plan": "gold", "vip": True}}
    >>> value, headers = codec.encode("ScoringRequest", request)
    >>> out = codec.decode(value, headers, "ScoringRequest")
    >>> out["features"], out["caller"], out["metadata"]
    ({'age': 42, 'income': 52000.0, 'plan': 'gold', 'vip': True}, None, {})
    >>> codec.decode(value, headers, "Prediction")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    schemas.errors.DecodeError: the message was written with schema lastmile.v1.ScoringRequest, ...
    >>> json_bad = b'{"request_id": "r2", "model": 1, "features": {}, "event_time": 0}'
    >>> bad = codec.decode_many([value, b"", json_bad], [headers, None, None], "ScoringRequest")
    >>> [type(r).__name__ for r in bad]
    ['dict', 'DecodeError', 'DecodeError']
    >>> bad[2].stage, bad[2].reason
    ('validate', 'ScoringRequest.model must be a string, got the number 1')
    """

    def __init__(
        self,
        schema_registry_client: Any = None,
        *,
        schemas: SchemaSet | None = None,
        max_bytes: int = MAX_MESSAGE_BYTES,
        json_schemas: Iterable[str] = JSON_SCHEMAS,
        finite_schemas: Iterable[str] = FINITE_SCHEMAS,
        topics: Mapping[str, str] | None = None,
    ) -> None:
        self.schemas = schemas or _default_schemas()
        self.registry = schema_registry_client
        self.max_bytes = max_bytes
        json_schemas = frozenset(json_schemas)
        finite_schemas = frozenset(finite_schemas)
        known = list(self.schemas.by_fingerprint.values())
        self._current: dict[str, CompiledSchema] = {
            name: CompiledSchema(info, known, name in finite_schemas, name in json_schemas)
            for name, info in self.schemas.current.items()
        }
        for name, cur in self._current.items():
            # a dead letter wraps a message of up to the limit, plus the reason
            cur.max_bytes = 2 * max_bytes + 65_536 if name == "DeadLetter" else max_bytes
        # topic name -> schema name, from the settings' roles
        self.topic_schemas: dict[str, str] = dict(topics or {})
        self._ids: dict[tuple[str, str], int] = {}
        self._registry_missing: dict[int, float] = {}

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> Codec:
        """A codec for these settings: the schema registry when a URL is set (``mock://...``
        gives confluent-kafka's in-memory mock, for tests)."""
        client = None
        url = getattr(settings, "schema_registry_url", None)
        if url:
            client = registry_client(url)
        topics = {
            name: TOPIC_SCHEMAS[role]
            for role, name in settings.topics.items()
            if role in TOPIC_SCHEMAS
        }
        return cls(client, topics=topics, **kwargs)

    # -- introspection -------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        return list(self._current)

    def schema(self, schema_name: str) -> SchemaInfo:
        return self._get(schema_name).info

    def headers_for(self, schema_name: str) -> list[tuple[str, bytes]]:
        """The headers the header format puts on a message of this schema."""
        return list(self._get(schema_name).headers)

    def accepts_json(self, schema_name: str) -> bool:
        return self._get(schema_name).accepts_json

    def _get(self, schema_name: str) -> CompiledSchema:
        try:
            return self._current[schema_name]
        except KeyError:
            raise ValueError(
                f"unknown schema {schema_name!r}; known: {', '.join(self._current)}"
            ) from None

    # -- encode ---------------------------------------------------------------------

    def encode(
        self, schema_name: str, record: Mapping[str, Any], topic: str | None = None
    ) -> tuple[bytes, list[tuple[str, bytes]]]:
        """(value, headers) of one record. Raises :class:`EncodeError` naming the field
        that does not fit. Times may be int epoch millis or datetimes."""
        cur = self._get(schema_name)
        body = self._encode_body(cur, record)
        prefix, headers = self._framing(cur, topic)
        return (prefix + body if prefix else body), list(headers)

    def encode_many(
        self, schema_name: str, records: Iterable[Mapping[str, Any]], topic: str | None = None
    ) -> list[tuple[bytes, list[tuple[str, bytes]]]]:
        """``encode`` for many records (one schema lookup, one registry lookup)."""
        cur = self._get(schema_name)
        prefix, headers = self._framing(cur, topic)
        bodies = (self._encode_body(cur, r) for r in records)
        return [(prefix + body if prefix else body, list(headers)) for body in bodies]

    def encode_projections(
        self,
        schema_name: str,
        bases: Sequence[Mapping[str, Any]],
        given: tuple[str, ...],
        values: Sequence[tuple],
        topic: str | None = None,
    ) -> tuple[list[bytes], list[tuple[str, bytes]]]:
        """The values of records built from two parts, without building them, and the one
        headers list they all share (a producer that tags each record's headers does it
        once). Each record's fields named in `given` are taken from its tuple in `values`
        (in that order), its other fields from its dict in `bases`, whose keys that are not
        fields of the schema are ignored. A prediction is its request's fields plus what the
        scorer adds:

        >>> codec = Codec()
        >>> request = {"request_id": "r1", "model": "m", "features": {"x": 1.0},
        ...            "event_time": 5, "entity_id": None, "caller": None, "metadata": {}}
        >>> given = ("version", "variant", "score", "label", "scored_time", "latency_ms")
        >>> extra = [(2, "champion", 0.7, "1", 9, 4.0), (2, "champion", 0.2, "0", 9, 4.0)]
        >>> encoded, headers = codec.encode_projections(
        ...     "Prediction", [request, request], given, extra)
        >>> record = {**request, **dict(zip(given, extra[0]))}
        >>> (encoded[0], headers) == codec.encode("Prediction", record)
        True
        >>> codec.decode(encoded[1], headers, "Prediction")["score"]
        0.2
        """
        if len(bases) != len(values):
            raise ValueError(f"{len(bases)} bases against {len(values)} value tuples")
        cur = self._get(schema_name)
        prefix, headers = self._framing(cur, topic)
        fast = cur.projection_writer(given)
        bodies: list[bytes] | None = None
        if fast is not None:
            try:  # the whole batch in one pass, the common case
                bodies = list(map(fast, bases, values))
            except Exception:  # the fast writer bails in any way; record by record follows
                bodies = None
        if bodies is None:
            bodies = [
                self._project_one(cur, fast, base, given, extra)
                for base, extra in zip(bases, values, strict=True)
            ]
        if prefix:
            bodies = [prefix + body for body in bodies]
        return bodies, list(headers)

    def _project_one(
        self,
        cur: CompiledSchema,
        fast: Callable | None,
        base: Mapping[str, Any],
        given: tuple[str, ...],
        extra: tuple,
    ) -> bytes:
        if fast is not None:
            try:
                return fast(base, extra)
            except Exception:  # the record as a dict, through the checks that say what is wrong
                pass
        return self._encode_body(cur, cur.project(base, given, extra))

    def _encode_body(self, cur: CompiledSchema, record: Any) -> bytes:
        fast = cur.fast_write
        if fast is not None:
            try:
                return fast(record)
            except Exception:  # the fast writer bails in any way; the normalised retry follows
                pass
        try:
            normal = conform(cur.info.tree, record, "", False, cur.finite)
        except Invalid as err:
            raise EncodeError(where(cur.name, err)) from None
        if fast is not None:
            try:
                return fast(normal)
            except Exception:  # the fast writer bails in any way; fastavro words the error
                pass
        out = io.BytesIO()
        try:
            fastavro.schemaless_writer(out, cur.info.parsed, normal)
        except Exception as err:  # fastavro raises many types; each is this record's encode error
            raise EncodeError(f"{cur.name}: {err}") from None
        return out.getvalue()

    def _framing(
        self, cur: CompiledSchema, topic: str | None
    ) -> tuple[bytes, tuple[tuple[str, bytes], ...]]:
        """What goes around a body: the Schema Registry prefix and no headers when a
        registry is set and a topic given, else no prefix and the schema headers."""
        if self.registry is not None and topic is not None:
            return self._registry_prefix(cur, topic), ()
        return b"", cur.headers

    def _registry_prefix(self, cur: CompiledSchema, topic: str) -> bytes:
        key = (topic, cur.name)
        sid = self._ids.get(key)
        if sid is None:
            from confluent_kafka.schema_registry import Schema

            try:
                sid = self.registry.register_schema(
                    f"{topic}-value", Schema(cur.info.schema_str, "AVRO")
                )
            except Exception as err:
                # the registry client raises many types; each means unavailable
                raise SchemaRegistryUnavailable(
                    f"cannot register {cur.info.full_name} under {topic}-value: {err}"
                ) from err
            self._ids[key] = sid
            cur.by_id[sid] = cur.read_current
        return struct.pack(">bI", MAGIC_BYTE, sid)

    # -- decode ---------------------------------------------------------------------

    def decode(
        self,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]] | None,
        schema_name: str,
        topic: str | None = None,
    ) -> dict:
        """The record in one message value, as plain Python values (times as int epoch
        millis). Raises :class:`DecodeError` for anything that is not a valid record of
        ``schema_name``: exactly one, with a reason a person understands."""
        cur = self._current.get(schema_name)
        if cur is None:
            cur = self._get(schema_name)
        if value is None:
            raise DecodeError(
                "empty message: the value is missing (a tombstone?)", schema=schema_name
            )
        if type(value) is not bytes:
            if not isinstance(value, (bytearray, memoryview)):
                raise DecodeError(
                    f"the value is a {type(value).__name__}, not bytes", schema=schema_name
                )
            value = bytes(value)
        if not value:
            raise DecodeError("empty message: the value is zero bytes long", schema=schema_name)
        if len(value) > cur.max_bytes:
            raise DecodeError(
                f"message too large: {len(value):,} bytes, over the {cur.max_bytes:,}-byte limit "
                "(schemas.MAX_MESSAGE_BYTES); split the record or raise the limit",
                schema=schema_name,
            )
        if headers:
            fp, name = _schema_headers(headers)
            if fp is not None or name is not None:
                if fp == cur.fp_b and (name is None or name == cur.full_name_b):
                    return cur.read_current(value, 0)
                return self._decode_header(cur, value, fp, name)
        if value[0] == MAGIC_BYTE:
            return self._decode_registry(cur, value)
        if cur.accepts_json:
            return self._decode_json(cur, value)
        raise DecodeError(
            f"cannot tell which schema wrote this value: no {HEADER_SCHEMA} header, no Schema "
            f"Registry framing (the first byte is 0x{value[0]:02x}, not the magic byte 0x00), and "
            f"{schema_name} values are never JSON — was it produced by another tool?",
            schema=schema_name,
        )

    def decode_many(
        self,
        values: Sequence[bytes | None],
        headers: Sequence[Sequence[tuple[str, bytes | None]] | None] | None,
        schema_name: str,
        topic: str | None = None,
    ) -> list[dict | DecodeError]:
        """Decode many values; each result is the record or the :class:`DecodeError`
        (returned, not raised), in input order. ``headers`` is one list per value,
        or None."""
        cur = self._get(schema_name)
        fp_b = cur.fp_b
        fast = cur.read_current
        # JSON without headers, as decode reads it when msgspec takes it (else decode says why)
        json_fast = cur.json_decode if cur.accepts_json else None
        limit = cur.max_bytes
        out: list[dict | DecodeError] = []
        append = out.append
        decode = self.decode
        if headers is None:
            headers = [None] * len(values)
        full_b = cur.full_name_b
        for value, hdrs in zip(values, headers, strict=True):
            try:
                if type(value) is bytes and 0 < len(value) <= limit:
                    if hdrs:
                        fp, name = _schema_headers(hdrs)
                        if fp == fp_b and (name is None or name == full_b):
                            append(fast(value, 0))
                            continue
                    elif json_fast is not None and value[0] != MAGIC_BYTE:
                        record = json_fast(value)
                        if record is not None:
                            append(record)
                            continue
                append(decode(value, hdrs, schema_name, topic))
            except DecodeError as err:
                append(err)
        return out

    def decode_messages(
        self, messages: Iterable[Any], schema_name: str, topic: str | None = None
    ) -> list[dict | DecodeError]:
        """``decode_many`` over confluent-kafka ``Message`` objects (or anything with
        ``value()`` and ``headers()``)."""
        values = []
        headers = []
        for m in messages:
            values.append(m.value())
            headers.append(m.headers())
        return self.decode_many(values, headers, schema_name, topic)

    def from_json(self, schema_name: str, obj: Any) -> dict:
        """Validate a JSON object (already parsed, or bytes/str of JSON) against a schema
        and return the record ``decode`` would give: defaults filled, times as epoch
        millis. Raises :class:`DecodeError` (stage ``"validate"`` for schema violations).
        Works for every schema, also those whose topics do not accept JSON."""
        cur = self._get(schema_name)
        if isinstance(obj, (bytes, bytearray, memoryview, str)):
            return _json_record(cur, obj, "invalid JSON: ")
        return _json_object_record(cur, obj)

    def _decode_header(
        self, cur: CompiledSchema, value: bytes, fp: bytes | None, name: bytes | None
    ) -> dict:
        reader = cur.readers.get(fp) if fp is not None else None
        if reader is not None and (name is None or name == cur.full_name_b):
            return reader(value, 0)
        expected = cur.info.full_name
        written = _text(name) if name is not None else None
        known = self.schemas.by_fingerprint.get(_text(fp)) if fp is not None else None
        if known is not None and known.name != cur.name:
            written = known.full_name
        if written is not None and written != expected:
            raise DecodeError(
                f"the message was written with schema {written}, but {cur.name} was expected "
                "(is it on the wrong topic?)",
                schema=cur.name,
            )
        if fp is None:
            raise DecodeError(
                f"the message has a {HEADER_SCHEMA} header but no {HEADER_FINGERPRINT} header: "
                "cannot tell which version of the schema wrote it",
                schema=cur.name,
            )
        if reader is not None:  # the fingerprint is ours, the name header is not
            raise DecodeError(
                f"the message's headers disagree: {HEADER_FINGERPRINT} is {expected}'s, "
                f"{HEADER_SCHEMA} says {written!r}",
                schema=cur.name,
            )
        versions = ", ".join(
            f"{h.fingerprint} (v{h.version})" for h in self.schemas.versions(cur.name)
        )
        raise DecodeError(
            f"unknown schema fingerprint {_text(fp)!r} for {expected}: written by a version of the "
            "schema this reader does not know (a newer lastmile? then upgrade this worker and "
            f"replay the dead letters). Known: {cur.info.fingerprint} (current)"
            + (f", {versions}" if versions else ""),
            schema=cur.name,
        )

    def _decode_registry(self, cur: CompiledSchema, value: bytes) -> dict:
        if len(value) < 5:
            raise DecodeError(
                f"truncated message: {len(value)} byte(s), too short for Schema Registry framing "
                "(magic byte 0 and a 4-byte schema id)",
                schema=cur.name,
            )
        sid = int.from_bytes(value[1:5], "big")
        reader = cur.by_id.get(sid)
        if reader is None:
            reader = registry_reader(self.registry, self._registry_missing, cur, sid)
        return reader(value, 5)

    def _decode_json(self, cur: CompiledSchema, value: bytes) -> dict:
        return _json_record(
            cur, value, f"neither lastmile Avro (no {HEADER_SCHEMA} header) nor valid JSON: "
        )


def _json_record(cur: CompiledSchema, text: bytes | bytearray | memoryview | str, why: str) -> dict:
    """The record of a JSON text: the fast path when it applies, else parsed and conformed;
    `why` begins the message when the text is not JSON."""
    record = cur.from_json_bytes(text)
    if record is not None:
        return record
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as err:
        raise DecodeError(f"{why}{_json_hint(err)}", schema=cur.name) from None
    return _json_object_record(cur, obj)


def _json_object_record(cur: CompiledSchema, obj: Any) -> dict:
    """The record of a parsed JSON value, which must be an object."""
    if not isinstance(obj, dict):
        raise DecodeError(
            f"the JSON value is {describe(obj)}; a {cur.name} must be a JSON object {{...}}",
            schema=cur.name,
        )
    return cur.conform_json(obj)


def _json_hint(err: Exception) -> str:
    text = str(err)
    if "infinity" in text.lower() or "nan" in text.lower():
        return f"{text}; NaN and infinity are not JSON, and not allowed in lastmile"
    return text


def _schema_headers(headers: Sequence[tuple[str, bytes | None]]) -> tuple[Any, Any]:
    """The values of the fingerprint and schema-name headers (None when absent)."""
    fp = name = None
    for key, value in headers:
        if key == HEADER_FINGERPRINT:
            fp = value
        elif key == HEADER_SCHEMA:
            name = value
    return fp, name


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return value.decode("utf-8", "replace")


_DEFAULT_SCHEMAS: SchemaSet | None = None


def _default_schemas() -> SchemaSet:
    global _DEFAULT_SCHEMAS
    if _DEFAULT_SCHEMAS is None:
        _DEFAULT_SCHEMAS = SchemaSet.load()
    return _DEFAULT_SCHEMAS
