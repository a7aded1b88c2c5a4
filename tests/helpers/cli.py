"""Run the real `keel` command line in a subprocess, isolated from the developer's KEEL_* variables."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

KEEL = [sys.executable, "-m", "keel.cli"]


def keel_env(env: Mapping[str, str] | None = None, *, cwd: Path | None = None) -> dict[str, str]:
    """This process's environment without any KEEL_* variable, plus `env`. With `cwd`, temporary files (crash
    reports among them) go there, not to the machine's temp folder."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
    if cwd is not None:
        clean["TMPDIR"] = str(cwd)
    return clean | dict(env or {})


def keel(
    *args: str, cwd: Path, check: bool = True, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [*KEEL, *args], cwd=cwd, env=keel_env(env, cwd=cwd), capture_output=True, text=True, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"keel {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def spawn(*args: str, cwd: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen:
    """Start `keel` without waiting for it (to signal it while it runs)."""
    return subprocess.Popen(
        [*KEEL, *args], cwd=cwd, env=keel_env(env, cwd=cwd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
