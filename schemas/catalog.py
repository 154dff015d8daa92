"""The schema catalog: lastmile's schemas, their versions, names and fingerprints.

The current schemas are ``schemas/<Name>.avsc``; every recorded earlier version is
``schemas/history/<Name>.v<N>.avsc``. A :class:`SchemaSet` holds both, by name and by
fingerprint (CRC-64-AVRO of the parsing canonical form); a :class:`SchemaInfo` is one
version with its parsed forms. The constants say which schema each topic carries
(:data:`TOPIC_SCHEMAS`), which accept JSON, which must be finite, and the header names
of the header wire format.

The Avro facts the walker, the code generator and :mod:`schemas.json_types` share are
here too: the int and long ranges, the time logical types, and :func:`base_type`.

>>> TOPIC_SCHEMAS["requests"], base_type({"type": "long", "logicalType": "timestamp-millis"})
('ScoringRequest', ('long', 'timestamp-millis'))
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint as _fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form

__all__ = [
    "SCHEMA_DIR",
    "HISTORY_DIR",
    "NAMESPACE",
    "SCHEMA_NAMES",
    "TOPIC_SCHEMAS",
    "JSON_SCHEMAS",
    "FINITE_SCHEMAS",
    "MAX_MESSAGE_BYTES",
    "HEADER_SCHEMA",
    "HEADER_FINGERPRINT",
    "MAGIC_BYTE",
    "INT_MIN",
    "INT_MAX",
    "LONG_MIN",
    "LONG_MAX",
    "TIME_LOGICAL",
    "UnsupportedSchema",
    "SchemaInfo",
    "SchemaSet",
    "base_type",
    "canonical_form",
    "expand",
    "load_history",
    "load_schema_file",
    "parse_expanded",
    "schema_fingerprint",
    "schema_for_topic",
    "strip_logical",
]

SCHEMA_DIR = Path(__file__).resolve().parent
HISTORY_DIR = SCHEMA_DIR / "history"
NAMESPACE = "lastmile.v1"

#: Record names of lastmile's schemas, one ``<Name>.avsc`` each in ``schemas/``.
SCHEMA_NAMES = (
    "ScoringRequest",
    "Prediction",
    "Outcome",
    "ModelEvent",
    "MonitorMetric",
    "Alert",
    "DeadLetter",
    "Action",
)

#: Topic role (as in ``Settings.topics``) -> the schema of its values.
TOPIC_SCHEMAS: dict[str, str] = {
    "requests": "ScoringRequest",
    "predictions": "Prediction",
    "outcomes": "Outcome",
    "model_events": "ModelEvent",
    "metrics": "MonitorMetric",
    "alerts": "Alert",
    "dlq": "DeadLetter",
    "actions": "Action",
}

#: Schemas whose topics accept plain JSON objects too (input from outside).
JSON_SCHEMAS = frozenset({"ScoringRequest", "Outcome"})

#: Schemas in which every double must be finite (no NaN, no infinity).
FINITE_SCHEMAS = frozenset({"ScoringRequest", "Outcome"})

#: Largest value decode accepts, in bytes (Kafka's default message.max.bytes).
MAX_MESSAGE_BYTES = 1_048_576

HEADER_SCHEMA = "lastmile.schema"
HEADER_FINGERPRINT = "lastmile.fingerprint"
MAGIC_BYTE = 0

#: Ranges of the Avro int and long, and the logical types whose values are times.
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
TIME_LOGICAL = {"timestamp-millis", "local-timestamp-millis"}


class UnsupportedSchema(Exception):
    """Internal: a schema the code generator does not compile (fastavro handles it), or a
    recursive type, which :func:`expand` cannot make a tree of."""


def load_schema_file(path: str | Path) -> dict:
    """The JSON of one ``.avsc`` file, checked by fastavro's parser."""
    path = Path(path)
    raw = json.loads(path.read_text())
    fastavro.parse_schema(copy.deepcopy(raw), _write_hint=False)
    return raw


def canonical_form(schema: Mapping | str | list) -> str:
    """Avro's parsing canonical form of a schema (docs, defaults, logical types dropped)."""
    return to_parsing_canonical_form(schema)


def schema_fingerprint(schema: Mapping | str | list) -> str:
    """CRC-64-AVRO (Rabin) fingerprint of the parsing canonical form, 16 hex digits."""
    return _fastavro_fingerprint(canonical_form(schema), "CRC-64-AVRO")


def strip_logical(schema: Any) -> Any:
    """A copy of a raw schema without logical types: their values read as the base type."""
    if isinstance(schema, list):
        return [strip_logical(s) for s in schema]
    if isinstance(schema, dict):
        out = {}
        for key, value in schema.items():
            if key == "logicalType":
                continue
            if key in ("type", "items", "values"):
                value = strip_logical(value)
            elif key == "fields":
                value = [{**f, "type": strip_logical(f["type"])} for f in value]
            out[key] = value
        if set(out) == {"type"} and isinstance(out["type"], str):
            return out["type"]
        return out
    return schema


