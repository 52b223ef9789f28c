"""cronplus: a cron replacement with per-job time zones, retries, caps and a run history."""

__version__ = "0.1.0"
