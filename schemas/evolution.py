"""Schema evolution: may a changed schema replace the old one without breaking anyone?

lastmile requires FULL compatibility between a schema and every recorded earlier
version of it: the new schema reads data the old one wrote (a new worker reading a
topic's backlog), and the old schema reads data the new one writes (a worker not
yet upgraded, during a rolling deploy, or any consumer outside lastmile). In
practice that means:

* add a field only with a default (``["null", ...]`` with ``"default": null`` is the
  usual way); remove a field only if it had a default;
* change a field's type only by Avro promotion (int -> long -> float -> double,
  string <-> bytes) — and then only one way works, so full compatibility still
  fails: do not change types;
* never rename a record or field (aliases help the new reader only), never drop
  an enum symbol or union branch, never change a logical type (bytes stay
  readable, meaning does not);
* defaults must match the field's type (a union's default its first branch).

:func:`check_compatibility` applies these rules in both directions and, as a second
opinion, writes sample records with one schema and reads them with the other
through fastavro's schema resolution.

The record of released versions is ``schemas/history/<Name>.v<N>.avsc``, committed
with the code. ``lastmile schemas check`` (:func:`check_repository`) fails when a
schema in ``schemas/`` differs from its latest recorded version: incompatible, it
names the schema and field; compatible, it asks for the change to be recorded
(``--record`` writes ``<Name>.v<N+1>.avsc``), so a schema never changes without
someone deciding it should. Readers know every recorded version by fingerprint
(schemas/codec.py) and resolve old data against the current schema.

>>> old = {"type": "record", "name": "T", "fields": [{"name": "a", "type": "string"}]}
>>> optional = {"name": "b", "type": ["null", "long"], "default": None}
>>> new = {**old, "fields": old["fields"] + [optional]}
>>> check_compatibility(old, new)
[]
>>> bad = {**old, "fields": old["fields"] + [{"name": "b", "type": "long"}]}
>>> for problem in check_compatibility(old, bad):
...     print(problem.replace(": the", ":\\n  the"))
T.b: field added without a default:
  the new schema cannot read data written with the old one (new reader, old data)
"""

from __future__ import annotations

import io
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro

from schemas.catalog import (
    HISTORY_DIR,
    SCHEMA_DIR,
    SchemaInfo,
    base_type,
    load_history,
    load_schema_file,
    parse_expanded,
    strip_logical,
)
from schemas.walker import Invalid, conform, default_value

__all__ = [
    "check_compatibility",
    "reader_problems",
    "CheckResult",
    "check_repository",
    "check_against",
    "load_reference",
]

_PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _label(node: Any) -> str:
    kind, logical = base_type(node)
    if isinstance(kind, list):
        return "[" + ", ".join(_label(b) for b in kind) + "]"
    if isinstance(kind, dict):
        t = kind["type"]
        if t in ("record", "error", "enum", "fixed"):
            return f"{t} {_short(kind['name'])}"
        if t == "array":
            return f"array<{_label(kind['items'])}>"
        if t == "map":
            return f"map<{_label(kind['values'])}>"
    return f"{kind} ({logical})" if logical else str(kind)


def _matches(reader: Any, writer: Any) -> bool:
    """Whether a union branch of the reader is the one that takes a writer type (same
    kind, or a promotion; named types by name)."""
    r, _ = base_type(reader)
    w, _ = base_type(writer)
    if isinstance(r, dict) and isinstance(w, dict):
        if r["type"] != w["type"]:
            return False
        if r["type"] in ("record", "error", "enum", "fixed"):
            return _short(r["name"]) == _short(w["name"]) or w["name"] in r.get("aliases", [])
        return True
    if isinstance(r, str) and isinstance(w, str):
        return r == w or r in _PROMOTIONS.get(w, ())
    return False


