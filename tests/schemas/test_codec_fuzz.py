"""Throw garbage at the decoder: only DecodeError may come out, and whatever the fast
path decodes must be what fastavro decodes."""

from __future__ import annotations

import contextlib
import io
import json

import fastavro
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from schemas import (
    FINITE_SCHEMAS,
    HEADER_FINGERPRINT,
    HEADER_SCHEMA,
    SCHEMA_NAMES,
    Codec,
    DecodeError,
    EncodeError,
    registry_client,
)
from schemas.catalog import base_type

CODEC = Codec()
REGISTRY_CLIENT = registry_client("mock://fuzz")
REGISTRY = Codec(REGISTRY_CLIENT)
# real ids in the mock registry, so random framing sometimes names a known schema
_SAMPLE = {"request_id": "r", "model": "m", "event_time": 0, "features": {}}
REGISTRY.encode("ScoringRequest", _SAMPLE, topic="fuzz.requests")
REGISTRY.encode(
    "Outcome", {"request_id": "r", "model": "m", "event_time": 0}, topic="fuzz.outcomes"
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

schema_names = st.sampled_from(SCHEMA_NAMES)


def header_variants(name: str) -> st.SearchStrategy:
    info = CODEC.schema(name)
    other = CODEC.schema("Outcome" if name != "Outcome" else "Alert")
    return st.sampled_from(
        [
            None,
            [],
            CODEC.headers_for(name),
            CODEC.headers_for(other.name),
            [(HEADER_SCHEMA, info.full_name.encode()), (HEADER_FINGERPRINT, b"ffffffffffffffff")],
            [(HEADER_FINGERPRINT, info.fingerprint.encode())],
            [(HEADER_SCHEMA, b"\xff\xfe"), (HEADER_FINGERPRINT, b"\x00")],
            [("unrelated", None)],
        ]
    )


def check(codec: Codec, value: bytes, headers, name: str) -> None:
    try:
        result = codec.decode(value, headers, name)
    except DecodeError as err:
        assert err.reason and err.stage in ("decode", "validate")
        return
    assert isinstance(result, dict)


@FUZZ
@given(data=st.data(), name=schema_names, value=st.binary(max_size=400))
def test_random_bytes_only_raise_decode_error(data, name, value):
    headers = data.draw(header_variants(name))
    check(CODEC, value, headers, name)
    check(REGISTRY, value, headers, name)
    check(REGISTRY, b"\x00" + value, None, name)


@FUZZ
@given(name=schema_names, schema_id=st.integers(0, 40), body=st.binary(max_size=200))
def test_random_registry_framing(name, schema_id, body):
    check(REGISTRY, b"\x00" + schema_id.to_bytes(4, "big") + body, None, name)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def plausible(name: str) -> st.SearchStrategy:
    fields = [f["name"] for f in CODEC.schema(name).tree["fields"]]
    return st.dictionaries(
        st.sampled_from(fields + ["extra"]), json_values, max_size=len(fields) + 1
    )


@FUZZ
@given(name=st.sampled_from(["ScoringRequest", "Outcome"]), data=st.data())
def test_random_json_only_raises_decode_error(name, data):
    obj = data.draw(json_values | plausible(name))
    value = json.dumps(obj).encode()  # stdlib: integers of any size, as JSON allows
    check(CODEC, value, None, name)
    with contextlib.suppress(DecodeError):
        CODEC.from_json(name, obj)


@FUZZ
@given(text=st.text(max_size=200))
def test_random_text_as_json(text):
    check(CODEC, text.encode(), None, "ScoringRequest")


# --------------------------------------------------------------------------- generated records


def records_of(node, finite: bool) -> st.SearchStrategy:
    kind, _ = base_type(node)
    if isinstance(kind, list):
        return st.one_of([records_of(b, finite) for b in kind])
    if isinstance(kind, dict):
        t = kind["type"]
        if t == "record":
            return st.fixed_dictionaries(
                {f["name"]: records_of(f["type"], finite) for f in kind["fields"]}
            )
        if t == "map":
            return st.dictionaries(
                st.text(max_size=12), records_of(kind["values"], finite), max_size=6
            )
        if t == "array":
            return st.lists(records_of(kind["items"], finite), max_size=3)
        raise AssertionError(t)
    return {
        "null": st.none(),
        "boolean": st.booleans(),
        "int": st.integers(-(2**31), 2**31 - 1),
        "long": st.integers(-(2**63), 2**63 - 1),
        "double": st.floats(allow_nan=False, allow_infinity=not finite),
        "string": st.text(max_size=20),
        "bytes": st.binary(max_size=20),
    }[kind]


RECORDS = {
    name: records_of(CODEC.schema(name).tree, name in FINITE_SCHEMAS) for name in SCHEMA_NAMES
}


@FUZZ
@given(data=st.data(), name=schema_names)
def test_fast_codec_matches_fastavro(data, name):
    record = data.draw(RECORDS[name])
    info = CODEC.schema(name)
    value, headers = CODEC.encode(name, record)
    reference = io.BytesIO()
    fastavro.schemaless_writer(reference, info.parsed, record)
    assert value == reference.getvalue()
    assert CODEC.decode(value, headers, name) == record
    # again: a map layout is learned when seen twice, then read through it
    assert CODEC.decode_many([value] * 3, [headers] * 3, name) == [record] * 3
    assert CODEC.encode_many(name, [record] * 3) == [(value, headers)] * 3


@FUZZ
@given(
    data=st.data(),
    name=schema_names,
    cut=st.integers(0, 400),
    flips=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=3),
)
def test_mutated_messages(data, name, cut, flips):
    record = data.draw(RECORDS[name])
    value, headers = CODEC.encode(name, record)
    mutated = bytearray(value[: max(1, min(cut, len(value)))] if cut < len(value) else value)
    for pos, byte in flips:
        if pos < len(mutated):
            mutated[pos] = byte
    mutated = bytes(mutated)
    try:
        result = CODEC.decode(mutated, headers, name)
    except DecodeError:
        return
    # when it decodes, it decodes as fastavro does (the fast path never guesses)
    bio = io.BytesIO(mutated)
    expected = fastavro.schemaless_reader(bio, CODEC.schema(name).plain)
    assume(bio.tell() == len(mutated))
    assert _nan_as_text(result) == _nan_as_text(expected)  # a flipped bit can make a NaN


