"""Reading one topic's messages: their values as current-schema Avro bodies."""

from __future__ import annotations

import json
from dataclasses import dataclass

from schemas import FINITE_SCHEMAS, Codec, DecodeError, EncodeError, schema_fingerprint
from streams.roles.sink.framing import AvroFramer
from streams.roles.sink.routes import Route

__all__ = ["DeadOut", "RouteReader"]


@dataclass(slots=True)
class DeadOut:
    """A dead letter to produce before the offsets of its message are committed."""

    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


class RouteReader:
    """Turns one topic's message values into current-schema Avro bodies."""

    def __init__(self, codec: Codec, route: Route, topic: str) -> None:
        self.codec = codec
        self.route = route
        self.topic = topic
        info = codec.schema(route.schema)
        self.fast_headers = codec.headers_for(route.schema)
        self.fingerprint = info.fingerprint.encode()
        self.full_name = info.full_name.encode()
        self.max_bytes = codec.max_bytes
        self.framer = AvroFramer(info.raw)
        # Schemas whose doubles must be finite (outcomes) are read with the codec even
        # on the fast path: its check is the contract, and ClickHouse cannot refuse
        # a row for us (chDB would drop the whole batch silently, see _insert).
        self.validate = route.schema in FINITE_SCHEMAS
        self._registry_ids: dict[int, bool] = {}

    def body(self, value: bytes | None, headers: list[tuple[str, bytes]] | None) -> bytes | None:
        """The value as a current-schema Avro body; None for a tombstone of the compacted
        model events topic (a deleted model: nothing to store). Raises DecodeError."""
        if value is None and self.route.role == "model_events":
            return None
        if value and len(value) <= self.max_bytes:
            if headers == self.fast_headers:
                if self.validate:
                    self.codec.decode(value, headers, self.route.schema, self.topic)
                return value  # the steady state: written by lastmile's codec, as is
            fp = name = None
            for k, v in headers or ():
                if k == "lastmile.fingerprint":
                    fp = v
                elif k == "lastmile.schema":
                    name = v
            if fp is not None or name is not None:
                if fp == self.fingerprint and name in (None, self.full_name):
                    if self.validate:
                        self.codec.decode(value, headers, self.route.schema, self.topic)
                    return value
            elif value[0] == 0 and len(value) > 5 and self._registry_current(value):
                if self.validate:
                    self.codec.decode(value, headers, self.route.schema, self.topic)
                return value[5:]
        return self.reencode(value, headers)

    def reencode(self, value: bytes | None, headers: list[tuple[str, bytes]] | None) -> bytes:
        """Decode with the codec (JSON, older schemas, any registry id) and write the
        record with the current schema. Raises DecodeError for what the codec rejects."""
        record = self.codec.decode(value, headers, self.route.schema, self.topic)
        try:
            return self.codec.encode(self.route.schema, record)[0]
        except EncodeError as err:
            raise DecodeError(str(err), stage="validate", schema=self.route.schema) from None

    def _registry_current(self, value: bytes) -> bool:
        registry = self.codec.registry
        if registry is None:
            return False
        sid = int.from_bytes(value[1:5], "big")
        known = self._registry_ids.get(sid)
        if known is None:
            try:
                schema = registry.get_schema(sid)
                writer = schema_fingerprint(json.loads(schema.schema_str))
                known = writer == self.fingerprint.decode()
            except Exception:
                return False  # let the codec decide (and say why) on the slow path
            self._registry_ids[sid] = known
        return known
