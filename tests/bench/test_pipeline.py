"""bench/pipeline.py --quick runs the real embedded stack and reports real numbers."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.pipeline_load import lag_bound, reasons  # noqa: E402
from bench.pipeline_scorer import parse_scoring  # noqa: E402

ROLES = {"scorer", "monitor", "sink", "learner"}  # the roles with an input to lag on
PROCESSES = {"broker", "clickhouse", "gateway", "operator", "bench"} | ROLES


def finite(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value >= 0


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("pipeline") / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "pipeline.py"), "--quick", "--json", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text()), done.stdout


# The --quick run (about 3 minutes on the shared machine) is set up by the first of these.
slow = pytest.mark.timeout(900)


@slow
def test_idle_cpu_of_every_process(quick: tuple[dict, str]) -> None:
    report, stdout = quick
    assert set(report["idle_cpu_percent"]) >= PROCESSES
    assert all(pct >= 0 for pct in report["idle_cpu_percent"].values())
    assert "idle" in stdout


@slow
def test_phase_figures(quick: tuple[dict, str]) -> None:
    report, stdout = quick
    (phase,) = report["phases"]
    # --quick sends 200 requests/s for 10 s, each with its outcome 1 s later...
    assert phase["requests"] == phase["outcomes"] == 2000
    assert phase["sent"] == 4000 and phase["failed"] == 0
    # ...and every one lands in ClickHouse: the scorer, the sink and the store kept up.
    assert phase["requests_landed"] == phase["requests"]
    assert phase["outcomes_landed"] == phase["outcomes"]
    assert phase["rows"] >= phase["requests"]
    # Latencies: finite, ordered, and a row comes after its prediction.
    for prefix in ("scored", "request_to_row"):
        assert finite(phase[f"{prefix}_p50_ms"])
        assert phase[f"{prefix}_p50_ms"] <= phase[f"{prefix}_p99_ms"]
    assert phase["request_to_row_p99_ms"] <= phase["request_to_row_max_ms"]
    assert phase["scored_p50_ms"] <= phase["request_to_row_p50_ms"]
    # 2 s windows with 1 s lateness over 10 s of traffic: several close, never early.
    assert phase["window_s"] == 2 and phase["allowed_lateness_s"] == 1
    assert phase["windows_closed"] >= 2
    assert finite(phase["window_close_delay_p50_ms"])
    assert phase["window_close_delay_p50_ms"] <= phase["window_close_delay_max_ms"]
    assert finite(phase["window_to_row_max_ms"])
    # Lag of every consuming role: before the traffic, when it stopped, once rows landed.
    for when in ("lag_start", "lag_end", "lag_settled"):
        assert all(finite(phase[when][role]) for role in ROLES), phase[when]
    assert finite(phase["quiet_after_s"])
    assert PROCESSES <= set(phase["cpu_percent"]) == set(phase["cpu_ms_per_1k_requests"])
    assert all(v >= 0 for v in phase["cpu_ms_per_1k_requests"].values())
    # Less the idle CPU, the traffic's own cost: never more than the whole.
    above = phase["cpu_ms_per_1k_above_idle"]
    assert all(above[n] <= phase["cpu_ms_per_1k_requests"][n] for n in PROCESSES)
    assert sum(phase["cpu_percent"].values()) > 0
    assert phase["sustained"] == (not phase["why_not_sustained"])
    assert "rate 200/s" in stdout and "monitor windows" in stdout


@slow
def test_search_finds_a_sustained_rate(quick: tuple[dict, str]) -> None:
    report, stdout = quick
    found = report["search"]
    assert found["trials"] and found["spent_s"] <= found["budget_s"] + 60
    rate = found["sustained_rate"]
    assert rate is not None and rate > 0, found["trials"]
    best = found["at_sustained_rate"]
    assert best["rate"] == rate and best["sustained"]
    assert best["requests_landed"] == best["requests"]
    assert set(found["cpu_ms_per_1k_requests"]) >= PROCESSES
    assert sum(found["cpu_ms_per_1k_requests"].values()) > 0
    failed = found["lowest_failed_rate"]
    assert failed is None or failed > rate
    assert "highest sustained rate" in stdout


@slow
def test_scorer_alone_beside(quick: tuple[dict, str]) -> None:
    report, stdout = quick
    alone = report["scorer_alone"]
    assert alone["returncode"] == 0, alone.get("output_tail")
    assert alone["events"] == 50_000 and alone["events_per_s"] > 0
    for prefix in ("scored", "end_to_end"):
        assert finite(alone[f"{prefix}_p50_ms"])
        assert alone[f"{prefix}_p50_ms"] <= alone[f"{prefix}_p99_ms"]
    assert "scorer alone" in stdout


def test_parse_scoring_reads_the_summary_lines() -> None:
    text = """
  lastmile     50,000 events    41,000 ev/s  (start-up)
== summary ==
  lastmile     50,000 events    63,009 ev/s  (total 1,392 ev/s incl. 14.1 s start-up)
  scorer, exactly once       p50    24.7 ms  p90    33.6 ms  p99    65.3 ms  max    80.6 ms
    request -> scored_time   p50    16.0 ms  p90    25.0 ms  p99    30.0 ms  max    65.0 ms
"""
    got = parse_scoring(text)
    assert got["events"] == 50_000 and got["events_per_s"] == 63_009
    assert (got["end_to_end_p50_ms"], got["end_to_end_p99_ms"]) == (24.7, 65.3)
    assert (got["scored_p50_ms"], got["scored_p99_ms"]) == (16.0, 30.0)
    assert math.isnan(parse_scoring("nothing")["events_per_s"])


def test_sustained_means_rate_kept_lag_bounded_and_everything_landed() -> None:
    phase = {
        "rate": 1000,
        "achieved_rate": 990,
        "lag_end": {"scorer": 10, "monitor": 20_000, "gateway": None},
        "requests": 60_000,
        "requests_landed": 60_000,
        "outcomes": 60_000,
        "outcomes_landed": 60_000,
    }
    # The monitor may hold a window and its lateness (here 15 s) more than the others,
    # the learner one batch (20,000) more.
    assert lag_bound(1000, "monitor", 5, 15) == 40_000 and lag_bound(1000, "sink", 5, 15) == 10_000
    assert lag_bound(1000, "learner", 5, 15) == 30_000
    assert reasons(phase, 5, 15) == []
    slow = phase | {"achieved_rate": 900, "lag_end": {"sink": 10_001}, "outcomes_landed": 1}
    assert reasons(slow, 5, 15) == [
        "producer reached 900/s only",
        "sink 10001 behind (> 10000)",
        "1/60000 outcomes in ClickHouse",
    ]
