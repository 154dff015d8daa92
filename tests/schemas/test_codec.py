"""The codec: round trips in both wire formats, JSON input, and every kind of bad input."""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import math
import struct

import fastavro
import pytest
from sample_records import drift_alert

from schemas import (
    HEADER_FINGERPRINT,
    HEADER_SCHEMA,
    MAX_MESSAGE_BYTES,
    SCHEMA_NAMES,
    Codec,
    DecodeError,
    EncodeError,
    SchemaInfo,
    SchemaSet,
    registry_client,
    schema_for_topic,
    to_millis,
)
from schemas.walker import conform
from streams.config import load_settings

T = 1_700_000_000_000

SAMPLES: dict[str, list[dict]] = {
    "ScoringRequest": [
        {
            "request_id": "r1",
            "model": "churn",
            "event_time": T,
            "features": {
                "age": 42,
                "income": 52000.5,
                "plan": "gold",
                "vip": True,
                "missing": None,
            },
        },
        {
            "request_id": "r2",
            "model": "churn",
            "features": {},
            "event_time": 0,
            "entity_id": "c-9",
            "caller": "crm",
            "metadata": {"trace": "abc", "tenant": "ü"},
        },
        {
            "request_id": "r3" * 100,
            "model": "m",
            "event_time": -5,
            "features": {f"f{i}": i * 1.5 for i in range(200)},
        },
    ],
    "Prediction": [
        {
            "request_id": "r1",
            "model": "churn",
            "version": 3,
            "variant": "champion",
            "score": 0.87,
            "label": "yes",
            "features": {"age": 42, "x": 0.5},
            "event_time": T,
            "scored_time": T + 12,
            "latency_ms": 0.42,
            "entity_id": "c-9",
            "caller": "crm",
            "metadata": {"trace": "abc"},
        },
        {
            "request_id": "r2",
            "model": "churn",
            "version": 4,
            "variant": "shadow",
            "score": None,
            "features": {},
            "event_time": T,
            "scored_time": T,
            "latency_ms": 1.0,
        },
    ],
    "Outcome": [
        {"request_id": "r1", "model": "churn", "label": "yes", "event_time": T},
        {"request_id": "r2", "model": "price", "value": -3.25, "event_time": T},
    ],
    "ModelEvent": [
        {
            "model": "churn",
            "kind": "registered",
            "version": 2,
            "actor": "ana",
            "ts": T,
            "state": {
                "versions": [
                    {
                        "version": 1,
                        "flavor": "river",
                        "sha256": "ab" * 32,
                        "path": "churn/1/model.pkl",
                        "created_at": T - 1000,
                    },
                    {
                        "version": 2,
                        "flavor": "sklearn",
                        "sha256": "cd" * 32,
                        "path": "churn/2/model.pkl",
                        "created_at": T,
                        "parent": 1,
                        "retired": False,
                        "meta_json": '{"features": ["age"]}',
                    },
                ],
                "aliases": {"champion": 1, "challenger": 2},
                "split": {"champion": 0.9, "challenger": 0.1},
                "shadow": 2,
                "alias_history": [
                    {"alias": "champion", "version": 1, "ts": T - 500},
                    {"alias": "challenger", "version": None, "ts": T},
                ],
            },
        },
        {"model": "fraud", "kind": "retired", "ts": T, "state": {}},
    ],
    "MonitorMetric": [
        {
            "model": "churn",
            "version": 1,
            "segment": "champion",
            "metric": "psi",
            "feature": "age",
            "value": 0.12,
            "n": 5000,
            "window_start": T - 60000,
            "window_end": T,
            "ts": T + 5,
        },
        {
            "model": "churn",
            "metric": "count",
            "value": 3.0,
            "n": 3,
            "window_start": 0,
            "window_end": 1,
            "ts": 2,
        },
    ],
    "Alert": [
        drift_alert("churn", T, version=1, message="age drifted"),
        {
            "alert_id": "a1",
            "model": "churn",
            "kind": "latency",
            "metric": "p99",
            "state": "resolved",
            "value": 10,
            "threshold": 50,
            "severity": "info",
            "rule": "slow",
            "ts": T,
        },
    ],
    "DeadLetter": [
        {
            "original_key": b"k",
            "original_value": b"\xff\x00junk",
            "original_headers": [
                {"key": "lastmile.schema", "value": b"x"},
                {"key": "empty", "value": None},
            ],
            "source_topic": "scoring.requests",
            "source_partition": 2,
            "source_offset": 41,
            "source_timestamp": T,
            "stage": "decode",
            "error": "truncated",
            "error_type": "undecodable",
            "ts": T,
            "worker": "host:1",
            "model": None,
        },
        {
            "source_topic": "t",
            "source_partition": 0,
            "source_offset": 0,
            "stage": "score",
            "error": "boom",
            "error_type": "model_exception",
            "ts": T,
        },
    ],
    "Action": [
        {
            "action_id": "act-1",
            "alert_id": "al-1",
            "rule": "accuracy_drop",
            "model": "fraud",
            "version": 3,
            "kind": "rollback",
            "mode": "enforce",
            "outcome": "done",
            "reason": "",
            "version_before": 3,
            "version_after": 2,
            "split_before": "",
            "split_after": "",
            "metric": "accuracy",
            "value": 0.49,
            "threshold": 0.7,
            "window_start": T - 60_000,
            "window_end": T,
            "ts": T + 5,
            "actor": "lastmile-operator",
            "message": "rolled fraud back from v3 to v2",
        },
        {
            "action_id": "act-2",
            "alert_id": "al-2",
            "rule": "challenger_errors",
            "model": "fraud",
            "version": None,
            "kind": "shed",
            "mode": "dry-run",
            "outcome": "would",
            "reason": "",
            "version_before": None,
            "version_after": None,
            "split_before": "champion=90,challenger=10",
            "split_after": "champion=90,challenger=0",
            "metric": "accuracy",
            "value": 0.04,
            "threshold": 0.6,
            "window_start": T,
            "window_end": T + 60_000,
            "ts": T + 60_500,
            "actor": "lastmile-operator",
            "message": "would shed fraud's challenger",
        },
    ],
}


