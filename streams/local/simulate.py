"""Simulated traffic: scoring requests, late outcomes, drift and bad input, from River's streams.

The core is a plain iterator, :func:`simulated_events`, usable without Kafka (tests
and benchmarks use it); ``lastmile simulate`` (streams.cli.simulate) paces it and produces it to
``scoring.requests`` / ``scoring.outcomes`` with :mod:`streams.local.traffic_producer`;
``lastmile demo-models`` trains and registers the models the simulation is meant for
(:mod:`streams.local.demo_models`).

Streams (River's synthetic generators; the *concept* is the labelling function,
the *seed* draws the samples, so a model trained on one seed serves another):

=============  ==============================================  ===============================
stream         features                                        concept drift
=============  ==============================================  ===============================
``agrawal``    salary, commission, age, elevel, car, zipcode,   classification_function 6 -> 2
               hvalue, hyears, loan (Agrawal's loan applicants)
``sea``        x0, x1, x2 in [0, 10]                           SEA variant 0 -> 2 (threshold 8 -> 7)
``hyperplane`` x0 .. x9 in [0, 1]                              a new random hyperplane
=============  ==============================================  ===============================

Drift starts at request index ``drift_at``. ``abrupt`` switches at once; ``gradual``
mixes the two regimes along a sigmoid of width ``drift_width`` centred on
``drift_at`` (River's ``ConceptDriftStream`` formula). Concept drift changes the
labelling function through ``ConceptDriftStream``: the features keep their
distribution. Feature drift rescales/shifts chosen features (see
``FEATURE_DRIFT``) as an upstream change would (a unit change, a broken join):
the label still follows the true, unshifted values, so both the inputs' drift
monitors and, later, the model's performance should notice.

>>> events = list(simulated_events("fraud", count=5, rate=10, seed=1, start_ms=0))
>>> [e.kind for e in events][:4]
['request', 'outcome', 'request', 'outcome']
>>> events[0].record["request_id"], events[0].record["entity_id"], events[2].due
('fraud-s1-000000000', 'e000605', 0.1)
>>> sorted(events[0].record["features"])[:3]
['age', 'car', 'commission']
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import random
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import orjson

from streams.models import label_str

__all__ = [
    "STREAMS",
    "DEFAULT_STREAM",
    "BAD_KINDS",
    "FEATURE_DRIFT",
    "DRIFT_TYPES",
    "DEFAULT_FEATURE_DRIFT",
    "INT_FEATURES",
    "base_stream",
    "stream_rows",
    "drift_probability",
    "SimEvent",
    "request_id",
    "simulated_events",
]

STREAMS = ("agrawal", "sea", "hyperplane")
DEFAULT_STREAM = {"fraud": "agrawal", "churn": "hyperplane"}
BAD_KINDS = ("not_json", "missing_fields", "wrong_types", "unknown_model")
# (scale, shift) applied as x * scale + shift after feature drift starts.
FEATURE_DRIFT: dict[str, dict[str, tuple[float, float]]] = {
    "agrawal": {"salary": (1.5, 0.0), "age": (1.0, 15.0)},
    "sea": {"x0": (1.0, 3.0)},
    "hyperplane": {"x0": (1.0, 0.5), "x1": (2.0, 0.0)},
}
# feature: inputs shifted (an upstream change); concept: labels follow a new rule; both.
DRIFT_TYPES = ("feature", "concept", "both")
# Default scale of a feature named with --drift-features but not in FEATURE_DRIFT.
DEFAULT_FEATURE_DRIFT = (1.5, 0.0)
INT_FEATURES = {"agrawal": {"age", "elevel", "car", "zipcode", "hyears"}}


# -- the streams ---------------------------------------------------------------------------


def _hyperplane(concept_seed: int, sample_seed: int, n_features: int = 10, noise: float = 0.05):
    """River's Hyperplane, with the hyperplane (concept) seeded apart from the samples.

    River draws both from one seed; a demo model trained on one seed would not fit
    traffic drawn with another.
    """
    from river.datasets import synth

    class FixedHyperplane(synth.Hyperplane):
        def __iter__(self) -> Iterator[tuple[dict, int]]:
            crng = random.Random(concept_seed)
            weights = [crng.random() for _ in range(self.n_features)]
            half = sum(weights) * 0.5
            rng = random.Random(sample_seed)
            while True:
                x = {i: rng.random() for i in range(self.n_features)}
                y = 1 if sum(w * x[i] for i, w in enumerate(weights)) >= half else 0
                if 0.01 + rng.random() <= self.noise_percentage:
                    y = 1 - y
                yield x, y

    return FixedHyperplane(seed=sample_seed, n_features=n_features, noise_percentage=noise)


def _agrawal(classification_function: int, seed: int) -> Any:
    """River's Agrawal, sample for sample, without its ``eval`` per feature (~5x faster).

    River builds each row with ``eval(name)`` for nine names: ~22k rows/s, below
    what the scorer is measured at. Same random draws in the same order, so the
    rows are identical to River's (``tests/test_simulate.py`` checks it).
    """
    from river.datasets import synth

    class FastAgrawal(synth.Agrawal):
        def __iter__(self) -> Iterator[tuple[dict, int]]:
            if self.balance_classes or self.perturbation > 0.0:
                yield from super().__iter__()
                return
            rng = self._rng = random.Random(self.seed)
            label = self._classification_functions[self.classification_function]
            rand, randint = rng.random, rng.randint
            while True:
                salary = 20000 + 130000 * rand()
                commission = 0 if (salary >= 75000) else (10000 + 75000 * rand())
                age = randint(20, 80)
                elevel = randint(0, 4)
                car = randint(1, 20)
                zipcode = randint(0, 8)
                hvalue = (8 - zipcode) * 100000 * (0.5 + rand())
                hyears = randint(1, 30)
                loan = rand() * 500000
                y = label(salary, commission, age, elevel, car, zipcode, hvalue, hyears, loan)
                x = {
                    "salary": salary,
                    "commission": commission,
                    "age": age,
                    "elevel": elevel,
                    "car": car,
                    "zipcode": zipcode,
                    "hvalue": hvalue,
                    "hyears": hyears,
                    "loan": loan,
                }
                yield x, y

    return FastAgrawal(classification_function=classification_function, seed=seed)


def base_stream(stream: str, seed: int, drifted: bool = False) -> Any:
    """The River dataset of ``stream``: its first concept, or its drifted one."""
    from river.datasets import synth

    if stream == "agrawal":
        return _agrawal(2 if drifted else 6, seed)
    if stream == "sea":
        return synth.SEA(variant=2 if drifted else 0, seed=seed)
    if stream == "hyperplane":
        return _hyperplane(concept_seed=8 if drifted else 7, sample_seed=seed)
    raise ValueError(f"unknown stream {stream!r}; choose from {', '.join(STREAMS)}")


def _feature_name(stream: str, key: Any) -> str:
    return f"x{key}" if isinstance(key, int) else str(key)


def stream_rows(stream: str, seed: int, count: int) -> Iterator[tuple[dict[str, Any], Any]]:
    """``(features, label)`` pairs of the stream's first concept, features named for JSON."""
    ints = INT_FEATURES.get(stream, set())
    for x, y in base_stream(stream, seed).take(count):
        yield _clean(stream, x, ints), y


