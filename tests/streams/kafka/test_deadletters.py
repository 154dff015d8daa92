"""Dead letters: the record, the producer, and a decode loop against the embedded broker."""

from __future__ import annotations

import doctest
import io
import math
import time
from types import SimpleNamespace

import fastavro
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

import streams.kafka.deadletters
from schemas import Codec, DecodeError
from streams.errors import StreamsError
from streams.kafka.deadletters import (
    HEADER_SOURCE,
    HEADER_STAGE,
    DeadLetterError,
    DeadLetterProducer,
    dead_letter,
    dead_letter_from_error,
    reason_feature_missing,
    reason_feature_type,
    reason_model_exception,
    reason_no_version,
    reason_unknown_model,
)
from streams.kafka.topics import ensure_topics


def message(
    key=b"k",
    value=b"v",
    headers=None,
    topic="scoring.requests",
    partition=1,
    offset=9,
    timestamp=(1, 1_700_000_000_000),
):
    return SimpleNamespace(
        key=lambda: key,
        value=lambda: value,
        headers=lambda: headers,
        topic=lambda: topic,
        partition=lambda: partition,
        offset=lambda: offset,
        timestamp=lambda: timestamp,
    )


class FakeProducer:
    def __init__(self, fail: bool = False):
        self.sent = []
        self.fail = fail
        self.callbacks = []

    def produce(self, topic, value=None, key=None, headers=None, on_delivery=None):
        self.sent.append({"topic": topic, "value": value, "key": key, "headers": headers})
        self.callbacks.append(on_delivery)

    def poll(self, timeout=0):
        return 0

    def flush(self, timeout=None):
        for cb in self.callbacks:
            cb("broker down" if self.fail else None, None)
        self.callbacks = []
        return 0


def test_dead_letter_keeps_the_original_untouched():
    headers = [("lastmile.schema", b"x"), ("trace", None), ("binary", b"\x00\xff")]
    letter = dead_letter(
        message(key=b"\x01k", value=b"\xff\xfe", headers=headers),
        "score",
        reason_model_exception("churn", 3, ZeroDivisionError("division by zero")),
        "model_exception",
        model="churn",
        worker="w",
    )
    assert letter["original_key"] == b"\x01k"
    assert letter["original_value"] == b"\xff\xfe"
    assert letter["original_headers"] == [
        {"key": "lastmile.schema", "value": b"x"},
        {"key": "trace", "value": None},
        {"key": "binary", "value": b"\x00\xff"},
    ]
    assert (letter["source_topic"], letter["source_partition"], letter["source_offset"]) == (
        "scoring.requests",
        1,
        9,
    )
    assert letter["source_timestamp"] == 1_700_000_000_000
    assert letter["error"] == "model 'churn' v3 raised ZeroDivisionError: division by zero"
    assert (letter["stage"], letter["error_type"], letter["model"], letter["worker"]) == (
        "score",
        "model_exception",
        "churn",
        "w",
    )
    assert abs(letter["ts"] - time.time() * 1000) < 60_000
    # the record is a valid DeadLetter
    codec = Codec()
    assert codec.decode(*codec.encode("DeadLetter", letter), "DeadLetter") == letter


def test_missing_parts_of_a_message():
    letter = dead_letter(
        message(key=None, value=None, headers=None, timestamp=(0, -1)), "decode", "empty"
    )
    assert letter["original_key"] is None and letter["original_value"] is None
    assert letter["original_headers"] == [] and letter["source_timestamp"] is None
    assert letter["error_type"] == "undecodable"
    assert dead_letter(message(), "validate", "x")["error_type"] == "schema_violation"
    assert dead_letter(message(), "route", "x")["error_type"] == "unknown_model"


def test_dead_letter_from_errors():
    err = DecodeError("ScoringRequest.model must be a string", stage="validate")
    letter = dead_letter_from_error(message(), err)
    assert (letter["stage"], letter["error"], letter["error_type"]) == (
        "validate",
        "ScoringRequest.model must be a string",
        "schema_violation",
    )
    letter = dead_letter_from_error(message(), KeyError("age"), stage="score", model="churn")
    assert (letter["stage"], letter["error"], letter["error_type"], letter["model"]) == (
        "score",
        "KeyError: 'age'",
        "KeyError",
        "churn",
    )


