"""Schema evolution: plausible next versions stay readable both ways; breaking changes are
caught."""

from __future__ import annotations

import copy
import io
import json
import shutil
from pathlib import Path

import fastavro
import pytest
from click.testing import CliRunner
from test_codec import SAMPLES, full

from schemas import SCHEMA_DIR, SCHEMA_NAMES, Codec, SchemaSet
from schemas.cli import schemas as schemas_cli
from schemas.evolution import check_compatibility, check_repository, load_reference


def v1(name: str) -> dict:
    return json.loads((SCHEMA_DIR / f"{name}.avsc").read_text())


def v2(name: str) -> dict:
    """A plausible next version: one optional field added."""
    schema = v1(name)
    schema["fields"].append(
        {
            "name": "tenant",
            "type": ["null", "string"],
            "default": None,
            "doc": "Which tenant the record belongs to (added in v2).",
        }
    )
    return schema


def field(schema: dict, name: str) -> dict:
    return next(f for f in schema["fields"] if f["name"] == name)


def roundtrip(writer: dict, reader: dict, record: dict) -> dict:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(writer), record)
    return fastavro.schemaless_reader(
        io.BytesIO(out.getvalue()), fastavro.parse_schema(writer), fastavro.parse_schema(reader)
    )


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_adding_an_optional_field_is_fully_compatible(name):
    old, new = v1(name), v2(name)
    assert check_compatibility(old, new) == []
    assert check_compatibility(new, old) == []
    for record in SAMPLES[name]:
        record = full(name, record)
        # new reader, old data: the new field takes its default
        assert roundtrip(old, new, record)["tenant"] is None
        # old reader, new data: the new field is skipped
        back = roundtrip(new, old, {**record, "tenant": "acme"})
        assert "tenant" not in back


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_codec_reads_recorded_old_versions(name, tmp_path):
    (tmp_path / "history").mkdir()
    (tmp_path / f"{name}.avsc").write_text(json.dumps(v2(name)))
    (tmp_path / "history" / f"{name}.v1.avsc").write_text(json.dumps(v1(name)))
    (tmp_path / "history" / f"{name}.v2.avsc").write_text(json.dumps(v2(name)))
    new_codec = Codec(schemas=SchemaSet.load(tmp_path))
    assert new_codec.schema(name).version == 2
    old_codec = Codec()
    for record in SAMPLES[name]:
        value, headers = old_codec.encode(name, record)
        assert new_codec.decode(value, headers, name) == {**full(name, record), "tenant": None}
        value, headers = new_codec.encode(name, {**record, "tenant": "acme"})
        assert new_codec.decode(value, headers, name)["tenant"] == "acme"


def problems_for(name: str, change) -> list[str]:
    new = v1(name)
    change(new)
    return check_compatibility(v1(name), new)


def test_removing_a_field_without_default_is_caught():
    problems = problems_for("ScoringRequest", lambda s: s["fields"].remove(field(s, "model")))
    assert problems == [
        "ScoringRequest.model: field removed, and the old schema gives it no default: readers "
        "of the old schema cannot read new data (old reader, new data)"
    ]


def test_removing_a_field_with_default_is_fine():
    assert problems_for("ScoringRequest", lambda s: s["fields"].remove(field(s, "caller"))) == []


def test_adding_a_field_without_default_is_caught():
    def change(s):
        s["fields"].append({"name": "region", "type": "string", "doc": "x"})

    problems = problems_for("Outcome", change)
    assert problems == [
        "Outcome.region: field added without a default: the new schema cannot read data "
        "written with the old one (new reader, old data)"
    ]


def test_changing_a_type_is_caught():
    def change(s):
        field(s, "version")["type"] = "string"

    problems = problems_for("Prediction", change)
    assert "Prediction.version: type changed from int to string (new reader, old data)" in problems
    assert "Prediction.version: type changed from string to int (old reader, new data)" in problems


def test_a_promotion_only_works_one_way():
    def change(s):
        field(s, "version")["type"] = "long"

    assert problems_for("Prediction", change) == [
        "Prediction.version: type changed from long to int (old reader, new data)"
    ]


def test_dropping_a_union_branch_is_caught():
    def change(s):
        field(s, "features")["type"]["values"].remove("boolean")

    problems = problems_for("ScoringRequest", change)
    assert any(
        p.startswith("ScoringRequest.features{}: union branch boolean of the writer is missing")
        and p.endswith("(new reader, old data)")
        for p in problems
    )


def test_nested_fields_are_named_by_path():
    def change(s):
        versions = field(s, "state")["type"]["fields"][0]["type"]["items"]
        versions["fields"].remove(field(versions, "sha256"))

    problems = problems_for("ModelEvent", change)
    assert problems == [
        "ModelEvent.state.versions[].sha256: field removed, and the old schema gives it no "
        "default: readers of the old schema cannot read new data (old reader, new data)"
    ]


def test_renames_logical_types_and_defaults_are_caught():
    renamed = problems_for("Outcome", lambda s: s.update(name="Result"))
    assert any("record renamed from Outcome to Result" in p for p in renamed)

    def micros(s):
        field(s, "event_time")["type"]["logicalType"] = "timestamp-micros"

    assert any(
        "Outcome.event_time: logical type changed from timestamp-millis to timestamp-micros" in p
        for p in problems_for("Outcome", micros)
    )

    def bad_default(s):
        s["fields"].append(
            {"name": "channel", "type": ["null", "string"], "default": "web", "doc": "x"}
        )

    assert any(
        p.startswith("Outcome.channel: the default 'web' does not fit the type null")
        for p in problems_for("Outcome", bad_default)
    )


