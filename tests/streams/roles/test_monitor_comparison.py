"""The monitor compares champion and challenger (a split) or champion and shadow (the
same requests) from joined outcomes, publishes lift, its bounds and the decision per
window, and carries the comparison across a restart."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest
from monitor_traffic import predictions, register
from test_monitor import as_messages, decode_outputs, new_monitor, offline, run_batches

from monitors.comparison import Outcomes, compare_paired, compare_split
from monitors.state import chunk_header, decode_snapshot
from streams.config import Settings
from streams.models import Registry

__all__ = ["offline"]  # the fixture, imported for the tests below

COMPARISON = {"lift", "lift_lower", "lift_upper", "comparison_decision"}


def _flip(label: str) -> str:
    return "0" if label == "1" else "1"


def traffic(
    variant: str, accuracy: dict[str, float], seed: int = 8
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Champion v1 and `variant` v2 predictions, and outcomes right with the accuracy
    of the arm; a shadow scores the champion's own requests."""
    rng = np.random.default_rng(seed)
    champion = predictions("m", 6, 400, seed=seed)
    other = predictions("m", 6, 400, seed=seed if variant == "shadow" else seed + 1, version=2)
    for r in other:
        r["variant"] = variant
    truth: dict[str, str] = {}
    for r in champion:
        truth[r["request_id"]] = (
            r["label"] if rng.random() < accuracy["champion"] else _flip(r["label"])
        )
    for r in other:
        if variant == "shadow":
            # The shadow is right where the outcome says so, with its own accuracy.
            right = rng.random() < accuracy[variant]
            r["label"] = truth[r["request_id"]] if right else _flip(truth[r["request_id"]])
        else:
            right = rng.random() < accuracy[variant]
            truth[r["request_id"]] = r["label"] if right else _flip(r["label"])
    records = sorted(champion + other, key=lambda r: (r["event_time"], r["variant"]))
    outcomes = [
        {"request_id": rid, "model": "m", "label": label, "value": None, "event_time": 0}
        for rid, label in truth.items()
    ]
    by_id = {r["request_id"]: r["event_time"] for r in records}
    for o in outcomes:
        o["event_time"] = by_id[o["request_id"]] + 500
    outcomes.sort(key=lambda o: o["event_time"])
    return records, outcomes


def interleave(settings: Settings, records: list[dict], outcomes: list[dict]) -> list[Any]:
    """Outcomes follow their predictions a batch later; an outcome first (so the monitor
    joins the model's predictions from the start), a later window last (to close all)."""
    first = {"request_id": "early", "model": "m", "label": "1", "value": None, "event_time": 0}
    first["event_time"] = records[0]["event_time"]
    later = predictions("m", 7, 50, seed=99)[-50:]
    preds = as_messages(settings.topic_predictions, "Prediction", records + later)
    outs = as_messages(settings.topic_outcomes, "Outcome", [first, *outcomes])
    messages: list[Any] = outs[:1]
    step_p, step_o = len(records) // 12, len(outcomes) // 12
    for i in range(12):
        messages += preds[i * step_p : (i + 1) * step_p]
        messages += outs[1 + i * step_o : 1 + (i + 1) * step_o]
    return messages + preds[len(records) :]


def run(monitor: Any, messages: list[Any]) -> list[Any]:
    """The lone first outcome in a batch of its own, then batches of 400."""
    return run_batches(monitor, messages[:1], 1) + run_batches(monitor, messages[1:], 400)


def _arm(records: list[dict], outcomes: list[dict], variant: str) -> Outcomes:
    truth = {o["request_id"]: o["label"] for o in outcomes}
    rows = [r for r in records if r["variant"] == variant]
    y = np.array([truth[r["request_id"]] == "1" for r in rows])
    return Outcomes(variant, rows[0]["version"], y, np.array([r["label"] == "1" for r in rows]))


@pytest.fixture
def two_versions(offline: tuple[Settings, Registry]) -> tuple[Settings, Registry]:
    settings, registry = offline
    assert register(registry, "m", seed=4) == 2
    return settings, registry