def full(name: str, record: dict, codec: Codec | None = None) -> dict:
    """The record as decode returns it: defaults filled, doubles as floats."""
    codec = codec or CODEC
    return conform(codec.schema(name).tree, record, "", False, False)


def sample_cases():
    return [(name, i) for name in SCHEMA_NAMES for i in range(len(SAMPLES[name]))]


CODEC = Codec()


def reason_of(call) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        call()
    return info.value


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(("name", "index"), sample_cases())
def test_round_trip_header_format(name, index):
    record = SAMPLES[name][index]
    value, headers = CODEC.encode(name, record)
    info = CODEC.schema(name)
    assert headers == [
        (HEADER_SCHEMA, info.full_name.encode()),
        (HEADER_FINGERPRINT, info.fingerprint.encode()),
    ]
    assert CODEC.decode(value, headers, name) == full(name, record)
    # the fast writer produces exactly fastavro's bytes, the fast reader fastavro's values
    reference = io.BytesIO()
    fastavro.schemaless_writer(reference, info.parsed, full(name, record))
    assert value == reference.getvalue()
    assert fastavro.schemaless_reader(io.BytesIO(value), info.plain) == full(name, record)


@pytest.mark.parametrize(("name", "index"), sample_cases())
def test_round_trip_schema_registry_format(name, index):
    client = registry_client("mock://roundtrip")
    writer, reader = Codec(client), Codec(client)
    topic = f"topic.{name}"
    value, headers = writer.encode(name, SAMPLES[name][index], topic=topic)
    assert headers == []
    assert value[0] == 0
    schema_id = int.from_bytes(value[1:5], "big")
    assert client.get_latest_version(f"{topic}-value").schema_id == schema_id
    assert reader.decode(value, None, name) == full(name, SAMPLES[name][index])
    # without a topic the registry codec writes the header format
    value, headers = writer.encode(name, SAMPLES[name][index])
    assert headers and reader.decode(value, headers, name) == full(name, SAMPLES[name][index])


