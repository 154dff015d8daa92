"""Dead letters: what a role could not process goes to ``scoring.dlq``, with the reason.

Bad input never stops a worker (DESIGN.md). Every role turns the message it
cannot handle into a ``DeadLetter`` record (schemas/DeadLetter.avsc) carrying the
original key, value and headers byte for byte, where it came from (topic,
partition, offset, timestamp), at which stage it failed and why, and produces it
to the dead-letter topic keyed by the original key. ``lastmile dlq tail`` shows
them; ``lastmile dlq replay`` sends chosen ones back to their source topic.

Stages and the usual error types (``error_type``):

===========  ===================  =============================================
stage        error_type           when
===========  ===================  =============================================
decode       undecodable          bytes unreadable: truncated, unknown schema, not JSON, too large
validate     schema_violation     readable, but breaks the schema (type, missing field, NaN)
route        unknown_model        no such model, or it has no serving version
score        feature_missing      a feature the model needs is absent or null
score        feature_type         a feature has a type the model cannot take
score        model_exception      the model raised
learn, sink, monitor, ...         the role's own failures (exception class name)
===========  ===================  =============================================

The functions ``reason_*`` word the reasons the same way everywhere.

>>> from types import SimpleNamespace as NS
>>> msg = NS(key=lambda: b"k1", value=lambda: b"\\xff\\x00", headers=lambda: [("h", b"v")],
...          topic=lambda: "scoring.requests", partition=lambda: 2, offset=lambda: 41,
...          timestamp=lambda: (1, 1700000000000))
>>> letter = dead_letter(msg, "decode", "truncated Avro", worker="w1")
>>> (letter["original_value"], letter["source_offset"], letter["error_type"], letter["worker"])
(b'\\xff\\x00', 41, 'undecodable', 'w1')
>>> reason_unknown_model("churn", known=["fraud"])
"unknown model 'churn' (known: fraud); register it with lastmile models register"
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from schemas import Codec, DecodeError, now_millis
from streams.errors import StreamsError

__all__ = [
    "dead_letter",
    "dead_letter_from_error",
    "encode_dead_letter",
    "DeadLetterProducer",
    "DeadLetterError",
    "STAGES",
    "ERROR_TYPES",
    "HEADER_REPLAYS",
    "HEADER_STAGE",
    "HEADER_SOURCE",
    "HEADER_TRUNCATED",
    "MAX_ORIGINAL_BYTES",
    "reason_unknown_model",
    "reason_no_version",
    "reason_feature_missing",
    "reason_feature_type",
    "reason_model_exception",
    "default_worker",
]

#: Stages of lastmile's pipeline, in order; roles may use others.
STAGES = ("decode", "validate", "route", "score", "learn", "sink", "monitor")

#: The error types lastmile's roles use (others: an exception class name).
ERROR_TYPES = (
    "undecodable",
    "schema_violation",
    "unknown_model",
    "feature_missing",
    "feature_type",
    "model_exception",
)

_DEFAULT_ERROR_TYPE = {
    "decode": "undecodable",
    "validate": "schema_violation",
    "route": "unknown_model",
}

#: Header on a replayed message: how many times it has been replayed (ASCII digits).
HEADER_REPLAYS = "lastmile.replays"
#: Headers on a dead letter itself, to filter without decoding.
HEADER_STAGE = "lastmile.dlq.stage"
HEADER_SOURCE = "lastmile.dlq.source"
#: Header on a dead letter whose original value was cut to fit: the original size.
HEADER_TRUNCATED = "lastmile.dlq.truncated"

#: Largest original value a dead letter carries whole: the dead letter must fit in
#: Kafka's default message size (1,000,000 bytes for librdkafka producers) with its
#: reason and headers. Larger values keep their first bytes, and cannot be replayed.
MAX_ORIGINAL_BYTES = 900_000


class DeadLetterError(StreamsError, RuntimeError):
    """Dead letters could not be delivered: do not commit the offsets they cover.

    ``topic`` is the dead-letter topic, ``queued`` how many were still queued when the
    flush gave up, ``failures`` the delivery errors (as text) that were reported.
    """

    def __init__(
        self, message: str, topic: str = "", queued: int = 0, failures: Sequence[str] = ()
    ) -> None:
        super().__init__(message)
        self.topic = topic
        self.queued = queued
        self.failures = list(failures)


def default_worker() -> str:
    """``host:pid``, the default name of a worker in dead letters."""
    return f"{socket.gethostname()}:{os.getpid()}"


# --------------------------------------------------------------------------- reasons


def reason_unknown_model(model: str, known: Iterable[str] = ()) -> str:
    """The reason for a request naming a model the registry does not have."""
    names = sorted(known)
    listed = (
        f" (known: {', '.join(names[:10])}{', ...' if len(names) > 10 else ''})" if names else ""
    )
    return f"unknown model {model!r}{listed}; register it with lastmile models register"


def reason_no_version(model: str) -> str:
    """The reason for a request to a model without a champion (nothing serves it)."""
    return (
        f"model {model!r} has no champion version to serve it; "
        "promote one with lastmile models promote"
    )


def reason_feature_missing(model: str, version: int | None, features: Sequence[str]) -> str:
    """The reason for a request lacking features the model needs."""
    which = ", ".join(repr(f) for f in features[:10]) + (", ..." if len(features) > 10 else "")
    plural = "s" if len(features) != 1 else ""
    them = "them" if plural else "it"
    return (
        f"feature{plural} {which} missing (or null) for model {model!r} v{version}, "
        f"which needs {them}"
    )


def reason_feature_type(
    model: str, version: int | None, feature: str, expected: str, got: Any
) -> str:
    """The reason for a feature whose value has a type the model cannot take."""
    shown = repr(got)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return (
        f"feature {feature!r} of model {model!r} v{version} must be {expected}, "
        f"got {type(got).__name__} {shown}"
    )


def reason_model_exception(model: str, version: int | None, error: BaseException) -> str:
    """The reason for a model that raised while scoring."""
    text = str(error)
    if len(text) > 300:
        text = text[:297] + "..."
    return f"model {model!r} v{version} raised {type(error).__name__}: {text}"


# --------------------------------------------------------------------------- records


def _as_bytes(value: Any) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return bytes(value)


def _timestamp(message: Any) -> int | None:
    get = getattr(message, "timestamp", None)
    if get is None:
        return None
    ts = get() if callable(get) else get
    if isinstance(ts, tuple):
        kind, ts = ts
        if kind == 0:  # TIMESTAMP_NOT_AVAILABLE
            return None
    return ts if isinstance(ts, int) and ts >= 0 else None


def dead_letter(
    message: Any,
    stage: str,
    reason: str,
    error_type: str | None = None,
    model: str | None = None,
    worker: str | None = None,
) -> dict:
    """The DeadLetter record for ``message`` (a confluent-kafka ``Message`` or anything
    with ``key()``, ``value()``, ``headers()``, ``topic()``, ``partition()``,
    ``offset()`` and optionally ``timestamp()``). The original bytes are kept as
    they are. ``error_type`` defaults from the stage (decode: undecodable, validate:
    schema_violation, route: unknown_model, else the stage name)."""
    headers = message.headers() or []
    return {
        "original_key": _as_bytes(message.key()),
        "original_value": _as_bytes(message.value()),
        "original_headers": [{"key": str(k), "value": _as_bytes(v)} for k, v in headers],
        "source_topic": message.topic() or "",
        "source_partition": int(message.partition() if message.partition() is not None else -1),
        "source_offset": int(message.offset() if message.offset() is not None else -1),
        "source_timestamp": _timestamp(message),
        "stage": stage,
        "error": reason,
        "error_type": error_type or _DEFAULT_ERROR_TYPE.get(stage, stage),
        "ts": now_millis(),
        "worker": worker,
        "model": model,
    }


def dead_letter_from_error(
    message: Any,
    error: BaseException,
    stage: str | None = None,
    model: str | None = None,
    worker: str | None = None,
) -> dict:
    """``dead_letter`` from an exception: a :class:`DecodeError` brings its own stage,
    reason and type; anything else is ``"<Class>: <message>"`` at ``stage``."""
    if isinstance(error, DecodeError):
        return dead_letter(
            message, stage or error.stage, error.reason, error.error_type, model, worker
        )
    return dead_letter(
        message,
        stage or "unknown",
        f"{type(error).__name__}: {error}",
        type(error).__name__,
        model,
        worker,
    )


def encode_dead_letter(
    codec: Codec,
    record: dict,
    topic: str,
    max_original_bytes: int = MAX_ORIGINAL_BYTES,
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """A DeadLetter record as the value and headers to produce: the one way every role
    writes dead letters. An original value too large to fit the dead-letter topic is
    cut to ``max_original_bytes`` (the reason says so, a header keeps its size), so a
    huge bad message can never block a role's delivery."""
    extra = []
    original = record["original_value"]
    if original is not None and len(original) > max_original_bytes:
        record["original_value"] = original[:max_original_bytes]
        record["error"] += (
            f" [original value truncated for the dead-letter topic: {len(original):,} "
            f"bytes, the first {max_original_bytes:,} kept; it cannot be replayed]"
        )
        extra.append((HEADER_TRUNCATED, str(len(original)).encode()))
    value, headers = codec.encode("DeadLetter", record, topic=topic)
    source = f"{record['source_topic']}/{record['source_partition']}@{record['source_offset']}"
    headers = [
        *headers,
        (HEADER_STAGE, record["stage"].encode()),
        (HEADER_SOURCE, source.encode()),
        *extra,
    ]
    return value, headers