def expand(parsed: Any, named: Mapping[str, Any], stack: tuple = ()) -> Any:
    """Replace named-type references of a fastavro-parsed schema by their definitions."""
    if isinstance(parsed, str):
        if parsed in named:
            if parsed in stack:
                raise UnsupportedSchema(f"recursive type {parsed}")
            return expand(named[parsed], named, stack + (parsed,))
        return parsed
    if isinstance(parsed, list):
        return [expand(s, named, stack) for s in parsed]
    kind = parsed.get("type")
    out = {k: v for k, v in parsed.items() if not k.startswith("__")}
    if kind == "record" or kind == "error":
        stack = stack + (parsed["name"],)
        out["fields"] = [{**f, "type": expand(f["type"], named, stack)} for f in parsed["fields"]]
    elif kind == "array":
        out["items"] = expand(parsed["items"], named, stack)
    elif kind == "map":
        out["values"] = expand(parsed["values"], named, stack)
    elif isinstance(kind, (dict, list)) or (isinstance(kind, str) and kind in named):
        out["type"] = expand(kind, named, stack)
    return out


def parse_expanded(raw: Any) -> tuple[dict, dict]:
    """(fastavro-parsed schema, the same expanded into a tree without references)."""
    parsed = fastavro.parse_schema(copy.deepcopy(raw))
    named = parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}
    return parsed, expand(parsed, named)


def base_type(node: Any) -> tuple[Any, str | None]:
    """(type, logicalType) of an expanded schema node; primitives come back as strings."""
    if isinstance(node, dict):
        kind = node["type"]
        if isinstance(kind, str) and kind not in (
            "record",
            "error",
            "enum",
            "fixed",
            "array",
            "map",
        ):
            return kind, node.get("logicalType")
        if isinstance(kind, (dict, list)):
            inner, logical = base_type(kind)
            return inner, node.get("logicalType") or logical
    return node, None


@dataclass
class SchemaInfo:
    """One version of one schema: its JSON, parsed forms and identity.

    ``name`` is the record name (``"ScoringRequest"``), ``full_name`` the namespaced
    one, ``fingerprint`` 16 hex digits, ``version`` the number N of
    ``schemas/history/<Name>.vN.avsc`` recording it (None: not recorded yet).
    """

    name: str
    full_name: str
    raw: dict
    fingerprint: str
    version: int | None = None
    path: Path | None = None
    parsed: dict = field(repr=False, default_factory=dict)
    plain: dict = field(repr=False, default_factory=dict)  # parsed, logical types stripped
    tree: Any = field(repr=False, default=None)  # expanded, logical types kept

    @classmethod
    def from_raw(
        cls, raw: dict, path: Path | None = None, version: int | None = None
    ) -> SchemaInfo:
        parsed, tree = parse_expanded(raw)
        plain = fastavro.parse_schema(strip_logical(copy.deepcopy(raw)))
        full_name = parsed["name"]
        return cls(
            name=full_name.rsplit(".", 1)[-1],
            full_name=full_name,
            raw=raw,
            fingerprint=schema_fingerprint(raw),
            version=version,
            path=path,
            parsed=parsed,
            plain=plain,
            tree=tree,
        )

    @property
    def schema_str(self) -> str:
        return json.dumps(self.raw, separators=(",", ":"))


class SchemaSet:
    """The current schemas (``schemas/*.avsc``) and every recorded earlier version
    (``schemas/history/<Name>.v<N>.avsc``), by name and by fingerprint.

    >>> s = SchemaSet.load()
    >>> s.current["Outcome"].full_name
    'lastmile.v1.Outcome'
    >>> s.by_fingerprint[s.current["Outcome"].fingerprint].name
    'Outcome'
    """

    def __init__(
        self, current: Mapping[str, SchemaInfo], history: Iterable[SchemaInfo] = ()
    ) -> None:
        self.current: dict[str, SchemaInfo] = dict(current)
        self.history: list[SchemaInfo] = sorted(history, key=lambda i: (i.name, i.version or 0))
        self.by_fingerprint: dict[str, SchemaInfo] = {}
        for info in self.history:
            self.by_fingerprint.setdefault(info.fingerprint, info)
        for info in self.current.values():
            recorded = [h.version for h in self.history if h.fingerprint == info.fingerprint]
            if recorded and info.version is None:
                info.version = recorded[-1]
            self.by_fingerprint[info.fingerprint] = info

    @classmethod
    def load(
        cls, schema_dir: str | Path | None = None, history_dir: str | Path | None = None
    ) -> SchemaSet:
        schema_dir = Path(schema_dir) if schema_dir else SCHEMA_DIR
        if history_dir is None:
            history_dir = schema_dir / "history"
        current = {}
        for path in sorted(schema_dir.glob("*.avsc")):
            info = SchemaInfo.from_raw(load_schema_file(path), path)
            current[info.name] = info
        return cls(current, load_history(history_dir))

    def versions(self, name: str) -> list[SchemaInfo]:
        """Recorded versions of one schema, oldest first."""
        return [h for h in self.history if h.name == name]


def load_history(history_dir: str | Path) -> list[SchemaInfo]:
    """Every ``<Name>.v<N>.avsc`` in a directory."""
    history_dir = Path(history_dir)
    out = []
    if history_dir.is_dir():
        for path in sorted(history_dir.glob("*.v*.avsc")):
            stem = path.name[: -len(".avsc")]
            base, _, number = stem.rpartition(".v")
            if not number.isdigit():
                continue
            info = SchemaInfo.from_raw(load_schema_file(path), path, int(number))
            if info.name != base:
                raise ValueError(
                    f"{path} holds schema {info.full_name}, but its file name says {base}"
                )
            out.append(info)
    return out


def schema_for_topic(settings: Any, topic: str) -> str | None:
    """The schema name of a topic, given by role (``"requests"``) or by name."""
    if topic in TOPIC_SCHEMAS:
        return TOPIC_SCHEMAS[topic]
    for role, name in settings.topics.items():
        if name == topic:
            return TOPIC_SCHEMAS.get(role)
    return None
