"""The learner's auto policy decides on evidence: noise does not promote, a real gain does."""

from __future__ import annotations

import numpy as np

from streams.roles.learner.evidence import per_outcome, snapshot_evidence
from streams.roles.learner.prequential_window import PrequentialWindow


def windows(p_champion: float, p_online: float, n: int, seed: int, task: str = "classification"):
    rng = np.random.default_rng(seed)
    online, frozen = PrequentialWindow(task, n), PrequentialWindow(task, n)
    truth = rng.random(n) < 0.5
    hit_online = rng.random(n) < p_online
    hit_frozen = rng.random(n) < p_champion
    for y, a, b in zip(truth, hit_online, hit_frozen, strict=True):
        online.update(bool(y), 0.9 if a == y else 0.1)
        frozen.update(bool(y), 0.9 if b == y else 0.1)
    return online, frozen


def test_equal_models_are_not_promoted_where_a_margin_of_zero_would_be() -> None:
    promoted = margin_promoted = 0
    for seed in range(300):
        online, frozen = windows(0.85, 0.85, 1000, seed)
        if snapshot_evidence(online, frozen)["decision"] == "challenger_better":
            promoted += 1
        if online.get()["accuracy"] > frozen.get()["accuracy"]:
            margin_promoted += 1  # the old rule: any gain over the window
    assert promoted / 300 <= 0.05
    assert margin_promoted / 300 > 0.3


def test_a_real_gain_is_promoted_and_a_loss_is_not() -> None:
    better = [snapshot_evidence(*windows(0.55, 0.85, 1000, s))["decision"] for s in range(20)]
    assert better.count("challenger_better") == 20
    worse = [snapshot_evidence(*windows(0.85, 0.55, 1000, s))["decision"] for s in range(20)]
    assert "challenger_better" not in worse and worse.count("champion_better") == 20


def test_windows_of_different_lengths_pair_at_their_tail_and_regressors_use_errors() -> None:
    online, frozen = PrequentialWindow("regression", 10), PrequentialWindow("regression", 10)
    for y in range(10):
        online.update(float(y), float(y))  # exact
    for y in range(6, 10):
        frozen.update(float(y), float(y) + 2.0)  # a new champion: four outcomes so far
    assert list(per_outcome(frozen, 4)) == [2.0] * 4
    evidence = snapshot_evidence(online, frozen)
    assert evidence["n"] == 4 and evidence["lift"] == 2.0  # lower error is better
    assert snapshot_evidence(online, None)["decision"] == "undecided"
