"""Drift statistics against scipy / numpy on the same samples, and the default policy's
behaviour on shifted and stationary streams."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from monitors.aggregate import PredictionBatch, PredictionSketch
from monitors.drift import (
    EPSILON,
    PSI,
    ChiSquare,
    DriftMethod,
    DriftPolicy,
    JensenShannon,
    KolmogorovSmirnov,
    Wasserstein,
    chi_square,
    default_statistic,
    jensen_shannon,
    psi,
)
from monitors.profile import SCORE, CategoricalProfile, NumericProfile, ReferenceProfile
from monitors.report import WindowEvaluator
from monitors.sketches import OTHER, BinnedHistogram, CategoryCounter, StreamingQuantiles
from monitors.windows import TumblingWindow

SAMPLES = [
    ("normal-shift", lambda r: (r.normal(size=700), r.normal(0.3, 1.2, size=900))),
    ("same", lambda r: (r.normal(size=1000), r.normal(size=1000))),
    ("ties", lambda r: (r.integers(0, 5, 800).astype(float), r.integers(1, 6, 600).astype(float))),
    ("skewed", lambda r: (r.exponential(size=300), r.lognormal(size=2000))),
    ("tiny", lambda r: (r.normal(size=3), r.normal(size=5))),
]


@pytest.mark.parametrize("name,make", SAMPLES, ids=[s[0] for s in SAMPLES])
def test_ks_matches_scipy_on_raw_data(name, make):
    ref, cur = make(np.random.default_rng(7))
    # k above the window size: the sketch holds the raw values, so this is exact.
    ks = KolmogorovSmirnov(ref, k=4096)
    ks.update_many(cur)
    score = ks.evaluate()
    expected = stats.ks_2samp(ref, cur, method="asymp")
    assert score.statistic == pytest.approx(expected.statistic, abs=1e-9)
    assert score.p_value == pytest.approx(expected.pvalue, abs=1e-9)
    assert score.statistic == pytest.approx(stats.ks_2samp(ref, cur).statistic, abs=1e-9)


@pytest.mark.parametrize("name,make", SAMPLES, ids=[s[0] for s in SAMPLES])
def test_wasserstein_matches_scipy_on_raw_data(name, make):
    ref, cur = make(np.random.default_rng(8))
    w = Wasserstein(ref, k=4096)
    for v in cur:
        w.update(float(v))
    expected = stats.wasserstein_distance(ref, cur) / max(np.std(ref), 1e-3)
    assert w.get() == pytest.approx(expected, abs=1e-9)


def test_ks_and_wasserstein_on_sketch_within_stated_tolerance():
    # A 200k-value window summarised by the k=256 quantile sketch against a 1,000-value
    # reference sample: KS within 0.01, normalised Wasserstein within 0.02 of exact.
    rng = np.random.default_rng(9)
    ref = rng.normal(size=1000)
    profile = NumericProfile.fit(ref)
    ks, w = KolmogorovSmirnov(profile), Wasserstein(profile)
    for shift in (0.0, 0.05, 0.5):
        cur = rng.normal(shift, 1.1, size=200_000)
        sketch = StreamingQuantiles(k=256)
        for chunk in np.array_split(cur, 100):
            sketch.update_many(chunk)
        assert not sketch.is_exact
        exact_ks = stats.ks_2samp(ref, cur)
        got = ks.evaluate(sketch)
        assert got.statistic == pytest.approx(exact_ks.statistic, abs=0.01)
        exact_w = stats.wasserstein_distance(ref, cur) / np.std(ref)
        assert w.evaluate(sketch).statistic == pytest.approx(exact_w, abs=0.02)


def _psi_formula(p_counts, q_counts):
    p = np.asarray(p_counts, float) / np.sum(p_counts)
    q = np.asarray(q_counts, float) / np.sum(q_counts)
    p[p == 0] = EPSILON
    q[q == 0] = EPSILON
    return np.sum((q - p) * np.log(q / p))


def _js_formula(p_counts, q_counts):
    p = np.asarray(p_counts, float) / np.sum(p_counts)
    q = np.asarray(q_counts, float) / np.sum(q_counts)
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.nansum(np.where(p > 0, p * np.log2(p / m), 0.0))
        kl_q = np.nansum(np.where(q > 0, q * np.log2(q / m), 0.0))
    return np.sqrt((kl_p + kl_q) / 2)


def test_psi_and_js_numeric_against_formula():
    rng = np.random.default_rng(10)
    ref, cur = rng.normal(size=5000), rng.normal(0.4, 1.3, size=3000)
    profile = NumericProfile.fit(ref, bins=10)
    edges = np.asarray(profile.edges)
    # Reference and window counts over the documented bins, computed independently.
    inner = np.histogram(cur, bins=edges)[0]
    cur_counts = np.concatenate([[np.sum(cur < edges[0])], inner, [np.sum(cur > edges[-1])]])
    ref_counts = np.concatenate([[0], np.histogram(ref, bins=edges)[0], [0]])
    assert profile.counts == ref_counts.tolist()
    p, j = PSI(profile), JensenShannon(profile)
    p.update_many(cur)
    j.update_many(cur)
    assert p.get() == pytest.approx(_psi_formula(ref_counts, cur_counts), abs=1e-12)
    assert j.get() == pytest.approx(_js_formula(ref_counts, cur_counts), abs=1e-12)
    assert j.get() == pytest.approx(jensenshannon(ref_counts, cur_counts, base=2), abs=1e-9)


def test_psi_and_js_categorical_with_new_category():
    ref = ["a"] * 500 + ["b"] * 300 + ["c"] * 200
    cur = ["a"] * 100 + ["b"] * 300 + ["d"] * 50  # c vanished, d is new
    ref_counts, cur_counts = [500, 300, 200, 0], [100, 300, 0, 50]  # a, b, c, __other__
    p, j = PSI(ref), JensenShannon(ref)
    p.update_many(cur)
    j.update_many(cur)
    assert p.get() == pytest.approx(_psi_formula(ref_counts, cur_counts), abs=1e-12)
    assert j.get() == pytest.approx(jensenshannon(ref_counts, cur_counts, base=2), abs=1e-9)
    assert 0 <= j.get() <= 1
    assert psi([1, 1], [1, 1]) == 0.0 and jensen_shannon([1, 0], [0, 1]) == 1.0


def test_chi_square_matches_chi2_contingency():
    # The homogeneity form (2 x K table, no Yates correction), as documented.
    rng = np.random.default_rng(11)
    ref = rng.choice(list("abcde"), p=[0.3, 0.3, 0.2, 0.1, 0.1], size=4000).tolist()
    cur = rng.choice(list("abcde"), p=[0.25, 0.3, 0.25, 0.1, 0.1], size=700).tolist()
    chi = ChiSquare(ref)
    chi.update_many(cur)
    got = chi.evaluate()
    names = list("abcde")
    table = np.array([[ref.count(c) for c in names], [cur.count(c) for c in names]])
    expected = stats.chi2_contingency(table, correction=False)
    assert got.statistic == pytest.approx(expected.statistic, abs=1e-9)
    assert got.p_value == pytest.approx(expected.pvalue, abs=1e-9)


def test_chi_square_drops_bins_empty_on_both_sides():
    stat, p, dof = chi_square([10, 0, 20], [5, 0, 30])
    expected = stats.chi2_contingency(np.array([[10, 20], [5, 30]]), correction=False)
    assert (stat, p, dof) == pytest.approx((expected.statistic, expected.pvalue, 1))
    assert chi_square([1, 0], [0, 0]) == (0.0, 1.0, 0)


def test_chi_square_on_numeric_bins():
    rng = np.random.default_rng(12)
    ref = NumericProfile.fit(rng.normal(size=3000), bins=5)
    chi = ChiSquare(ref)
    chi.update_many(rng.normal(size=500))
    assert chi.evaluate().p_value > 0.001


def test_evaluate_on_sketch_equals_update_path():
    rng = np.random.default_rng(13)
    profile = NumericProfile.fit(rng.normal(size=2000))
    cur = rng.normal(0.2, size=800)
    hist, quant = BinnedHistogram(profile.edges), StreamingQuantiles(k=1024)
    hist.update_many(cur)
    quant.update_many(cur)
    for cls, sketch in [(PSI, hist), (JensenShannon, hist), (ChiSquare, hist)]:
        stat = cls(profile)
        stat.update_many(cur)
        assert stat.evaluate(sketch) == stat.evaluate()
    for cls in (KolmogorovSmirnov, Wasserstein):
        stat = cls(profile, k=1024)
        stat.update_many(cur)
        assert stat.evaluate(quant) == stat.evaluate() == stat.evaluate(cur)
    cat = CategoricalProfile.fit(["x", "y", "y"])
    counter = CategoryCounter()
    counter.update_many(["y", "z"])
    assert JensenShannon(cat).counts(counter)[1].tolist() == [1, 0, 1]  # y, x, __other__
    with pytest.raises(TypeError):
        KolmogorovSmirnov(cat)


def test_default_policy_and_overrides():
    assert default_statistic("numeric", 1001) == DriftMethod("wasserstein", 0.1)
    assert default_statistic("categorical", 1001) == DriftMethod("jensen_shannon", 0.1)
    assert default_statistic("numeric", 1000) == DriftMethod("ks", 0.05)
    assert default_statistic("categorical", 10) == DriftMethod("chi_square", 0.05)
    policy = DriftPolicy({"age": DriftMethod("psi", 0.25)})
    assert policy.method("age", "numeric", 10) == DriftMethod("psi", 0.25)
    with pytest.raises(ValueError):
        DriftMethod("nope", 1.0)


# -- behaviour of the whole decision on windows ---------------------------------------


def _columns(rng, n, shift=None):
    shift = shift or {}
    return {
        "x0": rng.normal(0 + shift.get("x0", 0), 1, size=n),
        "x1": rng.normal(10 + shift.get("x1", 0), 3, size=n),
        "x2": rng.exponential(2, size=n) + shift.get("x2", 0),
        "x3": rng.integers(0, 5, size=n).astype(float),
        "x4": rng.uniform(-1, 1, size=n),
        "c0": rng.choice(["a", "b", "c"], p=shift.get("c0", [0.5, 0.3, 0.2]), size=n).astype(
            object
        ),
        "c1": rng.choice(["u", "v"], size=n).astype(object),
    }


def _reference(rng):
    cols = _columns(rng, 20_000)
    return ReferenceProfile.fit_columns(cols, scores=rng.beta(2, 3, size=20_000))


def _drifted(metrics):
    return {m.feature for m in metrics if m.metric == "drift" and m.value == 1.0}


def test_abrupt_shift_flags_only_that_feature():
    rng = np.random.default_rng(14)
    ref = _reference(rng)
    evaluator = WindowEvaluator(ref)
    for shift, feature in [({"x1": 1.5}, "x1"), ({"c0": [0.2, 0.3, 0.5]}, "c0")]:
        window = PredictionSketch(ref)
        window.update_many(PredictionBatch(_columns(rng, 5000, shift), rng.beta(2, 3, size=5000)))
        measures = evaluator.drift(window)
        assert _drifted(measures) == {feature}
        share = [m.value for m in measures if m.metric == "drift_share"]
        assert share == [pytest.approx(1 / 7)]


def test_abrupt_shift_on_a_small_window_is_caught_by_the_test():
    # On <= 1,000 rows the policy uses p-values: the shifted feature's p-value is tiny.
    # (The others are flagged at the test's 5% false-positive rate, by design; that is
    # why large windows use distances.)
    rng = np.random.default_rng(16)
    ref = _reference(rng)
    evaluator = WindowEvaluator(ref)
    for shift, feature, p_metric in [
        ({"x1": 1.5}, "x1", "ks_p_value"),
        ({"c0": [0.2, 0.3, 0.5]}, "c0", "chi_square_p_value"),
    ]:
        window = PredictionSketch(ref)
        window.update_many(PredictionBatch(_columns(rng, 400, shift), rng.beta(2, 3, size=400)))
        measures = evaluator.drift(window)
        assert feature in _drifted(measures)
        p = [m.value for m in measures if m.metric == p_metric and m.feature == feature]
        assert p[0] < 1e-6


def test_stationary_stream_flags_nothing():
    # 200k events drawn from the reference distribution, tumbling windows of 5,000:
    # under the default policy (distances on windows > 1,000 rows) nothing drifts.
    rng = np.random.default_rng(15)
    ref = _reference(rng)
    evaluator = WindowEvaluator(ref)
    window = TumblingWindow(5.0, lambda: PredictionSketch(ref))
    closed = []
    for i in range(40):
        times = 5.0 * i + np.arange(5000) / 1000.0
        batch = PredictionBatch(_columns(rng, 5000), rng.beta(2, 3, size=5000))
        closed += window.update_many(("m", "1"), times, batch)
    closed += window.flush()
    assert len(closed) == 40 and all(c.state.n == 5000 for c in closed)
    flagged = [(c.start, _drifted(evaluator.evaluate(c))) for c in closed]
    assert [f for f in flagged if f[1]] == []
    # And the statistics behind it are well clear of the thresholds.
    worst = max(
        m.value
        for c in closed[:5]
        for m in evaluator.evaluate(c)
        if m.metric in ("wasserstein", "jensen_shannon") and m.feature != SCORE
    )
    # (most of it is the 1,000-value reference sample's own noise)
    assert worst < 0.08


def test_constant_reference_feature():
    profile = NumericProfile.fit([3.0] * 100)
    w = Wasserstein(profile)
    w.update_many([3.0] * 10)
    assert w.get() == 0.0
    p = PSI(profile)
    p.update_many([3.0, 4.0])
    assert p.get() > 1  # half the window is out of range
    cat = CategoricalProfile.fit(["a"] * 10)
    assert cat.counts == {"a": 10, OTHER: 0}


def test_an_earlier_window_as_reference():
    rng = np.random.default_rng(17)
    ref = _reference(rng)
    first = PredictionSketch(ref)
    first.update_many(PredictionBatch(_columns(rng, 20_000), rng.beta(2, 3, size=20_000)))
    previous = ReferenceProfile.from_window(first)
    evaluator = WindowEvaluator(previous)
    same, shifted = PredictionSketch(ref), PredictionSketch(ref)
    same.update_many(PredictionBatch(_columns(rng, 5000), rng.beta(2, 3, size=5000)))
    shifted.update_many(
        PredictionBatch(_columns(rng, 5000, {"x2": 1.0}), rng.beta(2, 3, size=5000))
    )
    assert _drifted(evaluator.drift(same)) == set()
    assert _drifted(evaluator.drift(shifted)) == {"x2"}
    # KS against a sketch-built reference uses the window's count as its sample size.
    ks = KolmogorovSmirnov(previous.features["x0"])
    assert ks.evaluate(same.features["x0"]).p_value > 0.001
