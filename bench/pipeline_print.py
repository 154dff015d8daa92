"""The printed report of bench/pipeline.py (the JSON report holds the same figures)."""

from __future__ import annotations

from typing import Any

__all__ = ["print_report"]


def _per_process(values: dict[str, Any], fmt: str = "{:.1f}") -> str:
    return ", ".join(f"{n} {'-' if v is None else fmt.format(v)}" for n, v in values.items())


def print_phase(p: dict[str, Any], indent: str = "  ") -> None:
    why = "; ".join(p["why_not_sustained"])
    verdict = "sustained" if p["sustained"] else f"NOT sustained: {why}"
    print(
        f"rate {p['rate']:g}/s for {p['seconds']:g} s: {p['requests']} requests and "
        f"{p['outcomes']} outcomes sent ({p['achieved_rate']:.0f} requests/s) - {verdict}"
    )
    print(
        f"{indent}in ClickHouse after {p['landed_after_s']:.1f} s: {p['requests_landed']} of "
        f"{p['requests']} requests ({p['rows']} prediction rows), "
        f"{p['outcomes_landed']} of {p['outcomes']} outcomes"
    )
    print(
        f"{indent}scored (request's broker timestamp -> prediction) p50 "
        f"{p['scored_p50_ms']:.1f} ms, p99 {p['scored_p99_ms']:.1f} ms; "
        f"request -> ClickHouse row p50 {p['request_to_row_p50_ms']:.0f} ms, "
        f"p99 {p['request_to_row_p99_ms']:.0f} ms, max {p['request_to_row_max_ms']:.0f} ms"
    )
    print(
        f"{indent}monitor windows ({p['window_s']:g} s, lateness {p['allowed_lateness_s']:g} s): "
        f"{p['windows_closed']} closed, after end + lateness p50 "
        f"{p['window_close_delay_p50_ms']:.0f} ms, max {p['window_close_delay_max_ms']:.0f} ms "
        f"(row in ClickHouse {p['window_to_row_max_ms']:.0f} ms later at most)"
    )
    print(f"{indent}consumer lag before the traffic:       {_per_process(p['lag_start'], '{}')}")
    print(f"{indent}consumer lag when the traffic stopped: {_per_process(p['lag_end'], '{}')}")
    print(f"{indent}consumer lag once landed:              {_per_process(p['lag_settled'], '{}')}")
    if "quiet_after_s" in p:
        print(f"{indent}  (quiet again, the monitor aside, {p['quiet_after_s']:g} s later)")
    print(f"{indent}CPU % of a core:            {_per_process(p['cpu_percent'])}")
    print(f"{indent}CPU-ms per 1,000 requests:  {_per_process(p['cpu_ms_per_1k_requests'])}")
    if "cpu_ms_per_1k_above_idle" in p:
        above = _per_process(p["cpu_ms_per_1k_above_idle"])
        print(f"{indent}  less the idle CPU:        {above}")


def print_search(s: dict[str, Any]) -> None:
    if not s["trials"]:
        print(f"highest sustained rate: not searched (budget {s['budget_s']:g} s)")
        return
    rate = s["sustained_rate"]
    found = f"{rate:g} requests/s" if rate is not None else "none of the rates tried"
    above = s["lowest_failed_rate"]
    bound = f", lowest failed {above:g}/s" if above is not None else ", no rate failed"
    print(
        f"highest sustained rate: {found}{bound} "
        f"({len(s['trials'])} phases in {s['spent_s']:g} s of a {s['budget_s']:g} s budget"
        f"{'' if s['converged'] else '; not bracketed: raise --max-search-seconds'})"
    )
    for t in s["trials"]:
        why = "ok" if t["sustained"] else "NOT: " + "; ".join(t["why_not_sustained"])
        print(f"  {t['rate']:>8g}/s (sent at {t['achieved_rate']:.0f}/s): {why}")
    if s["cpu_ms_per_1k_requests"]:
        cpu = _per_process(s["cpu_ms_per_1k_requests"])
        print(f"  CPU-ms per 1,000 requests at {rate:g}/s: {cpu}")
        best = s["at_sustained_rate"] or {}
        if "cpu_ms_per_1k_above_idle" in best:
            above = _per_process(best["cpu_ms_per_1k_above_idle"])
            print(f"    less the idle CPU: {above}")


def print_scorer(alone: dict[str, Any] | None, phases: list[dict[str, Any]]) -> None:
    if alone is None:
        print("scorer alone: skipped (--skip-scorer)")
        return
    print(
        f"scorer alone (bench/scoring.py, {alone['events']:,.0f} requests): "
        f"{alone['events_per_s']:,.0f} events/s; request -> scored p50 "
        f"{alone['scored_p50_ms']:.1f} ms, p99 {alone['scored_p99_ms']:.1f} ms; request -> "
        f"prediction received p50 {alone['end_to_end_p50_ms']:.1f} ms, "
        f"p99 {alone['end_to_end_p99_ms']:.1f} ms"
    )
    if alone.get("output_tail"):
        print(f"  bench/scoring.py exited {alone['returncode']}:\n{alone['output_tail']}")
    for p in phases:
        print(
            f"  beside the pipeline's scorer at {p['rate']:g}/s: request -> scored "
            f"p50 {p['scored_p50_ms']:.1f} ms, p99 {p['scored_p99_ms']:.1f} ms"
        )


def print_report(report: dict[str, Any]) -> None:
    load = ", ".join(f"{x:.2f}" for x in report["load_average"])
    print(f"load average at the start and the end of the stack: {load}")
    print(f"warm-up: 300 requests at 100/s, then quiet, in {report['warm_up_s']:g} s")
    print(f"idle ({report['idle_seconds']:g} s), % of one core:")
    for name, pct in report["idle_cpu_percent"].items():
        print(f"  {name:<12} {pct:7.2f}")
    print(f"  {'total':<12} {report['idle_cpu_total']:7.2f}")
    for phase in report["phases"]:
        print_phase(phase)
    print_search(report["search"])
    print_scorer(report["scorer_alone"], report["phases"])
