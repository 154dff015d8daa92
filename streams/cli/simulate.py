"""``lastmile simulate`` and ``lastmile demo-models``: simulated traffic and the models
it is meant for, from a shell."""

from __future__ import annotations

import sys

import click

from streams.config import settings_from_context
from streams.local.demo_models import DEMO_MODELS, Inverted, demo_model_kind, train_demo_model
from streams.local.simulate import DRIFT_TYPES, STREAMS
from streams.local.traffic_producer import produce_simulation

__all__ = ["simulate_command", "demo_models_command"]


@click.command("simulate")
@click.option("--model", default="fraud", show_default=True, help="Model name in the requests.")
@click.option(
    "--stream",
    type=click.Choice(STREAMS),
    default=None,
    help="Synthetic stream (default: agrawal for fraud, hyperplane for churn, else agrawal).",
)
@click.option(
    "--rate",
    type=float,
    default=100.0,
    show_default=True,
    help="Requests per second; 0 = as fast as possible.",
)
@click.option(
    "--count",
    type=int,
    default=10_000,
    show_default=True,
    help="Requests to send; 0 = until Ctrl-C.",
)
@click.option("--drift-at", type=int, default=None, help="Request index where drift starts.")
@click.option(
    "--drift-kind", type=click.Choice(["abrupt", "gradual"]), default="abrupt", show_default=True
)
@click.option(
    "--drift-type",
    type=click.Choice(DRIFT_TYPES),
    default="concept",
    show_default=True,
    help="feature: shift/scale inputs; concept: change the labels; both: the two at once.",
)
@click.option(
    "--drift-width",
    type=int,
    default=None,
    help="Requests over which gradual drift happens (default: count/10).",
)
@click.option(
    "--drift-features",
    default=None,
    help="Features that drift, comma separated (default: per stream).",
)
@click.option(
    "--label-delay",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds between a request and its outcome; negative = no outcomes.",
)
@click.option(
    "--bad-fraction",
    type=float,
    default=0.0,
    show_default=True,
    help="Share of malformed requests (not JSON, missing fields, wrong types, unknown model).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--entities",
    type=int,
    default=1000,
    show_default=True,
    help="Distinct entity keys (splits are sticky per entity).",
)
@click.pass_context
def simulate_command(
    ctx: click.Context,
    model: str,
    stream: str | None,
    rate: float,
    count: int,
    drift_at: int | None,
    drift_kind: str,
    drift_type: str,
    drift_width: int | None,
    drift_features: str | None,
    label_delay: float,
    bad_fraction: float,
    seed: int,
    entities: int,
) -> None:
    """Produce realistic scoring requests (and their outcomes, later) to Kafka.

    \b
    Examples:
        lastmile simulate --model fraud --rate 500 --count 50000
        lastmile simulate --model fraud --drift-at 20000 --drift-type concept
        lastmile simulate --model churn --drift-at 5000 --drift-type feature \\
            --drift-kind gradual --bad-fraction 0.01 --label-delay 30
    """
    if not 0.0 <= bad_fraction <= 1.0:
        raise click.BadParameter("must be within [0, 1]", param_hint="--bad-fraction")
    settings = settings_from_context(ctx)
    try:
        summary = produce_simulation(
            settings,
            progress=lambda line: click.echo(line, err=True),
            model=model,
            stream=stream,
            count=count or None,
            rate=rate,
            seed=seed,
            drift_at=drift_at,
            drift_kind=drift_kind,
            drift_type=drift_type,
            drift_width=drift_width,
            drift_features=[f.strip() for f in drift_features.split(",")]
            if drift_features
            else None,
            label_delay=None if label_delay < 0 else label_delay,
            bad_fraction=bad_fraction,
            entities=entities,
        )
    except ValueError as err:
        click.echo(f"simulate: {err}", err=True)
        sys.exit(1)
    if summary.interrupted:
        click.echo("simulate: interrupted", err=True)
    click.echo(f"simulate: done: {summary.line()}", err=True)
    click.echo(
        f"{summary.requests} requests and {summary.outcomes} outcomes for model {model!r} "
        f"on {settings.topic_requests} / {settings.topic_outcomes}"
    )
    if summary.failed:
        click.echo(f"simulate: {summary.failed} message(s) were not delivered", err=True)
        sys.exit(1)


@click.command("demo-models")
@click.option(
    "--train", "n", type=int, default=5000, show_default=True, help="Training rows per model."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Register a new version even if the model exists.")
@click.option("--no-publish", is_flag=True, help="Write the registry only (no broker needed).")
@click.option(
    "--broken-challenger",
    is_flag=True,
    help="Also deploy a broken fraud version (its scores turned around) as a 10 %% challenger, "
    "for the operator to shed.",
)
@click.pass_context
def demo_models_command(
    ctx: click.Context, n: int, seed: int, force: bool, no_publish: bool, broken_challenger: bool
) -> None:
    """Train and register the demo models (fraud on Agrawal, churn on Hyperplane) as champions.

    \b
    Example:
        lastmile demo-models && lastmile simulate --model fraud --drift-at 20000
        lastmile demo-models --broken-challenger   # what `lastmile up --demo` deploys
    """
    from streams.models import ControlPlane, ModelNotFoundError, RegistryError

    settings = settings_from_context(ctx)
    try:
        with ControlPlane(settings, publish=not no_publish) as plane:
            for name, stream in DEMO_MODELS.items():
                try:
                    existing = plane.registry.version_numbers(name)
                except ModelNotFoundError:
                    existing = []
                if existing and not force:
                    click.echo(f"{name}: exists (versions {existing}); --force adds a version")
                    continue
                model, rows, scores = train_demo_model(stream, n, seed)
                mv = plane.register_and_publish(
                    name,
                    model,
                    "river",
                    reference_rows=rows,
                    metrics=scores,
                    parent=existing[-1] if existing else None,
                    description=f"lastmile demo: {demo_model_kind(stream)} on {stream}",
                )
                plane.promote(name, mv.version)
                click.echo(
                    f"{name}: version {mv.version} on {stream}, champion "
                    f"(accuracy {scores['accuracy']:.3f}, roc_auc {scores['roc_auc']:.3f})"
                )
                if broken_challenger and name == "fraud":
                    broken = plane.register_and_publish(
                        name,
                        Inverted(model),
                        "river",
                        reference_rows=rows,
                        parent=mv.version,
                        description="lastmile demo: a broken version (scores turned around)",
                    )
                    plane.promote(name, broken.version, alias="challenger")
                    plane.split(name, {"champion": 90, "challenger": 10})
                    click.echo(
                        f"{name}: version {broken.version} is broken on purpose, challenger on "
                        "10 % of the traffic"
                    )
    except RegistryError as err:
        click.echo(f"demo-models: {err}", err=True)
        sys.exit(1)
