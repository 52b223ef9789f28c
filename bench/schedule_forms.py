"""What the schedule forms cost: "next run after T" per form, and checking a file of them.

    python bench/schedule_forms.py [--instants 2000] [--jobs 10000] [--repeat 3]

Each form is asked for its next instant again and again from 2026-01-01 in
America/New_York (through both daylight saving changes), as the daemon asks once a
run has fired; then `cronplusctl check` reads a file of 10,000 jobs of the new forms
(hashed, L/W/#, calendar intervals, bounds, and one job in ten following another).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from common import ROOT, env, median, report

from cronplus.configkeys import JOB_KEYS
from cronplus.schedule import build_rule
from cronplus.schedulespec import build_spec

ZONE = "America/New_York"
FORMS: dict[str, dict[str, object]] = {
    "cron 30 2 * * * (as before)": {"schedule": "30 2 * * *"},
    "cron 0 * * * * (as before)": {"schedule": "0 * * * *"},
    "hashed H H * * *": {"schedule": "H H * * *"},
    "last day 30 2 L * *": {"schedule": "30 2 L * *"},
    "nth weekday 30 2 * * 0#2": {"schedule": "30 2 * * 0#2"},
    "every 2w on mon,thu at 09:00": {
        "every": "2w",
        "on": ["mon", "thu"],
        "at": "09:00",
        "start": "2026-01-05",
    },
    "every 1d at 02:30": {"every": "1d", "at": "02:30"},
    "every 3mo on_day last at 17:00": {
        "every": "3mo",
        "on_day": "last",
        "at": "17:00",
        "start": "2026-01-01",
    },
    "bounded 30 2 * * *": {"schedule": "30 2 * * *", "start": "2026-01-01", "end": "9999-01-01"},
}


def per_call_microseconds(keys: dict[str, object], count: int) -> float:
    values = {key: JOB_KEYS[key](value) for key, value in keys.items()}
    spec, problems = build_spec(values, list(values), "bench-job", ZONE)
    assert spec is not None, problems
    rule = build_rule(spec, ZONE, shared=False)
    after = datetime(2026, 1, 1, tzinfo=timezone.utc)
    started = time.perf_counter()
    for _ in range(count):
        found = rule.next_after(after, after)
        assert found is not None
        after = found
    return (time.perf_counter() - started) / count * 1e6


def config_text(count: int) -> str:
    shapes = [
        '{{schedule: "H H * * *", command: "true"}}',
        '{{schedule: "{m} {h} L * *", command: "true"}}',
        '{{schedule: "{m} {h} * * 1#2", command: "true"}}',
        '{{every: 2w, on: [mon, thu], at: "{h:02d}:{m:02d}", start: 2026-01-05, command: "true"}}',
        '{{every: 3mo, on_day: last, at: "{h:02d}:{m:02d}", start: 2026-01-01, command: "true"}}',
        '{{schedule: "{m} {h} * * *", start: 2026-07-01, end: 2026-07-31, command: "true"}}',
    ]
    lines = ["jobs:"]
    for i in range(count):
        if i % 10 == 9:
            lines.append(f'  job-{i:05d}: {{after: job-{i - 1:05d}, command: "true"}}')
            continue
        shape = shapes[i % len(shapes)].format(m=i % 60, h=(i // 60) % 24)
        lines.append(f"  job-{i:05d}: {shape}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instants", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = [
        [name, f"{per_call_microseconds(keys, args.instants):.0f} µs", "next_after"]
        for name, keys in FORMS.items()
    ]
    with tempfile.TemporaryDirectory(prefix="cronplus-bench-") as directory:
        file = Path(directory) / "cronplus.yaml"
        file.write_text(config_text(args.jobs))
        checks = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "cronplus.ctl", "check", str(file)],
                capture_output=True,
                text=True,
                env=env(),
                cwd=ROOT,
            )
            checks.append(time.perf_counter() - started)
            assert done.returncode == 0, done.stderr
    checked = f"cronplusctl check, {args.jobs} jobs of new forms"
    rows.append([checked, f"{median(checks):.2f} s", "whole process"])
    report(
        "schedule_forms",
        ["measure", "median", "what"],
        rows,
        {"instants": args.instants, "jobs": args.jobs, "check_s": round(median(checks), 3)},
    )


if __name__ == "__main__":
    main()
