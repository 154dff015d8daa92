"""lastmile's Avro schemas (``schemas/*.avsc``), the codec that reads and writes their
messages, and the compatibility rules their changes must follow: one codec for every role.

The package's modules, each one seam: :mod:`schemas.errors` (every error, under
:class:`~schemas.errors.LastmileError`), :mod:`schemas.times`, :mod:`schemas.catalog`
(schema files, versions, fingerprints, topics), :mod:`schemas.walker` (validating and
normalising values), :mod:`schemas.wire` (Avro's varints), :mod:`schemas.templates` and
:mod:`schemas.codegen` (the generated readers and writers), :mod:`schemas.compiled`
(one schema's machinery), :mod:`schemas.registry`, :mod:`schemas.codec` (the
:class:`Codec`), :mod:`schemas.json_types` and :mod:`schemas.evolution`. The names in
``__all__`` are the package's face: import them from ``schemas``.

Two wire formats, both Avro binary of the schemas in ``schemas/*.avsc``:

* **Header format** (no schema registry configured, the default): the value is
  plain Avro binary, and two message headers say which schema wrote it::

      lastmile.schema       b"lastmile.v1.ScoringRequest"   (full name)
      lastmile.fingerprint  b"a1b2c3d4e5f60718"             (CRC-64-AVRO of the
                                                             parsing canonical form, hex)

  A reader knows every schema version in ``schemas/`` and ``schemas/history/``
  by fingerprint, and resolves an older writer's data against its own (current)
  schema. A fingerprint it does not know (a newer lastmile wrote it) is a
  :class:`DecodeError`: upgrade the reader, then replay the dead letters.

* **Confluent Schema Registry format** (``LASTMILE_SCHEMA_REGISTRY_URL`` set): the
  value is the magic byte ``0``, the 4-byte big-endian schema id, then Avro
  binary; the schema is registered under the subject ``<topic>-value``
  (TopicNameStrategy), so confluent-kafka's own ``AvroDeserializer`` (and any other
  Confluent-compatible client) reads lastmile's topics, and lastmile reads theirs.
  ``encode`` uses it when a topic is given; without a topic it falls back to the
  header format. ``decode`` reads both formats whatever is configured.

* **JSON** is accepted on input topics (schemas in :data:`JSON_SCHEMAS`:
  ``ScoringRequest`` on ``scoring.requests``, ``Outcome`` on ``scoring.outcomes``):
  a value without lastmile headers and without the magic byte is parsed as one JSON
  object and validated against the same schema. Unknown fields, wrong types and
  missing required fields are errors; fields with defaults may be omitted; union
  values are plain JSON values (``"caller": "svc"``, not Avro's ``{"string": "svc"}``).
  Times are epoch milliseconds (an integer) or an ISO-8601 string **with** a time
  zone (``"2024-05-01T12:00:00Z"``, ``"...+02:00"``); a naive time is rejected,
  since guessing its zone silently shifts every window.

What ``decode`` returns: plain Python values — dicts, lists, str, int, float, bool,
None, bytes. **Times are int epoch milliseconds** (logical types are not
converted: a datetime per field costs more than the whole decode). ``encode``
accepts an int or a ``datetime`` (naive means UTC) for a time.

Decisions:

* NaN and infinities are rejected (``DecodeError`` with stage ``"validate"``) in
  every double of :data:`FINITE_SCHEMAS` (requests and outcomes: input from outside),
  whether it came as JSON or Avro: one NaN feature poisons a model's state and
  every statistic downstream. ``encode`` of those schemas refuses them too.
  JSON cannot carry NaN at all (it is not JSON), and such input is rejected with
  that reason.
* A value larger than :data:`MAX_MESSAGE_BYTES` (1 MiB, Kafka's default
  ``message.max.bytes``; per codec ``Codec(max_bytes=...)``) is rejected before it is
  parsed: it bounds the memory and time one message can take. ``DeadLetter`` values
  may be twice that plus 64 KiB: they wrap a message of up to the limit.
* Every bad input becomes exactly one :class:`DecodeError` with ``.reason`` (a
  sentence), ``.stage`` (``"decode"``: the bytes cannot be read; ``"validate"``: they
  can, but break the schema's rules) and ``.error_type`` (``"undecodable"`` or
  ``"schema_violation"``). Nothing else is raised for bad bytes. A schema registry
  that cannot be reached raises :class:`SchemaRegistryUnavailable` instead (retry,
  do not dead-letter: the message is probably fine).

How a value is recognised, in this order: a ``lastmile.schema`` or
``lastmile.fingerprint`` header means the header format; else a first byte 0 means
Schema Registry framing; else, for :data:`JSON_SCHEMAS`, JSON; else it is a
:class:`DecodeError` (the writer schema cannot be known).

Speed: fastavro decodes a 20-feature request in ~20 µs, mostly in its generic map
and union handling. The codec compiles each current schema into a specialised
Python reader and writer. Maps of union values (the features) get more: once a
layout (keys, their order and value types) has been seen twice, it is compiled into
one regex over its structural bytes plus one ``struct`` call (all numbers) or regex
captures (mixed values, strings under 64 bytes), and a dict display. Anything the
fast path does not expect falls back to fastavro (reading) or a validating walker
(writing); fastavro is also what the tests compare the fast path with, byte for
byte. JSON input is parsed and validated in one C pass by msgspec, into a type
generated from the schema (:mod:`schemas.json_types`, ~2 µs for a 10-feature
request); what it refuses goes to orjson and the validating walker, which coerce
ISO-8601 times and word every error. The tests hold the fast path to the walker's
results. ``bench/codec.py`` measures it.

>>> codec = Codec()
>>> value, headers = codec.encode("Outcome", {"request_id": "r1", "model": "churn",
...                                           "label": "yes", "event_time": 1700000000000})
>>> headers[0]
('lastmile.schema', b'lastmile.v1.Outcome')
>>> codec.decode(value, headers, "Outcome")["label"]
'yes'
>>> codec.decode(b'{"request_id": "r2", "model": "churn", "value": 2.5,'
...              b' "event_time": "2024-05-01T12:00:00Z"}', None, "Outcome")["event_time"]
1714564800000
>>> try:
...     codec.decode(b"\\x06abc", headers, "Outcome")
... except DecodeError as err:
...     print(err.stage, "|", err.reason)
decode | truncated Avro: the value ends in the middle of a lastmile.v1.Outcome (it is 4 bytes long)
"""

