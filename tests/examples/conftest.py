"""The examples run as real processes; the service tests' kit drives them (tests/service)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))
