"""``lastmile actions``: what the operator did about alerts, and how to undo it.

``lastmile actions list`` reads the actions topic from its start (committed records
only): every decision the operator made about a firing alert whose rule has an action,
``done``, ``would`` (dry-run) or ``skipped`` with the reason. ``lastmile actions undo ID``
undoes one ``done`` action with one command: a rollback is promoted back, a shed split
restored, a pause resumed, a promotion rolled back. The undo is itself a change with
provenance (``undoes``) and an Action record of kind ``undo``; undoing twice changes
nothing the second time.

>>> from click.testing import CliRunner
>>> CliRunner().invoke(actions_group, ["--help"]).output.splitlines()[0]
'Usage: actions [OPTIONS] COMMAND [ARGS]...'
>>> since_ms("2026-12-01", now_ms=0), since_ms("1h", now_ms=7_200_000)
(1796083200000, 3600000)
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Mapping
from typing import Any

import click

from streams.cli.one_line_errors import OneLineErrors
from streams.cli.tables import echo_rows
from streams.config import ConfigError, Settings, settings_from_context
from streams.models import ControlError, ControlEvent, ControlPlane, RegistryError

COLUMNS = [
    "time", "model", "version", "kind", "mode", "outcome", "reason", "rule", "message",
    "action_id",
]  # fmt: skip


class ActionsGroup(OneLineErrors):
    """Turns configuration, registry and broker errors into one line and exit code 1."""

    prefix = "lastmile actions"
    expected = (ConfigError, RegistryError)


def since_ms(text: str, now_ms: int | None = None) -> int:
    """Epoch ms from a duration back from now (``30m``, ``2h``, ``1d``) or an ISO date/time."""
    from monitors.rules import parse_duration

    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    try:
        return now_ms - int(parse_duration(text) * 1000)
    except ValueError:
        pass
    try:
        when = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither a duration (30m, 2h, 1d) nor a date (2026-12-01)",
            param_hint="--since",
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.UTC)
    return int(when.timestamp() * 1000)


def _row(record: Mapping[str, Any]) -> dict[str, Any]:
    when = _dt.datetime.fromtimestamp(record["ts"] / 1000.0, tz=_dt.UTC)
    return {"time": when.strftime("%Y-%m-%d %H:%M:%S"), **record}


@click.group("actions", cls=ActionsGroup, context_settings={"help_option_names": ["-h", "--help"]})
def actions_group() -> None:
    """What the operator did about alerts (rules with an action), and undoing it.

    \b
    Examples:
        lastmile actions list --model fraud --since 1d
        lastmile actions undo 3f2a9c0d1e4b5a6c
    """


@actions_group.command("list")
@click.option("--model", default=None, help="Only this model's actions.")
@click.option("--since", default=None, help="Only since then: 30m, 2h, 1d, or a date.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_command(ctx: click.Context, model: str | None, since: str | None, as_json: bool) -> None:
    """Every decision of the operator, oldest first (times UTC)."""
    from streams.roles.operator import read_actions

    records = read_actions(settings_from_context(ctx))
    if model is not None:
        records = [r for r in records if r["model"] == model]
    if since is not None:
        start = since_ms(since)
        records = [r for r in records if r["ts"] >= start]
    rows = [_row(r) for r in records]
    echo_rows(rows, as_json, None if as_json else COLUMNS)


def undo_change(plane: ControlPlane, record: Mapping[str, Any]) -> ControlEvent:
    """Undo one done action through ``plane``; the change carries ``undoes``."""
    model, kind = record["model"], record["kind"]
    prov = {"action_id": f"undo-{record['action_id']}", "undoes": record["action_id"]}
    if kind == "rollback":
        if record.get("version_before") is None:
            raise ControlError(f"action {record['action_id']} does not say what it rolled back")
        return plane.promote(model, record["version_before"], provenance=prov)
    if kind == "shed":
        weights = dict(item.partition("=")[::2] for item in record["split_before"].split(","))
        return plane.split(model, {a: float(w) for a, w in weights.items()}, provenance=prov)
    if kind == "promote":
        return plane.rollback(model, provenance=prov)
    if kind == "pause" and hasattr(plane, "resume"):
        return plane.resume(model, provenance=prov)
    raise ControlError(f"a {kind} action cannot be undone", model=model)


def _publish(settings: Settings, record: dict[str, Any]) -> None:
    from confluent_kafka import KafkaException, Producer

    from schemas import Codec

    topic = settings.topic_actions
    value, headers = Codec.from_settings(settings).encode("Action", record, topic)
    producer = Producer(settings.producer_config())
    producer.produce(topic, value, record["model"].encode(), headers=headers)
    if producer.flush(30):
        raise KafkaException(f"the undo record was not delivered to {topic}")


@actions_group.command("undo")
@click.argument("action_id")
@click.pass_context
def undo_command(ctx: click.Context, action_id: str) -> None:
    """Undo ACTION_ID: rollback -> promote back, shed -> restore the split, pause -> resume,
    promote -> rollback. Only a ``done`` action can be undone."""
    from streams.models import default_actor
    from streams.roles.operator import read_actions

    settings = settings_from_context(ctx)
    records = read_actions(settings)
    record = next((r for r in records if r["action_id"] == action_id), None)
    if record is None:
        raise ControlError(f"no action {action_id!r} on {settings.topic_actions}")
    if record["outcome"] != "done" or record["kind"] == "undo":
        raise ControlError(
            f"action {action_id} is {record['kind']} {record['outcome']}: nothing to undo"
        )
    actor = default_actor()
    with ControlPlane(settings, actor=actor) as plane:
        change = undo_change(plane, record)
    undo = {
        **record,
        "action_id": f"undo-{action_id}",
        "kind": "undo",
        "outcome": "done" if change.changed else "skipped",
        "reason": "" if change.changed else "nothing_to_change",
        "version_before": record["version_after"],
        "version_after": record["version_before"],
        "split_before": record["split_after"],
        "split_after": record["split_before"],
        "ts": int(time.time() * 1000),
        "actor": actor,
        "message": f"undid {action_id}: {record['message']}",
    }
    if change.changed and change.kind != "announced":
        _publish(settings, undo)
        click.echo(f"{record['model']}: undid {action_id} ({record['message']})")
    else:
        click.echo(f"{record['model']}: {action_id} is undone already (nothing to change)")