def test_split_comparison_is_published_per_window(two_versions: Any) -> None:
    settings, registry = two_versions
    records, outcomes = traffic("challenger", {"champion": 0.8, "challenger": 0.95})
    monitor = new_monitor(settings, registry)
    metrics, _ = decode_outputs(run(monitor, interleave(settings, records, outcomes)), settings)
    lifts = [m for m in metrics if m.metric in COMPARISON]
    assert lifts and {m.version for m in lifts} == {"2"} and {m.segment for m in lifts} == {None}
    windows = sorted({m.window_end for m in lifts})
    assert len(windows) >= 4  # one comparison per window with outcomes
    last = {m.metric: m for m in lifts if m.window_end == windows[-1]}
    assert set(last) == COMPARISON
    assert last["comparison_decision"].value == 1.0
    assert last["lift_lower"].value > 0 and last["lift_lower"].value < last["lift"].value
    # The published lift is the comparison of every joined outcome so far.
    joined = monitor.counts["joined"]
    reference = compare_split(
        "m", _arm(records, outcomes, "champion"), _arm(records, outcomes, "challenger")
    )
    assert joined == len(outcomes) == last["lift"].n
    assert last["lift"].value == pytest.approx(reference.lift)
    assert last["lift_upper"].value == pytest.approx(reference.upper)


def test_shadow_comparison_is_paired_by_request(two_versions: Any) -> None:
    settings, registry = two_versions
    records, outcomes = traffic("shadow", {"champion": 0.7, "shadow": 0.9})
    monitor = new_monitor(settings, registry)
    metrics, _ = decode_outputs(run(monitor, interleave(settings, records, outcomes)), settings)
    paired = [m for m in metrics if m.metric in COMPARISON and m.segment == "variant=shadow"]
    assert paired and {m.version for m in paired} == {"2"}
    end = max(m.window_end for m in paired)
    last = {m.metric: m for m in paired if m.window_end == end}
    assert last["comparison_decision"].value == 1.0
    assert not [m for m in metrics if m.metric == "lift" and m.segment is None]  # no split
    champ, shadow = _arm(records, outcomes, "champion"), _arm(records, outcomes, "shadow")
    assert last["lift"].n == len(champ)
    reference = compare_paired("m", champ, shadow)
    assert last["lift"].value == pytest.approx(reference.lift)
    assert last["lift_lower"].value == pytest.approx(reference.lower)


def test_comparison_continues_exactly_after_a_restore(two_versions: Any) -> None:
    settings, registry = two_versions
    records, outcomes = traffic("challenger", {"champion": 0.85, "challenger": 0.87}, seed=21)
    messages = interleave(settings, records, outcomes)
    straight = new_monitor(settings, registry)
    expected = [
        m for m in decode_outputs(run(straight, messages), settings)[0]
        if m.metric in COMPARISON
    ]  # fmt: skip
    first = new_monitor(settings, registry)
    split = len(messages) // 2
    head = run(first, messages[:split])
    chunks = [o.value for o in head if o.topic == first.state_topic]
    sid = max(chunk_header(c)[0] for c in chunks)
    second = new_monitor(settings, registry)
    second.restore(decode_snapshot([c for c in chunks if chunk_header(c)[0] == sid]))
    rest = [m for m in messages if m.offset() >= second.positions[(m.topic(), m.partition())]]
    tail = run_batches(second, rest, 400)
    got = [m for m in decode_outputs(head + tail, settings)[0] if m.metric in COMPARISON]
    # Each window's comparison once; which outcomes a window's reading includes depends
    # on how batches fall (as for rolling accuracy), the final one does not: an outcome
    # lost or counted twice across the restart would change its n and lift.
    window = lambda m: (m.metric, m.window_start)  # noqa: E731
    assert Counter(map(window, got)) == Counter(map(window, expected))
    assert max(Counter(map(window, got)).values()) == 1
    end = max(m.window_start for m in expected)
    final = lambda ms: {m.metric: (m.value, m.n) for m in ms if m.window_start == end}  # noqa: E731
    assert final(got) == final(expected)
    assert final(expected)["lift"][1] == len(outcomes)


def test_comparison_alpha_is_configured_and_survives_a_restore(two_versions: Any) -> None:
    from streams.roles.monitor import MonitorSettings

    assert MonitorSettings.from_env({"LASTMILE_MONITOR_COMPARISON_ALPHA": "0.01"}) == (
        MonitorSettings(comparison_alpha=0.01)
    )
    with pytest.raises(ValueError, match="alpha"):
        MonitorSettings(comparison_alpha=1.5)
    settings, registry = two_versions
    records, outcomes = traffic("shadow", {"champion": 0.8, "shadow": 0.84}, seed=5)
    messages = interleave(settings, records, outcomes)
    monitor = new_monitor(settings, registry, comparison_alpha=0.01)
    run(monitor, messages)
    pair = monitor.comparison.shadow("m")
    assert pair is not None and pair.alpha == 0.01
    loose = new_monitor(settings, registry, comparison_alpha=0.2)
    loose.restore((1, monitor.state()))
    wide, narrow = pair, loose.comparison.shadow("m")
    assert narrow.alpha == 0.2 and narrow.n == wide.n
    assert narrow.upper - narrow.lower < wide.upper - wide.lower