def test_confluent_serializers_interoperate():
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    client = registry_client("mock://interop")
    codec = Codec(client)
    topic = "scoring.requests"
    ctx = SerializationContext(topic, MessageField.VALUE)
    record = SAMPLES["ScoringRequest"][0]
    theirs = AvroSerializer(client, codec.schema("ScoringRequest").schema_str)(record, ctx)
    assert codec.decode(theirs, None, "ScoringRequest") == full("ScoringRequest", record)
    ours, _ = codec.encode("ScoringRequest", record, topic=topic)
    back = AvroDeserializer(client)(ours, ctx)
    assert back["features"] == record["features"]
    assert back["event_time"] == dt.datetime.fromtimestamp(T / 1000, dt.UTC)


def test_from_settings_uses_the_registry_url():
    settings = load_settings(env={}, toml_path=None, schema_registry_url="mock://settings")
    codec = Codec.from_settings(settings)
    assert codec.registry is not None
    value, headers = codec.encode("Outcome", SAMPLES["Outcome"][0], topic=settings.topic_outcomes)
    assert value[0] == 0 and headers == []
    assert Codec.from_settings(load_settings(env={}, toml_path=None)).registry is None
    assert codec.topic_schemas[settings.topic_requests] == "ScoringRequest"
    assert schema_for_topic(settings, "scoring.dlq") == "DeadLetter"
    assert schema_for_topic(settings, "outcomes") == "Outcome"
    assert schema_for_topic(settings, "elsewhere") is None


def test_times_decode_as_epoch_millis_and_encode_from_datetimes():
    when = dt.datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=dt.UTC)
    record = {**SAMPLES["Outcome"][0], "event_time": when}
    value, headers = CODEC.encode("Outcome", record)
    decoded = CODEC.decode(value, headers, "Outcome")
    assert decoded["event_time"] == 1714564800123 == to_millis(when)
    naive = when.replace(tzinfo=None)  # naive means UTC
    assert (
        CODEC.decode(*CODEC.encode("Outcome", {**record, "event_time": naive}), "Outcome")
        == decoded
    )


def test_numpy_and_other_python_types_are_normalised_on_encode():
    np = pytest.importorskip("numpy")
    record = {
        **SAMPLES["ScoringRequest"][0],
        "features": {
            "a": np.float64(1.5),
            "b": np.int64(3),
            "c": np.float32(0.5),
            "d": np.bool_(True),
        },
    }
    decoded = CODEC.decode(*CODEC.encode("ScoringRequest", record), "ScoringRequest")
    assert decoded["features"] == {"a": 1.5, "b": 3, "c": 0.5, "d": True}
    assert type(decoded["features"]["b"]) is int and type(decoded["features"]["d"]) is bool


def test_integers_stay_integers_floats_stay_floats():
    record = {
        **SAMPLES["ScoringRequest"][0],
        "features": {"i": 1, "f": 1.0, "big": 2**70, "b": False},
    }
    decoded = CODEC.decode(*CODEC.encode("ScoringRequest", record), "ScoringRequest")["features"]
    assert decoded == {"i": 1, "f": 1.0, "big": float(2**70), "b": False}
    assert [type(v) for v in decoded.values()] == [int, float, float, bool]


def test_feature_maps_of_many_layouts_decode_right():
    # the fast path learns one struct layout per map shape; every shape must come back exact
    records = []
    for i in range(600):
        features = {f"f{j}": (None if (i + j) % 7 == 0 else float(i * j)) for j in range(i % 13)}
        if i % 5 == 0:
            features = dict(reversed(list(features.items())))
        if i % 11 == 0:
            features["s"] = "text"
        records.append({"request_id": f"r{i}", "model": "m", "event_time": i, "features": features})
    encoded = CODEC.encode_many("ScoringRequest", records)
    decoded = CODEC.decode_many([v for v, _ in encoded], [h for _, h in encoded], "ScoringRequest")
    assert decoded == [full("ScoringRequest", r) for r in records]
    for r, (v, _) in zip(records, encoded, strict=True):
        ref = io.BytesIO()
        fastavro.schemaless_writer(
            ref, CODEC.schema("ScoringRequest").parsed, full("ScoringRequest", r)
        )
        assert v == ref.getvalue()