def reader_problems(reader: Any, writer: Any, path: str, direction: str) -> list[str]:
    """Why data written with ``writer`` cannot be read with ``reader`` (expanded schemas).

    ``direction`` is appended to each problem, e.g. ``"(new reader, old data)"``.
    """
    problems: list[str] = []
    r, r_logical = base_type(reader)
    w, w_logical = base_type(writer)
    if isinstance(w, list):
        for branch in w:
            if isinstance(r, list):
                if not any(_matches(rb, branch) for rb in r):
                    problems.append(
                        f"{path}: union branch {_label(branch)} of the writer is missing from "
                        f"the reader's union {_label(r)} {direction}"
                    )
                    continue
                target = next(rb for rb in r if _matches(rb, branch))
                problems += reader_problems(target, branch, path, direction)
            else:
                if not _matches(r, branch):
                    problems.append(
                        f"{path}: the writer may write {_label(branch)} (a branch of "
                        f"{_label(w)}) where the reader expects {_label(r)} {direction}"
                    )
                    continue
                problems += reader_problems(r, branch, path, direction)
        return problems
    if isinstance(r, list):
        target = next((rb for rb in r if _matches(rb, w)), None)
        if target is None:
            return [f"{path}: type changed from {_label(w)} to {_label(r)} {direction}"]
        return reader_problems(target, w, path, direction)
    if r_logical != w_logical:
        problems.append(
            f"{path}: logical type changed from {w_logical or 'none'} to "
            f"{r_logical or 'none'} (same bytes, different meaning) {direction}"
        )
    if isinstance(r, str) or isinstance(w, str):
        if not (isinstance(r, str) and isinstance(w, str)) or not (
            r == w or r in _PROMOTIONS.get(w, ())
        ):
            problems.append(f"{path}: type changed from {_label(w)} to {_label(r)} {direction}")
        return problems
    rt, wt = r["type"], w["type"]
    if rt != wt:
        return [f"{path}: type changed from {_label(w)} to {_label(r)} {direction}"]
    if rt in ("record", "error", "enum", "fixed") and not _matches(r, w):
        problems.append(
            f"{path}: {rt} renamed from {_short(w['name'])} to {_short(r['name'])} {direction}"
        )
        return problems
    if rt == "fixed" and r["size"] != w["size"]:
        problems.append(f"{path}: fixed size changed from {w['size']} to {r['size']} {direction}")
    elif rt == "enum":
        missing = [s for s in w["symbols"] if s not in r["symbols"]]
        if missing and "default" not in r:
            problems.append(
                f"{path}: enum symbols {', '.join(missing)} are unknown to the reader, "
                f"which has no enum default {direction}"
            )
    elif rt == "array":
        problems += reader_problems(r["items"], w["items"], f"{path}[]", direction)
    elif rt == "map":
        problems += reader_problems(r["values"], w["values"], f"{path}{{}}", direction)
    elif rt in ("record", "error"):
        w_fields = {f["name"]: f for f in w["fields"]}
        for rf in r["fields"]:
            names = [rf["name"], *rf.get("aliases", [])]
            wf = next((w_fields[n] for n in names if n in w_fields), None)
            sub = f"{path}.{rf['name']}"
            if wf is None:
                if "default" not in rf:
                    if direction.startswith("(new"):
                        problems.append(
                            f"{sub}: field added without a default: the new schema cannot "
                            f"read data written with the old one {direction}"
                        )
                    else:
                        problems.append(
                            f"{sub}: field removed, and the old schema gives it no default: "
                            f"readers of the old schema cannot read new data {direction}"
                        )
                continue
            problems += reader_problems(rf["type"], wf["type"], sub, direction)
    return problems


def default_problems(node: Any, path: str) -> list[str]:
    """Defaults that do not fit their field's type (a union's default fits its first branch)."""
    problems: list[str] = []
    kind, _ = base_type(node)
    if isinstance(kind, list):
        for b in kind:
            problems += default_problems(b, path)
        return problems
    if not isinstance(kind, dict):
        return problems
    t = kind["type"]
    if t in ("record", "error"):
        for f in kind["fields"]:
            sub = f"{path}.{f['name']}"
            if "default" in f:
                branches, _ = base_type(f["type"])
                target = branches[0] if isinstance(branches, list) else f["type"]
                try:
                    conform(target, default_value(f["type"], f["default"]), sub, True, False)
                except Invalid as err:
                    problems.append(
                        f"{sub}: the default {f['default']!r} does not fit the type "
                        f"{_label(target)}: {err.problem}"
                    )
            problems += default_problems(f["type"], sub)
    elif t == "array":
        problems += default_problems(kind["items"], f"{path}[]")
    elif t == "map":
        problems += default_problems(kind["values"], f"{path}{{}}")
    return problems


# --------------------------------------------------------------------------- samples


def _samples(node: Any, variant: int) -> Any:
    kind, _ = base_type(node)
    if isinstance(kind, list):
        return _samples(kind[min(variant, len(kind) - 1)], variant)
    if isinstance(kind, dict):
        t = kind["type"]
        if t in ("record", "error"):
            return {f["name"]: _samples(f["type"], variant) for f in kind["fields"]}
        if t == "enum":
            return kind["symbols"][min(variant, len(kind["symbols"]) - 1)]
        if t == "fixed":
            return b"\x01" * kind["size"]
        if t == "array":
            return [] if variant == 0 else [_samples(kind["items"], variant)]
        if t == "map":
            return {} if variant == 0 else {"k": _samples(kind["values"], variant)}
    return {
        "null": None,
        "boolean": True,
        "int": 7,
        "long": 1_700_000_000_000,
        "float": 1.5,
        "double": 2.5,
        "string": "s",
        "bytes": b"b",
    }[kind]