def test_reasons_read_like_sentences():
    assert reason_unknown_model("churn", ["b", "a"]) == (
        "unknown model 'churn' (known: a, b); register it with lastmile models register"
    )
    assert (
        reason_unknown_model("churn")
        == "unknown model 'churn'; register it with lastmile models register"
    )
    assert reason_no_version("churn").startswith("model 'churn' has no champion version")
    assert reason_feature_missing("churn", 2, ["age"]) == (
        "feature 'age' missing (or null) for model 'churn' v2, which needs it"
    )
    assert reason_feature_missing("churn", 2, ["age", "plan"]).startswith(
        "features 'age', 'plan' missing"
    )
    assert reason_feature_type("churn", 2, "age", "a number", "old") == (
        "feature 'age' of model 'churn' v2 must be a number, got str 'old'"
    )


def test_producer_sends_to_the_dlq_keyed_by_the_original_key_and_counts(tmp_path):
    from streams.config import load_settings

    settings = load_settings(env={}, toml_path=None, topic_dlq="my.dlq")
    fake = FakeProducer()
    dlq = DeadLetterProducer(settings, producer=fake, worker="w1")
    dlq.send(message(key=b"a", value=b"junk"), "decode", "not Avro")
    dlq.send(message(key=None), "score", "boom", "model_exception", model="m")
    dlq.send_error(message(key=b"c"), DecodeError("NaN", stage="validate"))
    assert [s["topic"] for s in fake.sent] == ["my.dlq"] * 3
    assert [s["key"] for s in fake.sent] == [b"a", None, b"c"]
    assert dict(dlq.counts) == {"decode": 1, "score": 1, "validate": 1}
    assert dict(dlq.counts_by_type) == {
        "undecodable": 1,
        "model_exception": 1,
        "schema_violation": 1,
    }
    headers = dict(fake.sent[0]["headers"])
    assert headers[HEADER_STAGE] == b"decode" and headers[HEADER_SOURCE] == b"scoring.requests/1@9"
    letter = Codec().decode(fake.sent[0]["value"], fake.sent[0]["headers"], "DeadLetter")
    assert letter["original_value"] == b"junk" and letter["worker"] == "w1"
    dlq.flush()
    assert dlq.delivered == 3
    failing = DeadLetterProducer(settings, producer=FakeProducer(fail=True))
    failing.send(message(), "decode", "x")
    with pytest.raises(DeadLetterError, match="not delivered: 1 failed: broker down") as caught:
        failing.flush()
    assert caught.value.topic == settings.topic_dlq and caught.value.failures == ["broker down"]
    assert isinstance(caught.value, StreamsError) and isinstance(caught.value, RuntimeError)


def test_docstring_examples_run():
    result = doctest.testmod(streams.kafka.deadletters)
    assert result.failed == 0 and result.attempted > 0


# --------------------------------------------------------------------------- against the broker


def consume_all(settings, topic: str, expected: int, timeout: float = 20.0) -> list:
    consumer = Consumer(settings.consumer_config("test-reader"))
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=100, timeout=0.2):
                if msg.error() is None:
                    out.append(msg)
        return out
    finally:
        consumer.close()


