"""Load phases for bench/pipeline.py: simulated traffic at one rate through the whole
stack, and the search for the highest rate it sustains.

A phase sends ``rate`` requests/s for ``seconds`` (the fraud model, each request's
outcome 1 s later, as the simulator sends them), then reads:

- CPU of each process during the traffic, in % of one core and in CPU-ms per 1,000
  requests (``bench`` is this process, the producer);
- each role's consumer lag when the traffic stops, and again once every request's
  prediction and every outcome has a row in ClickHouse (or ``settle`` s have passed);
- the predictions' latencies and the monitor windows' closing delays
  (bench/pipeline_measure.py).

A phase is **sustained** when the producer kept the rate (>= 95 %), no role was more
than ``max_lag_s`` seconds of traffic behind when the traffic stopped (``lag_bound``:
the monitor may hold a window and its lateness more, the learner one batch), and every
request and outcome landed in ClickHouse within ``settle`` s.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from bench.pipeline_measure import (
    CpuMeter,
    landed,
    prediction_figures,
    role_lags,
    total_lags,
    window_figures,
)

__all__ = ["above_idle", "run_phase", "search", "settle_down", "wait_quiet", "warm_up"]

LAG_TTL_S = 2.5  # a worker's lag answer is cached 2 s (streams/metrics/lag.py)
LEARNER_BATCH = 20_000  # the learner lane's max_batch (streams/roles/learner/lane.py)
QUIET_LAG = 50  # messages a role may show behind at rest (transaction markers count 1)
_seeds = itertools.count(1000)  # a fresh seed a phase: request ids never repeat


def stack_pids(stack: Any) -> dict[str, int | None]:
    return {s.process.name: s.process.pid for s in stack.services}


def warm_up(settings: Any, ports: dict[str, int], timeout: float) -> float:
    """A little traffic (300 requests at 100/s) before anything is measured: the first
    requests a fresh stack sees pay for topic creation, group joins and model loading."""
    from streams.local.traffic_producer import produce_simulation

    began = time.monotonic()
    produce_simulation(settings, model="fraud", rate=100, count=300, label_delay=1.0, seed=1)
    wait_quiet(ports, timeout)
    return round(time.monotonic() - began, 1)


def run_phase(
    settings: Any,
    stack: Any,
    ports: dict[str, int],
    rate: float,
    seconds: float,
    settle: float,
    max_lag_s: float,
) -> dict[str, Any]:
    """One phase at ``rate`` requests/s; the figures of the module docstring."""
    from streams.local.traffic_producer import produce_simulation
    from streams.storage.db import connect

    lag_start = total_lags(role_lags(ports))  # a backlog left by the phase before shows
    since_ms = int(time.time() * 1000)
    meter = CpuMeter(stack_pids(stack))
    summary = produce_simulation(
        settings,
        model="fraud",
        rate=rate,
        count=int(rate * seconds),
        label_delay=1.0,
        seed=next(_seeds),
    )
    until_ms = int(time.time() * 1000)
    elapsed, used = meter.used()
    lag_end = role_lags(ports)
    stopped = time.monotonic()
    client = connect(settings)  # one ClickHouse client for the phase's reads
    while True:
        requests, outcomes = landed(client, since_ms)
        if requests >= summary.requests and outcomes >= summary.outcomes:
            break
        if time.monotonic() - stopped >= settle:
            break
        time.sleep(0.5)
    landed_after = time.monotonic() - stopped
    time.sleep(max(0.0, LAG_TTL_S - landed_after))  # the workers' lag answer is fresh again
    achieved = summary.requests / max(summary.seconds - 1.0, 1e-9)  # less the outcomes' 1 s
    per_1k = 1_000_000.0 / max(summary.requests, 1)
    phase: dict[str, Any] = {
        "rate": rate,
        "seconds": seconds,
        "requests": summary.requests,
        "outcomes": summary.outcomes,
        "sent": summary.sent,
        "failed": summary.failed,
        "achieved_rate": round(achieved, 1),
        "traffic_s": round(elapsed, 2),
        "cpu_percent": {n: round(100.0 * s / elapsed, 2) for n, s in used.items()},
        "cpu_ms_per_1k_requests": {n: round(s * per_1k, 1) for n, s in used.items()},
        "lag_start": lag_start,
        "lag_end": total_lags(lag_end),
        "landed_after_s": round(landed_after, 2),
        "outcomes_landed": outcomes,
    }
    settled = role_lags(ports)
    phase["lag_settled"] = total_lags(settled)
    phase["lag_by_topic"] = {"end": lag_end, "settled": settled}
    phase |= prediction_figures(client, since_ms)
    phase |= window_figures(client, settings.monitor, since_ms, until_ms)
    client.close()
    held = settings.monitor.window + settings.monitor.allowed_lateness
    phase["why_not_sustained"] = reasons(phase, max_lag_s, held)
    phase["sustained"] = not phase["why_not_sustained"]
    return phase


def above_idle(phase: dict[str, Any], idle_percent: dict[str, float]) -> dict[str, float]:
    """CPU-ms per 1,000 requests each process spent beyond its idle CPU over the phase:
    what the traffic itself cost (at low rates the idle share dominates the plain
    figure). Taken off the plain figure itself, so it is never above it (recomputing it
    from the rounded % could be, by rounding); noise can make a small one negative.

    >>> above_idle({"traffic_s": 10.0, "requests": 2000,
    ...             "cpu_ms_per_1k_requests": {"b": 1500.0, "bench": 80.0}}, {"b": 20.0})
    {'b': 500.0, 'bench': 80.0}
    """
    per_1k = 1_000_000.0 / max(phase["requests"], 1)
    idle_ms = {n: pct / 100.0 * phase["traffic_s"] * per_1k for n, pct in idle_percent.items()}
    return {
        n: round(ms - idle_ms.get(n, 0.0), 1) for n, ms in phase["cpu_ms_per_1k_requests"].items()
    }


def lag_bound(rate: float, role: str, max_lag_s: float, held_s: float) -> float:
    """Messages ``role`` may be behind at ``rate``: ``max_lag_s`` seconds of its input
    (each request brings 2 messages, its prediction and its outcome); for the monitor a
    window and its lateness more (it commits a window's events when the window closes);
    for the learner one batch more (it commits a batch of up to LEARNER_BATCH when the
    batch's transaction does)."""
    bound = 2 * rate * (max_lag_s + (held_s if role == "monitor" else 0.0))
    return bound + (LEARNER_BATCH if role == "learner" else 0)


def reasons(phase: dict[str, Any], max_lag_s: float, held_s: float) -> list[str]:
    """Why a phase was not sustained; empty when it was."""
    out = []
    if phase["achieved_rate"] < 0.95 * phase["rate"]:
        out.append(f"producer reached {phase['achieved_rate']:.0f}/s only")
    for role, lag in phase["lag_end"].items():
        bound = lag_bound(phase["rate"], role, max_lag_s, held_s)
        if lag is not None and lag > bound:
            out.append(f"{role} {lag} behind (> {bound:.0f})")
    if phase["requests_landed"] < phase["requests"]:
        out.append(f"{phase['requests_landed']}/{phase['requests']} requests in ClickHouse")
    if phase["outcomes_landed"] < phase["outcomes"]:
        out.append(f"{phase['outcomes_landed']}/{phase['outcomes']} outcomes in ClickHouse")
    return out


def wait_quiet(ports: dict[str, int], timeout: float) -> float:
    """Wait (up to ``timeout`` s) until no role is more than QUIET_LAG behind; seconds.
    The monitor is not waited for: it holds its open window's events until later ones
    close it."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        lags = total_lags(role_lags({r: p for r, p in ports.items() if r != "monitor"}))
        if all(lag is None or lag <= QUIET_LAG for lag in lags.values()):
            break
        time.sleep(1.0)
    return round(time.monotonic() - began, 1)


def settle_down(phase: dict[str, Any], ports: dict[str, int], settle: float) -> float:
    """Wait for the roles to be quiet before the next phase: ``settle`` s at most after a
    sustained phase, the phase's length twice (at least a minute) after one that left a
    backlog. Seconds waited."""
    longest = settle if phase["sustained"] else max(settle, 2 * phase["seconds"], 60.0)
    return wait_quiet(ports, timeout=longest)


def search(
    settings: Any,
    stack: Any,
    ports: dict[str, int],
    start: float,
    seconds: float,
    settle: float,
    max_lag_s: float,
    budget: float,
    tolerance: float = 0.2,
) -> dict[str, Any]:
    """The highest sustained rate: double from ``start`` while phases are sustained
    (halve while they are not), then bisect between the best sustained rate and the
    lowest failed one until they are within ``tolerance`` of each other, or the next
    phase would not fit in ``budget`` seconds (what ran so far is kept)."""
    began = time.monotonic()
    trials: list[dict[str, Any]] = []
    good: dict[str, Any] | None = None
    bad: dict[str, Any] | None = None
    rate, cost = start, seconds + settle + 5.0
    while time.monotonic() - began + cost <= budget:
        t0 = time.monotonic()
        phase = run_phase(settings, stack, ports, rate, seconds, settle, max_lag_s)
        phase["quiet_after_s"] = settle_down(phase, ports, settle)
        trials.append(phase)
        cost = time.monotonic() - t0
        if phase["sustained"] and (good is None or rate > good["rate"]):
            good = phase
        if not phase["sustained"] and (bad is None or rate < bad["rate"]):
            bad = phase
        if good is not None and bad is not None:
            if bad["rate"] <= good["rate"] * (1 + tolerance):
                break
            rate = round((good["rate"] + bad["rate"]) / 2)
        elif good is not None:
            rate = rate * 2
        else:
            rate = max(1, round(rate / 2))
            if rate <= 1:
                break
    return {
        "budget_s": budget,
        "spent_s": round(time.monotonic() - began, 1),
        "converged": good is not None and bad is not None,
        "sustained_rate": good["rate"] if good else None,
        "lowest_failed_rate": bad["rate"] if bad else None,
        "cpu_ms_per_1k_requests": good["cpu_ms_per_1k_requests"] if good else {},
        "trials": [
            {
                k: t[k]
                for k in (
                    "rate",
                    "achieved_rate",
                    "sustained",
                    "why_not_sustained",
                    "lag_start",
                    "lag_end",
                    "request_to_row_p99_ms",
                    "quiet_after_s",
                )
            }
            for t in trials
        ],
        "at_sustained_rate": good,
    }
