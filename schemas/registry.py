"""The Confluent Schema Registry side of the codec: a client, and readers by schema id.

:func:`registry_client` makes confluent-kafka's client (``mock://...`` gives its in-memory
mock, for tests). :func:`registry_reader` is what the codec does the first time it meets
a schema id in a value's framing: ask the registry for the writer schema and pick the
reader of that version (the current one, a known older one, or fastavro resolving an
unknown one against the current schema), remembered per id.

>>> client = registry_client("mock://registry-doctest")
>>> type(client).__name__
'MockSchemaRegistryClient'
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from schemas.catalog import SchemaInfo
from schemas.compiled import CompiledSchema
from schemas.errors import DecodeError, SchemaRegistryUnavailable

__all__ = ["registry_client", "registry_reader"]

#: How long a schema id the registry said it does not have is not asked for again (s).
MISSING_FOR = 30


def registry_client(url: str, **conf: Any) -> Any:
    """A confluent-kafka SchemaRegistryClient for ``url`` (``mock://`` gives the mock)."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    config = {"url": url, **conf}
    new_client = getattr(SchemaRegistryClient, "new_client", None)
    if new_client is not None:
        return new_client(config)
    if url.startswith("mock://"):
        from confluent_kafka.schema_registry._sync.mock_schema_registry_client import (
            MockSchemaRegistryClient,
        )

        return MockSchemaRegistryClient(config)
    return SchemaRegistryClient(config)


def registry_reader(
    client: Any, missing: dict[int, float], cur: CompiledSchema, sid: int
) -> Callable[[bytes, int], dict]:
    """The reader of `cur`'s values framed with schema id `sid`, asked of the registry
    `client` (None: none is configured, a :class:`DecodeError`) and remembered in
    ``cur.by_id``. `missing` (id -> when the registry said it has no such id) keeps a
    stream of values with an unknown id from asking again for each of them.
    :class:`SchemaRegistryUnavailable` when the registry cannot be asked."""
    if client is None:
        raise DecodeError(
            "the value starts with byte 0x00, Confluent Schema Registry framing "
            f"(schema id {sid}), but no schema registry is configured "
            "(set LASTMILE_SCHEMA_REGISTRY_URL)",
            schema=cur.name,
        )
    missing_since = missing.get(sid)
    if missing_since is not None and time.monotonic() - missing_since < MISSING_FOR:
        raise DecodeError(f"schema id {sid} is not in the schema registry", schema=cur.name)
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    try:
        schema = client.get_schema(sid)
    except SchemaRegistryError as err:
        if err.http_status_code == 404:
            if len(missing) > 10_000:
                missing.clear()
            missing[sid] = time.monotonic()
            raise DecodeError(
                f"schema id {sid} is not in the schema registry", schema=cur.name
            ) from None
        raise SchemaRegistryUnavailable(f"schema registry error for id {sid}: {err}") from err
    except Exception as err:  # the registry client raises many types; each means unavailable
        raise SchemaRegistryUnavailable(
            f"cannot reach the schema registry for id {sid}: {err}"
        ) from err
    if (schema.schema_type or "AVRO") != "AVRO":
        raise DecodeError(
            f"schema id {sid} is a {schema.schema_type} schema, not Avro", schema=cur.name
        )
    try:
        writer = SchemaInfo.from_raw(json.loads(schema.schema_str))
    except Exception as err:  # a registry's schema is foreign data: any parse error is refused
        raise DecodeError(
            f"schema id {sid} cannot be parsed as Avro: {err}", schema=cur.name
        ) from None
    if writer.fingerprint == cur.info.fingerprint:
        reader = cur.read_current
    elif writer.fingerprint.encode() in cur.readers:
        reader = cur.readers[writer.fingerprint.encode()]
    elif writer.name != cur.name:
        raise DecodeError(
            f"the message was written with schema {writer.full_name} (registry id {sid}), but "
            f"{cur.name} was expected (is it on the wrong topic?)",
            schema=cur.name,
        )
    else:
        reader = cur.resolver(writer)
    cur.by_id[sid] = reader
    return reader
