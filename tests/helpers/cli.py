"""Run the real `keel` command line in a subprocess, isolated from the developer's KEEL_* variables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

KEEL = [sys.executable, "-m", "keel.cli"]


def keel(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
    proc = subprocess.run([*KEEL, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"keel {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc
