"""The options every command takes (`--config`, `--json`) and the settings `--config` leads to.

Precedence holds for every command: an option the user typed beats `KEEL_*` env, which beats `keel.toml`, which
beats the defaults. `keel.settings` is imported only once a command runs, so `keel --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="keel.toml to read (default: ./keel.toml)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]


def load_settings(config: Path | None, **overrides: Any):
    """The effective settings: `overrides` (what the user typed) over env, `config` (or ./keel.toml) and defaults."""
    from keel import settings

    return settings.load_settings(config, **overrides)