from schemas.catalog import (
    FINITE_SCHEMAS,
    HEADER_FINGERPRINT,
    HEADER_SCHEMA,
    HISTORY_DIR,
    JSON_SCHEMAS,
    MAX_MESSAGE_BYTES,
    SCHEMA_DIR,
    SCHEMA_NAMES,
    TOPIC_SCHEMAS,
    SchemaInfo,
    SchemaSet,
    load_schema_file,
    schema_fingerprint,
    schema_for_topic,
)
from schemas.codec import Codec
from schemas.errors import (
    DecodeError,
    EncodeError,
    LastmileError,
    SchemaError,
    SchemaRegistryUnavailable,
)
from schemas.evolution import check_compatibility
from schemas.registry import registry_client
from schemas.times import now_millis, to_millis
from schemas.wire import encode_long

__all__ = [
    "Codec",
    "LastmileError",
    "SchemaError",
    "DecodeError",
    "EncodeError",
    "SchemaRegistryUnavailable",
    "SchemaSet",
    "SchemaInfo",
    "TOPIC_SCHEMAS",
    "SCHEMA_NAMES",
    "JSON_SCHEMAS",
    "FINITE_SCHEMAS",
    "MAX_MESSAGE_BYTES",
    "HEADER_SCHEMA",
    "HEADER_FINGERPRINT",
    "SCHEMA_DIR",
    "HISTORY_DIR",
    "load_schema_file",
    "schema_fingerprint",
    "schema_for_topic",
    "now_millis",
    "to_millis",
    "encode_long",
    "registry_client",
    "check_compatibility",
]
