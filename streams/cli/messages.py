"""``lastmile produce``, ``lastmile tail`` and ``lastmile dlq``: messages in and out by hand.

Topics are named by role (``requests``, ``predictions``, ``outcomes``,
``model_events``, ``metrics``, ``alerts``, ``dlq``) or by their full name; settings
come from ``load_settings()`` (``LASTMILE_*`` variables, ``lastmile.toml``) unless
the calling group put a ``Settings`` in ``ctx.obj``.

JSON output: one object per line; bytes are shown as text when they are UTF-8,
else as ``"base64:<...>"``; times stay epoch milliseconds, except in ``dlq tail``
which adds ISO-8601 renderings for people.
"""

from __future__ import annotations

import base64
import datetime as _dt
import re
import sys
import time
import uuid
from collections import deque
from collections.abc import Iterator
from typing import IO, Any

import click
import orjson

from schemas import TOPIC_SCHEMAS, Codec, DecodeError
from streams.config import Settings, settings_from_context
from streams.kafka.deadletters import HEADER_REPLAYS, HEADER_TRUNCATED

__all__ = ["produce", "tail", "dlq", "resolve_topic", "read_topic"]

#: Which field keys a message of each role, by default (the first one that is set).
DEFAULT_KEY_FIELDS = {
    "requests": ("entity_id", "request_id"),
    "predictions": ("request_id",),
    "outcomes": ("request_id",),
    "model_events": ("model",),
    "metrics": ("model",),
    "alerts": ("model",),
    "dlq": (),
}


def resolve_topic(settings: Settings, name: str) -> tuple[str, str | None]:
    """(topic name, role or None) for a role or a topic name."""
    topics = settings.topics
    if name in topics:
        return topics[name], name
    for role, topic in topics.items():
        if topic == name:
            return topic, role
    return name, None


def _schema_name(role: str | None, schema: str | None) -> str | None:
    if schema:
        return schema
    return TOPIC_SCHEMAS.get(role) if role else None


def _bytes_text(value: bytes | None) -> tuple[str | None, str | None]:
    """(shown, encoding): UTF-8 text when it is, else base64."""
    if value is None:
        return None, None
    try:
        return value.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(value).decode("ascii"), "base64"


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value)
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(value).decode("ascii")
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()


