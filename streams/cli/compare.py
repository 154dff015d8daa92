"""``lastmile models compare``: champion against challenger, decided by evidence.

The arms come from the model's state: the champion and the challenger of the current
split (different requests), or, without a challenger, the champion and the shadow (the
same requests, paired by request id). Their joined outcomes are read from ClickHouse (the
``prediction_outcomes`` view), and :mod:`monitors.comparison` gives each arm's metric and
the lift with its always-valid confidence sequence.

:func:`compare_model` is the query and the computation, for other code (a Python client,
the learner's auto policy) to call; the command prints it.

>>> from click.testing import CliRunner
>>> CliRunner().invoke(compare_command, ["--help"]).output.splitlines()[0]
'Usage: compare [OPTIONS] NAME'
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from typing import Any

import click
import numpy as np
import orjson

from monitors.comparison import Comparison, Outcomes, compare_paired, compare_split
from monitors.comparison.metrics import CLASSIFICATION, METRICS, REGRESSION, spec
from monitors.rules import parse_duration
from streams.config import Settings, settings_from_context
from streams.errors import StreamsError
from streams.models import ModelState, label_str

__all__ = ["ComparisonError", "arms_of", "compare_command", "compare_model", "compare_rows"]


class ComparisonError(StreamsError):
    """The model has nothing to compare (no challenger, no shadow), or a bad metric."""


def arms_of(state: ModelState) -> tuple[str, int, int]:
    """``("challenger" | "shadow", champion version, other version)`` of the state.

    >>> s = ModelState("churn", versions={1: {}, 2: {}}, aliases={"champion": 1}, shadow=2)
    >>> arms_of(s)
    ('shadow', 1, 2)
    """
    champion = state.aliases.get("champion")
    if champion is None:
        raise ComparisonError(f"{state.model} has no champion to compare against")
    challenger = state.aliases.get("challenger")
    if challenger is not None:
        return "challenger", int(champion), int(challenger)
    if state.shadow is not None:
        return "shadow", int(champion), int(state.shadow)
    raise ComparisonError(
        f"{state.model} has neither a challenger nor a shadow "
        "(lastmile models promote NAME V --alias challenger, or lastmile models shadow)"
    )


_QUERY = """
SELECT variant, version, request_id, score, label, outcome_label, outcome_value
FROM prediction_outcomes(since = {since:String}, until = {until:String})
WHERE has_outcome AND model = {model:String}
  AND ((variant = 'champion' AND version = {champion:UInt32})
       OR (variant = {other:String} AND version = {other_version:UInt32}))
ORDER BY request_id, variant
"""


def _literal(t: _dt.datetime) -> str:
    # The view's parameters are typed DateTime64: a literal it parses, from a datetime.
    return t.astimezone(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def query_rows(
    client: Any,
    model: str,
    against: str,
    champion: int,
    other: int,
    since: _dt.datetime,
    until: _dt.datetime,
) -> list[dict[str, Any]]:
    """The joined outcomes of both arms' predictions made in ``[since, until)``."""
    result = client.query(
        _QUERY,
        parameters={
            "since": _literal(since),
            "until": _literal(until),
            "model": model,
            "champion": champion,
            "other": against,
            "other_version": other,
        },
    )
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def _outcomes(
    rows: Sequence[Mapping[str, Any]],
    variant: str,
    version: int,
    task: str,
    positive: str,
    multiclass: bool = False,
) -> Outcomes:
    if task == "regression":
        pairs = [
            (r["outcome_value"] if r["outcome_value"] is not None else float(r["outcome_label"]),
             r["score"])
            for r in rows if r["score"] is not None
        ]  # fmt: skip
        y = np.array([p[0] for p in pairs], dtype=float)
        return Outcomes(variant, version, y, np.array([p[1] for p in pairs], dtype=float))
    truth = [
        label_str(r["outcome_label"] if r["outcome_label"] is not None else r["outcome_value"])
        for r in rows
    ]
    if multiclass:
        # Accuracy only: a hit is the predicted label being the observed one.
        hits = np.array([r["label"] == t for r, t in zip(rows, truth, strict=True)], dtype=bool)
        return Outcomes(variant, version, np.ones(len(rows), dtype=bool), hits)
    y = np.array([t == positive for t in truth], dtype=bool)
    has_labels = all(r["label"] is not None for r in rows)
    pred = np.array([r["label"] == positive for r in rows], dtype=bool) if has_labels else None
    scores = [r["score"] for r in rows]
    score = None if any(s is None for s in scores) else np.array(scores, dtype=float)
    return Outcomes(variant, version, y, pred, score)


