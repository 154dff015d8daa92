"""bench/pipeline.py --quick runs the real embedded stack and reports real numbers."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "pipeline.py"), "--quick", "--json", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    # Every process of the stack is measured: the broker, the store and one per role.
    assert {"clickhouse", "scorer", "monitor", "sink", "learner"} <= set(report["idle_cpu_percent"])
    assert all(pct >= 0 for pct in report["idle_cpu_percent"].values())
    (phase,) = report["phases"]
    # --quick sends 200 requests/s for 10 s, each with its outcome later.
    assert phase["sent"] == 2 * 2000
    # The requests went through the scorer and the sink into ClickHouse.
    assert phase["rows"] >= 0.9 * 2000
    for key in ("request_to_row_p99_ms", "scorer_latency_p99_ms"):
        assert math.isfinite(phase[key]) and phase[key] >= 0
    assert phase["request_to_row_p50_ms"] <= phase["request_to_row_p99_ms"]
    assert sum(phase["cpu_percent"].values()) > 0
    assert "idle" in done.stdout and "rate 200/s" in done.stdout
