"""Exam unit fixtures. `run_builder.py` (run folders written through the journal's own API) is imported by name from
this folder: test folders are not packages under `--import-mode=importlib`."""

from __future__ import annotations

import sys
from pathlib import Path

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))
