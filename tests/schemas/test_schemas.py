"""The Avro schemas themselves: complete, documented, evolvable, and recorded."""

from __future__ import annotations

import ast
import doctest
import json

import fastavro
import pytest

import schemas
import schemas.catalog
import schemas.codec
import schemas.codegen
import schemas.compiled
import schemas.errors
import schemas.evolution
import schemas.registry
import schemas.times
import schemas.walker
import schemas.wire
from schemas import (
    HISTORY_DIR,
    SCHEMA_DIR,
    SCHEMA_NAMES,
    TOPIC_SCHEMAS,
    SchemaSet,
    schema_fingerprint,
)
from schemas.evolution import check_repository, missing_docs
from streams.config import load_settings

FILES = sorted(SCHEMA_DIR.glob("*.avsc"))


def raw(name: str) -> dict:
    return json.loads((SCHEMA_DIR / f"{name}.avsc").read_text())


def fields(name: str) -> dict[str, dict]:
    return {f["name"]: f for f in raw(name)["fields"]}


def test_one_file_per_schema_named_after_its_record():
    assert sorted(p.stem for p in FILES) == sorted(SCHEMA_NAMES)
    for path in FILES:
        schema = json.loads(path.read_text())
        assert schema["name"] == path.stem
        assert schema["namespace"] == "lastmile.v1"
        fastavro.parse_schema(schema)


def test_every_topic_role_has_a_schema():
    assert set(TOPIC_SCHEMAS) == set(load_settings(env={}, toml_path=None).topics)
    assert set(TOPIC_SCHEMAS.values()) == set(SCHEMA_NAMES)


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_every_record_and_field_is_documented(name):
    assert missing_docs(raw(name)) == []


def _walk(node, path=""):
    """(path, field) of every field, nested records included."""
    if isinstance(node, list):
        for b in node:
            yield from _walk(b, path)
    elif isinstance(node, dict):
        t = node.get("type")
        if t == "record":
            for f in node["fields"]:
                yield f"{path}.{f['name']}", f
                yield from _walk(f["type"], f"{path}.{f['name']}")
        elif t == "array":
            yield from _walk(node["items"], path)
        elif t == "map":
            yield from _walk(node["values"], path)
        elif isinstance(t, (dict, list)):
            yield from _walk(t, path)


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_times_are_timestamp_millis_and_optionals_default_to_null(name):
    for path, f in _walk(raw(name), name):
        t = f["type"]
        if f["name"] in (
            "ts",
            "event_time",
            "scored_time",
            "created_at",
            "window_start",
            "window_end",
            "source_timestamp",
        ):
            inner = [b for b in t if b != "null"][0] if isinstance(t, list) else t
            assert inner == {"type": "long", "logicalType": "timestamp-millis"}, path
        if isinstance(t, list) and "null" in t:
            assert t[0] == "null" and f.get("default", "missing") is None, (
                f"{path}: optional needs null first, default null"
            )


def test_field_lists_match_the_contract():
    assert list(fields("ScoringRequest")) == [
        "request_id",
        "model",
        "features",
        "event_time",
        "entity_id",
        "caller",
        "metadata",
    ]
    assert fields("ScoringRequest")["features"]["type"]["values"] == [
        "null",
        "long",
        "double",
        "string",
        "boolean",
    ]
    assert fields("ScoringRequest")["metadata"]["default"] == {}
    assert set(fields("Prediction")) >= {
        "request_id",
        "model",
        "version",
        "variant",
        "score",
        "label",
        "features",
        "event_time",
        "scored_time",
        "latency_ms",
        "caller",
        "metadata",
        "entity_id",
    }
    assert set(fields("Outcome")) == {"request_id", "model", "label", "value", "event_time"}
    model_event = fields("ModelEvent")
    assert set(model_event) == {"model", "kind", "version", "actor", "ts", "state"}
    state = {f["name"]: f for f in model_event["state"]["type"]["fields"]}
    assert set(state) == {
        "versions",
        "aliases",
        "split",
        "shadow",
        "alias_history",
        "pause",
        "snapshot_request",
    }
    version = {f["name"] for f in state["versions"]["type"]["items"]["fields"]}
    assert version == {
        "version",
        "flavor",
        "sha256",
        "path",
        "created_at",
        "parent",
        "retired",
        "meta_json",
    }
    assert set(fields("MonitorMetric")) == {
        "model",
        "version",
        "segment",
        "metric",
        "feature",
        "value",
        "n",
        "window_start",
        "window_end",
        "ts",
    }
    assert set(fields("Alert")) == {
        "alert_id",
        "model",
        "version",
        "kind",
        "metric",
        "feature",
        "state",
        "value",
        "threshold",
        "severity",
        "rule",
        "ts",
        "message",
    }
    assert set(fields("DeadLetter")) >= {
        "original_key",
        "original_value",
        "original_headers",
        "source_topic",
        "source_partition",
        "source_offset",
        "stage",
        "error",
        "error_type",
        "ts",
        "worker",
        "model",
    }


def test_strings_not_enums_for_open_ended_kinds():
    # enums break old readers when a symbol is added; these are documented strings
    for name, field in [
        ("Prediction", "variant"),
        ("ModelEvent", "kind"),
        ("Alert", "kind"),
        ("Alert", "state"),
        ("Alert", "severity"),
        ("DeadLetter", "stage"),
    ]:
        assert fields(name)[field]["type"] == "string"


def test_every_schema_is_recorded_and_unchanged():
    result = check_repository()
    assert result.ok, result.problems
    known = SchemaSet.load()
    for name in SCHEMA_NAMES:
        assert (HISTORY_DIR / f"{name}.v1.avsc").exists()
        assert known.current[name].version is not None
        assert known.current[name].fingerprint == schema_fingerprint(raw(name))


def test_package_exports_the_main_names():
    for name in ("Codec", "DecodeError", "EncodeError", "TOPIC_SCHEMAS", "check_compatibility"):
        assert hasattr(schemas, name)


@pytest.mark.parametrize(
    "module",
    [
        schemas,
        schemas.catalog,
        schemas.codec,
        schemas.codegen,
        schemas.compiled,
        schemas.errors,
        schemas.evolution,
        schemas.registry,
        schemas.times,
        schemas.walker,
        schemas.wire,
    ],
)
def test_docstring_examples_run(module):
    result = doctest.testmod(module)
    assert result.failed == 0 and result.attempted > 0


def _schemas_imports(path) -> set[str]:
    """The modules of the package a module imports, at its top or inside a function
    (``"schemas"`` itself: the face)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m == "schemas" or m.startswith("schemas.")}


def test_the_modules_import_no_cycle_and_not_the_face():
    modules = {f"schemas.{p.stem}": p for p in SCHEMA_DIR.glob("*.py") if p.stem != "__init__"}
    graph = {name: _schemas_imports(path) for name, path in modules.items()}
    assert not {name for name, deps in graph.items() if "schemas" in deps}
    done: set[str] = set()

    def visit(name: str, stack: tuple[str, ...]) -> None:
        assert name not in stack, " -> ".join((*stack[stack.index(name) :], name))
        if name in done:
            return
        for dep in sorted(graph.get(name, ())):
            visit(dep, (*stack, name))
        done.add(name)

    for name in sorted(graph):
        visit(name, ())
    assert "schemas.codec" not in graph["schemas.json_types"] | graph["schemas.evolution"]