def _clean(stream: str, x: Mapping[Any, Any], ints: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in x.items():
        name = _feature_name(stream, key)
        out[name] = int(value) if name in ints else float(value)
    return out


def _concept_drift_stream(**kwargs: Any) -> Any:
    """River's ConceptDriftStream, without its overflow far from a narrow drift.

    River computes ``exp(-4 (i - position) / width)`` unguarded: with width 1 it
    raises OverflowError for any position beyond ~177. Same formula, clamped.
    """
    from river.datasets import synth

    class SafeConceptDriftStream(synth.ConceptDriftStream):
        def __iter__(self) -> Iterator[tuple[dict, Any]]:
            rng = random.Random(self.seed)
            base, drifted = iter(self.stream), iter(self.drift_stream)
            sample_idx = 0
            while True:
                sample_idx += 1
                v = -4.0 * float(sample_idx - self.position) / float(self.width)
                p = 1.0 / (1.0 + math.exp(min(v, 700.0)))
                try:
                    yield next(base) if rng.random() > p else next(drifted)
                except StopIteration:
                    return

    return SafeConceptDriftStream(**kwargs)


def drift_probability(index: int, drift_at: int | None, kind: str, width: int) -> float:
    """How likely request ``index`` (0-based) comes from the drifted regime."""
    if drift_at is None:
        return 0.0
    if kind == "abrupt":
        return 1.0 if index >= drift_at else 0.0
    v = -4.0 * float(index + 1 - drift_at) / float(max(width, 1))
    if v > 700:
        return 0.0
    return 1.0 / (1.0 + math.exp(v))


# -- the generator -------------------------------------------------------------------------


@dataclasses.dataclass(order=False)
class SimEvent:
    """One message to produce: where, its key and value, and when (seconds from the start)."""

    kind: str  # request | outcome | bad
    topic: str  # requests | outcomes (a role of settings.topics)
    key: bytes | None
    value: bytes
    due: float
    index: int
    request_id: str | None = None
    record: dict[str, Any] | None = None
    bad_kind: str | None = None
    drift: float = 0.0


def request_id(model: str, seed: int, index: int) -> str:
    """Deterministic, unique per (model, seed, index): a rerun produces the same ids."""
    return f"{model}-s{seed}-{index:09d}"


def _bad_message(
    kind: str, rng: random.Random, rid: str, model: str, features: dict, ms: int, entity: str
) -> bytes:
    if kind == "not_json":
        return rng.choice(
            [
                f"request_id={rid};model={model}".encode(),
                b'{"request_id": "' + rid.encode() + b'", "model": ',
                bytes(rng.randrange(256) for _ in range(16)),
            ]
        )
    if kind == "missing_fields":
        record = {"request_id": rid, "model": model, "features": features, "event_time": ms}
        del record[rng.choice(["model", "features", "request_id"])]
        return orjson.dumps(record)
    if kind == "wrong_types":
        broken = dict(features)
        name = rng.choice(sorted(broken))
        variant = rng.randrange(3)
        if variant == 0:
            broken[name] = f"{broken[name]}!"  # a string where a number belongs
            record: Any = {"request_id": rid, "model": model, "features": broken}
        elif variant == 1:
            record = {"request_id": rid, "model": model, "features": list(features.values())}
        else:
            record = {"request_id": rid, "model": model, "features": features, "event_time": "now"}
        record.setdefault("event_time", ms)
        record["entity_id"] = entity
        return orjson.dumps(record)
    return orjson.dumps(
        {
            "request_id": rid,
            "model": f"{model}-no-such-model",
            "features": features,
            "event_time": ms,
            "entity_id": entity,
        }
    )


def simulated_events(
    model: str = "fraud",
    stream: str | None = None,
    count: int | None = 1000,
    rate: float = 0.0,
    seed: int = 0,
    drift_at: int | None = None,
    drift_kind: str = "abrupt",
    drift_type: str = "concept",
    drift_width: int | None = None,
    drift_features: Mapping[str, tuple[float, float]] | list[str] | None = None,
    label_delay: float | None = 0.0,
    bad_fraction: float = 0.0,
    entities: int = 1000,
    start_ms: int | None = None,
    clock: Callable[[], float] | None = None,
    max_pending: int = 200_000,
) -> Iterator[SimEvent]:
    """Requests (and their outcomes ``label_delay`` seconds later) in the order to send them.

    Time is in seconds from the start: request ``i`` is due at ``i / rate``; with
    ``rate=0`` (as fast as possible) it is due at ``clock()`` (default: always 0,
    pass a real clock to pace outcomes in real time). Each event's ``event_time`` is
    ``start_ms`` plus its due time, so a seeded run is reproducible bit for bit.
    ``label_delay=None`` emits no outcomes. Pending outcomes wait in a heap of at
    most ``max_pending``: when it is full the oldest is released (due in the
    future), which makes a paced producer wait, so memory stays bounded.
    ``count=None`` runs forever.
    """
    stream = stream or DEFAULT_STREAM.get(model, "agrawal")
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r}; choose from {', '.join(STREAMS)}")
    if drift_kind not in ("abrupt", "gradual"):
        raise ValueError(f"drift kind {drift_kind!r} is not abrupt or gradual")
    if drift_type not in DRIFT_TYPES:
        raise ValueError(f"drift type {drift_type!r} is not one of {', '.join(DRIFT_TYPES)}")
    if not 0.0 <= bad_fraction <= 1.0:
        raise ValueError("bad fraction must be within [0, 1]")
    if rate < 0:
        raise ValueError("rate must be >= 0")
    entities = max(1, int(entities))
    width = int(drift_width or (max(1, (count or 10_000) // 10) if drift_kind == "gradual" else 1))
    if start_ms is None:
        start_ms = int(time.time() * 1000)
    if clock is None:
        clock = lambda: 0.0  # noqa: E731 - everything due at once unless paced by rate

    if drift_features is None:
        shifts = FEATURE_DRIFT[stream]
    elif isinstance(drift_features, Mapping):
        shifts = dict(drift_features)
    else:
        shifts = {f: FEATURE_DRIFT[stream].get(f, DEFAULT_FEATURE_DRIFT) for f in drift_features}
    ints = INT_FEATURES.get(stream, set())

    if drift_at is not None and drift_type in ("concept", "both"):
        source: Any = _concept_drift_stream(
            stream=base_stream(stream, seed),
            drift_stream=base_stream(stream, seed + 1, drifted=True),
            position=drift_at,
            width=width,
            seed=seed + 2,
        )
    else:
        source = base_stream(stream, seed)
    samples = iter(source)

    # Independent random streams: changing the bad fraction does not move the entities.
    rng_entity = random.Random(f"{seed}:entity")
    rng_bad = random.Random(f"{seed}:bad")
    rng_drift = random.Random(f"{seed}:drift")
    pending: list[tuple[float, int, SimEvent]] = []
    index = 0
    while count is None or index < count:
        now = index / rate if rate > 0 else clock()
        while pending and (pending[0][0] <= now or len(pending) >= max_pending):
            yield heapq.heappop(pending)[2]
        x, y = next(samples)
        features = _clean(stream, x, ints)
        p_drift = drift_probability(index, drift_at, drift_kind, width)
        if (
            drift_type in ("feature", "both")
            and p_drift > 0
            and (p_drift >= 1.0 or rng_drift.random() < p_drift)
        ):
            for name, (scale, shift) in shifts.items():
                if name in features:
                    value = features[name] * scale + shift
                    features[name] = int(round(value)) if name in ints else float(value)
        entity = f"e{rng_entity.randrange(entities):06d}"
        rid = request_id(model, seed, index)
        ms = start_ms + int(round(now * 1000))
        if bad_fraction and rng_bad.random() < bad_fraction:
            kind = BAD_KINDS[rng_bad.randrange(len(BAD_KINDS))]
            value = _bad_message(kind, rng_bad, rid, model, features, ms, entity)
            yield SimEvent(
                "bad", "requests", entity.encode(), value, now, index, rid, None, kind, p_drift
            )
        else:
            record = {
                "request_id": rid,
                "model": model,
                "features": features,
                "event_time": ms,
                "entity_id": entity,
            }
            yield SimEvent(
                "request",
                "requests",
                entity.encode(),
                orjson.dumps(record),
                now,
                index,
                rid,
                record,
                None,
                p_drift,
            )
            if label_delay is not None:
                due = now + max(0.0, label_delay)
                outcome = {
                    "request_id": rid,
                    "model": model,
                    "label": label_str(y),
                    "event_time": start_ms + int(round(due * 1000)),
                }
                event = SimEvent(
                    "outcome",
                    "outcomes",
                    rid.encode(),
                    orjson.dumps(outcome),
                    due,
                    index,
                    rid,
                    outcome,
                    None,
                    p_drift,
                )
                heapq.heappush(pending, (due, index, event))
        index += 1
    while pending:
        yield heapq.heappop(pending)[2]
