"""lastmile's Avro schemas (``schemas/*.avsc``), the codec that reads and writes them,
and the compatibility rules their changes must follow.

>>> from schemas import Codec
>>> value, headers = Codec().encode("Outcome", {"request_id": "r1", "model": "m", "event_time": 0})
>>> dict(headers)["lastmile.schema"]
b'lastmile.v1.Outcome'
"""

from schemas.codec import (
    FINITE_SCHEMAS,
    HEADER_FINGERPRINT,
    HEADER_SCHEMA,
    JSON_SCHEMAS,
    MAX_MESSAGE_BYTES,
    SCHEMA_NAMES,
    TOPIC_SCHEMAS,
    Codec,
    DecodeError,
    EncodeError,
    SchemaRegistryUnavailable,
    SchemaSet,
    schema_for_topic,
)
from schemas.evolution import check_compatibility

__all__ = [
    "Codec",
    "DecodeError",
    "EncodeError",
    "SchemaRegistryUnavailable",
    "SchemaSet",
    "TOPIC_SCHEMAS",
    "SCHEMA_NAMES",
    "JSON_SCHEMAS",
    "FINITE_SCHEMAS",
    "MAX_MESSAGE_BYTES",
    "HEADER_SCHEMA",
    "HEADER_FINGERPRINT",
    "schema_for_topic",
    "check_compatibility",
]
