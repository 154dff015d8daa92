"""lastmile produce / tail / dlq against the embedded broker."""

from __future__ import annotations

import base64
import json
import time

import click
import pytest
from click.testing import CliRunner
from confluent_kafka import Consumer, TopicPartition

from schemas import Codec
from streams.cli.dlq import dlq, parse_offsets, parse_since
from streams.cli.message_text import resolve_topic
from streams.cli.produce import produce
from streams.cli.tail import tail
from streams.kafka.deadletters import HEADER_REPLAYS, DeadLetterProducer
from streams.kafka.topics import ensure_topics

GOOD = [
    {
        "request_id": "r1",
        "model": "churn",
        "event_time": "2024-05-01T12:00:00Z",
        "features": {"age": 42},
    },
    {
        "request_id": "r2",
        "model": "churn",
        "event_time": 1714564800000,
        "features": {"age": 7.5, "plan": "gold"},
        "entity_id": "c-7",
        "caller": "crm",
        "metadata": {"trace": "t-1"},
    },
    {"request_id": "r3", "model": "fraud", "event_time": 0, "features": {}},
]


@pytest.fixture
def settings(fresh_settings):
    s = fresh_settings()
    ensure_topics(s)
    return s


def invoke(command, args, settings, input=None):
    runner = CliRunner()
    return runner.invoke(command, args, obj=settings, input=input, catch_exceptions=False)


def lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def raw_messages(settings, topic: str, expected: int, timeout: float = 15.0) -> list:
    consumer = Consumer(settings.consumer_config("raw"))
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < expected and time.monotonic() < deadline:
            out += [m for m in consumer.consume(100, timeout=0.2) if m.error() is None]
        return out
    finally:
        consumer.close()


def test_produce_reports_bad_lines_and_sends_the_rest(settings):
    text = (
        "\n".join(
            [
                json.dumps(GOOD[0]),
                "",
                "{not json",
                json.dumps(
                    {"request_id": "r9", "model": "churn", "event_time": 1, "features": {"a": [1]}}
                ),
                json.dumps(GOOD[1]),
                "[1, 2]",
                json.dumps(GOOD[2]),
            ]
        )
        + "\n"
    )
    result = invoke(produce, ["--topic", "requests", "-q"], settings, input=text)
    assert result.exit_code == 1
    err = result.stderr
    assert "line 3: neither lastmile Avro" not in err  # produce parses JSON itself
    assert "line 3: invalid JSON" in err
    assert "line 4: ScoringRequest.features['a'] must be null, an integer" in err
    assert "line 6: the JSON value is a list of 2" in err
    assert f"sent 3 message(s) to {settings.topic_requests} as Avro; 3 bad line(s) not sent" in err
    messages = raw_messages(settings, settings.topic_requests, 3)
    assert sorted(m.key() for m in messages) == [b"c-7", b"r1", b"r3"]  # entity_id, else request_id
    assert all(
        dict(m.headers())["lastmile.schema"] == b"lastmile.v1.ScoringRequest" for m in messages
    )

    out = invoke(tail, ["requests", "--from-beginning"], settings)
    assert out.exit_code == 0
    records = sorted(lines(out.stdout), key=lambda r: r["request_id"])
    assert [r["request_id"] for r in records] == ["r1", "r2", "r3"]
    assert records[0]["event_time"] == 1714564800000 and records[0]["features"] == {"age": 42}
    assert records[1]["metadata"] == {"trace": "t-1"}

    meta = lines(
        invoke(
            tail, [settings.topic_requests, "--from-beginning", "--meta", "-n", "2"], settings
        ).stdout
    )
    assert len(meta) == 2
    assert {"topic", "partition", "offset", "timestamp", "key", "headers", "value"} <= set(meta[0])
    assert (
        meta[0]["topic"] == settings.topic_requests
        and meta[0]["headers"][0][0] == "lastmile.schema"
    )


README_REQUEST = """{"request_id": "req-1", "model": "phishing",
       "features": {"https": 1.0, "is_popular": 0.5, "long_url": 1.0, "age_of_domain": 1},
       "event_time": "2026-11-25T16:21:00Z", "entity_id": "customer-42"}
"""


