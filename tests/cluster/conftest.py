"""Cluster tests: several real daemons sharing a private PostgreSQL server.

The builders of the parent folder are importable here.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