def _widest_union(node: Any, seen: int = 1) -> int:
    kind, _ = base_type(node)
    if isinstance(kind, list):
        return max([len(kind)] + [_widest_union(b) for b in kind])
    if isinstance(kind, dict):
        t = kind["type"]
        if t in ("record", "error"):
            return max([seen] + [_widest_union(f["type"]) for f in kind["fields"]])
        if t == "array":
            return _widest_union(kind["items"], seen)
        if t == "map":
            return _widest_union(kind["values"], seen)
        if t == "enum":
            return max(seen, len(kind["symbols"]))
    return seen


def sample_problems(reader_raw: Any, writer_raw: Any, direction: str) -> list[str]:
    """Write sample records with the writer schema, read them with the reader (fastavro)."""
    writer = fastavro.parse_schema(strip_logical(writer_raw))
    reader = fastavro.parse_schema(strip_logical(reader_raw))
    _, tree = parse_expanded(strip_logical(writer_raw))
    problems = []
    for variant in range(_widest_union(tree) + 1):
        record = _samples(tree, variant)
        out = io.BytesIO()
        try:
            fastavro.schemaless_writer(out, writer, record)
        except Exception:
            continue  # a sample the writer itself refuses says nothing about compatibility
        try:
            fastavro.schemaless_reader(io.BytesIO(out.getvalue()), writer, reader)
        except Exception as err:  # fastavro raises many types; each is an incompatibility
            name = writer.get("name", "?") if isinstance(writer, dict) else "?"
            problems.append(
                f"{_short(name)}: a sample record could not be read "
                f"({type(err).__name__}: {err}) {direction}"
            )
            break
    return problems


# --------------------------------------------------------------------------- the check


def check_compatibility(old_schema: Mapping | Any, new_schema: Mapping | Any) -> list[str]:
    """Problems that keep ``new_schema`` from replacing ``old_schema`` (empty: fully
    compatible): the new schema must read old data, and the old schema new data.

    Each problem names the schema and field, what changed, and which direction breaks.
    """
    try:
        _, old_tree = parse_expanded(old_schema)
    except Exception as err:  # fastavro raises many types; each means not valid Avro
        return [f"the old schema is not valid Avro: {err}"]
    try:
        _, new_tree = parse_expanded(new_schema)
    except Exception as err:  # fastavro raises many types; each means not valid Avro
        return [f"the new schema is not valid Avro: {err}"]
    root = (
        _short(new_tree["name"]) if isinstance(new_tree, dict) and "name" in new_tree else "schema"
    )
    problems = default_problems(new_tree, root)
    problems += reader_problems(new_tree, old_tree, root, "(new reader, old data)")
    problems += reader_problems(old_tree, new_tree, root, "(old reader, new data)")
    if not problems:
        problems += sample_problems(new_schema, old_schema, "(new reader, old data)")
        problems += sample_problems(old_schema, new_schema, "(old reader, new data)")
    return list(dict.fromkeys(problems))


