"""Rows printed for people (aligned tables) or for programs (JSON), one way for every command."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import click


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """An aligned plain-text table.

    >>> print(format_table([{"name": "fraud", "version": 3}, {"name": "churn", "version": 12}]))
    name   version
    fraud  3
    churn  12
    """
    if not rows:
        return "(none)"
    columns = list(columns or rows[0].keys())
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, default=str)
    return str(value)


def echo_rows(
    rows: Sequence[Mapping[str, Any]], as_json: bool, columns: Sequence[str] | None = None
) -> None:
    """Print rows as a table, or as one JSON array with ``--json``."""
    if as_json:
        click.echo(json.dumps(list(rows), indent=2, default=str))
    else:
        click.echo(format_table(rows, columns))
