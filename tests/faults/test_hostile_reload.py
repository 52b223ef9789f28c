"""Whatever a reloaded file holds, the running daemon applies it whole or keeps what it had.

The same random documents as test_hostile_config go through the daemon's one
reload path (SIGHUP and `cronplusctl reload` both call it), between turns of a
loop driven by the test's clock.  Nothing may escape: a rejected file leaves the
running configuration and its timers as they were, an accepted one is running.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from test_daemon_steps import make_daemon
from test_hostile_config import BASE_JOB, JOB_KEYS, PROPERTY, documents, dump, values

from cronplus.errors import ConfigError

TICK = 'jobs:\n  tick: {schedule: "* * * * * */10", command: "true"}\n'

changed_jobs = st.dictionaries(st.sampled_from(JOB_KEYS), values, max_size=4).map(
    lambda extra: {"jobs": {"tick": {**BASE_JOB, **extra}}}
)


@PROPERTY
@given(contents=st.lists(st.one_of(documents, changed_jobs), min_size=1, max_size=4))
def test_any_reload_is_applied_or_rejected_whole(
    tmp_path_factory: Any, contents: list[Any]
) -> None:
    tmp_path: Path = tmp_path_factory.mktemp("reload")
    daemon, clock, runner = make_daemon(tmp_path, TICK)
    for document in contents:
        before, timer_before = daemon.config, daemon.timer.next_of("tick")
        (tmp_path / "cronplus.yaml").write_bytes(dump(document, flow=False))
        rejected = daemon.reload(clock.now())
        if rejected is not None:
            assert isinstance(rejected, ConfigError) and rejected.problems
            assert daemon.config is before
            assert daemon.timer.next_of("tick") == timer_before
        else:
            assert daemon.config is not None and daemon.config is not before
            assert set(daemon.rules) == set(daemon.config.jobs)
        clock.advance(7)
        assert daemon.step(clock.now())
        for run_id in list(runner.active):
            runner.finish(run_id)
        clock.advance(timedelta(seconds=5).total_seconds())
        assert daemon.step(clock.now())