def test_produce_reads_a_stream_of_json_documents(settings):
    """As jq reads: pretty-printed, concatenated, one per line; a malformed one skipped."""
    text = (
        README_REQUEST  # lines 1-3, the README's first example
        + json.dumps(GOOD[0], indent=2)  # lines 4-11, pretty-printed
        + "\n"
        + json.dumps(GOOD[1])
        + json.dumps(GOOD[2])  # line 12: two documents, concatenated
        + '\n{\n  "request_id": ,\n  "model": "churn"\n}\n'  # lines 13-16: malformed
        + json.dumps({**GOOD[2], "request_id": "r4"})  # line 17, one per line
        + "\n"
    )
    result = invoke(produce, ["--topic", "requests", "-q"], settings, input=text)
    assert result.exit_code == 1
    err = result.stderr
    assert "line 13: invalid JSON: Expecting value (line 14, column 17) (document 5)" in err
    assert err.count("invalid JSON") == 1  # one error for the whole pretty-printed document
    assert f"sent 5 message(s) to {settings.topic_requests} as Avro; 1 bad line(s) not sent" in err
    messages = raw_messages(settings, settings.topic_requests, 5)
    assert sorted(m.key() for m in messages) == [b"c-7", b"customer-42", b"r1", b"r3", b"r4"]
    out = invoke(tail, ["requests", "--from-beginning"], settings)
    records = {r["request_id"]: r for r in lines(out.stdout)}
    assert sorted(records) == ["r1", "r2", "r3", "r4", "req-1"]
    assert records["req-1"]["features"]["age_of_domain"] == 1


def test_produce_reads_the_readme_example_alone(settings):
    result = invoke(produce, ["--topic", "requests"], settings, input=README_REQUEST)
    assert result.exit_code == 0, result.stderr
    assert f"sent 1 message(s) to {settings.topic_requests} as Avro" in result.stderr


def test_produce_json_and_key_field(settings, tmp_path):
    path = tmp_path / "outcomes.jsonl"
    path.write_text(
        "\n".join(
            json.dumps({"request_id": f"r{i}", "model": "m", "label": "yes", "event_time": i})
            for i in range(5)
        )
    )
    result = invoke(
        produce, ["-t", "outcomes", "--json", "--key-field", "label", str(path)], settings
    )
    assert result.exit_code == 0, result.stderr
    assert "sent 5 message(s)" in result.stderr and "as JSON" in result.stderr
    messages = raw_messages(settings, settings.topic_outcomes, 5)
    assert {m.key() for m in messages} == {b"yes"} and all(not m.headers() for m in messages)
    assert json.loads(messages[0].value())["label"] == "yes"
    decoded = lines(invoke(tail, ["outcomes", "--from-beginning"], settings).stdout)
    assert sorted(r["event_time"] for r in decoded) == [0, 1, 2, 3, 4]
    # the last N messages
    last = lines(invoke(tail, ["outcomes", "-n", "2"], settings).stdout)
    assert [r["event_time"] for r in last] == [3, 4]


def test_produce_refuses_what_cannot_work(settings):
    result = CliRunner().invoke(
        produce, ["-t", "predictions", "--json"], obj=settings, input="{}\n"
    )
    assert result.exit_code == 2 and "never JSON" in result.output
    result = CliRunner().invoke(produce, ["-t", "somewhere.else"], obj=settings, input="{}\n")
    assert result.exit_code == 2 and "--schema NAME" in result.output
    result = CliRunner().invoke(tail, ["no.such.topic"], obj=settings)
    assert result.exit_code == 1 and "does not exist" in result.output


def test_tail_shows_undecodable_messages_and_goes_on(settings):
    invoke(
        produce,
        ["-t", "requests", "--json", "--no-validate"],
        settings,
        input='{"request_id": "r1"}\nnot json at all\n' + json.dumps(GOOD[2]) + "\n",
    )
    out = lines(invoke(tail, ["requests", "--from-beginning"], settings).stdout)
    assert len(out) == 3
    errors = [o for o in out if "error" in o]
    assert len(errors) == 2 and {e["stage"] for e in errors} == {"decode", "validate"}
    assert any(e["value"] == "not json at all" for e in errors)


def make_dead_letters(settings) -> list[dict]:
    """Bad requests through a decode loop into the DLQ, as a scorer would."""
    invoke(
        produce,
        ["-t", "requests", "--json", "--no-validate"],
        settings,
        input='{"request_id": "bad1"}\n[1]\n' + json.dumps({**GOOD[2], "request_id": "ok"}) + "\n",
    )
    from confluent_kafka import Producer

    producer = Producer(settings.producer_config())
    producer.produce(
        settings.topic_requests, value=b"\xff\x00\x01", key=b"bin", headers=[("trace", b"\x00t")]
    )
    producer.flush(10)
    codec = Codec()
    dlq_producer = DeadLetterProducer(settings, codec=codec, worker="w")
    messages = raw_messages(settings, settings.topic_requests, 4)
    for msg, result in zip(
        messages, codec.decode_messages(messages, "ScoringRequest"), strict=True
    ):
        if not isinstance(result, dict):
            dlq_producer.send_error(msg, result, model="churn")
    dlq_producer.flush()
    return messages