def test_decode_loop_dead_letters_each_bad_message_once(fresh_settings):
    settings = fresh_settings()
    ensure_topics(settings)
    codec = Codec(max_bytes=4096)
    topic = settings.topic_requests
    good = {"request_id": "g1", "model": "churn", "event_time": 1, "features": {"age": 42.0}}
    value, headers = codec.encode("ScoringRequest", good)
    nan = io.BytesIO()
    fastavro.schemaless_writer(
        nan, codec.schema("ScoringRequest").parsed, {**good, "features": {"x": math.nan}}
    )
    other_value, other_headers = codec.encode(
        "Outcome", {"request_id": "o", "model": "m", "event_time": 1}
    )
    messages = [
        ("good-avro", value, headers, None),
        (
            "good-json",
            b'{"request_id": "g2", "model": "churn", "event_time": 2, "features": {}}',
            None,
            None,
        ),
        ("truncated", value[:7], headers, "truncated Avro"),
        (
            "unknown-fp",
            value,
            [
                ("lastmile.schema", b"lastmile.v1.ScoringRequest"),
                ("lastmile.fingerprint", b"00000000deadbeef"),
            ],
            "unknown schema fingerprint",
        ),
        ("not-object", b"[1, 2, 3]", None, "must be a JSON object"),
        ("nan", nan.getvalue(), headers, "is NaN"),
        ("empty", b"", None, "empty message"),
        ("too-big", b"{" + b" " * 5000 + b"}", [("trace", b"t1")], "message too large"),
        ("wrong-magic", b"\x00\x00\x00\x00\x07" + value, None, "no schema registry is configured"),
        ("other-schema", other_value, other_headers, "written with schema lastmile.v1.Outcome"),
        ("binary", b"\xff\xfe\x00\x01", [("a", None)], "valid JSON"),
        ("good-avro-2", value, headers, None),
    ]
    producer = Producer(settings.producer_config())
    for key, val, hdrs, _ in messages:
        producer.produce(topic, value=val, key=key.encode(), headers=hdrs)
    assert producer.flush(15) == 0

    # the loop every role runs: decode a batch, dead-letter what fails, flush, (commit)
    consumed = consume_all(settings, topic, len(messages))
    assert len(consumed) == len(messages)
    dlq = DeadLetterProducer(settings, codec=codec, worker="test-worker")
    results = codec.decode_messages(consumed, "ScoringRequest")
    decoded = []
    for msg, result in zip(consumed, results, strict=True):
        if isinstance(result, DecodeError):
            dlq.send_error(msg, result)
        else:
            decoded.append(result["request_id"])
    dlq.flush()
    assert sorted(decoded) == ["g1", "g1", "g2"]

    bad = {key: (val, hdrs, why) for key, val, hdrs, why in messages if why}
    letters_msgs = consume_all(settings, settings.topic_dlq, len(bad))
    time.sleep(0.3)
    assert len(letters_msgs) == len(bad)
    by_key = {}
    originals = {m.key().decode(): m for m in consumed}
    for m in letters_msgs:
        letter = codec.decode(m.value(), m.headers(), "DeadLetter")
        key = letter["original_key"].decode()
        assert m.key() == letter["original_key"]
        assert key not in by_key, f"two dead letters for {key}"
        by_key[key] = letter
    assert set(by_key) == set(bad)
    for key, letter in by_key.items():
        val, hdrs, why = bad[key]
        original = originals[key]
        assert why in letter["error"], (key, letter["error"])
        assert letter["original_value"] == val
        assert [(h["key"], h["value"]) for h in letter["original_headers"]] == list(hdrs or [])
        assert letter["source_topic"] == topic
        assert (letter["source_partition"], letter["source_offset"]) == (
            original.partition(),
            original.offset(),
        )
        assert letter["source_timestamp"] == original.timestamp()[1]
        assert letter["stage"] in ("decode", "validate") and letter["worker"] == "test-worker"
    assert sum(dlq.counts.values()) == len(bad)
    assert dlq.counts["validate"] == 1  # the NaN; the rest could not be read at all


def test_oversized_originals_are_truncated_to_fit_the_dlq():
    from streams.config import load_settings
    from streams.kafka.deadletters import HEADER_TRUNCATED

    fake = FakeProducer()
    dlq = DeadLetterProducer(
        load_settings(env={}, toml_path=None), producer=fake, max_original_bytes=100
    )
    record = dlq.send(message(value=b"x" * 1000), "decode", "message too large")
    assert record["original_value"] == b"x" * 100
    assert record["error"].startswith(
        "message too large [original value truncated for the dead-letter topic: "
        "1,000 bytes, the first 100 kept; it cannot be replayed]"
    )
    assert dict(fake.sent[0]["headers"])[HEADER_TRUNCATED] == b"1000"
