"""``lastmile models``: register model versions and steer which one answers.

Every change is written to the registry (``<registry>/<model>/state.json``) and
announced on ``models.events``, where running workers pick it up within a second.
Errors are one line on stderr and exit code 1.

>>> from click.testing import CliRunner
>>> CliRunner().invoke(models, ["--help"]).output.splitlines()[0]
'Usage: models [OPTIONS] COMMAND [ARGS]...'
"""

from __future__ import annotations

from typing import Any

import click
import orjson

from streams.cli.compare import compare_command
from streams.cli.control_changes import JSON_OPTION, control_plane, echo_change
from streams.cli.message_text import iso_millis
from streams.cli.model_inputs import is_model_source, read_rows, resolve_python_path
from streams.cli.one_line_errors import OneLineErrors
from streams.cli.pause import pause_command, resume_command
from streams.cli.tables import echo_rows, format_table
from streams.config import ConfigError, settings_from_context
from streams.models import (
    FLAVORS,
    ControlError,
    ModelState,
    ModelVersion,
    Registry,
    RegistryError,
)


class ModelsGroup(OneLineErrors):
    """Turns registry, control-plane and broker errors into one line and exit code 1."""

    prefix = "lastmile models"
    expected = (RegistryError, ConfigError)


def _registry(ctx: click.Context) -> Registry:
    return Registry.from_settings(settings_from_context(ctx))


@click.group(cls=ModelsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--no-publish",
    is_flag=True,
    help="Change the registry on disk only; announce later with `lastmile models publish`.",
)
def models(no_publish: bool) -> None:
    """Register model versions and choose which one answers: champion, challenger, shadow.

    \b
    Example:
        lastmile models register model.pkl --name fraud --flavor river
        lastmile models promote fraud 1
        lastmile models list
    """


def version_rows(state: ModelState, versions: list[ModelVersion]) -> list[dict[str, Any]]:
    """One row per version: its aliases, retired or not, metrics (`models show`, the client)."""
    by_version: dict[int, list[str]] = {}
    for alias, v in state.aliases.items():
        by_version.setdefault(v, []).append(alias)
    if state.shadow is not None:
        by_version.setdefault(state.shadow, []).append("shadow")
    rows = []
    for mv in versions:
        info = state.versions.get(mv.version, {})
        metrics = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in mv.metrics.items()
        )
        rows.append(
            {
                "version": mv.version,
                "flavor": mv.flavor,
                "task": mv.task,
                "aliases": ",".join(sorted(by_version.get(mv.version, []))),
                "retired": "yes" if info.get("retired") else "",
                "runs_code": "yes" if _runs_code(mv) else "",
                "parent": mv.parent,
                "created_at": mv.created_at,
                "registered_by": mv.registered_by,
                "sha256": mv.sha256[:12],
                "metrics": metrics,
            }
        )
    return rows


def _runs_code(mv: ModelVersion) -> bool:
    """Whether loading the version runs code (a pickle, MLflow's pyfunc)."""
    return bool(mv.meta.get("executes_code", mv.flavor in ("river", "python")))


def _split_text(state: ModelState) -> str:
    return ",".join(f"{a}={w:g}" for a, w in state.split.items())


def model_rows(states: list[ModelState]) -> list[dict[str, Any]]:
    """One row per model: champion, challenger, split, shadow (`models list`, the client)."""
    rows = []
    for state in states:
        live = [v for v in state.versions if state.live(v)]
        rows.append(
            {
                "model": state.model,
                "champion": state.aliases.get("champion"),
                "challenger": state.aliases.get("challenger"),
                "split": _split_text(state),
                "shadow": state.shadow,
                "versions": len(state.versions),
                "live": len(live),
                "latest": max(state.versions) if state.versions else None,
                "changes": state.seq,
                "paused": state.pause.describe() if state.pause else "",
            }
        )
    return rows


# -- commands ----------------------------------------------------------------------------


