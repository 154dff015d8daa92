"""The scorer role: scoring requests in, predictions out, in batches.

For each batch of ``scoring.requests`` the scorer decodes every message, routes
each request to its version(s) through the :class:`~streams.models.routing.ModelTable`
(champion, challenger by sticky split, shadow), scores each version's requests
as one matrix (``LoadedModel.predict_many``), and returns Prediction records and
dead letters to the lane, which produces them and commits the offsets in one
transaction. Nothing here raises for bad input, and nothing blocks on Kafka but a
request about to be called an unknown model or one without a version: the table first
catches up with ``models.events`` (:meth:`Scorer.catch_up`, about one round trip a batch).
A paused model's requests are answered by its fallback (variant ``fallback``): a
constant, without a model or a feature check, or the fallback version.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Container, Sequence
from itertools import repeat
from typing import Any

from confluent_kafka import Message

from schemas import Codec, DecodeError
from streams.config import Settings
from streams.kafka.deadletters import (
    dead_letter,
    dead_letter_from_error,
    default_worker,
    encode_dead_letter,
    reason_model_exception,
    reason_no_version,
    reason_unknown_model,
)
from streams.kafka.lane import BatchLane, Output
from streams.kafka.traceparent import carry_traceparent
from streams.metrics.tallies import ScorerTally
from streams.models import (
    CATCH_UP_S,
    FALLBACK,
    FALLBACK_CONSTANT,
    LoadedModel,
    ModelState,
    ModelTable,
    ModelWatcher,
    Registry,
    RegistryError,
    created_ms,
)
from streams.records import PREDICTION_FIELDS, prediction_values

log = logging.getLogger("lastmile.scorer")

_UNASKED: Any = object()


def _without(dropped: Container[int], *columns: list) -> tuple[list, ...]:
    """The columns (parallel lists) without the rows whose index is in `dropped`."""
    if not dropped:
        return columns
    keep = [i for i in range(len(columns[0])) if i not in dropped]
    return tuple([column[i] for i in keep] for column in columns)


class ModelCache:
    """Loaded model versions, loaded on first use and dropped when retired.

    A version that fails to load (sha256 mismatch, unpickling error) is remembered
    as broken with its reason, so every request for it fails fast; the scorer
    then answers with the last version of that variant that loaded.
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._models: dict[tuple[str, int], LoadedModel] = {}
        self._broken: dict[tuple[str, int], str] = {}
        self._lock = threading.Lock()

    def get(self, model: str, version: int) -> LoadedModel:
        key = (model, version)
        loaded = self._models.get(key)
        if loaded is not None:
            return loaded
        if key in self._broken:
            raise RegistryError(self._broken[key])
        with self._lock:
            if key not in self._models:
                try:
                    self._models[key] = self.registry.load(model, version)
                except Exception as err:  # a model is user code: its load error is contained
                    reason = f"model {model} v{version} cannot be loaded: {err}"
                    self._broken[key] = reason
                    log.error("%s", reason)
                    raise RegistryError(reason) from err
                log.info("loaded %s v%d", model, version)
        return self._models[key]

    def on_change(self, old: ModelState | None, new: ModelState) -> None:
        """Drop retired versions so their memory goes back."""
        for version, entry in new.versions.items():
            if entry.get("retired") and self._models.pop((new.model, version), None) is not None:
                log.info("unloaded retired %s v%d", new.model, version)

    def __len__(self) -> int:
        return len(self._models)