def test_string_fields_write_the_same_bytes_whether_their_values_repeat_or_not():
    # A string field whose values repeat (a model's name) is written from a cache of its
    # encoded values; one whose values do not (ids) fills that cache and goes back to
    # encoding inline. Either way: fastavro's bytes, and a wrong type still refused.
    codec = Codec()  # caches of its own
    names = ["churn", "fraud", "ümlaut-模型", "x" * 70, "5"]
    records = [
        {
            "request_id": f"r{i}",
            "model": names[i % 5],
            "event_time": T + i,
            "features": {"f": float(i)},
            "caller": names[i // 3 % 5] if i % 2 else None,
            "metadata": {names[i % 5]: f"v{i}"},
        }
        for i in range(1000)
    ]
    parsed = codec.schema("ScoringRequest").parsed
    for record in records:
        ref = io.BytesIO()
        fastavro.schemaless_writer(ref, parsed, full("ScoringRequest", record))
        assert codec.encode("ScoringRequest", record)[0] == ref.getvalue()
    with pytest.raises(EncodeError, match="ScoringRequest.model must be a string"):
        codec.encode("ScoringRequest", {**records[0], "model": 5})  # "5" is cached
    with pytest.raises(EncodeError, match="ScoringRequest.request_id must be a string"):
        codec.encode("ScoringRequest", {**records[0], "request_id": b"r0"})


def test_decode_many_and_decode_messages_return_errors_in_place():
    class Msg:
        def __init__(self, value, headers):
            self._v, self._h = value, headers

        def value(self):
            return self._v

        def headers(self):
            return self._h

    good, headers = CODEC.encode("Outcome", SAMPLES["Outcome"][1])
    results = CODEC.decode_messages(
        [Msg(good, headers), Msg(good[:3], headers), Msg(None, None), Msg(b'{"x": 1}', None)],
        "Outcome",
    )
    assert results[0] == full("Outcome", SAMPLES["Outcome"][1])
    assert [type(r) for r in results[1:]] == [DecodeError] * 3
    assert [r.stage for r in results[1:]] == ["decode", "decode", "validate"]


def test_unknown_schema_name_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown schema 'Nope'"):
        CODEC.decode(b"x", None, "Nope")


# --------------------------------------------------------------------------- JSON input


def test_json_requests_and_outcomes_are_validated_and_normalised():
    value = (
        b'{"request_id": "r1", "model": "churn", "features": '
        b'{"a": 1, "b": 2.5, "c": null, "d": "x", "e": true},'
        b' "event_time": "2024-05-01T14:00:00+02:00"}'
    )
    decoded = CODEC.decode(value, None, "ScoringRequest")
    assert decoded == {
        "request_id": "r1",
        "model": "churn",
        "features": {"a": 1, "b": 2.5, "c": None, "d": "x", "e": True},
        "event_time": 1714564800000,
        "entity_id": None,
        "caller": None,
        "metadata": {},
    }
    # the same record as Avro decodes to the same dict
    assert CODEC.decode(*CODEC.encode("ScoringRequest", decoded), "ScoringRequest") == decoded
    outcome = CODEC.decode(
        b' \n{"request_id": "r1", "model": "m", "value": 3, "event_time": 5}', [], "Outcome"
    )
    assert outcome == {
        "request_id": "r1",
        "model": "m",
        "label": None,
        "value": 3.0,
        "event_time": 5,
    }
    assert (
        CODEC.decode(
            b'{"request_id": "r", "model": "m", "event_time": "2024-05-01T12:00:00.5Z"}',
            None,
            "Outcome",
        )["event_time"]
        == 1714564800500
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            b'{"request_id": "r", "model": "m", "features": {}, "event_time": 1, "colour": "red"}',
            "ScoringRequest has unknown field 'colour'",
        ),
        (
            b'{"request_id": "r", "features": {}, "event_time": 1}',
            "ScoringRequest is missing required field 'model'",
        ),
        (
            b'{"request_id": 7, "model": "m", "features": {}, "event_time": 1}',
            "ScoringRequest.request_id must be a string, got the number 7",
        ),
        (
            b'{"request_id": "r", "model": "m", "features": {"a": [1]}, "event_time": 1}',
            "ScoringRequest.features['a'] must be null, an integer, a number, a string or "
            "true/false, got a list of 1",
        ),
        (
            b'{"request_id": "r", "model": "m", "features": [], "event_time": 1}',
            "ScoringRequest.features must be an object (map), got a list of 0",
        ),
        (
            b'{"request_id": "r", "model": "m", "features": {}, '
            b'"event_time": "2024-05-01T12:00:00"}',
            "has no time zone",
        ),
        (
            b'{"request_id": "r", "model": "m", "features": {}, "event_time": "yesterday"}',
            "is not an ISO-8601 time",
        ),
        (
            b'{"request_id": "r", "model": "m", "features": {}, "event_time": 1.5}',
            "ScoringRequest.event_time must be a time: epoch milliseconds (an integer) or an "
            "ISO-8601 string",
        ),
        (b'{"request_id": "r", "model": "m", "features": {}, "event_time": true}', "got true"),
        (
            b'{"request_id": "r", "model": "m", "features": {}, "event_time": 1, '
            b'"metadata": {"k": 1}}',
            "ScoringRequest.metadata['k'] must be a string",
        ),
        (
            b'{"request_id": "r", "model": "m", "features": {}, "event_time": 1, "caller": 5}',
            "ScoringRequest.caller must be null or a string, got the number 5",
        ),
        (
            b'{"request_id": "r", "model": "m", "features": {}, '
            b'"event_time": 10000000000000000000}',
            "out of range for a long",
        ),
    ],
)
def test_json_schema_violations(value, expected):
    err = reason_of(lambda: CODEC.decode(value, None, "ScoringRequest"))
    assert expected in err.reason
    assert err.stage == "validate" and err.error_type == "schema_violation"


