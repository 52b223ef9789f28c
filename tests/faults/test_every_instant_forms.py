"""Every instant of the new schedule forms leaves exactly one row, whatever happens.

The same random sequences of stalls, clock steps, suspends, pauses and crashes as
test_every_instant.py, for a schedule bounded by `start:`/`end:`, a hashed one, a
calendar interval with many times a day, and an `every:` anchored at its start.
"""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from test_daemon_steps import T0, FakeRunner, make_daemon
from test_every_instant import EVENTS, assert_every_instant_once, finish_all, restart, rows

# T0 is 2026-06-01 12:00 UTC; each schedule has many instants in the hours after it
TIMES = ", ".join(f'"12:{m:02d}:{s:02d}"' for m in range(60) for s in (5, 35))
FORMS = {
    "bounded": '{schedule: "* * * * * */10", start: "2026-06-01T12:05", end: "2026-06-01T12:50"}',
    "hashed": '{schedule: "* * * * * H/10"}',
    "calendar": "{every: 1d, at: [" + TIMES + "]}",
    "anchored": '{every: 10s, start: "2026-06-01T12:01:03", end: "2026-06-01T13:30"}',
}


@pytest.mark.parametrize("form", sorted(FORMS))
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=EVENTS)
def test_any_sequence_of_faults_leaves_one_row_per_instant_of_each_form(
    tmp_path_factory: pytest.TempPathFactory, form: str, events: list[tuple[str, object]]
) -> None:
    tmp_path = tmp_path_factory.mktemp("forms")
    text = textwrap.dedent(
        f"""
        jobs:
          tick: {FORMS[form][:-1]}, command: "true", catch_up: all, timezone: UTC}}
        """
    )
    daemon, clock, runner = make_daemon(tmp_path, text)
    for kind, value in events:
        if kind in ("advance", "stall"):
            clock.advance(float(value))  # type: ignore[arg-type]
        elif kind == "step":
            clock.step(float(value))  # type: ignore[arg-type]
        elif kind == "suspend":
            clock.suspend(float(value))  # type: ignore[arg-type]
        elif kind == "pause":
            assert daemon.config is not None
            daemon.set_paused(daemon.config.jobs["tick"], bool(value))
        elif kind == "finish":
            finish_all(runner)
        elif kind == "crash":
            assert daemon.history is not None
            daemon.history.flush(clock.now())
            daemon.history.close()
            daemon = restart(tmp_path, clock)
            runner = FakeRunner(daemon._on_exit, clock)
            daemon.runner = runner  # type: ignore[assignment]
        daemon.step(clock.now())
    assert_every_instant_once(daemon, "tick", T0)
    if form in ("bounded", "anchored"):
        assert daemon.config is not None
        bounds = {"bounded": (5 * 60, 50 * 60), "anchored": (63, 90 * 60)}[form]
        scheduled = [r.scheduled - T0.timestamp() for r in rows(daemon, "tick") if r.scheduled]
        assert all(bounds[0] <= s <= bounds[1] for s in scheduled), scheduled
