"""Windows: close by watermark, handle late events, and survive a restart."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitors.aggregate import PredictionBatch, PredictionSketch
from monitors.profile import ReferenceProfile
from monitors.windows import CountWindow, SlidingWindow, TumblingWindow


class Collect:
    """A test-only state that keeps the raw values, to check membership exactly."""

    def __init__(self):
        self.values = []

    def update(self, x):
        self.values.append(x)

    def update_many(self, xs):
        self.values.extend(np.asarray(xs).tolist())

    def merge(self, other):
        self.values.extend(other.values)
        return self

    def to_dict(self):
        return {"values": list(self.values)}

    @classmethod
    def from_dict(cls, d):
        c = cls()
        c.values = list(d["values"])
        return c


def summary(closed):
    return [(c.key, c.start, c.end, sorted(c.state.values)) for c in closed]


def test_tumbling_closes_on_watermark_once():
    w = TumblingWindow(10.0, Collect, allowed_lateness=2.0)
    assert w.update("a", 1.0, 1) == []
    assert w.update("b", 9.0, 2) == []
    assert w.update("a", 11.0, 3) == []  # watermark 9: [0, 10) still open
    assert w.update("a", 8.0, 4) == []  # late but within lateness: accepted
    out = w.update("b", 12.0, 5)  # watermark 10: [0, 10) closes for both keys
    assert summary(out) == [("a", 0.0, 10.0, [1, 4]), ("b", 0.0, 10.0, [2])]
    assert w.update("a", 7.0, 6) == [] and w.dropped_late == {"a": 1}
    assert w.update("a", 12.5, 7) == []  # nothing closes twice
    assert summary(w.flush()) == [("a", 10.0, 20.0, [3, 7]), ("b", 10.0, 20.0, [5])]
    assert w.flush() == [] and w.open_windows() == 0


def test_advance_closes_quiet_streams():
    w = TumblingWindow(60.0, Collect)
    w.update(("m", "1"), 5.0, 1)
    assert w.advance(59.0) == []
    assert summary(w.advance(61.0)) == [(("m", "1"), 0.0, 60.0, [1])]


def test_gaps_do_not_emit_empty_windows():
    w = TumblingWindow(1.0, Collect)
    w.update("k", 0.5, 1)
    out = w.update("k", 100_000.5, 2)
    assert summary(out) == [("k", 0.0, 1.0, [1])]


def brute_force(events, size, step, lateness):
    """Expected windows by direct simulation of the documented rules."""
    m = round(size / step)
    max_t = -math.inf
    windows = {}
    dropped = 0
    for t, v in events:
        closed_upto = math.floor((max_t - lateness) / step) - 1 if max_t > -math.inf else -math.inf
        p = math.floor(t / step)
        if p + m - 1 > closed_upto:
            # Accepted: it counts in the windows containing it that are still open.
            for j in range(p, p + m):
                if j > closed_upto:
                    windows.setdefault((j + 1 - m) * step, []).append(v)
        else:
            dropped += 1
        max_t = max(max_t, t)
    return [("k", s, s + size, sorted(vs)) for s, vs in sorted(windows.items())], dropped


@given(
    st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=80),
    st.sampled_from([(10.0, 10.0), (10.0, 5.0), (9.0, 3.0), (4.0, 1.0)]),
    st.sampled_from([0.0, 1.5, 7.0]),
)
@settings(max_examples=150, deadline=None)
def test_sliding_matches_brute_force(times, shape, lateness):
    size, step = shape
    events = [(t, i) for i, t in enumerate(times)]
    w = SlidingWindow(size, step, Collect, allowed_lateness=lateness)
    out = []
    for t, v in events:
        out += w.update("k", t, v)
    out += w.flush()
    expected, dropped = brute_force(events, size, step, lateness)
    assert summary(out) == expected
    assert w.dropped_late.get("k", 0) == dropped
    # Windows come out in end order, each once.
    ends = [c.end for c in out]
    assert ends == sorted(ends) and len(set(ends)) == len(ends)


@given(
    st.lists(st.floats(0, 50, allow_nan=False), min_size=1, max_size=60),
    st.integers(1, 10),
)
@settings(max_examples=100, deadline=None)
def test_update_many_equals_one_at_a_time_for_in_order_batches(times, batch):
    times = sorted(times)
    a = SlidingWindow(6.0, 2.0, Collect, allowed_lateness=1.0)
    b = SlidingWindow(6.0, 2.0, Collect, allowed_lateness=1.0)
    out_a, out_b = [], []
    for i, t in enumerate(times):
        out_a += a.update("k", t, i)
    for lo in range(0, len(times), batch):
        chunk = np.asarray(times[lo : lo + batch])
        out_b += b.update_many("k", chunk, np.arange(lo, lo + chunk.size))
    assert summary(out_a + a.flush()) == summary(out_b + b.flush())


def test_update_many_drops_late_rows_of_a_batch():
    w = TumblingWindow(10.0, Collect)
    w.update("k", 25.0, 0)
    out = w.update_many("k", np.array([5.0, 21.0, 26.0, 35.0]), np.array([1, 2, 3, 4]))
    assert w.dropped_late == {"k": 1}
    assert summary(out) == [("k", 20.0, 30.0, [0, 2, 3])]


def test_state_roundtrip_mid_stream():
    rng = np.random.default_rng(0)
    times = np.sort(rng.uniform(0, 100, 500)) + rng.normal(0, 0.5, 500)
    events = [(float(t), i) for i, t in enumerate(times)]

    def run(restart_at=None):
        w = SlidingWindow(10.0, 2.0, Collect, allowed_lateness=1.0)
        out = []
        for i, (t, v) in enumerate(events):
            if i == restart_at:
                state = json.loads(json.dumps(w.to_dict()))
                w = SlidingWindow.from_dict(state, Collect, Collect.from_dict)
            out += w.update(("m", "v1"), t, v)
        return summary(out + w.flush()), w.dropped_late

    assert run() == run(restart_at=250)
    t = TumblingWindow(5.0, Collect, allowed_lateness=1.0)
    t.update("k", 1.0, 1)
    t2 = TumblingWindow.from_dict(json.loads(json.dumps(t.to_dict())), Collect, Collect.from_dict)
    assert isinstance(t2, TumblingWindow) and summary(t2.flush()) == [("k", 0.0, 5.0, [1])]


def test_memory_is_bounded_by_panes():
    w = SlidingWindow(60.0, 10.0, Collect)
    for i in range(10_000):
        w.update(("m", "1"), i * 0.1, 0)
        assert w.open_windows() <= 7  # the window's 6 panes + the one filling


def test_count_window():
    w = CountWindow(4, Collect)
    out = w.update_many("a", np.arange(10.0), np.arange(10))
    out += [c for i in range(10, 13) for c in w.update("a", float(i), i)]
    out += w.update("b", 99.0, 99)
    assert summary(out) == [
        ("a", 0.0, 3.0, [0, 1, 2, 3]),
        ("a", 4.0, 7.0, [4, 5, 6, 7]),
        ("a", 8.0, 11.0, [8, 9, 10, 11]),
    ]
    restored = CountWindow.from_dict(
        json.loads(json.dumps(w.to_dict())), Collect, Collect.from_dict
    )
    assert restored.pending("a") == 1 and restored.pending("b") == 1
    assert summary(restored.flush()) == [("a", 12.0, 12.0, [12]), ("b", 99.0, 99.0, [99])]


def test_window_of_prediction_sketches_roundtrip():
    ref = ReferenceProfile.fit([{"x": float(i), "c": "ab"[i % 2]} for i in range(200)])

    def factory():
        return PredictionSketch(ref)

    w = SlidingWindow(10.0, 5.0, factory, allowed_lateness=2.0)
    rng = np.random.default_rng(1)
    batch = PredictionBatch(
        {"x": rng.normal(100, 50, 300), "c": np.array(["a", "b", "z"] * 100, dtype=object)},
        rng.uniform(size=300),
        rng.uniform(size=300),
    )
    early = w.update_many(("m", "1"), np.linspace(0, 12, 300), batch)
    assert [(c.start, c.end) for c in early] == [(-5.0, 5.0), (0.0, 10.0)]
    restored = SlidingWindow.from_dict(
        json.loads(json.dumps(w.to_dict())), factory, PredictionSketch.from_dict
    )
    a, b = w.flush(), restored.flush()
    assert [c.state.to_dict() for c in a] == [c.state.to_dict() for c in b]
    # Every event is in exactly two windows of size 10 every 5.
    assert sum(c.state.n for c in early + a) == 2 * 300


def test_invalid_shapes():
    with pytest.raises(ValueError):
        SlidingWindow(10.0, 3.0, Collect)
    with pytest.raises(ValueError):
        TumblingWindow(10.0, Collect, allowed_lateness=-1)
    with pytest.raises(ValueError):
        CountWindow(0, Collect)


def test_keyed_factory_builds_state_per_key():
    made = []

    def factory(key):
        made.append(key)
        return Collect()

    w = SlidingWindow(4.0, 2.0, factory, keyed=True)
    out = w.update(("m", "1"), 1.0, 1) + w.update(("m", "2"), 3.0, 2) + w.flush()
    assert set(made) == {("m", "1"), ("m", "2")}
    assert summary(out)[0] == (("m", "1"), -2.0, 2.0, [1])
    c = CountWindow(1, lambda key: Collect(), keyed=True)
    assert summary(c.update("k", 0.0, 5)) == [("k", 0.0, 0.0, [5])]
