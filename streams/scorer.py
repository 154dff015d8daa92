"""The scorer role: scoring requests in, predictions out, in batches.

For each batch of ``scoring.requests`` the scorer decodes every message, routes
each request to its version(s) through the :class:`~streams.control.ModelTable`
(champion, challenger by sticky split, shadow), scores each version's requests
as one matrix (``LoadedModel.predict_many``), and returns Prediction records and
dead letters to the lane, which produces them and commits the offsets in one
transaction. Nothing here blocks on Kafka; nothing here raises for bad input.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Message

from schemas.codec import Codec, DecodeError
from streams.config import Settings
from streams.control import ModelState, ModelTable, ModelWatcher
from streams.deadletters import (
    dead_letter,
    dead_letter_from_error,
    default_worker,
    encode_dead_letter,
    reason_model_exception,
    reason_no_version,
    reason_unknown_model,
)
from streams.lane import BatchLane, Output
from streams.registry import LoadedModel, Registry, RegistryError

log = logging.getLogger("lastmile.scorer")


# What the scorer adds to a request's fields to make its Prediction (the others,
# request_id, model, features, event_time, entity_id, caller and metadata, are the
# request's own): encoded together with Codec.encode_projections, no record dict built.
PREDICTION_FIELDS = ("version", "variant", "score", "label", "scored_time", "latency_ms")


def prediction_values(
    message: Message,
    request: dict[str, Any],
    version: int,
    variant: str,
    score: float,
    label: str,
    now_ms: int,
) -> tuple:
    """The values of :data:`PREDICTION_FIELDS` for `request` (read from `message`), scored
    at `now_ms`; its latency counts from when the request reached the broker (else from
    its event time).

    >>> from schemas.codec import Codec
    >>> class Sent:
    ...     def timestamp(self): return (1, 1_000)
    >>> r = {"request_id": "r1", "model": "m", "features": {"x": 1.0}, "event_time": 900,
    ...      "entity_id": None, "caller": None, "metadata": {}}
    >>> values = prediction_values(Sent(), r, 2, "champion", 0.7, "1", 1_025)
    >>> codec = Codec()
    >>> [(value, headers)] = codec.encode_projections(
    ...     "Prediction", [r], PREDICTION_FIELDS, [values])
    >>> p = codec.decode(value, headers, "Prediction")
    >>> p["request_id"], p["version"], p["variant"], p["latency_ms"], p["features"]
    ('r1', 2, 'champion', 25.0, {'x': 1.0})
    """
    timestamp = message.timestamp()[1]
    sent_ms = timestamp if timestamp and timestamp > 0 else request["event_time"]
    return (version, variant, score, label, now_ms, float(max(0, now_ms - sent_ms)))


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
                except Exception as err:
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

    # -- the batch --------------------------------------------------------------------

    def process(self, messages: Sequence[Message]) -> list[Output]:
        outputs: list[Output] = []
        # (model, version) -> list of (message, request, variant)
        work: dict[tuple[str, int], list[tuple[Message, dict, str]]] = defaultdict(list)
        topic_in = self.settings.topic_requests
        for message in messages:
            try:
                request = self.codec.decode(
                    message.value(), message.headers(), "ScoringRequest", topic_in
                )
            except DecodeError as err:
                letter = dead_letter_from_error(message, err, worker=self.worker)
                outputs.append(self._letter(message, letter))
                continue
            model = request["model"]
            routes = self.table.route(model, request.get("entity_id") or request["request_id"])
            if not routes:
                if self.table.get(model) is None:
                    reason = reason_unknown_model(model, self.table.models())
                    outputs.append(self._dead(message, "route", reason, "unknown_model", model))
                else:
                    reason = reason_no_version(model)
                    outputs.append(self._dead(message, "route", reason, "no_version", model))
                continue
            for version, variant in routes:
                work[(model, version)].append((message, request, variant))

        now_ms = int(time.time() * 1000)
        for (model, version), items in work.items():
            outputs.extend(self._score_version(model, version, items, now_ms))
        return outputs

    def _score_version(
        self, model: str, version: int, items: list[tuple[Message, dict, str]], now_ms: int
    ) -> list[Output]:
        outputs: list[Output] = []
        variant0 = items[0][2]
        try:
            loaded = self.cache.get(model, version)
            self.last_good[(model, variant0)] = version
        except RegistryError as err:
            fallback = self.last_good.get((model, variant0))
            if fallback is None or fallback == version:
                for message, _req, variant in items:
                    if variant != "shadow":
                        outputs.append(
                            self._dead(message, "score", str(err), "model_unavailable", model)
                        )
                return outputs
            self.counts["fallback"] += len(items)
            version = fallback
            loaded = self.cache.get(model, version)

        valid: list[tuple[Message, dict, str]] = []
        for item in items:
            reason = loaded.check_features(item[1]["features"])
            if reason is None:
                valid.append(item)
            elif item[2] != "shadow":  # the answering variant reports it once
                absent = "missing" in reason or "null" in reason
                kind = "feature_missing" if absent else "feature_type"
                reason = f"model {model!r} v{version}: {reason}"
                outputs.append(self._dead(item[0], "score", reason, kind, model))
        if not valid:
            return outputs

        results = loaded.predict_many(
            [r["features"] for _, r, _ in valid], return_errors=True, checked=True
        )
        requests: list[dict] = []
        values: list[tuple] = []
        for (message, request, variant), result in zip(valid, results, strict=True):
            if isinstance(result, BaseException):
                if variant != "shadow":
                    reason = reason_model_exception(model, version, result)
                    outputs.append(self._dead(message, "score", reason, "model_exception", model))
                continue
            score, label = result
            requests.append(request)
            values.append(
                prediction_values(message, request, version, variant, score, label, now_ms)
            )
            self.counts[variant] += 1
        topic_out = self.settings.topic_predictions
        encoded = self.codec.encode_projections(
            "Prediction", requests, PREDICTION_FIELDS, values, topic_out
        )
        for request, (value, headers) in zip(requests, encoded, strict=True):
            outputs.append(Output(topic_out, value, request["request_id"], headers))
        return outputs

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
        # replay skips what the killed worker left visible (streams/takeover.py).
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
