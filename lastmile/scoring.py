"""Scoring rows through Kafka and waiting for the answers: what ``Client.score`` does.

Rows become ``ScoringRequest`` records (a fresh ``request_id`` each), encoded by the one
codec and sent by the same :class:`~streams.cli.produce.Sender` as ``lastmile produce``.
Before anything is sent, a reader is placed at the current end of ``scoring.predictions``
and of ``scoring.dlq``, so each answer is seen however fast the scorer is: a prediction,
or the dead letter that says why the request could not be scored (an unknown model, a
missing feature, a model that raised). Dead letters are matched to requests by the
partition and offset each request was written at, which the delivery reports give.

>>> requests = scoring_requests("fraud", [{"amount": 12.5, "plan": "gold"}], now_ms=1000)
>>> [(r["model"], r["features"], r["event_time"]) for r in requests]
[('fraud', {'amount': 12.5, 'plan': 'gold'}, 1000)]
>>> plain_value(float("nan")) is None, plain_value(True)
(True, True)
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from lastmile.errors import ClientError, ScoreTimeout
from schemas import Codec, DecodeError, EncodeError
from streams.cli.message_text import DEFAULT_KEY_FIELDS
from streams.cli.produce import Sender, record_key
from streams.config import Settings

__all__ = [
    "ANSWER_COLUMNS",
    "answer_frame",
    "as_rows",
    "encode_requests",
    "plain_value",
    "score_rows",
    "scoring_requests",
]

#: The columns of the frame ``Client.score`` returns, one row per input row.
ANSWER_COLUMNS = [
    "request_id", "model", "version", "variant", "score", "label", "latency_ms", "error",
]  # fmt: skip
_ID_PREFIX = "lm-"


def plain_value(value: Any) -> Any:
    """A feature value as the schema takes it: numpy scalars as Python ones, NaN as None
    (a missing value; the codec refuses NaN, which would poison the model's statistics)."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def as_rows(rows: Any) -> tuple[pd.Index, list[dict[str, Any]]]:
    """(index, feature dicts) of a DataFrame, one mapping, or an iterable of mappings."""
    if isinstance(rows, pd.DataFrame):
        records = rows.to_dict(orient="records")
        index = rows.index
    elif isinstance(rows, Mapping):
        records, index = [dict(rows)], pd.RangeIndex(1)
    elif isinstance(rows, Iterable) and not isinstance(rows, (str, bytes)):
        records = [dict(r) for r in rows]
        index = pd.RangeIndex(len(records))
    else:
        raise ClientError(
            f"rows must be a DataFrame, a mapping or an iterable of mappings, "
            f"not {type(rows).__name__}"
        )
    clean = [{str(k): plain_value(v) for k, v in r.items()} for r in records]
    return index, clean


def scoring_requests(
    model: str,
    rows: Sequence[Mapping[str, Any]],
    entity_ids: Sequence[str | None] | None = None,
    caller: str | None = None,
    now_ms: int | None = None,
) -> list[dict[str, Any]]:
    """One ``ScoringRequest`` record per row, each with a new request_id."""
    if entity_ids is not None and len(entity_ids) != len(rows):
        raise ClientError(f"{len(entity_ids)} entity ids for {len(rows)} rows")
    when = int(time.time() * 1000) if now_ms is None else now_ms
    return [
        {
            "request_id": f"{_ID_PREFIX}{uuid.uuid4().hex}",
            "model": model,
            "features": dict(row),
            "event_time": when,
            "entity_id": None if entity_ids is None else entity_ids[i],
            "caller": caller,
            "metadata": {},
        }
        for i, row in enumerate(rows)
    ]


def encode_requests(
    codec: Codec, requests: Sequence[Mapping[str, Any]], index: pd.Index, topic: str
) -> list[tuple[bytes, Any]]:
    """(value, headers) of each request as the codec writes it to ``topic``; a
    :class:`ClientError` naming the first row that is no ``ScoringRequest``, so a call
    refuses all its rows or none before anything is sent."""
    encoded = []
    for i, record in enumerate(requests):
        try:
            encoded.append(codec.encode("ScoringRequest", record, topic=topic))
        except EncodeError as err:
            raise ClientError(f"row {index[i]!r} cannot be a scoring request: {err}") from None
    return encoded


class _Answers:
    """Predictions and dead letters from the end each topic had when it was opened."""

    def __init__(self, settings: Settings, codec: Codec) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self.settings = settings
        self.codec = codec
        # No group: explicit assignment, nothing committed; read_committed by default.
        self.consumer = Consumer(settings.consumer_config(f"lastmile-client-{uuid.uuid4().hex}"))
        try:
            assignment = []
            for topic in (settings.topic_predictions, settings.topic_dlq):
                info = self.consumer.list_topics(topic, timeout=10).topics.get(topic)
                if info is None or info.error is not None:
                    raise ClientError(f"topic {topic!r} does not exist: start the stack first")
                for p in sorted(info.partitions):
                    _low, high = self.consumer.get_watermark_offsets(
                        TopicPartition(topic, p), timeout=10
                    )
                    assignment.append(TopicPartition(topic, p, high))
            self.consumer.assign(assignment)
        except BaseException:
            self.consumer.close()
            raise

    def poll(self, timeout: float, want: int) -> list[tuple[str, dict[str, Any]]]:
        """(topic, record) of what arrived; a record that does not decode is skipped.

        Returns once ``want`` messages arrived (consume waits for as many as it is asked
        for) or after ``timeout`` seconds.
        """
        out = []
        for msg in self.consumer.consume(num_messages=max(1, min(want, 1000)), timeout=timeout):
            if msg.error() is not None:
                continue  # partition EOF and the like: nothing to answer with
            topic = msg.topic()
            schema = "Prediction" if topic == self.settings.topic_predictions else "DeadLetter"
            try:
                out.append((topic, self.codec.decode(msg.value(), msg.headers(), schema, topic)))
            except DecodeError:
                continue  # someone else's bad message; ours are the lastmile codec's own
        return out

    def close(self) -> None:
        self.consumer.close()


def score_rows(
    settings: Settings,
    model: str,
    rows: Any,
    *,
    timeout: float = 30.0,
    entity_ids: Sequence[str | None] | None = None,
    caller: str | None = None,
    event_time_ms: int | None = None,
    codec: Codec | None = None,
    sender: Sender | None = None,
) -> pd.DataFrame:
    """Send one request per row to ``model`` and wait for each answer; a frame of them.

    The frame has the rows' index and :data:`ANSWER_COLUMNS`. A row the scorer could not
    score has ``error`` set to the dead letter's reason, and no score. ``event_time_ms``
    is every request's event time (default: now). Shadow scores are left out: the answer
    is the champion's or the challenger's. When some rows get no
    answer within ``timeout`` seconds, :class:`~lastmile.errors.ScoreTimeout` is raised,
    carrying the frame of those that did. A ``sender`` kept between calls saves each
    call the producer's start (half a second on the embedded broker).
    """
    codec = codec or Codec.from_settings(settings)
    index, features = as_rows(rows)
    if not features:
        return pd.DataFrame(columns=ANSWER_COLUMNS, index=index)
    requests = scoring_requests(model, features, entity_ids, caller, event_time_ms)
    topic = settings.topic_requests
    encoded = encode_requests(codec, requests, index, topic)
    by_id = {r["request_id"]: i for i, r in enumerate(requests)}
    answers: dict[str, dict[str, Any]] = {}
    written: dict[tuple[int, int], str] = {}  # (partition, offset) -> request_id
    reader = _Answers(settings, codec)
    try:
        sender = sender or Sender(settings)
        already_failed, sender.first_error = sender.failed, None
        for record, (value, headers) in zip(requests, encoded, strict=True):
            rid = record["request_id"]
            key = record_key(record, DEFAULT_KEY_FIELDS["requests"])
            sender.send(topic, value, key, headers, on_delivery=_remember(written, rid))
        failed = sender.flush(30) - already_failed
        if failed:
            raise ClientError(
                f"{failed} of {len(requests)} requests were not delivered to {topic}: "
                f"{sender.first_error or 'timed out'}"
            )
        deadline = time.monotonic() + timeout
        while len(answers) < len(requests) and time.monotonic() < deadline:
            wait = min(0.5, max(deadline - time.monotonic(), 0.01))
            for source, record in reader.poll(wait, len(requests) - len(answers)):
                if source == settings.topic_predictions:
                    rid = record["request_id"]
                    if rid in by_id and record["variant"] != "shadow":
                        answers[rid] = record
                elif record["source_topic"] == topic:
                    rid = written.get((record["source_partition"], record["source_offset"]))
                    if rid is not None and rid not in answers:
                        answers[rid] = {"error": f"{record['stage']}: {record['error']}"}
    finally:
        reader.close()
    frame = answer_frame(index, requests, answers, model)
    missing = [r["request_id"] for r in requests if r["request_id"] not in answers]
    if missing:
        raise ScoreTimeout(
            f"{len(missing)} of {len(requests)} requests to {model!r} got no prediction in "
            f"{timeout:g} s: is a scorer running (`lastmile up`) and {model!r} promoted?",
            missing=missing,
            frame=frame,
        )
    return frame


def _remember(written: dict[tuple[int, int], str], rid: str) -> Any:
    """A delivery callback noting where request ``rid`` was written (its dead letter says)."""

    def delivered(msg: Any) -> None:
        written[(msg.partition(), msg.offset())] = rid

    return delivered


def answer_frame(
    index: pd.Index,
    requests: Sequence[Mapping[str, Any]],
    answers: Mapping[str, Mapping[str, Any]],
    model: str,
) -> pd.DataFrame:
    """The frame of :data:`ANSWER_COLUMNS`, one row per request (by ``request_id`` in
    ``answers``; an unanswered one says so in ``error``), on the input rows' index."""
    rows = []
    for request in requests:
        rid = request["request_id"]
        got = answers.get(rid)
        row = {c: (got or {}).get(c) for c in ANSWER_COLUMNS}
        row["request_id"], row["model"] = rid, model
        if got is None:
            row["error"] = "no answer yet"
        rows.append(row)
    frame = pd.DataFrame(rows, columns=ANSWER_COLUMNS, index=index)
    frame["version"] = frame["version"].astype("Int64")
    frame["score"] = frame["score"].astype("float64")
    frame["latency_ms"] = frame["latency_ms"].astype("float64")
    return frame