def test_json_only_where_accepted():
    value = json.dumps({**SAMPLES["Prediction"][1]}).encode()
    err = reason_of(lambda: CODEC.decode(value, None, "Prediction"))
    assert "cannot tell which schema wrote this value" in err.reason and "never JSON" in err.reason
    # from_json validates any schema (the produce command uses it)
    assert CODEC.from_json("Prediction", value) == full("Prediction", SAMPLES["Prediction"][1])


# --------------------------------------------------------------------------- bad input


def encoded(name: str = "ScoringRequest", index: int = 0) -> tuple[bytes, list]:
    return CODEC.encode(name, SAMPLES[name][index])


def test_truncated_avro():
    value, headers = encoded()
    for cut in (1, len(value) // 2, len(value) - 1):
        err = reason_of(lambda cut=cut: CODEC.decode(value[:cut], headers, "ScoringRequest"))
        assert err.stage == "decode"
        assert "truncated Avro" in err.reason or "corrupt Avro" in err.reason


def test_trailing_bytes():
    value, headers = encoded("Outcome")
    err = reason_of(lambda: CODEC.decode(value + b"\x00\x01", headers, "Outcome"))
    assert err.reason.startswith(
        "corrupt Avro: 2 byte(s) left over after the end of the lastmile.v1.Outcome"
    )


def test_unknown_fingerprint():
    value, headers = encoded()
    headers = [
        (HEADER_SCHEMA, b"lastmile.v1.ScoringRequest"),
        (HEADER_FINGERPRINT, b"0123456789abcdef"),
    ]
    err = reason_of(lambda: CODEC.decode(value, headers, "ScoringRequest"))
    assert (
        "unknown schema fingerprint '0123456789abcdef' for lastmile.v1.ScoringRequest" in err.reason
    )
    assert "upgrade" in err.reason and err.stage == "decode"


def test_header_for_another_schema():
    value, headers = encoded("Outcome")
    err = reason_of(lambda: CODEC.decode(value, headers, "ScoringRequest"))
    assert err.reason == (
        "the message was written with schema lastmile.v1.Outcome, but ScoringRequest was "
        "expected (is it on the wrong topic?)"
    )
    # a name header alone, naming another schema
    err = reason_of(lambda: CODEC.decode(value, [(HEADER_SCHEMA, b"acme.Thing")], "Outcome"))
    assert "written with schema acme.Thing" in err.reason
    # headers that contradict each other
    fp = CODEC.schema("Outcome").fingerprint.encode()
    err = reason_of(
        lambda: CODEC.decode(value, [(HEADER_SCHEMA, b"x.Y"), (HEADER_FINGERPRINT, fp)], "Outcome")
    )
    assert "written with schema x.Y" in err.reason
    err = reason_of(
        lambda: CODEC.decode(value, [(HEADER_SCHEMA, b"lastmile.v1.Outcome")], "Outcome")
    )
    assert "no lastmile.fingerprint header" in err.reason


def test_json_that_is_not_an_object():
    for value, what in [
        (b"[1, 2]", "a list of 2"),
        (b'"text"', "the string 'text'"),
        (b"42", "the number 42"),
        (b"null", "null"),
        (b"true", "true"),
    ]:
        err = reason_of(lambda value=value: CODEC.decode(value, None, "ScoringRequest"))
        assert (
            err.reason
            == f"the JSON value is {what}; a ScoringRequest must be a JSON object {{...}}"
        )
    err = reason_of(lambda: CODEC.decode(b"{not json", None, "Outcome"))
    assert err.reason.startswith("neither lastmile Avro (no lastmile.schema header) nor valid JSON")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_rejected(bad):
    # in Avro (written by someone else's encoder, which allows it)
    record = full("ScoringRequest", SAMPLES["ScoringRequest"][0])
    record["features"]["income"] = bad
    out = io.BytesIO()
    fastavro.schemaless_writer(out, CODEC.schema("ScoringRequest").parsed, record)
    err = reason_of(
        lambda: CODEC.decode(out.getvalue(), CODEC.headers_for("ScoringRequest"), "ScoringRequest")
    )
    assert err.stage == "validate"
    assert err.reason.startswith("ScoringRequest.features['income'] is ")
    assert "NaN and infinity are not allowed" in err.reason
    outcome = {**SAMPLES["Outcome"][1], "value": bad}
    out = io.BytesIO()
    fastavro.schemaless_writer(out, CODEC.schema("Outcome").parsed, outcome)
    err = reason_of(lambda: CODEC.decode(out.getvalue(), CODEC.headers_for("Outcome"), "Outcome"))
    assert err.reason.startswith("Outcome.value is ")
    # in JSON (not JSON at all)
    text = b'{"request_id": "r", "model": "m", "features": {"x": %s}, "event_time": 1}' % (
        b"NaN" if bad != bad else b"1e999"
    )
    err = reason_of(lambda: CODEC.decode(text, None, "ScoringRequest"))
    assert err.stage == "decode" and "valid JSON" in err.reason
    # and on encode: lastmile does not write them either
    with pytest.raises(EncodeError, match=r"features\['x'\] is"):
        CODEC.encode("ScoringRequest", {**SAMPLES["ScoringRequest"][1], "features": {"x": bad}})
    # other schemas carry them (a metric may be undefined)
    metric = {**SAMPLES["MonitorMetric"][1], "value": bad}
    decoded = CODEC.decode(*CODEC.encode("MonitorMetric", metric), "MonitorMetric")
    assert decoded["value"] == bad or (bad != bad and decoded["value"] != decoded["value"])


def test_size_limit():
    big = b"{" + b" " * (10 * 1024 * 1024) + b"}"
    err = reason_of(lambda: CODEC.decode(big, None, "ScoringRequest"))
    assert err.reason.startswith(
        "message too large: 10,485,762 bytes, over the 1,048,576-byte limit"
    )
    assert MAX_MESSAGE_BYTES == 1_048_576
    small = Codec(max_bytes=10)
    value, headers = encoded()
    assert (
        "over the 10-byte limit"
        in reason_of(lambda: small.decode(value, headers, "ScoringRequest")).reason
    )


def test_empty_messages():
    assert reason_of(lambda: CODEC.decode(None, None, "Outcome")).reason == (
        "empty message: the value is missing (a tombstone?)"
    )
    _, headers = encoded("Outcome")
    assert reason_of(lambda: CODEC.decode(b"", headers, "Outcome")).reason == (
        "empty message: the value is zero bytes long"
    )
    assert "is a str, not bytes" in reason_of(lambda: CODEC.decode("text", None, "Outcome")).reason


def test_wrong_magic_byte_and_registry_framing():
    value, _ = encoded("Prediction")
    err = reason_of(lambda: CODEC.decode(b"\x07" + value, None, "Prediction"))
    assert "the first byte is 0x07, not the magic byte 0x00" in err.reason
    err = reason_of(lambda: CODEC.decode(b"\x00\x00\x00\x00\x05" + value, None, "Prediction"))
    assert "schema id 5" in err.reason and "no schema registry is configured" in err.reason
    registry = Codec(registry_client("mock://magic"))
    err = reason_of(lambda: registry.decode(b"\x00\x00\x00\x27\x10" + value, None, "Prediction"))
    assert err.reason == "schema id 10000 is not in the schema registry"
    assert (
        "too short for Schema Registry framing"
        in reason_of(lambda: registry.decode(b"\x00\x00\x01", None, "Prediction")).reason
    )
    # a registry id whose schema is another record
    other, _ = registry.encode("Outcome", SAMPLES["Outcome"][0], topic="t")
    err = reason_of(lambda: registry.decode(other, None, "Prediction"))
    assert "written with schema lastmile.v1.Outcome (registry id" in err.reason


def test_registry_unavailable_is_not_a_decode_error():
    from schemas import SchemaRegistryUnavailable

    class Down:
        def get_schema(self, schema_id):
            raise ConnectionError("connection refused")

    codec = Codec(Down())
    with pytest.raises(SchemaRegistryUnavailable, match="connection refused"):
        codec.decode(b"\x00\x00\x00\x00\x01\x02", None, "Outcome")


def test_corrupt_bytes_with_valid_headers():
    _, headers = encoded()
    for junk in (b"\xff" * 40, b"\x02\xc3\x28\x02m\x00\x02\x00\x00\x00", b"\x01", b"\x7f" * 3):
        err = reason_of(lambda junk=junk: CODEC.decode(junk, headers, "ScoringRequest"))
        assert err.stage in ("decode", "validate") and err.reason


# --------------------------------------------------------------------------- versions


def test_older_writer_versions_are_resolved(tmp_path):
    """A reader whose schema gained a field reads data of the recorded older version."""
    old = json.loads(CODEC.schema("Outcome").path.read_text())
    new = copy.deepcopy(old)
    new["fields"].append(
        {"name": "source", "type": ["null", "string"], "default": None, "doc": "where"}
    )
    (tmp_path / "history").mkdir()
    (tmp_path / "Outcome.avsc").write_text(json.dumps(new))
    (tmp_path / "history" / "Outcome.v1.avsc").write_text(json.dumps(old))
    reader = Codec(schemas=SchemaSet.load(tmp_path))
    value, headers = CODEC.encode("Outcome", SAMPLES["Outcome"][0])
    assert reader.decode(value, headers, "Outcome") == {
        **full("Outcome", SAMPLES["Outcome"][0]),
        "source": None,
    }
    # the new writer's data is unknown to the old reader in the header format ...
    value2, headers2 = reader.encode("Outcome", {**SAMPLES["Outcome"][0], "source": "crm"})
    assert (
        "unknown schema fingerprint"
        in reason_of(lambda: CODEC.decode(value2, headers2, "Outcome")).reason
    )
    # ... but the registry gives it the writer's schema, and it resolves
    client = registry_client("mock://versions")
    value3, _ = Codec(client, schemas=SchemaSet.load(tmp_path)).encode(
        "Outcome", {**SAMPLES["Outcome"][0], "source": "crm"}, topic="o"
    )
    assert Codec(client).decode(value3, None, "Outcome") == full("Outcome", SAMPLES["Outcome"][0])
    assert SchemaInfo.from_raw(new).fingerprint != SchemaInfo.from_raw(old).fingerprint


# --------------------------------------------------------------------------- encode errors


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (
            {"request_id": "r", "model": "m", "event_time": 1},
            "ScoringRequest is missing required field 'features'",
        ),
        (
            {"request_id": "r", "model": "m", "event_time": 1, "features": {}, "extra": 1},
            "ScoringRequest has unknown field 'extra'",
        ),
        (
            {"request_id": "r", "model": "m", "event_time": "2024", "features": {}},
            "ScoringRequest.event_time must be a time: epoch milliseconds (an integer) or a "
            "datetime",
        ),
        (
            {"request_id": "r", "model": "m", "event_time": 1, "features": {"a": object()}},
            "ScoringRequest.features['a'] must be null, an integer, a number, a string or "
            "true/false, got a object",
        ),
        (
            {"request_id": "r", "model": "m", "event_time": 1, "features": {1: 2}},
            "has a key that is not a string",
        ),
        (
            {"request_id": None, "model": "m", "event_time": 1, "features": {}},
            "ScoringRequest.request_id must be a string, got null",
        ),
        ({"request_id": "\ud800", "model": "m", "event_time": 1, "features": {}}, "lone surrogate"),
        (
            {"request_id": "r", "model": "m", "event_time": 2**64, "features": {}},
            "out of range for a long",
        ),
    ],
)
def test_encode_errors_name_the_field(record, expected):
    with pytest.raises(EncodeError) as info:
        CODEC.encode("ScoringRequest", record)
    assert expected in str(info.value)


