"""What every ``lastmile models`` command that changes the control plane shares: the
plane it writes through (``--no-publish`` honoured wherever the group is mounted), the
``--json`` flag, and how a change is told.

>>> import click
>>> @click.command()
... @JSON_OPTION
... def show(as_json: bool) -> None:
...     click.echo(as_json)
>>> from click.testing import CliRunner
>>> CliRunner().invoke(show, ["--json"]).output
'True\\n'
"""

from __future__ import annotations

import click
import orjson

from streams.config import settings_from_context
from streams.models import ControlEvent, ControlPlane

__all__ = ["JSON_OPTION", "control_plane", "echo_change"]

JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def control_plane(ctx: click.Context) -> ControlPlane:
    """The control plane of the command's settings; it only writes the registry on disk
    when ``--no-publish`` is set on any group above the command."""
    no_publish = False
    node: click.Context | None = ctx
    while node is not None:  # the flag lives on the models group, wherever it is mounted
        no_publish = no_publish or bool(node.params.get("no_publish"))
        node = node.parent
    return ControlPlane(settings_from_context(ctx), publish=not no_publish)


def echo_change(change: ControlEvent, as_json: bool, message: str) -> None:
    """Print the change: its event as JSON, or ``message`` saying whether it changed
    anything and whether it was announced."""
    if as_json:
        click.echo(orjson.dumps(change.event, option=orjson.OPT_INDENT_2).decode())
        return
    if not change.changed:
        message += " (nothing to change)"
    elif not change.published:
        message += " (not published: --no-publish)"
    click.echo(message)
