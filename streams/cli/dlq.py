"""``lastmile dlq``: dead letters shown (``dlq tail``) and sent back (``dlq replay``)."""

from __future__ import annotations

import datetime as _dt
import re
import sys
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import click

from schemas import Codec, DecodeError
from streams.cli.message_text import bytes_text, dumps_json, iso_millis, resolve_topic
from streams.cli.topic_reader import read_topic
from streams.config import Settings, settings_from_context
from streams.kafka.deadletters import HEADER_REPLAYS, HEADER_TRUNCATED

__all__ = ["dlq", "parse_since", "parse_offsets"]


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
    key, key_enc = bytes_text(letter["original_key"])
    value, value_enc = bytes_text(letter["original_value"])
    headers = []
    for h in letter["original_headers"]:
        shown, enc = bytes_text(h["value"])
        headers.append({"key": h["key"], "value": shown, "encoding": enc})
    return {
        "dlq_partition": msg.partition(),
        "dlq_offset": msg.offset(),
        "ts": iso_millis(letter["ts"]),
        "stage": letter["stage"],
        "error_type": letter["error_type"],
        "error": letter["error"],
        "model": letter["model"],
        "worker": letter["worker"],
        "source": {
            "topic": letter["source_topic"],
            "partition": letter["source_partition"],
            "offset": letter["source_offset"],
            "timestamp": iso_millis(letter["source_timestamp"]),
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
                line = dumps_json(
                    {
                        "dlq_partition": msg.partition(),
                        "dlq_offset": msg.offset(),
                        "error": f"undecodable dead letter: {err.reason}",
                    }
                )
            else:
                if not _selected(letter, msg, stages, error_types, None, None, []):
                    continue
                line = dumps_json(_letter_row(letter, msg))
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
            _echo_skipped(msg, f"the original value ({truncated.decode()} bytes) was truncated")
            continue
        replays = _replays(letter["original_headers"])
        if replays >= max_replays:
            skipped += 1
            _echo_skipped(msg, f"already replayed {replays} time(s) (--max-replays {max_replays})")
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
        click.echo(dumps_json(row))
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


def _echo_skipped(msg: Any, why: str) -> None:
    """One JSON line for a dead letter ``replay`` leaves where it is, and why."""
    click.echo(
        dumps_json(
            {
                "dlq_partition": msg.partition(),
                "dlq_offset": msg.offset(),
                "replayed": False,
                "why": why,
            }
        )
    )


def _replays(headers: list[dict]) -> int:
    for h in headers:
        if h["key"] == HEADER_REPLAYS:
            try:
                return int((h["value"] or b"0").decode("ascii"))
            except (ValueError, UnicodeDecodeError):
                return 0
    return 0