def test_encode_int_fields_are_strict():
    bad = {**SAMPLES["Prediction"][0], "version": 1.5}
    with pytest.raises(
        EncodeError, match="Prediction.version must be an integer, got the number 1.5"
    ):
        CODEC.encode("Prediction", bad)
    with pytest.raises(EncodeError, match="out of range for a int"):
        CODEC.encode("Prediction", {**bad, "version": 2**40})
    with pytest.raises(EncodeError, match="must be a number, got true"):
        CODEC.encode("Prediction", {**SAMPLES["Prediction"][0], "latency_ms": True})


def test_double_fields_accept_ints():
    record = {**SAMPLES["Alert"][1]}
    decoded = CODEC.decode(*CODEC.encode("Alert", record), "Alert")
    assert decoded["value"] == 10.0 and type(decoded["value"]) is float


def test_struct_layout_is_not_fooled_by_lookalike_bytes():
    """Two maps with the same first key but different layouts, alternating."""
    a = {"request_id": "r", "model": "m", "event_time": 1, "features": {"k": 1.0, "x": 2.0}}
    b = {
        "request_id": "r",
        "model": "m",
        "event_time": 1,
        "features": {"k": 1.0, "y": None, "x": 3.0},
    }
    c = {"request_id": "r", "model": "m", "event_time": 1, "features": {"k": 1.0, "x": "s"}}
    for _ in range(3):
        for rec in (a, b, c):
            assert (
                CODEC.decode(*CODEC.encode("ScoringRequest", rec), "ScoringRequest")["features"]
                == rec["features"]
            )
    # a double whose bytes spell NaN in the middle of a known layout
    value, headers = CODEC.encode("ScoringRequest", a)
    nan_value = value.replace(struct.pack("<d", 2.0), struct.pack("<d", math.nan))
    assert "is NaN" in reason_of(lambda: CODEC.decode(nan_value, headers, "ScoringRequest")).reason
