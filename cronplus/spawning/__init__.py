"""Starting runs from a small process of its own: the spawner.

The daemon holds every job, its history and its loop; forking it for each run
means copying its page tables (a full fork where the run switches user), and its
one thread does the start of a burst one run after the other.  The spawner
(`cronplus-spawner` in `ps`, `python -m cronplus.spawning.server`) is a fresh,
small interpreter the daemon starts beside itself: the daemon prepares each run
(command, user, environment, working directory, its cgroup) and sends it over a
socket pair; the spawner joins the run's cgroup, forks and execs it, steps back
out of the group and sends the pid and the output pipe back.  On two cores the
daemon prepares and records runs while the spawner starts them.

The spawner never reaps a run by itself: the daemon watches each leader with a
pidfd (the zombie keeps the pid pinned) and asks the spawner for its exit status,
so the daemon still decides when a run has ended, as before.  If the spawner
dies, the daemon (a child subreaper while it uses one) adopts its runs and reaps
them itself, starts runs in-process meanwhile, and starts a new spawner at the
first burst after a pause.  Killed outright with the daemon, the spawner ends too (it reads
the end of its socket); its runs are found again by the next daemon as before.

This module imports nothing heavy: `server` runs in the small process.
"""
