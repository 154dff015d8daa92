"""``lastmile models pause`` and ``resume``: the kill switch of a model.

Paused, every scorer answers the model's requests with the fallback (a constant, or
a fallback version) within about a second, as predictions of variant ``fallback``:
nothing is lost, and callers see why. Resume restores the champion, split and shadow.
These commands join the ``models`` group (:mod:`streams.cli.models`).

>>> from click.testing import CliRunner
>>> from streams.cli.models import models
>>> CliRunner().invoke(models, ["pause", "--help"]).output.splitlines()[0]
'Usage: models pause [OPTIONS] NAME'
"""

from __future__ import annotations

import click

from streams.cli.control_changes import JSON_OPTION, control_plane, echo_change
from streams.models import ControlError

__all__ = ["pause_command", "resume_command"]


@click.command("pause")
@click.argument("name")
@click.option(
    "--fallback-score",
    type=float,
    default=None,
    help="The score every request gets (e.g. the base rate). With or without a label.",
)
@click.option(
    "--fallback-label",
    default=None,
    help="The label every request gets (as the model's labels are written, e.g. 0).",
)
@click.option(
    "--fallback-version",
    default=None,
    metavar="N",
    help="A live version that answers instead (not with --fallback-score/--fallback-label).",
)
@JSON_OPTION
@click.pass_context
def pause_command(
    ctx: click.Context,
    name: str,
    fallback_score: float | None,
    fallback_label: str | None,
    fallback_version: str | None,
    as_json: bool,
) -> None:
    """Pull the plug on model NAME: answer every request with a fallback.

    Every scorer switches within about a second. The answers are predictions of
    variant `fallback`: version 0 for a constant, the fallback version otherwise.
    The split and the shadow wait until `lastmile models resume NAME`. Pausing a
    paused model again changes its fallback.

    \b
    Examples:
        lastmile models pause fraud --fallback-score 0.02 --fallback-label 0
        lastmile models pause fraud --fallback-version 2
    """
    if fallback_version is None and fallback_score is None and fallback_label is None:
        raise ControlError(
            "give a fallback: --fallback-score and/or --fallback-label, or --fallback-version N"
        )
    with control_plane(ctx) as plane:
        change = plane.pause(
            name,
            fallback_score=fallback_score,
            fallback_label=fallback_label,
            fallback_version=fallback_version,
        )
    pause = change.state.pause
    assert pause is not None  # pause() either sets it or raises
    echo_change(change, as_json, f"{name}: paused, answering with the fallback {pause.describe()}")


@click.command("resume")
@click.argument("name")
@JSON_OPTION
@click.pass_context
def resume_command(ctx: click.Context, name: str, as_json: bool) -> None:
    """Serve model NAME again as before the pause (champion, split, shadow).

    Resuming a model that is not paused changes nothing.

    \b
    Example:
        lastmile models resume fraud
    """
    with control_plane(ctx) as plane:
        change = plane.resume(name)
    champion = change.state.champion
    message = f"{name}: resumed, champion {f'v{champion}' if champion else 'none'}"
    if not change.changed:
        message = f"{name}: not paused"
    echo_change(change, as_json, message)