def _iso(millis: int | None) -> str | None:
    if millis is None:
        return None
    try:
        return (
            _dt.datetime.fromtimestamp(millis / 1000, _dt.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
    except (OverflowError, OSError, ValueError):
        return None


# --------------------------------------------------------------------------- produce


@click.command("produce")
@click.option(
    "--topic",
    "-t",
    "topic_name",
    required=True,
    metavar="ROLE|TOPIC",
    help="Role (requests, outcomes, ...) or topic name.",
)
@click.argument("file", type=click.File("rb"), default="-")
@click.option(
    "--json",
    "raw_json",
    is_flag=True,
    help="Send each line as it is (JSON value, no headers) instead of Avro. Only the "
    "requests and outcomes topics accept JSON.",
)
@click.option(
    "--key-field",
    metavar="FIELD",
    help="Field whose value keys each message (default: entity_id or request_id for "
    "requests, request_id for predictions/outcomes, model for the others).",
)
@click.option(
    "--schema", metavar="NAME", help="Schema of the lines when the topic is not one of lastmile's."
)
@click.option(
    "--no-validate",
    is_flag=True,
    help="With --json: send lines without checking them (to exercise the dead-letter path).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress, only the summary and bad lines.")
@click.pass_context
def produce(
    ctx: click.Context,
    topic_name: str,
    file: IO[bytes],
    raw_json: bool,
    key_field: str | None,
    schema: str | None,
    no_validate: bool,
    quiet: bool,
) -> None:
    """Send JSON lines from FILE (default: stdin) to a topic.

    Each line is one JSON object of the topic's schema (schemas/*.avsc). It is
    validated and encoded as Avro with the lastmile.schema/lastmile.fingerprint
    headers (or Schema Registry framing when LASTMILE_SCHEMA_REGISTRY_URL is set).
    Times may be epoch milliseconds or ISO-8601 strings with a zone. Bad lines are
    reported with their line number and not sent; the others are. Exit status 1
    when any line was bad or not delivered.

    \b
    Example:
      echo '{"request_id": "r1", "model": "churn", "event_time": "2024-05-01T12:00:00Z",
             "features": {"age": 42, "plan": "gold"}}' | lastmile produce --topic requests
      lastmile produce --topic outcomes labels.jsonl
      lastmile produce --topic requests --json --no-validate junk.jsonl   # test the DLQ
    """
    from confluent_kafka import Producer

    settings = settings_from_context(ctx)
    topic, role = resolve_topic(settings, topic_name)
    schema_name = _schema_name(role, schema)
    if schema_name is None and not (raw_json and no_validate):
        raise click.UsageError(
            f"{topic!r} is not one of lastmile's topics ({', '.join(settings.topics)}): say which "
            "schema its lines have with --schema NAME"
        )
    codec = Codec.from_settings(settings)
    if raw_json and schema_name and not codec.accepts_json(schema_name) and not no_validate:
        raise click.UsageError(f"{topic} carries {schema_name}, which is never JSON: drop --json")
    key_fields = (key_field,) if key_field else DEFAULT_KEY_FIELDS.get(role or "", ())

    producer = Producer(settings.producer_config())
    state = {"failed": 0, "first_error": None}

    def delivered(err: Any, msg: Any) -> None:
        if err is not None:
            state["failed"] += 1
            state["first_error"] = state["first_error"] or str(err)

    sent = bad = 0
    started = last_report = time.monotonic()
    for number, line in enumerate(file, 1):
        text = line.strip()
        if not text:
            continue
        try:
            if raw_json and no_validate:
                value, headers = text, []
                try:
                    obj = orjson.loads(text)
                except orjson.JSONDecodeError:
                    obj = None
                record = obj if isinstance(obj, dict) else {}
            else:
                record = codec.from_json(schema_name, text)
                if raw_json:
                    value, headers = text, []
                else:
                    value, headers = codec.encode(schema_name, record, topic=topic)
        except DecodeError as err:
            bad += 1
            click.echo(f"line {number}: {err.reason}", err=True)
            continue
        key = None
        for name in key_fields:
            if record.get(name) is not None:
                key = str(record[name]).encode()
                break
        while True:
            try:
                producer.produce(
                    topic, value=value, key=key, headers=headers, on_delivery=delivered
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        sent += 1
        now = time.monotonic()
        if not quiet and now - last_report >= 2.0:
            click.echo(
                f"... {sent:,} sent, {bad:,} bad lines ({sent / (now - started):,.0f}/s)", err=True
            )
            last_report = now
    remaining = producer.flush(30)
    elapsed = time.monotonic() - started
    failed = state["failed"] + remaining
    fmt = (
        "JSON"
        if raw_json
        else ("Avro (schema registry)" if settings.schema_registry_url else "Avro")
    )
    summary = f"sent {sent - failed:,} message(s) to {topic} as {fmt}"
    if bad:
        summary += f"; {bad:,} bad line(s) not sent"
    if failed:
        summary += f"; {failed:,} not delivered ({state['first_error'] or 'timed out'})"
    click.echo(f"{summary} in {elapsed:.1f} s", err=True)
    if bad or failed:
        sys.exit(1)


# --------------------------------------------------------------------------- reading


def read_topic(
    settings: Settings,
    topic: str,
    *,
    from_beginning: bool = False,
    last: int | None = None,
    follow: bool = False,
    idle_timeout: float | None = None,
    poll_timeout: float = 0.5,
    consumer: Any = None,
) -> Iterator[Any]:
    """Messages of a topic without a consumer group (explicit partition assignment).

    Starts at the beginning (``from_beginning``), about ``last`` messages before the
    end of each partition, or at the end. Yields ``None`` once every partition has
    been read to its end (the "caught up" mark); without ``follow`` it stops there,
    with ``follow`` it keeps yielding new messages. ``idle_timeout`` seconds without
    any message end it too (default without follow: 10 s, a safety net).

    The end of a partition is the fetch's high watermark (partition EOF events), not
    ListOffsets: the embedded broker can under-report the latter, so ``last`` may
    deliver more than asked (callers keep the last N).
    """
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, TopicPartition

    if idle_timeout is None and not follow:
        idle_timeout = 10.0
    own = consumer is None
    if own:
        conf = settings.consumer_config(
            f"lastmile-cli-{uuid.uuid4().hex[:8]}", **{"enable.partition.eof": True}
        )
        consumer = Consumer(conf)
    try:
        meta = consumer.list_topics(topic, timeout=10)
        info = meta.topics.get(topic)
        if info is None or info.error is not None:
            raise click.ClickException(
                f"topic {topic!r} does not exist (lastmile up creates lastmile's topics)"
            )
        assignment = []
        for p in sorted(info.partitions):
            if from_beginning:
                start = OFFSET_BEGINNING
            elif last is not None:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                start = max(low, high - last)
            else:
                start = OFFSET_END
            assignment.append(TopicPartition(topic, p, start))
        pending = {tp.partition for tp in assignment}
        consumer.assign(assignment)
        idle_since = time.monotonic()
        caught_up = False
        while True:
            batch = consumer.consume(num_messages=500, timeout=poll_timeout)
            if not batch:
                if idle_timeout is not None and time.monotonic() - idle_since > idle_timeout:
                    return
                continue
            idle_since = time.monotonic()
            for msg in batch:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition())
                        continue
                    raise click.ClickException(f"reading {topic}: {err}")
                yield msg
            if not pending and not caught_up:
                caught_up = True
                yield None
                if not follow:
                    return
    finally:
        if own:
            consumer.close()


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
        return _dumps(
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
    return _dumps(out)


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
    schema_name = _schema_name(role, schema)
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


# --------------------------------------------------------------------------- dlq


@click.group("dlq")
def dlq() -> None:
    """Dead letters: messages a role could not process, with the reason.

    \b
    Examples:
      lastmile dlq tail --count 20 --stage decode
      lastmile dlq replay --stage score --since 1h --dry-run
      lastmile dlq replay --offset 0:12-40
    """


def _letter_row(letter: dict, msg: Any) -> dict:
    key, key_enc = _bytes_text(letter["original_key"])
    value, value_enc = _bytes_text(letter["original_value"])
    headers = []
    for h in letter["original_headers"]:
        shown, enc = _bytes_text(h["value"])
        headers.append({"key": h["key"], "value": shown, "encoding": enc})
    return {
        "dlq_partition": msg.partition(),
        "dlq_offset": msg.offset(),
        "ts": _iso(letter["ts"]),
        "stage": letter["stage"],
        "error_type": letter["error_type"],
        "error": letter["error"],
        "model": letter["model"],
        "worker": letter["worker"],
        "source": {
            "topic": letter["source_topic"],
            "partition": letter["source_partition"],
            "offset": letter["source_offset"],
            "timestamp": _iso(letter["source_timestamp"]),
        },
        "key": key,
        "key_encoding": key_enc,
        "value": value,
        "value_encoding": value_enc,
        "headers": headers,
    }


_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now_ms: int | None = None) -> int:
    """Epoch millis from ``"15m"``/``"2h"``/``"1d"`` (ago), an ISO-8601 time or epoch millis.

    >>> parse_since("1h", now_ms=7_200_000)
    3600000
    >>> parse_since("1970-01-01T00:00:10Z")
    10000
    """
    text = text.strip()
    match = _RELATIVE.match(text)
    if match:
        now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        return now_ms - int(float(match.group(1)) * _UNITS[match.group(2)] * 1000)
    if text.isdigit():
        return int(text)
    try:
        parsed = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: use 15m, 2h, 1d, an ISO-8601 time or epoch milliseconds"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_dt.UTC)
    return int(parsed.timestamp() * 1000)


def parse_offsets(specs: tuple[str, ...]) -> list[tuple[int | None, int, int]]:
    """``[partition:]offset[-offset]`` (comma lists allowed) -> (partition or None, first, last).

    >>> parse_offsets(("5", "1:10-12,20"))
    [(None, 5, 5), (1, 10, 12), (1, 20, 20)]
    """
    out = []
    for spec in specs:
        partition: int | None = None
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            if ":" in part:
                p, _, part = part.partition(":")
                try:
                    partition = int(p)
                except ValueError:
                    raise click.BadParameter(f"{spec!r}: partition {p!r} is not a number") from None
            first, _, last = part.partition("-")
            try:
                lo = int(first)
                hi = int(last) if last else lo
            except ValueError:
                raise click.BadParameter(
                    f"{spec!r}: use OFFSET, FIRST-LAST or PARTITION:FIRST-LAST"
                ) from None
            out.append((partition, lo, hi))
    return out


def _read_letters(
    settings: Settings, codec: Codec, follow: bool = False, idle_timeout: float | None = None
) -> Iterator[tuple[Any, dict | None, DecodeError | None]]:
    for msg in read_topic(
        settings, settings.topic_dlq, from_beginning=True, follow=follow, idle_timeout=idle_timeout
    ):
        if msg is None:
            continue
        try:
            yield msg, codec.decode(msg.value(), msg.headers(), "DeadLetter"), None
        except DecodeError as err:
            yield msg, None, err


def _selected(
    letter: dict,
    msg: Any,
    stages: tuple[str, ...],
    error_types: tuple[str, ...],
    source_topic: str | None,
    since: int | None,
    offsets: list,
) -> bool:
    if stages and letter["stage"] not in stages:
        return False
    if error_types and letter["error_type"] not in error_types:
        return False
    if source_topic and letter["source_topic"] != source_topic:
        return False
    if since is not None and letter["ts"] < since:
        return False
    if offsets:
        return any(
            (p is None or p == msg.partition()) and lo <= msg.offset() <= hi
            for p, lo, hi in offsets
        )
    return True


@dlq.command("tail")
@click.option(
    "--count",
    "-n",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Show the last N dead letters (that match).",
)
@click.option("--follow/--no-follow", "-f", default=False, help="Keep printing new dead letters.")
@click.option(
    "--stage",
    "stages",
    multiple=True,
    help="Only this stage (repeatable): decode, validate, score, ...",
)
@click.option(
    "--error-type", "error_types", multiple=True, help="Only this error type (repeatable)."
)
@click.option("--idle-timeout", type=float, default=None, hidden=True)
@click.pass_context
def dlq_tail(
    ctx: click.Context,
    count: int,
    follow: bool,
    stages: tuple[str, ...],
    error_types: tuple[str, ...],
    idle_timeout: float | None,
) -> None:
    """Show dead letters as JSON lines: stage, reason, source topic/partition/offset, and the
    original key, value and headers (as text when UTF-8, else base64; see *_encoding).

    \b
    Example:
      lastmile dlq tail --stage decode -n 5
      {"dlq_partition": 0, "dlq_offset": 3, "ts": "2024-05-01T12:00:03.120Z", "stage": "decode",
       "error_type": "undecodable", "error": "truncated Avro: ...", "source": {"topic":
       "scoring.requests", "partition": 1, "offset": 1041, ...}, "value": "base64:EHItMDAw", ...}
    """
    settings = settings_from_context(ctx)
    codec = Codec.from_settings(settings)
    recent: deque[str] = deque(maxlen=count)
    live = False
    try:
        for msg in read_topic(
            settings,
            settings.topic_dlq,
            from_beginning=True,
            follow=follow,
            idle_timeout=idle_timeout,
        ):
            if msg is None:
                for line in recent:
                    click.echo(line)
                live = True
                continue
            try:
                letter = codec.decode(msg.value(), msg.headers(), "DeadLetter")
            except DecodeError as err:
                line = _dumps(
                    {
                        "dlq_partition": msg.partition(),
                        "dlq_offset": msg.offset(),
                        "error": f"undecodable dead letter: {err.reason}",
                    }
                )
            else:
                if not _selected(letter, msg, stages, error_types, None, None, []):
                    continue
                line = _dumps(_letter_row(letter, msg))
            if live:
                click.echo(line)
            else:
                recent.append(line)
    except KeyboardInterrupt:
        pass


@dlq.command("replay")
@click.option(
    "--stage", "stages", multiple=True, help="Only dead letters of this stage (repeatable)."
)
@click.option(
    "--error-type", "error_types", multiple=True, help="Only this error type (repeatable)."
)
@click.option("--source-topic", help="Only dead letters from this topic (role or name).")
@click.option(
    "--offset",
    "offsets",
    multiple=True,
    metavar="[P:]FIRST[-LAST]",
    help="Only these dead-letter offsets (of the dlq topic; repeatable, comma lists).",
)
@click.option(
    "--since",
    metavar="WHEN",
    help="Only dead letters since: 15m, 2h, 1d, ISO-8601 or epoch millis.",
)
@click.option(
    "--max-replays",
    type=int,
    default=3,
    show_default=True,
    help="Skip messages already replayed this many times (header lastmile.replays).",
)
@click.option("--dry-run", is_flag=True, help="Show what would be replayed; send nothing.")
@click.pass_context
def dlq_replay(
    ctx: click.Context,
    stages: tuple[str, ...],
    error_types: tuple[str, ...],
    source_topic: str | None,
    offsets: tuple[str, ...],
    since: str | None,
    max_replays: int,
    dry_run: bool,
) -> None:
    """Send chosen dead letters back to their source topic, byte for byte.

    Each goes back with its original key, value and headers to its original
    partition (when the topic still has it), plus the header lastmile.replays
    counting replays, so a message that keeps failing is visible (and skipped after
    --max-replays). The dead letters stay in the dlq topic. Prints one JSON line per
    chosen dead letter; a summary on stderr.

    \b
    Examples:
      lastmile dlq replay --stage score --dry-run       # after fixing a model
      lastmile dlq replay --stage decode --since 2h     # after upgrading the workers
      lastmile dlq replay --offset 0:12 --offset 2:40-45
    """
    from confluent_kafka import Producer

    settings = settings_from_context(ctx)
    codec = Codec.from_settings(settings)
    offset_specs = parse_offsets(offsets)
    since_ms = parse_since(since) if since else None
    source = resolve_topic(settings, source_topic)[0] if source_topic else None

    chosen = []
    skipped = 0
    for msg, letter, _err in _read_letters(settings, codec):
        if letter is None or not _selected(
            letter, msg, stages, error_types, source, since_ms, offset_specs
        ):
            continue
        truncated = dict(msg.headers() or []).get(HEADER_TRUNCATED)
        if truncated is not None:
            skipped += 1
            click.echo(
                _dumps(
                    {
                        "dlq_partition": msg.partition(),
                        "dlq_offset": msg.offset(),
                        "replayed": False,
                        "why": f"the original value ({truncated.decode()} bytes) was truncated",
                    }
                )
            )
            continue
        replays = _replays(letter["original_headers"])
        if replays >= max_replays:
            skipped += 1
            click.echo(
                _dumps(
                    {
                        "dlq_partition": msg.partition(),
                        "dlq_offset": msg.offset(),
                        "replayed": False,
                        "why": f"already replayed {replays} time(s) (--max-replays {max_replays})",
                    }
                )
            )
            continue
        chosen.append((msg, letter, replays))

    producer = None if dry_run else Producer(settings.producer_config())
    partitions: dict[str, int] = {}
    state = {"failed": 0, "first_error": None}

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            state["failed"] += 1
            state["first_error"] = state["first_error"] or str(err)

    for msg, letter, replays in chosen:
        topic = letter["source_topic"]
        if producer is not None and topic not in partitions:
            info = producer.list_topics(topic, timeout=10).topics.get(topic)
            partitions[topic] = (
                len(info.partitions) if info is not None and info.error is None else 0
            )
        headers = [
            (h["key"], h["value"]) for h in letter["original_headers"] if h["key"] != HEADER_REPLAYS
        ]
        headers.append((HEADER_REPLAYS, str(replays + 1).encode()))
        partition = letter["source_partition"]
        row = {
            "dlq_partition": msg.partition(),
            "dlq_offset": msg.offset(),
            "replayed": not dry_run,
            "dry_run": dry_run,
            "to": f"{topic}/{partition}",
            "stage": letter["stage"],
            "error": letter["error"],
            "replay": replays + 1,
        }
        if producer is not None:
            kwargs: dict[str, Any] = {}
            if 0 <= partition < partitions.get(topic, 0):
                kwargs["partition"] = partition
            else:
                row["to"] = f"{topic}/(by key)"
            while True:
                try:
                    producer.produce(
                        topic,
                        value=letter["original_value"],
                        key=letter["original_key"],
                        headers=headers,
                        on_delivery=delivered,
                        **kwargs,
                    )
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
        click.echo(_dumps(row))
    remaining = producer.flush(30) if producer is not None else 0
    failed = state["failed"] + remaining
    verb = "would replay" if dry_run else "replayed"
    summary = f"{verb} {len(chosen) - failed} dead letter(s)"
    if skipped:
        summary += f"; skipped {skipped} (replayed too often, or truncated)"
    if failed:
        summary += f"; {failed} not delivered ({state['first_error'] or 'timed out'})"
    click.echo(summary, err=True)
    if failed:
        sys.exit(1)


def _replays(headers: list[dict]) -> int:
    for h in headers:
        if h["key"] == HEADER_REPLAYS:
            try:
                return int((h["value"] or b"0").decode("ascii"))
            except (ValueError, UnicodeDecodeError):
                return 0
    return 0
