"""bench/scoring.py's report: a run's line, and the summary beside the goals."""

from __future__ import annotations

import argparse
import os
from typing import Any

from bench.scoring_throughput import Run

GOAL_RATE = 50_000
GOAL_VS_FAUST = 20.0
GOAL_VS_QUIX = 2.0
GOAL_P99_ADDED_MS = 20.0
GOAL_RSS_MB = 400.0


def goal(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT met")


def fmt_rate(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:,.0f}"


def report_run(run: Run, note: str = "") -> None:
    total = (
        f"total {fmt_rate(run.total_rate)} ev/s incl. {run.startup_s:.1f} s start-up"
        if run.startup_s is not None
        else "no output"
    )
    rss = f", peak RSS {run.peak_rss_mb:.0f} MB" if run.peak_rss_mb else ""
    status = (
        "" if run.complete else f"  INCOMPLETE: {run.counted:,}/{run.expected:,}, {run.stopped}"
    )
    short = (
        ""
        if run.timed or run.rate is None
        else f"  [outputs came over {run.span_s:.2f} s only: too short to time, raise the count]"
    )
    print(
        f"  {run.name:<9} {run.counted:>9,} events  {fmt_rate(run.rate):>8} ev/s  "
        f"({total}{rss}){note}{status}{short}"
    )


def summarize(
    args: argparse.Namespace, runs: dict[str, Run], latency: dict[str, dict], rss: dict[str, float]
) -> None:
    print(f"\n== summary == (load average now {os.getloadavg()[0]:.2f})")
    print(
        f"throughput, events/s from first output to last (the total includes start-up); "
        f"lastmile requests in {args.request_format}:"
    )
    for name, r in runs.items():
        note = ""
        if name == "faust" and args.faust_count < args.count:
            note = f"  [run on {args.faust_count:,} events, not {args.count:,}: per-event path]"
        if name.startswith("quix") and args.quix_count != args.count:
            note = f"  [run on {args.quix_count:,} events]"
        if name == "ceiling" and args.ceiling_count != args.count:
            note = f"  [run on {args.ceiling_count:,} events]"
        report_run(r, note)

    def rate_of(name: str) -> float | None:
        r = runs.get(name)
        return r.rate if r is not None and r.timed and r.rate else None

    rate = rate_of("lastmile")
    print(
        f"  goal >= {GOAL_RATE:,} events/s per worker process: "
        f"{goal(None if rate is None else rate >= GOAL_RATE)}"
    )

    def ratio(ours: str, theirs: str, target: float | None = None, asked: bool = False) -> None:
        a, b = rate_of(ours), rate_of(theirs)
        if a is None or b is None:
            return
        line = f"    {ours}/{theirs}: {a / b:,.2f}x"
        if asked:
            line += f"  (what the {target:g}x goal would ask of it)"
        elif target is not None:
            line += f"  (goal >= {target:g}x: {goal(a / b >= target)})"
        print(line)

    baselines = (("faust", GOAL_VS_FAUST), ("quix", GOAL_VS_QUIX))
    print("  lastmile exactly once against the baselines' defaults (at least once):")
    for other, target in baselines:
        ratio("lastmile", other, target)
    pairs = [
        ("lastmile-alo", "faust", GOAL_VS_FAUST),
        ("lastmile-alo", "quix", GOAL_VS_QUIX),
        ("lastmile", "quix-eos", GOAL_VS_QUIX),
    ]
    if any(rate_of(ours) and rate_of(theirs) for ours, theirs, _ in pairs):
        print("  the same delivery guarantee on both sides:")
    for ours, theirs, target in pairs:
        ratio(ours, theirs, target)
    if rate_of("ceiling") is not None:
        print("  against the practical ceiling (a hand-written batch loop, at least once):")
        for ours in ("lastmile", "lastmile-alo"):
            ratio(ours, "ceiling")
        for other, target in baselines:
            ratio("ceiling", other, target, asked=True)
    floor = latency.get("floor")
    if floor is not None:
        print(
            f"latency at {args.latency_rate:,.0f} events/s for {args.latency_seconds:g} s "
            f"(first {args.latency_warmup:g} s dropped; producer linger {args.linger_ms} ms, "
            f"consumer fetch.wait.max.ms {args.fetch_wait_ms}):"
        )
        _latency_row("broker floor (no worker)", floor, "total")
    for name, title in (("lastmile", "exactly once"), ("lastmile-alo", "at least once")):
        scored = latency.get(name)
        if floor is None or scored is None:
            continue
        _latency_row(f"scorer, {title}", scored, "total")
        _latency_row("  request -> scored_time", scored, "to_scored")
        _latency_row("  scored_time -> received", scored, "after_scored")
        if floor.get("total") and scored.get("total"):
            f, t = floor["total"], scored["total"]
            added50, added99 = t["p50"] - f["p50"], t["p99"] - f["p99"]
            print(
                f"  {'  added over the floor':<26} p50 {added50:+7.1f} ms  "
                f"{'':16}p99 {added99:+7.1f} ms  "
                f"(goal p99 added <= {GOAL_P99_ADDED_MS:g} ms: "
                f"{goal(added99 <= GOAL_P99_ADDED_MS)})"
            )
    if rss:
        hwm = rss.get("VmHWM")
        print(
            f"scorer worker RSS, exactly once: peak (VmHWM) {hwm:.0f} MB, last "
            f"{rss.get('VmRSS', 0):.0f} MB "
            f"(goal <= {GOAL_RSS_MB:g} MB: {goal(None if hwm is None else hwm <= GOAL_RSS_MB)})"
        )


def _latency_row(name: str, result: dict[str, Any], part: str) -> None:
    p = result.get(part)
    if p:
        print(
            f"  {name:<26} p50 {p['p50']:7.1f} ms  p90 {p['p90']:7.1f} ms  "
            f"p99 {p['p99']:7.1f} ms  max {p['max']:7.1f} ms"
            + (
                f"  ({result['received']:,}/{result['offered']:,} received)"
                if part == "total"
                else ""
            )
        )
    elif part == "total":
        print(f"  {name:<26} no samples ({result.get('received', 0)} received)")
