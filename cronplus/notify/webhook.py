"""The webhook notifier: the facts as JSON, POSTed by a child process (`post_webhook`)."""

from __future__ import annotations

import json
import sys

from ..model import Notifier
from . import post_webhook


def argv(notifier: Notifier, env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    options = notifier.options
    payload = {k.removeprefix("CRONPLUS_").lower(): v for k, v in env.items()}
    env = {
        **env,
        "CRONPLUS_PAYLOAD": json.dumps(payload),
        "CRONPLUS_WEBHOOK_TIMEOUT": str(options.get("timeout", 10)),
        "CRONPLUS_WEBHOOK_RETRIES": str(options.get("retries", 2)),
    }
    # by file: the child needs nothing of ours on its path, and jobs get a clean environment
    return [sys.executable, post_webhook.__file__, str(options["url"])], env