def _nan_as_text(value):
    """`value` with every NaN replaced by "NaN", so that equal decodings compare equal."""
    if isinstance(value, float) and value != value:
        return "NaN"
    if isinstance(value, dict):
        return {k: _nan_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_as_text(v) for v in value]
    return value


@FUZZ
@given(name=schema_names, values=st.lists(st.binary(max_size=60), max_size=8))
def test_decode_many_never_raises(name, values):
    headers = [CODEC.headers_for(name)] * len(values)
    results = CODEC.decode_many(values, headers, name)
    assert len(results) == len(values)
    assert all(isinstance(r, (dict, DecodeError)) for r in results)


# The same codec with its msgspec fast path turned off: orjson and the validating
# walker alone, which the fast path must agree with exactly (or step aside to).
WALKER = Codec()
for _cur in WALKER._current.values():
    _cur.json_decode = None


def _outcome(call) -> str:
    """A result as repr (types count: 1 is not 1.0), or the error's reason."""
    try:
        return repr(call())
    except DecodeError as err:
        return f"invalid: {err.reason}"


def _read_json(codec: Codec, name: str, text: bytes | str) -> str:
    """What ``decode`` (JSON topics) and ``from_json`` (every schema) make of `text`;
    ``decode_many`` (its own JSON fast path) must read it as ``decode`` does."""
    decoded = _outcome(lambda: codec.decode(text, None, name)) if isinstance(text, bytes) else ""
    if isinstance(text, bytes):
        [many] = codec.decode_many([text], None, name)
        assert (f"invalid: {many.reason}" if isinstance(many, DecodeError) else repr(many)) == (
            decoded
        )
    return decoded + " | " + _outcome(lambda: codec.from_json(name, text))


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["2024-05-01T12:00:00Z", "2024-05-01 12:00", "", "é", "\ud800 lone"])
    | st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 2**31, 1e308, -0.0])
    | st.builds(dict)
    | st.builds(list)
)