def test_dlq_tail_and_replay(settings):
    make_dead_letters(settings)
    result = invoke(dlq, ["tail"], settings)
    assert result.exit_code == 0
    rows = lines(result.stdout)
    assert len(rows) == 3
    assert {r["stage"] for r in rows} == {"decode", "validate"}
    binary = next(r for r in rows if r["key"] == "bin")
    assert (
        binary["value_encoding"] == "base64"
        and base64.b64decode(binary["value"]) == b"\xff\x00\x01"
    )
    assert binary["headers"] == [{"key": "trace", "value": "\x00t", "encoding": "utf-8"}]
    assert binary["source"]["topic"] == settings.topic_requests and binary["model"] == "churn"
    text = next(r for r in rows if r["stage"] == "validate")
    assert text["value"] == '{"request_id": "bad1"}' and text["value_encoding"] == "utf-8"
    assert "missing required field" in text["error"]

    assert len(lines(invoke(dlq, ["tail", "--stage", "validate"], settings).stdout)) == 1
    assert len(lines(invoke(dlq, ["tail", "-n", "2"], settings).stdout)) == 2

    dry = invoke(dlq, ["replay", "--stage", "decode", "--dry-run"], settings)
    assert dry.exit_code == 0
    dry_rows = lines(dry.stdout)
    assert len(dry_rows) == 2 and all(r["dry_run"] and not r["replayed"] for r in dry_rows)
    assert "would replay 2 dead letter(s)" in dry.stderr
    assert len(raw_messages(settings, settings.topic_requests, 5, timeout=1.0)) == 4  # nothing sent

    done = invoke(dlq, ["replay", "--stage", "decode", "--since", "1h"], settings)
    assert done.exit_code == 0, done.stderr
    assert "replayed 2 dead letter(s)" in done.stderr
    messages = raw_messages(settings, settings.topic_requests, 6)
    replayed = [m for m in messages if HEADER_REPLAYS in dict(m.headers() or [])]
    assert len(replayed) == 2
    binary_again = next(m for m in replayed if m.key() == b"bin")
    assert binary_again.value() == b"\xff\x00\x01"
    assert binary_again.headers() == [("trace", b"\x00t"), (HEADER_REPLAYS, b"1")]
    original = next(m for m in messages if m.key() == b"bin" and m is not binary_again)
    assert binary_again.partition() == original.partition()

    # a replay counter at the limit is skipped
    skipped = invoke(dlq, ["replay", "--stage", "decode", "--max-replays", "0"], settings)
    assert "skipped 2" in skipped.stderr and all(not r["replayed"] for r in lines(skipped.stdout))
    # chosen by offset
    offsets = [r for r in rows if r["stage"] == "validate"][0]
    chosen = lines(
        invoke(
            dlq,
            [
                "replay",
                "--dry-run",
                "--offset",
                f"{offsets['dlq_partition']}:{offsets['dlq_offset']}",
            ],
            settings,
        ).stdout
    )
    assert len(chosen) == 1 and chosen[0]["stage"] == "validate"
    future = invoke(dlq, ["replay", "--dry-run", "--since", "2999-01-01T00:00:00Z"], settings)
    assert lines(future.stdout) == []


def test_helpers():
    assert parse_offsets(("3", "1:5-7")) == [(None, 3, 3), (1, 5, 7)]
    with pytest.raises(click.BadParameter):
        parse_offsets(("x",))
    assert parse_since("2m", now_ms=1_000_000) == 880_000
    assert parse_since("1714564800000") == 1714564800000
    with pytest.raises(click.BadParameter):
        parse_since("soon")


def test_resolve_topic(fresh_settings):
    from streams.config import load_settings

    s = load_settings(env={}, toml_path=None)
    assert resolve_topic(s, "requests") == ("scoring.requests", "requests")
    assert resolve_topic(s, "scoring.dlq") == ("scoring.dlq", "dlq")
    assert resolve_topic(s, "other") == ("other", None)


@pytest.mark.parametrize("command", [produce, tail, dlq])
def test_help_teaches_with_an_example(command):
    result = CliRunner().invoke(command, ["--help"])
    assert result.exit_code == 0 and "Example" in result.output
