"""The JSON document stream produce reads: jq's shapes, malformed spans, a bounded buffer."""

from __future__ import annotations

import io
import json

from streams.cli.json_documents import iter_documents


def docs(text: str, **kw: int) -> list[tuple[int, int, str, bool]]:
    return [
        (d.number, d.line, d.text.decode(), d.error is None)
        for d in iter_documents(io.BytesIO(text.encode()), **kw)
    ]


def test_one_per_line_pretty_printed_and_concatenated() -> None:
    pretty = json.dumps({"a": {"b": [1, 2]}}, indent=2)  # 8 lines
    text = '{"a": 1}\n\n' + pretty + '\n{"a": 2}{"a": 3} 4 "five"\n'
    assert docs(text) == [
        (1, 1, '{"a": 1}', True),
        (2, 3, pretty, True),
        (3, 11, '{"a": 2}', True),
        (4, 11, '{"a": 3}', True),
        (5, 11, "4", True),
        (6, 11, '"five"', True),
    ]


def test_a_malformed_document_is_one_error_and_reading_goes_on() -> None:
    text = '{\n  "a": ,\n  "b": 1\n}\nnot json\n{"ok": true}\n'
    out = list(iter_documents(io.BytesIO(text.encode())))
    assert [(d.number, d.line, d.error is None) for d in out] == [
        (1, 1, False),
        (2, 5, False),
        (3, 6, True),
    ]
    assert out[0].error == "invalid JSON: Expecting value (line 2, column 8)"
    assert out[0].text == b'{\n  "a": ,\n  "b": 1\n}'  # --no-validate sends it as is
    assert out[1].text == b"not json"


def test_an_unfinished_document_at_the_end_of_the_input() -> None:
    assert docs('{"a": 1}\n{"a": 2,\n') == [(1, 1, '{"a": 1}', True), (2, 2, '{"a": 2,', False)]


def test_the_buffer_is_bounded() -> None:
    # A document that never ends is cut off at max_document bytes, not read to the end.
    text = "[\n" + "1,\n" * 1000 + "2]\n" + '{"after": 1}\n'
    out = list(iter_documents(io.BytesIO(text.encode()), max_document=100))
    assert out[0].error == "a document larger than 100 bytes"
    assert out[-1].text == b'{"after": 1}' and out[-1].error is None