def near_misses(name: str, data) -> dict:
    """A valid record of `name`, or one with a field off: another value, a nested one,
    an unknown field, or a field absent."""
    obj = data.draw(RECORDS[name])
    field = data.draw(st.sampled_from([None, "unknown", *obj]))
    if field is not None:
        how = data.draw(st.sampled_from(["scalar", "nested", "absent"]))
        if how == "absent":
            obj.pop(field, None)
        else:
            obj[field] = data.draw(scalars if how == "scalar" else json_values)
    return obj


@pytest.mark.parametrize("name", SCHEMA_NAMES)
@FUZZ
@given(data=st.data(), form=st.sampled_from(["escaped", "utf-8", "str"]))
def test_msgspec_json_decoder_agrees_with_the_walker(name, data, form):
    # JSON as producers write it: bytes escaped or raw UTF-8, or a str (lone surrogates
    # escaped, or raw in a str), integers of any size, floats in every notation.
    obj = near_misses(name, data)
    text = json.dumps(obj, ensure_ascii=form == "escaped", default=_latin1)
    if form != "str":
        try:
            text = text.encode()
        except UnicodeEncodeError:
            text = json.dumps(obj, default=_latin1).encode()
    assert _read_json(CODEC, name, text) == _read_json(WALKER, name, text)


def _latin1(value: bytes) -> str:
    return value.decode("latin-1")  # Avro's JSON form of bytes


@FUZZ
@given(name=schema_names, obj=json_values)
def test_msgspec_json_decoder_agrees_on_any_json(name, obj):
    text = json.dumps(obj).encode()
    assert _read_json(CODEC, name, text) == _read_json(WALKER, name, text)


def _as_batch(encoded: tuple) -> tuple:
    value, headers = encoded
    return [value], headers


def _encoded(call) -> str:
    try:
        return repr(call())
    except EncodeError as err:
        return f"refused: {err}"


@pytest.mark.parametrize("name", SCHEMA_NAMES)
@FUZZ
@given(data=st.data())
def test_a_projection_encodes_as_the_record_it_stands_for(name, data):
    # Fields given as values override the base dict's, keys that are not fields are
    # ignored: the same bytes as the record itself, or the same refusal when one value
    # is off.
    record = data.draw(RECORDS[name])
    fields = data.draw(st.permutations(sorted(record)))
    given = tuple(fields[: data.draw(st.integers(0, len(fields)))])
    base = {k: v for k, v in record.items() if k not in given}
    base["not a field"] = 1
    for k in given:
        if data.draw(st.booleans()):
            base[k] = "overridden"
    if given and data.draw(st.booleans()):
        record[given[0]] = data.draw(scalars)
    values = tuple(record[k] for k in given)
    projected = _encoded(lambda: CODEC.encode_projections(name, [base], given, [values]))
    assert projected == _encoded(lambda: _as_batch(CODEC.encode(name, record)))


@pytest.mark.parametrize("name", SCHEMA_NAMES)
@FUZZ
@given(data=st.data())
def test_a_batch_of_projections_encodes_as_each_record_alone(name, data):
    # A batch goes through the generated writer in one pass, and record by record when
    # one of them bails: the same bytes as each record encoded alone, or the refusal
    # of the first record that does not fit.
    records = data.draw(st.lists(RECORDS[name], min_size=1, max_size=4))
    fields = sorted(set.intersection(*(set(r) for r in records)))
    given = tuple(fields[: data.draw(st.integers(0, len(fields)))])
    bases = [{k: v for k, v in r.items() if k not in given} for r in records]
    values = [tuple(r[k] for k in given) for r in records]
    projected = _encoded(lambda: CODEC.encode_projections(name, bases, given, values)[0])
    assert projected == _encoded(lambda: [CODEC.encode(name, r)[0] for r in records])