def test_enum_symbols_and_fixed_sizes():
    old = {
        "type": "record",
        "name": "E",
        "fields": [
            {"name": "e", "type": {"type": "enum", "name": "Colour", "symbols": ["RED", "GREEN"]}},
            {"name": "f", "type": {"type": "fixed", "name": "Id", "size": 4}},
        ],
    }
    new = copy.deepcopy(old)
    new["fields"][0]["type"]["symbols"] = ["RED"]
    new["fields"][1]["type"]["size"] = 8
    problems = check_compatibility(old, new)
    assert any("E.e: enum symbols GREEN are unknown to the reader" in p for p in problems)
    assert any("E.f: fixed size changed from 4 to 8" in p for p in problems)
    assert check_compatibility(old, {"type": "nonsense"})[0].startswith(
        "the new schema is not valid Avro"
    )


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def schema_copy(tmp_path: Path) -> Path:
    target = tmp_path / "schemas"
    target.mkdir()
    for path in SCHEMA_DIR.glob("*.avsc"):
        shutil.copy(path, target / path.name)
    shutil.copytree(SCHEMA_DIR / "history", target / "history")
    return target


def run(*args: str):
    return CliRunner().invoke(schemas_cli, list(args), catch_exceptions=False)


def test_check_passes_on_the_repository():
    result = run("check")
    assert result.exit_code == 0, result.output
    assert "ok    ScoringRequest: unchanged since v1" in result.output
    assert check_repository().ok


def test_check_fails_on_a_breaking_change_naming_schema_and_field(schema_copy):
    schema = json.loads((schema_copy / "ScoringRequest.avsc").read_text())
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "model"]
    (schema_copy / "ScoringRequest.avsc").write_text(json.dumps(schema))
    result = run("check", "--schema-dir", str(schema_copy))
    assert result.exit_code == 1
    assert (
        "FAIL  ScoringRequest v1 -> current: ScoringRequest.model: field removed" in result.output
    )
    # --record does not record an incompatible change
    result = run("check", "--schema-dir", str(schema_copy), "--record")
    assert (
        result.exit_code == 1 and not (schema_copy / "history" / "ScoringRequest.v2.avsc").exists()
    )


def test_a_compatible_change_must_be_recorded(schema_copy):
    (schema_copy / "Outcome.avsc").write_text(json.dumps(v2("Outcome")))
    result = run("check", "--schema-dir", str(schema_copy))
    assert result.exit_code == 1
    assert "Outcome: changed since v1" in result.output and "record it as v2" in result.output
    result = run("check", "--schema-dir", str(schema_copy), "--record")
    assert result.exit_code == 0, result.output
    assert (schema_copy / "history" / "Outcome.v2.avsc").exists()
    assert "recorded" in result.output
    result = run("check", "--schema-dir", str(schema_copy))
    assert result.exit_code == 0 and "Outcome: unchanged since v2" in result.output


def test_new_missing_and_undocumented_schemas_fail(schema_copy):
    (schema_copy / "history" / "Alert.v1.avsc").unlink()
    (schema_copy / "DeadLetter.avsc").unlink()
    prediction = json.loads((schema_copy / "Prediction.avsc").read_text())
    del field(prediction, "score")["doc"]
    (schema_copy / "Prediction.avsc").write_text(json.dumps(prediction))
    result = run("check", "--schema-dir", str(schema_copy), "-q")
    assert result.exit_code == 1
    assert "Alert: new schema, no recorded version yet" in result.output
    assert "DeadLetter: recorded in" in result.output and "is gone" in result.output
    assert "Prediction.score: the field has no doc" in result.output


def test_check_against_a_directory(schema_copy, tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "Outcome.avsc").write_text(json.dumps(v1("Outcome")))
    (schema_copy / "Outcome.avsc").write_text(json.dumps(v2("Outcome")))
    result = run("check", "--schema-dir", str(schema_copy), "--against", str(old))
    assert result.exit_code == 0, result.output
    assert "Outcome: compatible with 1 reference version(s)" in result.output
    bad = v1("Outcome")
    field(bad, "request_id")["type"] = "long"
    (schema_copy / "Outcome.avsc").write_text(json.dumps(bad))
    result = run("check", "--schema-dir", str(schema_copy), "--against", str(old))
    assert (
        result.exit_code == 1
        and "Outcome.request_id: type changed from string to long" in result.output
    )


def test_check_against_a_git_revision_reads_with_git_show():
    calls = []

    def fake_git(repo, *args):
        calls.append(args)
        if args[0] == "rev-parse":
            return "abc\n"
        if args[0] == "ls-tree":
            return "schemas/Outcome.avsc\nschemas/history/Outcome.v1.avsc\nschemas/codec.py\n"
        if args[0] == "show":
            return json.dumps(v1("Outcome"))
        raise AssertionError(args)

    found = load_reference("main", repo_dir=".", run=fake_git)
    assert list(found) == ["Outcome"] and len(found["Outcome"]) == 2
    assert ("show", "main:schemas/Outcome.avsc") in calls

    def no_git(repo, *args):
        raise RuntimeError("unknown revision")

    with pytest.raises(ValueError, match="neither a directory nor a git revision"):
        load_reference("nope", repo_dir=".", run=no_git)


def test_list_shows_fingerprints_and_versions():
    result = CliRunner().invoke(schemas_cli, ["list", "--json"])
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert {r["schema"] for r in rows} == {f"lastmile.v1.{n}" for n in SCHEMA_NAMES}
    # the current version of each schema is its latest recorded one
    recorded = {n: len(list((SCHEMA_DIR / "history").glob(f"{n}.v*.avsc"))) for n in SCHEMA_NAMES}
    assert {r["schema"].rsplit(".", 1)[1]: r["version"] for r in rows} == recorded
    assert all(len(r["fingerprint"]) == 16 for r in rows)
    assert "check" in CliRunner().invoke(schemas_cli, ["--help"]).output
