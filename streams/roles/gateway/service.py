"""What the gateway does with a parsed request: route, check, score it with the scorer's
own code, publish, and answer.

Each row of a request becomes a JSON ``ScoringRequest`` (caller ``http``) inside an
:class:`HttpRow`, the shape of a Kafka message the :class:`~streams.roles.scorer.Scorer`
takes: so the alias, the sticky split, the shadow, the feature checks and the dead
letters are exactly those of Kafka traffic. The outputs are produced and delivered
before the answer is returned; a request with a refused row is answered with the
refusal (its dead letters written), not with the other rows' scores.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from schemas import Codec
from streams.config import Settings
from streams.kafka.deadletters import dead_letter, default_worker, encode_dead_letter
from streams.kafka.lane import Output
from streams.models import CATCH_UP_S, SHADOW, ModelTable, ModelWatcher, Registry
from streams.records import PREDICTION_FIELDS
from streams.roles.gateway.errors import BadRequest, GatewayError, NotFound, Unavailable
from streams.roles.gateway.publish import Publisher
from streams.roles.gateway.v2 import Answer, InferCall
from streams.roles.scorer import Scorer

__all__ = ["CALLER", "TRACEPARENT", "AnsweringScorer", "HttpRow", "Inference"]

CALLER = "http"
TRACEPARENT = "traceparent"
# What a variant is called when the caller chose a version no alias names.
PINNED = "pinned"

_NOT_FOUND = frozenset({"unknown_model", "no_version", "unknown_version"})


class HttpRow:
    """One row of an HTTP request, as a message: what the scorer and the dead letters read.

    It claims the requests topic with partition and offset -1 (no Kafka position), so a
    dead letter of it is replayable onto ``scoring.requests`` as it stands.

    >>> row = HttpRow(b"r1", b'{"request_id": "r1"}', None, "scoring.requests", 1700000000000)
    >>> row.key(), row.partition(), row.offset(), row.timestamp()
    (b'r1', -1, -1, (1, 1700000000000))
    """

    __slots__ = ("_headers", "_key", "_received_ms", "_topic", "_value")

    def __init__(
        self,
        key: bytes,
        value: bytes,
        headers: list[tuple[str, bytes]] | None,
        topic: str,
        received_ms: int,
    ) -> None:
        self._key, self._value, self._headers = key, value, headers
        self._topic, self._received_ms = topic, received_ms

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes:
        return self._value

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return -1

    def offset(self) -> int:
        return -1

    def timestamp(self) -> tuple[int, int]:
        return (1, self._received_ms)  # TIMESTAMP_CREATE_TIME: the latency counts from here


_AT = {name: i for i, name in enumerate(PREDICTION_FIELDS)}


class AnsweringScorer(Scorer):
    """The scorer, keeping by request id the answer of each row it scores (not the shadow's).

    It never catches up itself: :meth:`Inference.infer` did before scoring a request
    that routes nowhere, off the event loop."""

    answers: dict[str, Answer]

    def catch_up(self, message: Any) -> bool:
        return True

    def scored(self, requests: list[dict], values: list[tuple]) -> None:
        at_version, at_variant = _AT["version"], _AT["variant"]
        at_score, at_label = _AT["score"], _AT["label"]
        answers = self.answers
        for request, v in zip(requests, values, strict=True):
            if v[at_variant] != SHADOW:
                rid = request["request_id"]
                answers[rid] = Answer(rid, v[at_score], v[at_label], v[at_version], v[at_variant])


class Inference:
    """The gateway's scoring: a :class:`Scorer` over the table :class:`ModelWatcher` keeps,
    and a :class:`Publisher` for what it outputs."""

    def __init__(self, settings: Settings, registry: Registry | None = None) -> None:
        self.settings = settings
        self.table = ModelTable()
        self.watcher = ModelWatcher(settings, self.table)
        self.codec = Codec.from_settings(settings)
        self.worker = default_worker()
        self.scorer = AnsweringScorer(
            settings,
            self.table,
            registry or Registry.from_settings(settings),
            codec=self.codec,
            worker=self.worker,
        )
        self.publisher = Publisher(settings)
        # Generated request ids: this process's random prefix and a count (uuid4 per
        # request cost 6% of the gateway's time at 32 connections).
        self._id_prefix = uuid.uuid4().hex[:16]
        self._ids = itertools.count()

    def _new_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids):016x}"

    def start(self) -> None:
        self.watcher.start()
        self.publisher.start()

    def close(self) -> None:
        self.watcher.stop()
        self.publisher.close()

    @property
    def ready(self) -> bool:
        """True once every model event up to start is applied: routing is current."""
        return self.watcher.caught_up

    def known(self, model: str) -> bool:
        return self.table.get(model) is not None

    async def catch_up(self, since_ms: int | None = None) -> bool:
        """:meth:`ModelTable.catch_up` on a thread of the loop's executor: asked before a
        model is called unknown, or without a (live) version, as a request finds it.
        `since_ms`: when the request came in (an ask after it covers it)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.table.catch_up, CATCH_UP_S, since_ms)

    def _answerable(self, model: str, version: int | None) -> bool:
        """Whether the table has an answer for `model` (`version`), before any catch-up:
        a routed version for every request, or the chosen version live."""
        if version is None:
            return self.table.keyless_route(model) != []
        state = self.table.get(model)
        return state is not None and state.live(version)

    # -- answering ---------------------------------------------------------------------

    async def infer(
        self,
        model: str,
        call: InferCall,
        version: int | None = None,
        traceparent: bytes | None = None,
    ) -> tuple[str, list[Answer]]:
        """The request id and one answer per row; raises :class:`GatewayError` (its dead
        letters written) when a row is refused."""
        if not self.ready:
            raise Unavailable("the gateway is still reading models.events; retry shortly")
        request_id = call.request_id or self._new_id()
        now = int(time.time() * 1000)
        if not self._answerable(model, version):
            await self.catch_up(now)
        headers = [(TRACEPARENT, traceparent)] if traceparent else None
        messages, ids = self._messages(model, call, request_id, now, headers)
        # From here to the first await nothing else runs on this loop: the scorer's answers
        # are this request's alone until they are taken.
        self.scorer.answers = {}
        if version is None:
            outputs = self.scorer.process(messages)
        else:
            variant = self._variant(model, version)
            outputs = self.scorer.process_version(messages, model, version, variant)
        dlq = self.settings.topic_dlq
        letters = [out for out in outputs if out.topic == dlq]
        if letters:
            await self.publisher.deliver(letters)
            raise self._refusal(letters, len(messages))
        answers = self._answers(ids)
        if headers:
            outputs = [_with_header(out, headers[0]) for out in outputs]
        await self.publisher.deliver(outputs)
        return request_id, answers

    def _messages(
        self,
        model: str,
        call: InferCall,
        request_id: str,
        now: int,
        headers: list[tuple[str, bytes]] | None,
    ) -> tuple[list[HttpRow], list[str]]:
        many = len(call.rows) > 1
        event_time = call.parameters.get("event_time")
        if not isinstance(event_time, int) or isinstance(event_time, bool):
            event_time = now
        topic = self.settings.topic_requests
        messages, ids = [], []
        for i, features in enumerate(call.rows):
            rid = f"{request_id}-{i}" if many else request_id
            request = {
                "request_id": rid,
                "model": model,
                "features": features,
                "event_time": event_time,
                "entity_id": call.entity_id,
                "caller": CALLER,
            }
            key = (call.entity_id or rid).encode()
            messages.append(HttpRow(key, orjson.dumps(request), headers, topic, now))
            ids.append(rid)
        return messages, ids

    def _variant(self, model: str, version: int) -> str:
        state = self.table.get(model)
        if state is None:
            raise NotFound(f"unknown model {model!r}")
        if not state.live(version):
            live = sorted(v for v in state.versions if state.live(v))
            raise NotFound(
                f"model {model!r} has no live version {version} (live: {live})",
                error_type="unknown_version",
            )
        named = [alias for alias, v in state.aliases.items() if v == version]
        return sorted(named)[0] if named else PINNED

    def _answers(self, ids: Sequence[str]) -> list[Answer]:
        answers = self.scorer.answers
        missing = [rid for rid in ids if rid not in answers]
        if missing:  # the scorer answers every row it does not refuse: this is a bug
            raise Unavailable(f"no answer for request(s) {missing[:3]}")
        return [answers[rid] for rid in ids]

    def _refusal(self, letters: Sequence[Output], rows: int) -> GatewayError:
        record: dict[str, Any] = self.codec.decode(
            letters[0].value, letters[0].headers, "DeadLetter", self.settings.topic_dlq
        )
        reason = record["error"]
        if rows > 1:
            reason = f"{len(letters)} of {rows} rows refused; the first: {reason}"
        kind = record["error_type"]
        refusal = BadRequest
        if kind in _NOT_FOUND:
            refusal = NotFound
        elif kind == "model_unavailable":
            refusal = Unavailable
        error = refusal(reason, stage=record["stage"], error_type=kind)
        error.written = True
        return error

    # -- refusing what never reached the scorer ------------------------------------------

    async def refuse(
        self, error: GatewayError, body: bytes, traceparent: bytes | None, model: str | None
    ) -> None:
        """Write the dead letter of a request refused before scoring (unparsable body,
        unknown version, ...): its body kept as it came."""
        headers = [(TRACEPARENT, traceparent)] if traceparent else None
        now = int(time.time() * 1000)
        message = HttpRow(b"", body, headers, self.settings.topic_requests, now)
        record = dead_letter(
            message, error.stage, error.reason, error.error_type, model, self.worker
        )
        value, dl_headers = encode_dead_letter(self.codec, record, self.settings.topic_dlq)
        self.scorer.counts[f"dlq.{error.stage}"] += 1
        await self.publisher.deliver([Output(self.settings.topic_dlq, value, None, dl_headers)])


def _with_header(out: Output, header: tuple[str, bytes]) -> Output:
    """`out` carrying `header`, unless it carries one of that name already."""
    headers = out.headers or []
    if any(name == header[0] for name, _ in headers):
        return out
    return Output(out.topic, out.value, out.key, [*headers, header], out.partition)