@dataclass
class CheckResult:
    """What ``lastmile schemas check`` found: ``problems`` fail the check; ``notes`` inform."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    recorded: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _current(schema_dir: Path) -> dict[str, SchemaInfo]:
    out = {}
    for path in sorted(schema_dir.glob("*.avsc")):
        info = SchemaInfo.from_raw(load_schema_file(path), path)
        out[info.name] = info
    return out


def missing_docs(raw: Any, path: str = "") -> list[str]:
    """Fields without a ``doc``: lastmile documents every field of every schema."""
    out: list[str] = []
    if isinstance(raw, list):
        for b in raw:
            out += missing_docs(b, path)
    elif isinstance(raw, dict):
        t = raw.get("type")
        if t in ("record", "error"):
            here = path or raw["name"]
            if not raw.get("doc"):
                out.append(f"{here}: the record has no doc")
            for f in raw.get("fields", []):
                sub = f"{here}.{f['name']}"
                if not f.get("doc"):
                    out.append(f"{sub}: the field has no doc")
                out += missing_docs(f["type"], sub)
        elif t == "array":
            out += missing_docs(raw["items"], path + "[]")
        elif t == "map":
            out += missing_docs(raw["values"], path + "{}")
        elif isinstance(t, (dict, list)):
            out += missing_docs(t, path)
    return out


def check_repository(
    schema_dir: str | Path | None = None,
    history_dir: str | Path | None = None,
    record: bool = False,
) -> CheckResult:
    """Compare ``schemas/*.avsc`` with the recorded versions in ``schemas/history``.

    Fails for: a schema incompatible with any recorded version of it; a schema that
    changed (compatibly) but is not recorded (``record=True`` records it as the next
    version instead); a new schema never recorded (idem); a recorded schema whose
    current file is gone; a field without a doc.
    """
    schema_dir = Path(schema_dir) if schema_dir else SCHEMA_DIR
    history_dir = (
        Path(history_dir)
        if history_dir
        else (schema_dir / "history" if schema_dir != SCHEMA_DIR else HISTORY_DIR)
    )
    result = CheckResult()
    current = _current(schema_dir)
    history = load_history(history_dir)
    by_name: dict[str, list[SchemaInfo]] = {}
    for info in history:
        by_name.setdefault(info.name, []).append(info)
    for name in sorted(set(by_name) - set(current)):
        result.problems.append(
            f"{name}: recorded in {history_dir} (v{by_name[name][-1].version}) but "
            f"{schema_dir}/{name}.avsc is gone: readers and writers of its topic would break"
        )
    for name, info in current.items():
        result.problems += missing_docs(info.raw)
        versions = sorted(by_name.get(name, []), key=lambda i: i.version or 0)
        if not versions:
            if record:
                result.recorded.append(_record(info, history_dir, 1))
            else:
                result.problems.append(
                    f"{name}: new schema, no recorded version yet: record it as v1 "
                    "(lastmile schemas check --record) and commit the file"
                )
            continue
        latest = versions[-1]
        if latest.fingerprint == info.fingerprint:
            result.notes.append(f"{name}: unchanged since v{latest.version} ({info.fingerprint})")
            continue
        problems = []
        for old in versions:
            for p in check_compatibility(old.raw, info.raw):
                problems.append(f"{name} v{old.version} -> current: {p}")
        if problems:
            result.problems += problems
            continue
        if record:
            result.recorded.append(_record(info, history_dir, (latest.version or 0) + 1))
        else:
            result.problems.append(
                f"{name}: changed since v{latest.version} (fingerprint {latest.fingerprint} -> "
                f"{info.fingerprint}); it is compatible with every recorded version. If the change "
                f"is meant, record it as v{(latest.version or 0) + 1} "
                "(lastmile schemas check --record) and commit the new file with it"
            )
    return result


def _record(info: SchemaInfo, history_dir: Path, version: int) -> Path:
    history_dir.mkdir(parents=True, exist_ok=True)
    target = history_dir / f"{info.name}.v{version}.avsc"
    assert info.path is not None
    target.write_bytes(info.path.read_bytes())
    return target


def load_reference(
    against: str, repo_dir: str | Path | None = None, run: Callable[..., str] | None = None
) -> dict[str, list[dict]]:
    """Schemas to compare with, by name: a directory of ``*.avsc`` (``<Name>.avsc`` or
    ``<Name>.v<N>.avsc``, also in its ``history/``), or a git ref whose ``schemas/``
    is read with ``git show`` (read-only)."""
    path = Path(against)
    found: dict[str, list[dict]] = {}
    if path.is_dir():
        files = sorted(path.glob("*.avsc")) + sorted((path / "history").glob("*.avsc"))
        for f in files:
            raw = load_schema_file(f)
            found.setdefault(
                _short(raw["name"]) if "name" in raw else f.stem.split(".")[0], []
            ).append(raw)
        return found
    repo_dir = Path(repo_dir) if repo_dir else SCHEMA_DIR.parent
    run = run or _git

    try:
        run(repo_dir, "rev-parse", "--verify", "--quiet", f"{against}^{{commit}}")
    except RuntimeError:
        raise ValueError(
            f"{against!r} is neither a directory nor a git revision of {repo_dir}"
        ) from None
    listing = run(repo_dir, "ls-tree", "-r", "--name-only", against, "--", "schemas/")
    import json

    for name in listing.splitlines():
        if name.endswith(".avsc"):
            raw = json.loads(run(repo_dir, "show", f"{against}:{name}"))
            found.setdefault(_short(raw["name"]), []).append(raw)
    return found


def _git(repo_dir: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(repo_dir), *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip() or f"git {' '.join(args)} failed")
    return proc.stdout


def check_against(
    reference: Mapping[str, Iterable[dict]], schema_dir: str | Path | None = None
) -> CheckResult:
    """Every current schema must be fully compatible with each reference version of it."""
    schema_dir = Path(schema_dir) if schema_dir else SCHEMA_DIR
    result = CheckResult()
    current = _current(schema_dir)
    for name in sorted(set(reference) - set(current)):
        result.problems.append(
            f"{name}: in the reference but not in {schema_dir}: readers of its topic would break"
        )
    for name, info in current.items():
        refs = list(reference.get(name, []))
        if not refs:
            result.notes.append(f"{name}: new (not in the reference)")
            continue
        count = 0
        for raw in refs:
            for p in check_compatibility(raw, info.raw):
                result.problems.append(f"{name}: {p}")
                count += 1
        if not count:
            result.notes.append(f"{name}: compatible with {len(refs)} reference version(s)")
    return result
