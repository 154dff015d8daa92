"""``lastmile alerts``: what the monitor has raised, and a test alert end to end.

``lastmile alerts list`` reads ``monitor.alerts`` from its start (committed records only)
and prints every firing and resolution, oldest first; ``--firing`` keeps the alerts whose
latest state is firing. ``lastmile alerts test`` sends a test alert through the sinks the
monitor uses (a log line, ``LASTMILE_MONITOR_WEBHOOKS``, ``LASTMILE_MONITOR_SLACK_WEBHOOKS``,
plus any ``--webhook``) and to the topic, then resolves it, and exits 1 if a delivery failed.

>>> from click.testing import CliRunner
>>> CliRunner().invoke(alerts_group, ["--help"]).output.splitlines()[0]
'Usage: alerts [OPTIONS] COMMAND [ARGS]...'
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Mapping
from typing import Any

import click

from monitors.events import AlertEvent
from streams.cli.one_line_errors import OneLineErrors
from streams.cli.tables import echo_rows
from streams.config import ConfigError, Settings, settings_from_context

COLUMNS = [
    "time", "state", "severity", "model", "version", "kind", "rule", "metric", "feature",
    "value", "threshold",
]  # fmt: skip


class AlertsGroup(OneLineErrors):
    """Turns configuration and broker errors into one line and exit code 1."""

    prefix = "lastmile alerts"
    expected = (ConfigError, ValueError)  # ValueError: a LASTMILE_MONITOR_* value


def read_alerts(settings: Settings, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Every committed Alert record of ``settings.topic_alerts``, oldest first (by the
    alert's time, then partition and offset). A record that does not decode is skipped
    with a line on stderr.
    """
    from schemas import Codec, DecodeError
    from streams.kafka.topics import read_to_end

    topic = settings.topic_alerts
    codec = Codec.from_settings(settings)
    out: list[tuple[int, int, int, dict[str, Any]]] = []
    for msg in read_to_end(settings, topic, timeout=timeout):
        try:
            record = codec.decode(msg.value(), msg.headers(), "Alert", topic)
        except DecodeError as e:
            click.echo(f"skipping {topic}/{msg.partition()}@{msg.offset()}: {e}", err=True)
            continue
        out.append((record["ts"], msg.partition(), msg.offset(), record))
    out.sort(key=lambda t: t[:3])
    return [r for *_, r in out]


def firing_now(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The alerts whose latest record is a firing, oldest first.

    >>> firing_now([{"alert_id": "a", "state": "firing"}, {"alert_id": "b", "state": "firing"},
    ...             {"alert_id": "a", "state": "resolved"}])
    [{'alert_id': 'b', 'state': 'firing'}]
    """
    latest: dict[str, dict[str, Any]] = {}
    for r in records:
        latest.pop(r["alert_id"], None)  # keep insertion order = order of the latest record
        latest[r["alert_id"]] = r
    return [r for r in latest.values() if r["state"] == "firing"]


def _row(record: Mapping[str, Any]) -> dict[str, Any]:
    when = _dt.datetime.fromtimestamp(record["ts"] / 1000.0, tz=_dt.UTC)
    return {
        "time": when.strftime("%Y-%m-%d %H:%M:%S"),
        **{k: record.get(k) for k in COLUMNS if k != "time"},
        "alert_id": record["alert_id"],
        "message": record.get("message", ""),
    }


@click.group("alerts", cls=AlertsGroup, context_settings={"help_option_names": ["-h", "--help"]})
def alerts_group() -> None:
    """The monitor's alerts: list them, or send a test one through every sink.

    \b
    Examples:
        lastmile alerts list --firing
        lastmile alerts test --webhook https://hooks.example.com/lastmile
    """


@alerts_group.command("list")
@click.option("--firing", is_flag=True, help="Only alerts whose latest state is firing.")
@click.option("--model", default=None, help="Only this model's alerts.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_command(ctx: click.Context, firing: bool, model: str | None, as_json: bool) -> None:
    """Alerts from monitor.alerts, oldest first (times are window ends, UTC)."""
    records = read_alerts(settings_from_context(ctx))
    if model is not None:
        records = [r for r in records if r["model"] == model]
    if firing:
        records = firing_now(records)
    rows = [_row(r) for r in records]
    if as_json:
        echo_rows(rows, True)
    else:
        echo_rows(rows, False, COLUMNS)


def sample_alert(model: str, state: str, ts: float) -> AlertEvent:
    """The alert ``lastmile alerts test`` sends (severity info, rule ``test_alert``)."""
    return AlertEvent(
        model=model,
        version="*",
        kind="quality",
        metric="test",
        feature=None,
        value=1.0,
        threshold=0.0,
        severity="info",
        state=state,  # type: ignore[arg-type]
        rule="test_alert",
        ts=ts,
    )


@alerts_group.command("test")
@click.option(
    "--webhook",
    "webhooks",
    multiple=True,
    metavar="URL",
    help="Also POST the alert to this URL (repeatable), besides LASTMILE_MONITOR_WEBHOOKS.",
)
@click.option("--model", default="lastmile-test", show_default=True, help="Model to name.")
@click.option("--keep-firing", is_flag=True, help="Do not send the resolution after it.")
@click.option("--no-topic", is_flag=True, help="Do not produce to the alerts topic.")
@click.pass_context
def fire_test_command(
    ctx: click.Context, webhooks: tuple[str, ...], model: str, keep_firing: bool, no_topic: bool
) -> None:
    """Fire a test alert through the monitor's sinks and the alerts topic.

    Every sink gets the firing alert (and its resolution, unless --keep-firing) at once,
    without the retries the monitor would make; exits 1 when any delivery failed.
    """
    from monitors.notify import WebhookSink
    from streams.records import alert_to_avro
    from streams.roles.monitor.settings import alert_sinks

    settings = settings_from_context(ctx)
    sinks = alert_sinks(settings.monitor, webhooks)
    now = time.time()
    alerts = [sample_alert(model, "firing", now)]
    if not keep_firing:
        alerts.append(sample_alert(model, "resolved", now + 0.001))
    failed = False
    for sink in sinks:
        name = type(sink).__name__
        where = f"{name} {sink.url}" if isinstance(sink, WebhookSink) else name
        try:
            for alert in alerts:
                sink.send(alert)
        except Exception as err:  # a notifier's failure is reported per sink, the others still run
            failed = True
            click.echo(f"{where}: failed: {err}", err=True)
        else:
            click.echo(f"{where}: delivered {len(alerts)}")
        finally:
            close = getattr(sink, "close", None)
            if close is not None:
                close()
    if not no_topic:
        from confluent_kafka import KafkaException, Producer

        from schemas import Codec

        codec = Codec.from_settings(settings)
        producer = Producer(settings.producer_config())
        errors: list[str] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(str(err))

        for alert in alerts:
            value, headers = codec.encode("Alert", alert_to_avro(alert), settings.topic_alerts)
            producer.produce(
                settings.topic_alerts, value, alert.model, headers=headers, on_delivery=delivered
            )
        remaining = producer.flush(30)
        if remaining or errors:
            raise KafkaException(errors[0] if errors else f"{remaining} alerts not delivered")
        click.echo(f"{settings.topic_alerts}: produced {len(alerts)}")
    if failed:
        ctx.exit(1)
