"""Where a system or per-user instance keeps its config, history and socket."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Optional

SYSTEM_CONFIG = "/etc/cronplus.yaml"
SYSTEM_STATE = "/var/lib/cronplus"
SYSTEM_RUNTIME = "/run/cronplus"


@dataclass(frozen=True)
class Paths:
    config: str
    state_dir: str
    runtime_dir: str
    user_mode: bool

    @property
    def socket(self) -> str:
        return os.path.join(self.runtime_dir, "control.sock")

    def history(self, configured: str = "") -> str:
        """The history file: `daemon.history` when set, else history.db in the state dir."""
        return configured or os.path.join(self.state_dir, "history.db")


def add_instance_arguments(parser: argparse.ArgumentParser, user_help: str) -> None:
    """The options that pick an instance, shared by cronplus and cronplusctl."""
    parser.add_argument(
        "-c",
        "--config",
        help="config file (default: /etc/cronplus.yaml, "
        "or ~/.config/cronplus/cronplus.yaml with --user)",
    )
    parser.add_argument("--user", action="store_true", help=user_help)
    parser.add_argument("--state-dir", help="where the history lives")
    parser.add_argument("--runtime-dir", help="where the control socket lives")


def _xdg(variable: str, fallback: str) -> str:
    value = os.environ.get(variable, "")
    return value if os.path.isabs(value) else os.path.expanduser(fallback)


def resolve(
    user_mode: bool,
    config: Optional[str] = None,
    state_dir: Optional[str] = None,
    runtime_dir: Optional[str] = None,
) -> Paths:
    """Paths for a system instance (as root) or a per-user one (`--user`); flags override."""
    if user_mode:
        default_config = os.path.join(
            _xdg("XDG_CONFIG_HOME", "~/.config"), "cronplus", "cronplus.yaml"
        )
        default_state = os.path.join(_xdg("XDG_STATE_HOME", "~/.local/state"), "cronplus")
        runtime_base = os.environ.get("XDG_RUNTIME_DIR", "")
        default_runtime = os.path.join(runtime_base, "cronplus") if runtime_base else default_state
    else:
        default_config, default_state, default_runtime = SYSTEM_CONFIG, SYSTEM_STATE, SYSTEM_RUNTIME
    state = os.path.abspath(state_dir or default_state)
    return Paths(
        config=os.path.abspath(config or default_config),
        state_dir=state,
        runtime_dir=os.path.abspath(runtime_dir or (state if state_dir else default_runtime)),
        user_mode=user_mode,
    )
