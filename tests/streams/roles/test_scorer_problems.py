"""The scorer files a feature problem under the kind the check gave it, not one guessed from
its text: no broker, :meth:`Scorer.process` on messages built in memory."""

from __future__ import annotations

from pathlib import Path

import orjson
from river import linear_model

from schemas import Codec
from streams.config import load_settings
from streams.models import ControlPlane, load_table
from streams.roles.scorer import Scorer


class FakeMessage:
    """Just what the scorer and the dead letter read of a confluent-kafka Message."""

    def __init__(self, topic: str, value: bytes, offset: int) -> None:
        self._topic, self._value, self._offset = topic, value, offset

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return b"e1"

    def value(self) -> bytes:
        return self._value

    def headers(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000)

    def error(self) -> None:
        return None


def dead_letters_for(tmp_path: Path, features_list: list[dict]) -> list[dict]:
    settings = load_settings(env={}, toml_path=None, registry=str(tmp_path))
    model = linear_model.LogisticRegression()
    model.learn_one({"null_ratio": 0.1, "missing_count": 1.0}, True)
    model.learn_one({"null_ratio": 0.9, "missing_count": 0.0}, False)
    control = ControlPlane(settings, publish=False)
    control.register_and_publish(
        "m", model, "river", features=["null_ratio", "missing_count"], labels=[False, True]
    )
    control.promote("m", 1)
    table = load_table(control.states())
    codec = Codec.from_settings(settings)
    scorer = Scorer(settings, table, control.registry, codec, worker="test")
    messages = [
        FakeMessage(
            settings.topic_requests,
            orjson.dumps(
                {
                    "request_id": f"r{i}",
                    "model": "m",
                    "features": features,
                    "event_time": 1_700_000_000_000,
                    "entity_id": "e1",
                }
            ),
            i,
        )
        for i, features in enumerate(features_list)
    ]
    outputs = scorer.process(messages)
    return [
        dict(codec.decode(out.value, out.headers, "DeadLetter", settings.topic_dlq))
        for out in outputs
        if out.topic == settings.topic_dlq
    ]


def test_a_type_error_on_a_feature_named_null_ratio_is_a_type_problem(tmp_path: Path) -> None:
    # The old scorer guessed the kind from the reason's text ("missing" or "null" in it):
    # a string given for the number `null_ratio` was filed as feature_missing.
    letters = dead_letters_for(
        tmp_path,
        [
            {"null_ratio": "high", "missing_count": 1.0},
            {"null_ratio": 0.5, "missing_count": "none"},
            {"missing_count": 1.0},
            {"null_ratio": None, "missing_count": 1.0},
            {"null_ratio": 0.5, "missing_count": 2.0},
        ],
    )
    by_offset = {letter["source_offset"]: letter for letter in letters}
    assert sorted(by_offset) == [0, 1, 2, 3]  # the last row scores
    assert by_offset[0]["error_type"] == "feature_type"
    assert by_offset[0]["error"] == "model 'm' v1: feature 'null_ratio' should be a number, got str"
    assert by_offset[1]["error_type"] == "feature_type"
    assert by_offset[1]["error"] == (
        "model 'm' v1: feature 'missing_count' should be a number, got str"
    )
    assert by_offset[2]["error_type"] == "feature_missing"
    assert by_offset[2]["error"] == "model 'm' v1: missing feature 'null_ratio'"
    assert by_offset[3]["error_type"] == "feature_missing"
    assert by_offset[3]["error"] == "model 'm' v1: feature 'null_ratio' is null"