@models.command("register")
@click.argument("artifact")
@click.option("--name", "-n", required=True, help="Model name (letters, digits, _ - .).")
@click.option(
    "--flavor",
    type=click.Choice(FLAVORS),
    default=None,
    help="Inferred from the model or file when not given; when given, checked against it.",
)
@click.option(
    "--features", default=None, help="Feature names (name or name:type), comma separated."
)
@click.option(
    "--reference",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Training sample (JSON lines or CSV): drift baseline, feature types, labels.",
)
@click.option("--parent", type=int, default=None, help="The version this one derives from.")
@click.option("--metrics", default=None, help="Metrics as a JSON object, e.g. '{\"auc\": 0.91}'.")
@click.option("--positive-label", default=None, help="Positive class of a binary classifier.")
@click.option("--description", default=None, help="Free text kept in meta.json.")
@click.option("--promote", "promote_to", default=None, metavar="ALIAS", help="Then promote to it.")
@JSON_OPTION
@click.pass_context
def register_command(
    ctx: click.Context,
    artifact: str,
    name: str,
    flavor: str | None,
    features: str | None,
    reference: str | None,
    parent: int | None,
    metrics: str | None,
    positive_label: str | None,
    description: str | None,
    promote_to: str | None,
    as_json: bool,
) -> None:
    """Register ARTIFACT as the next version of a model.

    ARTIFACT is a model file (a pickle, an XGBoost .json/.ubj, a LightGBM text model, an
    .onnx graph), an MLflow model directory or URI (runs:/..., models:/name/3), or a
    python path `module:attribute` / `file.py:attribute` naming a model object or a
    factory that returns one. The flavor is inferred from it unless --flavor says.

    \b
    Examples:
        lastmile models register model.pkl --name fraud --flavor river --reference train.jsonl
        lastmile models register mymodels.py:build --name churn --features a,b
        lastmile models register booster.txt --name fraud --features f0,f1,f2
        lastmile models register models:/fraud/3 --name fraud
    """
    obj: Any = artifact if is_model_source(artifact) else resolve_python_path(artifact)
    try:
        metric_values = orjson.loads(metrics) if metrics else None
    except orjson.JSONDecodeError as err:
        raise RegistryError(f"--metrics is not a JSON object: {err}") from None
    if metric_values is not None and not isinstance(metric_values, dict):
        raise RegistryError("--metrics is not a JSON object")
    plane = control_plane(ctx)
    with plane:
        mv = plane.register_and_publish(
            name,
            obj,
            flavor,
            features=features,
            reference_rows=read_rows(reference) if reference else None,
            parent=parent,
            metrics=metric_values,
            positive_label=positive_label,
            description=description,
        )
        change = plane.promote(name, mv.version, promote_to) if promote_to else None
    if as_json:
        click.echo(orjson.dumps(mv.meta, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(
        f"{name}: registered version {mv.version} ({mv.flavor}, {mv.task}, sha256 {mv.sha256[:12]})"
    )
    if change is not None:
        click.echo(f"{name}: {promote_to} -> v{mv.version}")


@models.command("list")
@JSON_OPTION
@click.pass_context
def list_command(ctx: click.Context, as_json: bool) -> None:
    """List every model with its champion, challenger, split and shadow.

    \b
    Example:
        lastmile models list --json
    """
    echo_rows(model_rows(control_plane(ctx).states()), as_json)


@models.command("show")
@click.argument("name")
@click.argument("version", required=False)
@JSON_OPTION
@click.pass_context
def show_command(ctx: click.Context, name: str, version: str | None, as_json: bool) -> None:
    """Show a model's versions, or one version's metadata (checking its sha256).

    \b
    Examples:
        lastmile models show fraud
        lastmile models show fraud 3 --json
    """
    plane = control_plane(ctx)
    state = plane.state(name)
    registry = plane.registry
    if version is None:
        rows = version_rows(state, registry.versions(name))
        if as_json:
            click.echo(
                orjson.dumps(
                    {"state": state.to_dict(), "versions": rows}, option=orjson.OPT_INDENT_2
                ).decode()
            )
            return
        click.echo(
            f"{name}: champion {state.aliases.get('champion')}, "
            f"aliases {dict(state.aliases) or '-'}, split {_split_text(state) or '-'}, "
            f"shadow {state.shadow or '-'}"
        )
        if state.pause is not None:
            click.echo(
                f"{name}: PAUSED since {iso_millis(state.pause.since)}, "
                f"every request answered with the fallback {state.pause.describe()} "
                f"(lastmile models resume {name})"
            )
        click.echo(format_table(rows))
        return
    mv = registry.get(name, version)
    try:
        registry.read_artifact(mv)
        integrity = "ok"
    except RegistryError as err:
        integrity = f"MISMATCH: {err}"
    info = state.versions.get(mv.version, {})
    if as_json:
        out = {**mv.meta, "integrity": integrity, "retired": bool(info.get("retired"))}
        out["path"] = str(mv.path)
        click.echo(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
        return
    profile = mv.reference_profile or {}
    fields = [
        ("model", name),
        ("version", mv.version),
        ("flavor", mv.flavor),
        ("runs_code", "yes: loading it runs code" if _runs_code(mv) else "no"),
        ("task", mv.task),
        ("labels", ", ".join(mv.labels)),
        ("positive_label", mv.positive_label),
        ("features", ", ".join(f"{f['name']}:{f['type']}" for f in mv.features)),
        ("aliases", ", ".join(a for a, v in sorted(state.aliases.items()) if v == mv.version)),
        ("shadow", "yes" if state.shadow == mv.version else ""),
        ("retired", "yes" if info.get("retired") else ""),
        ("parent", mv.parent),
        ("metrics", ", ".join(f"{k}={v}" for k, v in mv.metrics.items())),
        ("reference_rows", profile.get("n", profile.get("rows", ""))),
        ("created_at", mv.created_at),
        ("registered_by", mv.registered_by),
        ("sha256", mv.sha256),
        ("integrity", integrity),
        ("artifact", str(mv.artifact)),
    ]
    click.echo(format_table([{"field": k, "value": v} for k, v in fields]))


@models.command("promote")
@click.argument("name")
@click.argument("version")
@click.option("--alias", default="champion", show_default=True, help="Alias to point at VERSION.")
@JSON_OPTION
@click.pass_context
def promote_command(ctx: click.Context, name: str, version: str, alias: str, as_json: bool) -> None:
    """Point an alias (default: champion) at VERSION.

    \b
    Examples:
        lastmile models promote fraud 3
        lastmile models promote fraud 4 --alias challenger
    """
    with control_plane(ctx) as plane:
        change = plane.promote(name, version, alias)
    previous = change.detail.get("previous")
    was = f" (was v{previous})" if previous else ""
    echo_change(change, as_json, f"{name}: {alias} -> v{change.state.aliases[alias]}{was}")


@models.command("split")
@click.argument("name")
@click.argument("weights", nargs=-1)
@click.option("--off", is_flag=True, help="Clear the split: all traffic to the champion.")
@JSON_OPTION
@click.pass_context
def split_command(
    ctx: click.Context, name: str, weights: tuple[str, ...], off: bool, as_json: bool
) -> None:
    """Split traffic between aliases by weight, sticky per entity.

    \b
    Examples:
        lastmile models split fraud champion=90 challenger=10
        lastmile models split fraud --off
    """
    if off == bool(weights):
        raise ControlError("give weights like champion=90 challenger=10, or --off")
    parsed: dict[str, float] = {}
    for item in weights:
        alias, sep, raw = item.partition("=")
        if not sep or not alias:
            raise ControlError(f"split weight {item!r} is not alias=weight")
        try:
            parsed[alias] = float(raw)
        except ValueError:
            raise ControlError(f"split weight {item!r}: {raw!r} is not a number") from None
    with control_plane(ctx) as plane:
        change = plane.split(name, parsed)
    text = _split_text(change.state) or "off (all champion)"
    echo_change(change, as_json, f"{name}: split {text}")


@models.command("shadow")
@click.argument("name")
@click.argument("version", required=False)
@click.option("--off", is_flag=True, help="Stop shadow scoring.")
@JSON_OPTION
@click.pass_context
def shadow_command(
    ctx: click.Context, name: str, version: str | None, off: bool, as_json: bool
) -> None:
    """Score VERSION in shadow on every request (its answers are recorded, never used).

    \b
    Examples:
        lastmile models shadow fraud 4
        lastmile models shadow fraud --off
    """
    if off == (version is not None):
        raise ControlError("give a VERSION to shadow, or --off")
    with control_plane(ctx) as plane:
        change = plane.shadow(name, None if off else version)
    shadow = change.state.shadow
    echo_change(change, as_json, f"{name}: shadow {'v' + str(shadow) if shadow else 'off'}")


@models.command("rollback")
@click.argument("name")
@click.option("--alias", default="champion", show_default=True, help="Alias to roll back.")
@JSON_OPTION
@click.pass_context
def rollback_command(ctx: click.Context, name: str, alias: str, as_json: bool) -> None:
    """Point an alias back at the version it pointed at before.

    \b
    Example:
        lastmile models rollback fraud
    """
    with control_plane(ctx) as plane:
        change = plane.rollback(name, alias)
    echo_change(
        change,
        as_json,
        f"{name}: {alias} -> v{change.detail['version']} (rolled back from v"
        f"{change.detail['previous']})",
    )


@models.command("retire")
@click.argument("name")
@click.argument("version")
@click.option("--force", is_flag=True, help="Retire it even if it is the champion.")
@JSON_OPTION
@click.pass_context
def retire_command(ctx: click.Context, name: str, version: str, force: bool, as_json: bool) -> None:
    """Take VERSION out of service (its files stay for audits).

    \b
    Example:
        lastmile models retire fraud 2
    """
    with control_plane(ctx) as plane:
        change = plane.retire(name, version, force=force)
    removed = change.detail.get("aliases_removed")
    extra = f" (removed aliases: {removed})" if removed else ""
    echo_change(change, as_json, f"{name}: version {version.lstrip('v')} retired{extra}")


@models.command("publish")
@click.argument("name", required=False)
@JSON_OPTION
@click.pass_context
def publish_command(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """Announce the current state of one model, or all, on models.events again.

    The embedded broker keeps topics in memory: after it restarts, run this so
    workers learn every model's state again. Workers ignore states they already have.

    \b
    Example:
        lastmile models publish
    """
    with control_plane(ctx) as plane:
        changes = plane.announce(name)
    if as_json:
        click.echo(orjson.dumps([c.event for c in changes], option=orjson.OPT_INDENT_2).decode())
        return
    for change in changes:
        state = change.state
        click.echo(f"{state.model}: announced (champion {state.aliases.get('champion')})")
    if not changes:
        click.echo("no models")


@models.command("verify")
@click.argument("name", required=False)
@JSON_OPTION
@click.pass_context
def verify_command(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """Check every artifact's sha256 against its meta.json; exit 1 on any mismatch.

    \b
    Example:
        lastmile models verify fraud
    """
    registry = _registry(ctx)
    rows = []
    for model in [name] if name else registry.models():
        for mv in registry.versions(model):
            try:
                registry.read_artifact(mv)
                status = "ok"
            except RegistryError as err:
                status = str(err)
            rows.append(
                {"model": model, "version": mv.version, "sha256": mv.sha256[:12], "status": status}
            )
    echo_rows(rows, as_json)
    bad = [r for r in rows if r["status"] != "ok"]
    if bad:
        raise RegistryError(f"{len(bad)} artifact(s) failed verification")


# Commands kept in modules of their own: compare (streams/cli/compare.py), the kill
# switch (streams/cli/pause.py).
models.add_command(compare_command)
models.add_command(pause_command)
models.add_command(resume_command)