class DeadLetterProducer:
    """Produces dead letters to ``settings.topic_dlq``, keyed by the original key, and
    counts them per stage (``counts``) and per error type (``counts_by_type``).

    Delivery is asynchronous; call :meth:`flush` before committing the offsets of the
    messages dead-lettered (it raises :class:`DeadLetterError` when any was lost).

    >>> from streams.config import load_settings
    >>> class FakeProducer:
    ...     def __init__(self): self.sent = []
    ...     def produce(self, topic, value=None, key=None, headers=None, on_delivery=None):
    ...         self.sent.append((topic, key))
    ...     def poll(self, timeout=0): return 0
    ...     def flush(self, timeout=None): return 0
    >>> from types import SimpleNamespace as NS
    >>> msg = NS(key=lambda: b"k", value=lambda: b"junk", headers=lambda: None,
    ...          topic=lambda: "scoring.requests", partition=lambda: 0, offset=lambda: 7)
    >>> dlq = DeadLetterProducer(load_settings(env={}, toml_path=None), producer=FakeProducer())
    >>> _ = dlq.send(msg, "decode", "not lastmile Avro")
    >>> dlq.producer.sent, dict(dlq.counts)
    ([('scoring.dlq', b'k')], {'decode': 1})
    """

    def __init__(
        self,
        settings: Any,
        producer: Any = None,
        codec: Codec | None = None,
        worker: str | None = None,
        max_original_bytes: int = MAX_ORIGINAL_BYTES,
    ) -> None:
        self.settings = settings
        self.topic: str = settings.topic_dlq
        if producer is None:
            from confluent_kafka import Producer

            producer = Producer(settings.producer_config())
        self.producer = producer
        self.codec = codec or Codec.from_settings(settings)
        self.worker = worker or default_worker()
        self.max_original_bytes = max_original_bytes
        self.counts: Counter[str] = Counter()
        self.counts_by_type: Counter[str] = Counter()
        self.delivered = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def send(
        self, message: Any, stage: str, reason: str, error_type: str | None = None, **details: Any
    ) -> dict:
        """Dead-letter one message; returns the DeadLetter record produced. ``details`` are
        :func:`dead_letter`'s ``model`` and ``worker`` (this worker unless named)."""
        details["worker"] = details.get("worker") or self.worker
        record = dead_letter(message, stage, reason, error_type, **details)
        self._produce(record)
        return record

    def send_error(
        self, message: Any, error: BaseException, stage: str | None = None, model: str | None = None
    ) -> dict:
        """Dead-letter one message for an exception (a DecodeError brings its stage)."""
        record = dead_letter_from_error(message, error, stage, model, self.worker)
        self._produce(record)
        return record

    def _produce(self, record: dict) -> None:
        value, headers = encode_dead_letter(self.codec, record, self.topic, self.max_original_bytes)
        while True:
            try:
                self.producer.produce(
                    self.topic,
                    value=value,
                    key=record["original_key"],
                    headers=headers,
                    on_delivery=self._on_delivery,
                )
                break
            except BufferError:  # local queue full: let deliveries drain
                self.producer.poll(0.1)
        self.producer.poll(0)
        with self._lock:
            self.counts[record["stage"]] += 1
            self.counts_by_type[record["error_type"]] += 1

    def _on_delivery(self, err: Any, msg: Any) -> None:
        with self._lock:
            if err is not None:
                self.errors.append(str(err))
            else:
                self.delivered += 1

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every dead letter is acknowledged; raise DeadLetterError otherwise."""
        deadline = time.monotonic() + timeout
        remaining = self.producer.flush(timeout)
        while remaining and time.monotonic() < deadline:
            remaining = self.producer.flush(max(0.0, deadline - time.monotonic()))
        with self._lock:
            errors, self.errors = self.errors, []
        if remaining or errors:
            detail = f"{remaining} still queued" if remaining else ""
            if errors:
                detail += ("; " if detail else "") + f"{len(errors)} failed: {errors[0]}"
            raise DeadLetterError(
                f"dead letters to {self.topic} not delivered: {detail}",
                topic=self.topic,
                queued=remaining,
                failures=errors,
            )

    def close(self, timeout: float = 30.0) -> None:
        self.flush(timeout)