class Scorer:
    """The batch handler of the scorer lane.

    Statistics in :attr:`counts` (scored, dead letters per stage, fallbacks)
    are exported on the worker's status page.
    """

    def __init__(
        self,
        settings: Settings,
        table: ModelTable,
        registry: Registry,
        codec: Codec | None = None,
        worker: str | None = None,
    ) -> None:
        self.settings = settings
        self.table = table
        self.cache = ModelCache(registry)
        table.subscribe(self.cache.on_change)
        self.codec = codec or Codec.from_settings(settings)
        self.worker = worker or default_worker()
        self.last_good: dict[tuple[str, str], int] = {}
        self.counts: dict[str, int] = defaultdict(int)
        self.tally = ScorerTally()  # predictions and latency per version, for /metrics

    # -- the batch --------------------------------------------------------------------

    def process(self, messages: Sequence[Message]) -> list[Output]:
        outputs: list[Output] = []
        # (model, version, variant) -> the messages and requests it scores, in order
        work: dict[tuple[str, int, str], tuple[list[Message], list[dict]]] = {}
        # model -> the groups each of its requests joins, when no split makes that
        # depend on the request (asked once per model and batch, not hashed per request)
        keyless: dict[str, list[tuple[list[Message], list[dict]]] | None] = {}
        table = self.table
        decoded = self.codec.decode_messages(
            messages, "ScoringRequest", self.settings.topic_requests
        )
        for message, request in zip(messages, decoded, strict=True):
            if isinstance(request, DecodeError):
                letter = dead_letter_from_error(message, request, worker=self.worker)
                outputs.append(self._letter(message, letter))
                continue
            model = request["model"]
            groups = keyless.get(model, _UNASKED)
            if groups is _UNASKED:
                routes = table.keyless_route(model)
                groups = keyless[model] = (
                    None if routes is None else self._groups(work, model, routes)
                )
            if groups is None:
                key = request.get("entity_id") or request["request_id"]
                groups = self._groups(work, model, table.route(model, key))
            if not groups:
                # The model may have been registered or promoted just before its request.
                self.catch_up(message)
                keyless.pop(model, None)
                key = request.get("entity_id") or request["request_id"]
                groups = self._groups(work, model, table.route(model, key))
            if not groups:
                outputs.append(self._unrouted(message, model))
                continue
            for group_messages, group_requests in groups:
                group_messages.append(message)
                group_requests.append(request)

        now_ms = int(time.time() * 1000)
        for (model, version, variant), (group_messages, group_requests) in work.items():
            outputs.extend(
                self._score_version(model, version, variant, group_messages, group_requests, now_ms)
            )
        return outputs

    def process_version(
        self, messages: Sequence[Message], model: str, version: int, variant: str
    ) -> list[Output]:
        """:meth:`process` with the version chosen by the caller instead of routed (the
        gateway's ``/versions/{v}/infer``): decoded, checked and scored by the same code.
        A chosen version that cannot be loaded answers no request: no fallback."""
        decoded = self.codec.decode_messages(
            messages, "ScoringRequest", self.settings.topic_requests
        )
        outputs: list[Output] = []
        good: tuple[list[Message], list[dict]] = ([], [])
        for message, request in zip(messages, decoded, strict=True):
            if isinstance(request, DecodeError):
                letter = dead_letter_from_error(message, request, worker=self.worker)
                outputs.append(self._letter(message, letter))
            else:
                good[0].append(message)
                good[1].append(request)
        try:
            self.cache.get(model, version)
        except RegistryError as err:
            return outputs + [
                self._dead(message, "score", str(err), "model_unavailable", model)
                for message in good[0]
            ]
        if good[0]:
            now_ms = int(time.time() * 1000)
            outputs.extend(self._score_version(model, version, variant, *good, now_ms))
        return outputs

    def catch_up(self, message: Message) -> bool:
        """Whether the table holds every model event published before `message`, caught
        up if needed: asked before a request is called an unknown model or one without a
        version. The first such request of a batch asks the broker (one ListOffsets, and
        a fetch when events are behind), after the batch was read: so the others, made
        before, need no ask of their own (:meth:`ModelTable.catch_up`)."""
        if self.table.catch_up(CATCH_UP_S, created_ms(message)):
            return True
        self.counts["catch_up_failed"] += 1
        return False

    @staticmethod
    def _groups(
        work: dict[tuple[str, int, str], tuple[list[Message], list[dict]]],
        model: str,
        routes: list[tuple[int, str]],
    ) -> list[tuple[list[Message], list[dict]]]:
        return [work.setdefault((model, version, variant), ([], [])) for version, variant in routes]

    def _unrouted(self, message: Message, model: str) -> Output:
        if self.table.get(model) is None:
            reason = reason_unknown_model(model, self.table.models())
            return self._dead(message, "route", reason, "unknown_model", model)
        return self._dead(message, "route", reason_no_version(model), "no_version", model)

    def _score_version(
        self,
        model: str,
        version: int,
        variant: str,
        messages: list[Message],
        requests: list[dict],
        now_ms: int,
    ) -> list[Output]:
        if variant == FALLBACK and version == FALLBACK_CONSTANT:  # paused: answered as is
            return self._constant(model, messages, requests, now_ms)
        outputs: list[Output] = []
        answering = variant != "shadow"  # only the answering variant reports a failure
        try:
            loaded = self.cache.get(model, version)
            self.last_good[(model, variant)] = version
        except RegistryError as err:
            fallback = self.last_good.get((model, variant))
            if fallback is None or fallback == version:
                if answering:
                    for message in messages:
                        outputs.append(
                            self._dead(message, "score", str(err), "model_unavailable", model)
                        )
                return outputs
            self.counts["last_good"] += len(messages)
            version = fallback
            loaded = self.cache.get(model, version)

        rows = [request["features"] for request in requests]
        invalid, matrix = loaded.check_many(rows)
        for i, problem in invalid.items():
            if answering:
                reason = f"model {model!r} v{version}: {problem.reason}"
                outputs.append(self._dead(messages[i], "score", reason, problem.kind, model))
        messages, requests, rows = _without(invalid, messages, requests, rows)
        if not rows:
            return outputs

        results = loaded.predict_many(rows, return_errors=True, matrix=matrix)
        failed = {i: err for i, err in enumerate(results) if isinstance(err, BaseException)}
        for i, err in failed.items():
            if answering:
                reason = reason_model_exception(model, version, err)
                outputs.append(self._dead(messages[i], "score", reason, "model_exception", model))
        messages, requests, results = _without(failed, messages, requests, results)
        outputs.extend(
            self._predictions(model, version, variant, messages, requests, results, now_ms)
        )
        return outputs

    def _constant(
        self, model: str, messages: list[Message], requests: list[dict], now_ms: int
    ) -> list[Output]:
        """A paused model's constant answer to each request: no model, no feature check."""
        pause = self.table.fallback(model)
        assert pause is not None  # the table keeps the pause that routed to it
        results = [(pause.score, pause.label)] * len(requests)
        return self._predictions(
            model, FALLBACK_CONSTANT, FALLBACK, messages, requests, results, now_ms
        )

    def _predictions(
        self,
        model: str,
        version: int,
        variant: str,
        messages: list[Message],
        requests: list[dict],
        results: Sequence[tuple[float | None, str | None]],
        now_ms: int,
    ) -> list[Output]:
        values = prediction_values(messages, requests, results, version, variant, now_ms)
        self.scored(requests, values)
        self.counts[variant] += len(requests)
        self.tally.scored(model, version, variant, values)
        topic_out = self.settings.topic_predictions
        encoded, headers = self.codec.encode_projections(
            "Prediction", requests, PREDICTION_FIELDS, values, topic_out
        )
        keys = [request["request_id"] for request in requests]
        return list(
            map(Output, repeat(topic_out), encoded, keys, carry_traceparent(messages, headers))
        )

    def scored(self, requests: list[dict], values: list[tuple]) -> None:
        """Told each version's scored requests and their :data:`PREDICTION_FIELDS` values
        before they are encoded: nothing here; a caller answering in process (the
        gateway) overrides it to keep the answers."""

    def _dead(
        self,
        message: Message,
        stage: str,
        reason: str,
        error_type: str | None = None,
        model: str | None = None,
    ) -> Output:
        record = dead_letter(message, stage, reason, error_type, model, self.worker)
        return self._letter(message, record)

    def _letter(self, message: Message, record: dict) -> Output:
        self.counts[f"dlq.{record['stage']}"] += 1
        value, headers = encode_dead_letter(self.codec, record, self.settings.topic_dlq)
        return Output(self.settings.topic_dlq, value, message.key(), headers)


