"""The scorer alone, beside the pipeline's figures: ``bench/scoring.py`` run as a
subprocess (lastmile's scorer only, the comparisons skipped), its printed summary parsed.

bench/scoring.py prints no JSON; the lines read here are its summary's:

    lastmile     50,000 events    63,009 ev/s  (total 1,392 ev/s incl. 14.1 s start-up, ...
    scorer, exactly once       p50    24.7 ms  p90    33.6 ms  p99    65.3 ms  max ...
      request -> scored_time   p50    16.0 ms  p90    25.0 ms  p99    30.0 ms  max ...
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["parse_scoring", "scorer_alone"]

SCORING = Path(__file__).resolve().with_name("scoring.py")
SKIP = "faust,quix,same-guarantee,ceiling,profile"

_THROUGHPUT = re.compile(r"^\s*lastmile\s+([\d,]+) events\s+([\d,]+) ev/s", re.M)
_LATENCY = r"^\s*{label}\s+p50\s+([\d.]+) ms\s+p90\s+([\d.]+) ms\s+p99\s+([\d.]+) ms"
_END_TO_END = re.compile(_LATENCY.format(label=r"scorer, exactly once"), re.M)
_SCORED = re.compile(_LATENCY.format(label=r"request -> scored_time"), re.M)


def parse_scoring(text: str) -> dict[str, float]:
    """The figures of bench/scoring.py's printed output (NaN where a line is missing).

    >>> parse_scoring('''  lastmile     20,000 events    63,009 ev/s  (total ...)
    ...   scorer, exactly once       p50    24.7 ms  p90    33.6 ms  p99    65.3 ms  max 80 ms
    ...     request -> scored_time   p50    16.0 ms  p90    25.0 ms  p99    30.0 ms  max 65 ms
    ... ''')["events_per_s"]
    63009.0
    """
    out = dict.fromkeys(
        (
            "events",
            "events_per_s",
            "end_to_end_p50_ms",
            "end_to_end_p99_ms",
            "scored_p50_ms",
            "scored_p99_ms",
        ),
        math.nan,
    )
    found = _THROUGHPUT.findall(text)
    if found:
        events, rate = found[-1]  # the summary repeats the line: take the last
        out["events"] = float(events.replace(",", ""))
        out["events_per_s"] = float(rate.replace(",", ""))
    for prefix, pattern in (("end_to_end", _END_TO_END), ("scored", _SCORED)):
        found = pattern.findall(text)
        if found:
            p50, _p90, p99 = found[-1]
            out[f"{prefix}_p50_ms"], out[f"{prefix}_p99_ms"] = float(p50), float(p99)
    return out


def scorer_alone(count: int, latency_rate: float, latency_seconds: float) -> dict[str, Any]:
    """Run bench/scoring.py on ``count`` requests (and its latency run at ``latency_rate``
    for ``latency_seconds``); its figures, the command and a tail of its output when it
    failed."""
    command = [
        sys.executable,
        str(SCORING),
        "--count",
        str(count),
        "--skip",
        SKIP,
        "--latency-rate",
        f"{latency_rate:g}",
        "--latency-seconds",
        f"{latency_seconds:g}",
    ]
    # Its own broker and directories: none of the pipeline stack's LASTMILE_* settings.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
        text, code = done.stdout, done.returncode
    except subprocess.TimeoutExpired as err:
        out = err.stdout or b""
        text, code = out.decode() if isinstance(out, bytes) else out, -1
    report: dict[str, Any] = {"command": " ".join(command[1:]), "returncode": code}
    report |= parse_scoring(text)
    if code != 0 or math.isnan(report["events_per_s"]):
        report["output_tail"] = text[-2000:]
    return report
