"""A sweep's folder: `results.csv`, `results.parquet` and `sweep.json`, written atomically, never over someone else's.

The folder is Keel's once it holds the marker `.keel-sweep` (naming the sweep id). A folder that exists without the
marker must be empty; one whose marker names another sweep is refused — results of one sweep are never mixed with
or written over another's. Running the same sweep again rewrites its own files (the results are deterministic). Each
file is written to a temporary name in the folder and renamed over the old one, so a reader sees the old file or the
new one, never half of one. `sweep.json` says whether the sweep is complete; an interrupted sweep's files say
`"complete": false` and hold only the combinations that finished.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from keel.domain.errors import InputError
from keel.durable import write_atomic as _atomic
from keel.research.sweep import ComboResult, SweepResult

__all__ = ["MARKER", "claim_folder", "jsonable", "write_results"]

MARKER = ".keel-sweep"
FILES = ("results.csv", "results.parquet", "sweep.json")


def claim_folder(path: Path, sweep_id: str) -> Path:
    """Make `path` this sweep's folder, or refuse (InputError, nothing written)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"--out {path}: names a file, not a folder")
    marker = path / MARKER
    if path.is_dir():
        if marker.is_file():
            owner = marker.read_text(encoding="utf-8").strip()
            if owner != sweep_id:
                raise InputError(
                    f"--out {path}: the folder holds another sweep ({owner}), not {sweep_id}; nothing was written",
                    hint="choose another --out, or leave it out (each sweep gets var/sweeps/<sweep_id>)",
                )
            return path
        entries = sorted(p.name for p in path.iterdir())
        if entries:
            shown = ", ".join(entries[:5]) + (", …" if len(entries) > 5 else "")
            raise InputError(
                f"--out {path}: not a Keel sweep folder (no {MARKER} marker) and not empty ({shown}); nothing was written",
                hint="choose an empty or new folder",
            )
    path.mkdir(parents=True, exist_ok=True)
    _atomic(marker, (sweep_id + "\n").encode())
    return path


def write_results(path: Path, result: SweepResult, ranked: list[ComboResult], rank: str, min_trades: int) -> list[Path]:
    """The ranked results and the sweep's description, each file replaced atomically."""
    rows = [{"rank": i, **r.row()} for i, r in enumerate(ranked, start=1)]
    meta = result.meta() | {"rank": rank, "min_trades": min_trades}
    written = [
        _atomic(path / "results.csv", _csv(rows, result)),
        _atomic(path / "results.parquet", _parquet(rows, result)),
        _atomic(path / "sweep.json", (json.dumps(jsonable(meta), indent=2, sort_keys=True) + "\n").encode()),
    ]
    return written


def _columns(result: SweepResult) -> list[str]:
    params = [f"param.{k}" for k in (*result.fixed, *result.grid)]
    fields = [f for f in ComboResult.__dataclass_fields__ if f != "params"]
    return ["rank", *dict.fromkeys(params), *fields]


def _csv(rows: list[dict[str, Any]], result: SweepResult) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=_columns(result), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue().encode()


def _parquet(rows: list[dict[str, Any]], result: SweepResult) -> bytes:
    columns = _columns(result)
    table = pa.table({c: [row.get(c) for row in rows] for c in columns}) if rows else pa.table({c: [] for c in columns})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def jsonable(value: Any) -> Any:
    """JSON has no NaN or infinity: they are written as null and "inf"."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