class ScorerLane(BatchLane):
    """The scorer's lane: watches ``models.events`` before it takes any request."""

    def __init__(self, settings: Settings, **lane_options: Any) -> None:
        self.table = ModelTable()
        self.watcher = ModelWatcher(settings, self.table)
        self.scorer = Scorer(settings, self.table, Registry.from_settings(settings))
        # A prediction is a function of its request (and the champion): after a crash the
        # replay skips what the killed worker left visible (streams/kafka/takeover.py).
        lane_options.setdefault("skip_visible", True)
        lane_options.setdefault("exactly_once", settings.scorer_exactly_once)
        super().__init__(settings, "scorer", [settings.topic_requests], self.scorer, **lane_options)

    def run(self) -> None:
        # Replay the control plane first: a request must never meet a worker that
        # has not yet heard of its model's champion.
        self.watcher.start()
        while not self.watcher.wait_caught_up(5.0):
            if self._stop.is_set():
                return
            log.info("scorer: waiting for %s to replay", self.settings.topic_model_events)
        try:
            super().run()
        finally:
            self.watcher.stop()

    def stop(self, timeout: float = 30.0) -> None:
        super().stop(timeout)
        self.watcher.stop()

    def details(self) -> dict[str, object]:
        return {
            "counts": dict(self.scorer.counts),
            "models": len(self.table.models()),
            "loaded_versions": len(self.scorer.cache),
        }


def scorer_lane(settings: Settings) -> ScorerLane:
    return ScorerLane(settings)
