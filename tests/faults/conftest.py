"""The fault-injection suite: hostile input, broken disks, clock steps, escaping processes.

Tests here import the shared builders of the parent folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
