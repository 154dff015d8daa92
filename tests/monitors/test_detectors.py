"""Change detectors: the wrappers detect exactly where River's own detectors do."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from river import drift

from monitors.detectors import (
    ADWIN,
    KSWIN,
    DetectorBank,
    PageHinkley,
    RiverDetector,
    make_detector,
)


def stream(seed=0, n=1500):
    rng = np.random.default_rng(seed)
    # Three regimes: stable, a mean shift, a variance change.
    return np.concatenate(
        [rng.normal(0, 1, n), rng.normal(1.5, 1, n), rng.normal(1.5, 3, n)]
    ).tolist()


def river_indices(detector, xs):
    hits = []
    for i, x in enumerate(xs):
        detector.update(x)
        if detector.drift_detected:
            hits.append(i)
    return hits


@pytest.mark.parametrize(
    "ours,theirs",
    [
        (lambda: ADWIN(), lambda: drift.ADWIN()),
        (lambda: ADWIN(delta=0.1), lambda: drift.ADWIN(delta=0.1)),
        (lambda: PageHinkley(), lambda: drift.PageHinkley()),
        (
            lambda: PageHinkley(threshold=20, mode="up"),
            lambda: drift.PageHinkley(threshold=20, mode="up"),
        ),
        (lambda: KSWIN(seed=7), lambda: drift.KSWIN(seed=7)),
        (
            lambda: KSWIN(alpha=0.001, window_size=200, seed=3),
            lambda: drift.KSWIN(alpha=0.001, window_size=200, seed=3),
        ),
    ],
)
def test_same_detections_as_river(ours, theirs):
    # KSWIN runs a scipy KS test per value: a shorter stream keeps the test fast.
    n = 300 if isinstance(ours(), KSWIN) else 1500
    for seed in (0, 1):
        xs = stream(seed, n)
        expected = river_indices(theirs(), xs)
        assert expected, "the stream should contain detectable changes"
        det = ours()
        assert [i for i, x in enumerate(xs) if det.update(x)] == expected
        assert ours().update_many(xs) == expected


def test_protocol_and_factory():
    det = make_detector("page_hinkley", threshold=10)
    assert isinstance(det, RiverDetector)
    assert det.update(0.0) is False and det.n == 1
    with pytest.raises(ValueError, match="unknown detector"):
        make_detector("cusum")


def test_bank_keys_and_persistence():
    xs = stream()
    bank = DetectorBank("score", lambda: ADWIN())
    first = [bank.update(("m", "1"), x, ts=float(i)) for i, x in enumerate(xs[:2000])]
    other = [bank.update(("m", "2", "eu"), 0.0, ts=float(i)) for i in range(100)]
    assert all(e is None for e in other)
    restored = DetectorBank.from_bytes(bank.to_bytes())
    rest_a = [bank.update(("m", "1"), x, ts=float(i)) for i, x in enumerate(xs[2000:], 2000)]
    rest_b = [restored.update(("m", "1"), x, ts=float(i)) for i, x in enumerate(xs[2000:], 2000)]
    assert [e and e.window_end for e in rest_a] == [e and e.window_end for e in rest_b]
    hits = [e for e in first + rest_a if e is not None]
    expected = river_indices(drift.ADWIN(), xs)
    assert [int(e.window_end) for e in hits] == expected
    assert {(e.metric, e.value, e.model, e.version, e.segment) for e in hits} == {
        ("score_change", 1.0, "m", "1", None)
    }
    pickle.loads(pickle.dumps(restored.detectors))
