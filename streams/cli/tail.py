"""``lastmile tail``: the messages of a topic, decoded, as JSON lines."""

from __future__ import annotations

from collections import deque
from typing import Any

import click

from schemas import Codec, DecodeError
from streams.cli.message_text import dumps_json, resolve_topic, schema_name_for
from streams.cli.topic_reader import read_topic
from streams.config import settings_from_context

__all__ = ["tail"]


def _render(codec: Codec, msg: Any, schema_name: str | None, meta: bool) -> str:
    value = msg.value()
    headers = msg.headers()
    name = schema_name
    if name is None and headers:
        fingerprints = dict(headers)
        fp = fingerprints.get("lastmile.fingerprint")
        known = codec.schemas.by_fingerprint.get(fp.decode("ascii", "replace")) if fp else None
        name = known.name if known else None
    out: dict[str, Any]
    if name is None:
        out = {"value": value}
    else:
        try:
            out = codec.decode(value, headers, name)
        except DecodeError as err:
            out = {"error": err.reason, "stage": err.stage, "value": value}
    if meta:
        key = msg.key()
        kind, ts = msg.timestamp()
        return dumps_json(
            {
                "topic": msg.topic(),
                "partition": msg.partition(),
                "offset": msg.offset(),
                "timestamp": ts if kind else None,
                "key": key,
                "headers": [[k, v] for k, v in headers or []],
                "value": out,
            }
        )
    return dumps_json(out)


@click.command("tail")
@click.argument("topic_name", metavar="ROLE|TOPIC")
@click.option(
    "--from-beginning", is_flag=True, help="Start at the first message (default: the last --count)."
)
@click.option(
    "--count",
    "-n",
    type=click.IntRange(min=1),
    default=None,
    help="How many messages: the last N (default 10), or the first N with "
    "--from-beginning (default: all).",
)
@click.option(
    "--follow/--no-follow", "-f", default=False, help="Keep printing new messages (Ctrl-C stops)."
)
@click.option(
    "--meta",
    is_flag=True,
    help="Wrap each value with topic, partition, offset, timestamp, key and headers.",
)
@click.option(
    "--schema", metavar="NAME", help="Schema of the values when the topic is not one of lastmile's."
)
@click.option("--idle-timeout", type=float, default=None, hidden=True)
@click.pass_context
def tail(
    ctx: click.Context,
    topic_name: str,
    from_beginning: bool,
    count: int | None,
    follow: bool,
    meta: bool,
    schema: str | None,
    idle_timeout: float | None,
) -> None:
    """Print a topic's messages, decoded, as JSON lines.

    Values that do not decode are printed as {"error": ..., "value": ...} and the
    tail goes on. Bytes print as text when UTF-8, else "base64:...".

    \b
    Examples:
      lastmile tail predictions                    # the last 10 messages
      lastmile tail requests --from-beginning -n 5 --meta
      lastmile tail scoring.outcomes --follow
    """
    settings = settings_from_context(ctx)
    topic, role = resolve_topic(settings, topic_name)
    codec = Codec.from_settings(settings)
    schema_name = schema_name_for(role, schema)
    last = None if from_beginning else (count or 10)
    limit = count if from_beginning else None
    recent: deque[Any] = deque(maxlen=last or 1)
    live = from_beginning
    printed = 0
    try:
        for msg in read_topic(
            settings,
            topic,
            from_beginning=from_beginning,
            last=last,
            follow=follow,
            idle_timeout=idle_timeout,
        ):
            if msg is None:  # caught up: print the last N, then whatever arrives
                if not live:
                    for old in sorted(
                        recent, key=lambda m: (m.timestamp()[1], m.partition(), m.offset())
                    ):
                        click.echo(_render(codec, old, schema_name, meta))
                    live = True
                continue
            if not live:
                recent.append(msg)
                continue
            click.echo(_render(codec, msg, schema_name, meta))
            printed += 1
            if limit is not None and printed >= limit:
                break
    except KeyboardInterrupt:
        pass
