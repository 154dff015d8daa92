"""``lastmile produce``: JSON documents from a file or stdin to a topic."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

import click
import orjson

from schemas import Codec, DecodeError
from streams.cli.json_documents import iter_documents
from streams.cli.message_text import DEFAULT_KEY_FIELDS, resolve_topic, schema_name_for
from streams.config import Settings, settings_from_context

__all__ = ["Sender", "produce", "record_key"]


def record_key(record: Mapping[str, Any], fields: Sequence[str]) -> bytes | None:
    """The message key of a record: the first of ``fields`` it sets, as UTF-8 (None: no key).

    >>> record_key({"request_id": "r1", "entity_id": None}, ("entity_id", "request_id"))
    b'r1'
    """
    for name in fields:
        if record.get(name) is not None:
            return str(record[name]).encode()
    return None


class Sender:
    """One producer that sends values and counts what the broker did not take.

    ``send`` waits for room when librdkafka's local queue is full, instead of failing;
    ``flush`` returns how many messages failed or were still undelivered, with the first
    reason in ``first_error``. ``on_delivery`` of a send is called with the delivered
    message (its partition and offset), or is not called when it failed. What
    ``lastmile produce`` and ``lastmile.Client.score`` send with.
    """

    def __init__(self, settings: Settings) -> None:
        from confluent_kafka import Producer

        self.producer = Producer(settings.producer_config())
        self.failed = 0
        self.first_error: str | None = None

    def send(
        self,
        topic: str,
        value: bytes | str,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        on_delivery: Callable[[Any], None] | None = None,
    ) -> None:
        delivered = self._count
        if on_delivery is not None:

            def delivered(err: Any, msg: Any) -> None:
                self._count(err, msg)
                if err is None:
                    on_delivery(msg)

        while True:
            try:
                self.producer.produce(
                    topic, value=value, key=key, headers=list(headers or []), on_delivery=delivered
                )
                break
            except BufferError:  # the local queue is full: let it drain
                self.producer.poll(0.1)
        self.producer.poll(0)

    def _count(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.failed += 1
            self.first_error = self.first_error or str(err)

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for every delivery; how many messages failed or are still undelivered."""
        return self.failed + self.producer.flush(timeout)


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
    """Send JSON documents from FILE (default: stdin) to a topic.

    Documents are read as jq reads them: one per line, pretty-printed over several
    lines, or concatenated ({...}{...}). Each is one JSON object of the topic's
    schema (schemas/*.avsc). It is validated and encoded as Avro with the
    lastmile.schema/lastmile.fingerprint headers (or Schema Registry framing when
    LASTMILE_SCHEMA_REGISTRY_URL is set). Times may be epoch milliseconds or ISO-8601
    strings with a zone. Bad documents are reported with the line they start on (and
    their number in the stream when that differs) and not sent; the others are. Exit
    status 1 when any document was bad or not delivered.

    \b
    Example:
      echo '{"request_id": "r1", "model": "churn", "event_time": "2024-05-01T12:00:00Z",
             "features": {"age": 42, "plan": "gold"}}' | lastmile produce --topic requests
      lastmile produce --topic outcomes labels.jsonl
      lastmile produce --topic requests --json --no-validate junk.jsonl   # test the DLQ
    """
    settings = settings_from_context(ctx)
    topic, role = resolve_topic(settings, topic_name)
    schema_name = schema_name_for(role, schema)
    if schema_name is None and not (raw_json and no_validate):
        raise click.UsageError(
            f"{topic!r} is not one of lastmile's topics ({', '.join(settings.topics)}): say which "
            "schema its lines have with --schema NAME"
        )
    codec = Codec.from_settings(settings)
    if raw_json and schema_name and not codec.accepts_json(schema_name) and not no_validate:
        raise click.UsageError(f"{topic} carries {schema_name}, which is never JSON: drop --json")
    key_fields = (key_field,) if key_field else DEFAULT_KEY_FIELDS.get(role or "", ())

    sender = Sender(settings)
    sent = bad = 0
    started = last_report = time.monotonic()
    for document in iter_documents(file):
        text = document.text
        # The line finds it in a file; the document number, when it differs, in a stream.
        which = "" if document.number == document.line else f" (document {document.number})"
        try:
            if raw_json and no_validate:
                # Sent as it is, malformed or not: that is what --no-validate is for.
                value, headers = text, []
                try:
                    obj = orjson.loads(text)
                except orjson.JSONDecodeError:
                    obj = None
                record = obj if isinstance(obj, dict) else {}
            elif document.error is not None:
                raise DecodeError(document.error, schema=schema_name)
            else:
                record = codec.from_json(schema_name, text)
                if raw_json:
                    value, headers = text, []
                else:
                    value, headers = codec.encode(schema_name, record, topic=topic)
        except DecodeError as err:
            bad += 1
            click.echo(f"line {document.line}: {err.reason}{which}", err=True)
            continue
        sender.send(topic, value, record_key(record, key_fields), headers)
        sent += 1
        now = time.monotonic()
        if not quiet and now - last_report >= 2.0:
            click.echo(
                f"... {sent:,} sent, {bad:,} bad lines ({sent / (now - started):,.0f}/s)", err=True
            )
            last_report = now
    failed = sender.flush(30)
    elapsed = time.monotonic() - started
    fmt = (
        "JSON"
        if raw_json
        else ("Avro (schema registry)" if settings.schema_registry_url else "Avro")
    )
    summary = f"sent {sent - failed:,} message(s) to {topic} as {fmt}"
    if bad:
        summary += f"; {bad:,} bad line(s) not sent"
    if failed:
        summary += f"; {failed:,} not delivered ({sender.first_error or 'timed out'})"
    click.echo(f"{summary} in {elapsed:.1f} s", err=True)
    if bad or failed:
        sys.exit(1)