def compare_rows(
    model: str,
    rows: Sequence[Mapping[str, Any]],
    against: str,
    champion: int,
    other: int,
    task: str = "classification",
    metric: str | None = None,
    positive_label: str = "1",
    labels: int = 2,
    **options: Any,
) -> Comparison:
    """The comparison of joined-outcome rows (as :func:`query_rows` returns them): a
    shadow's rows are paired with the champion's by request id. A classifier of more
    than two `labels` is compared on accuracy only."""
    metric = metric or (REGRESSION if task == "regression" else CLASSIFICATION)
    if spec(metric).task != task:
        raise ComparisonError(f"{metric} is not a metric of {task} (a {model} model)")
    multiclass = task == "classification" and labels > 2
    if multiclass and metric != "accuracy":
        raise ComparisonError(f"{model} has {labels} classes: only accuracy compares them")
    champ = [r for r in rows if r["variant"] == "champion"]
    rest = [r for r in rows if r["variant"] == against]
    if against == "shadow":
        both = {r["request_id"] for r in champ} & {r["request_id"] for r in rest}
        champ = [r for r in champ if r["request_id"] in both]
        rest = [r for r in rest if r["request_id"] in both]
        a = _outcomes(champ, "champion", champion, task, positive_label, multiclass)
        b = _outcomes(rest, against, other, task, positive_label, multiclass)
        return compare_paired(model, a, b, metric, **options)
    a = _outcomes(champ, "champion", champion, task, positive_label, multiclass)
    b = _outcomes(rest, against, other, task, positive_label, multiclass)
    return compare_split(model, a, b, metric, **options)


def compare_model(
    settings: Settings,
    name: str,
    metric: str | None = None,
    alpha: float = 0.05,
    since: float = 86_400.0,
    client: Any = None,
    now: _dt.datetime | None = None,
) -> Comparison:
    """Compare `name`'s champion with its challenger (or shadow) on the predictions of
    the last `since` seconds that have their outcome. `client` is a clickhouse-connect
    client (one from the settings when None)."""
    from streams.models import ControlPlane
    from streams.storage import db

    plane = ControlPlane(settings, publish=False)
    state = plane.state(name)
    against, champion, other = arms_of(state)
    meta = plane.registry.get(name, champion).meta
    task = meta.get("task") or "classification"
    until = now or _dt.datetime.now(_dt.UTC)
    own = client is None
    client = client or db.connect(settings)
    try:
        rows = query_rows(
            client, name, against, champion, other, until - _dt.timedelta(seconds=since), until
        )
    finally:
        if own:
            client.close()
    return compare_rows(
        name, rows, against, champion, other, task, metric,
        positive_label=str(meta.get("positive_label") or "1"),
        labels=len(meta.get("labels") or []) or 2, alpha=alpha,
    )  # fmt: skip


def _number(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def describe(c: Comparison) -> str:
    """The human table: one row per arm, then the lift line and the decision."""
    from streams.cli.tables import format_table

    rows = [
        {"variant": a.variant, "version": a.version, "n": a.n, c.metric: _number(a.value)}
        for a in c.arms
    ]
    on = c.decided_on
    if c.metric == "roc_auc":
        on += " (no sequential test for roc_auc: the decision is on log loss)"
    elif c.decided_on != c.metric:
        on += f" ({c.metric} is its square root)"
    kind = "paired by request" if c.paired else "split"
    return "\n".join(
        [
            f"{c.model}: champion against {c.arms[1].variant} ({kind}), {c.metric}",
            format_table(rows),
            f"lift {_number(c.lift)}  [{_number(c.lower)}, {_number(c.upper)}]  on {on}, "
            f"positive = {c.arms[1].variant} better, always-valid at alpha {c.alpha}",
            f"decision: {c.decision}",
        ]
    )


@click.command("compare")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--metric", type=click.Choice(sorted(METRICS)), help="accuracy/mae by default.")
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.05,
    show_default=True,
    help="Error rate of the decision, however often you look.",
)
@click.option("--since", default="24h", show_default=True, help="Predictions made this recently.")
@click.pass_context
def compare_command(
    ctx: click.Context, name: str, as_json: bool, metric: str | None, alpha: float, since: str
) -> None:
    """Compare NAME's champion with its challenger (or shadow) from joined outcomes.

    \b
    Examples:
        lastmile models compare fraud
        lastmile models compare fraud --metric log_loss --since 2h --json
    """
    try:
        seconds = parse_duration(since)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--since") from None
    from clickhouse_connect.driver.exceptions import ClickHouseError

    from streams.cli.db import _describe_failure

    settings = settings_from_context(ctx)
    try:
        result = compare_model(settings, name, metric, alpha, seconds)
    except ComparisonError as err:
        click.echo(f"lastmile models compare: {err}", err=True)
        ctx.exit(1)
    except ClickHouseError as err:
        click.echo(f"lastmile models compare: {_describe_failure(settings, err)}", err=True)
        ctx.exit(1)
    if as_json:
        click.echo(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(describe(result))
