"""``lastmile schemas``: look at the Avro schemas and check that changes to them are safe."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from schemas.catalog import SCHEMA_DIR, TOPIC_SCHEMAS, SchemaSet
from schemas.evolution import check_against, check_repository, load_reference


@click.group("schemas")
def schemas() -> None:
    """Avro schemas of lastmile's topics (schemas/*.avsc) and their evolution.

    \b
    Examples:
      lastmile schemas list
      lastmile schemas check                 # against schemas/history (the recorded versions)
      lastmile schemas check --record        # record a deliberate, compatible change
      lastmile schemas check --against main  # against a git revision (or a directory)
    """


@schemas.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per schema.")
def list_schemas(as_json: bool) -> None:
    """Each schema with its topic role, fingerprint and recorded version."""
    known = SchemaSet.load()
    roles = {v: k for k, v in TOPIC_SCHEMAS.items()}
    for name, info in known.current.items():
        row = {
            "schema": info.full_name,
            "topic_role": roles.get(name),
            "fingerprint": info.fingerprint,
            "version": info.version,
            "older_versions": [
                h.version for h in known.versions(name) if h.fingerprint != info.fingerprint
            ],
        }
        if as_json:
            click.echo(json.dumps(row))
        else:
            version = f"v{info.version}" if info.version else "unrecorded"
            click.echo(
                f"{info.full_name:32} {roles.get(name) or '-':13} {info.fingerprint}  {version}"
            )


@schemas.command("check")
@click.option(
    "--against",
    metavar="DIR|GIT-REF",
    help="Compare with the schemas in a directory or at a git revision instead of "
    "schemas/history (full compatibility both ways).",
)
@click.option(
    "--record",
    is_flag=True,
    help="Record changed (compatible) or new schemas as their next version in "
    "schemas/history, instead of failing. Commit the new files.",
)
@click.option(
    "--schema-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory of the current schemas (default: the installed schemas/).",
)
@click.option(
    "--history-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory of the recorded versions (default: <schema-dir>/history).",
)
@click.option("--quiet", "-q", is_flag=True, help="Print problems only.")
def check(
    against: str | None,
    record: bool,
    schema_dir: Path | None,
    history_dir: Path | None,
    quiet: bool,
) -> None:
    """Fail (exit 1) when the schemas would break readers or writers of older versions.

    Every schema must be FULLY compatible with each recorded version of it: new
    readers read old data, old readers read new data. Add fields only with
    defaults; never change a type, rename, or remove a field without a default.
    A compatible change still fails until it is recorded (--record), so that no
    schema changes without someone deciding it should.

    \b
    Example: add an optional field to ScoringRequest
      1. edit schemas/ScoringRequest.avsc:
         {"name": "channel", "type": ["null", "string"], "default": null, "doc": "..."}
      2. lastmile schemas check            -> "ScoringRequest: changed since v1 ... record it"
      3. lastmile schemas check --record   -> writes schemas/history/ScoringRequest.v2.avsc
      4. commit both files
    """
    schema_dir = schema_dir or SCHEMA_DIR
    try:
        if against:
            result = check_against(load_reference(against, repo_dir=schema_dir.parent), schema_dir)
        else:
            result = check_repository(schema_dir, history_dir, record=record)
    except (ValueError, OSError) as err:
        raise click.ClickException(str(err)) from None
    if not quiet:
        for note in result.notes:
            click.echo(f"ok    {note}")
    for path in result.recorded:
        click.echo(f"recorded {path}")
    for problem in result.problems:
        click.echo(f"FAIL  {problem}", err=True)
    if result.problems:
        click.echo(
            f"{len(result.problems)} problem(s): see above. Schema rules: schemas/evolution.py.",
            err=True,
        )
        sys.exit(1)
