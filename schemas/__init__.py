"""lastmile's Avro schemas (``schemas/*.avsc``), the codec that reads and writes them,
and the compatibility rules their changes must follow.

>>> from schemas import Codec
>>> value, headers = Codec().encode("Outcome", {"request_id": "r1", "model": "m", "event_time": 0})
>>> dict(headers)["lastmile.schema"]
b'lastmile.v1.Outcome'
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
from schemas.codec import Codec, registry_client
from schemas.errors import (
    DecodeError,
    EncodeError,
    LastmileError,
    SchemaError,
    SchemaRegistryUnavailable,
)
from schemas.evolution import check_compatibility
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
