"""`keel drill killswitch` and `keel drill chaos` through the real command line, short forms: the record is written
where it says, holds every figure, judges each target from them, and the exit code is that verdict (an impossible
target must fail the drill); the chaos drill's three counts are zero. The drills' timings are never asserted here
against a number (they are measurements: see benchmarks/halt_propagation.py), only against the record's own targets."""

from __future__ import annotations

import json
import math
from pathlib import Path

from helpers.cli import keel

#: the checks that are measurements against a target, and how each is judged from the record's figures
TIMED = {
    "halt_p99": (("halt_reaches_worker_s", "p99"), "halt_p99_s"),
    "cancel_all": (("cancel_all_s", "max"), "cancel_all_s"),
    "trip": (("trip_s", "max"), "trip_s"),
    "all_stopped": (("all_stopped_s", "max"), "all_stopped_s"),
    "recovery": (("recovery_s", "max"), "recovery_s"),
}


def _killswitch(tmp_path: Path, *args: str) -> tuple[int, dict]:
    run = keel("drill", "killswitch", *args, "--folder", str(tmp_path / "drills"), "--json", cwd=tmp_path, check=False)
    assert run.stdout.strip(), run.stderr  # a drill that could not run has no record: that is a failure here
    return run.returncode, json.loads(run.stdout)


def _judged(record: dict) -> dict[str, bool]:
    """Each timed check as the record's own figures and targets decide it."""
    f, t = record["figures"], record["targets"]
    return {name: f[fig][stat] < t[target] for name, ((fig, stat), target) in TIMED.items()}


def test_the_killswitch_drill_records_its_figures_judges_each_target_and_exits_by_them(tmp_path: Path):
    code, record = _killswitch(tmp_path, "--trips", "2", "--burst", "6")
    assert record["workers"] == 3 and record["trips"] == 2 and len(record["rounds"]) == 2
    f = record["figures"]
    for figure, stats in f.items():  # every figure measured: a number, not a placeholder
        assert all(isinstance(v, float) and math.isfinite(v) and v >= 0 for v in stats.values()), (figure, stats)
    halt = f["halt_reaches_worker_s"]
    assert 0 < halt["p50"] <= halt["p99"] <= halt["max"]
    for r in record["rounds"]:
        assert set(r["halt_s"]) == {"d0", "d1", "d2"} and r["orders_before"] >= 6 and r["late_submits"] == 0
    assert record["targets"] == {
        "halt_p99_s": 0.1,
        "cancel_all_s": 1.0,
        "trip_s": 5.0,
        "all_stopped_s": 30.0,
        "recovery_s": 300.0,
    }
    checks = record["checks"]
    assert {k: checks[k] for k in TIMED} == _judged(record)  # the verdict is the figures against the targets
    # what is no measurement must hold on any machine
    assert checks["no_late_submit"] and checks["no_duplicate"] and checks["workers_stopped_cleanly"]
    assert record["duplicates"] == 0 and set(record["exit_codes"].values()) == {0}
    assert record["passed"] is all(checks.values())
    assert code == (0 if record["passed"] else 1)
    on_disk = json.loads(Path(record["record"]).read_text())
    assert on_disk["figures"] == f and on_disk["checks"] == checks and on_disk["passed"] == record["passed"]
    assert len(record["incidents"]) == 2  # one incident per trip, in the drill's own control store
    assert Path(record["sandbox"]).is_dir()


def test_an_impossible_target_is_missed_and_the_drill_exits_1(tmp_path: Path):
    code, record = _killswitch(tmp_path, "--trips", "1", "--burst", "3", "--halt-target-ms", "0")
    assert record["targets"]["halt_p99_s"] == 0.0 and record["figures"]["halt_reaches_worker_s"]["p99"] > 0
    assert record["checks"]["halt_p99"] is False and record["passed"] is False
    assert {k: record["checks"][k] for k in TIMED} == _judged(record)
    assert code == 1


def test_a_target_looser_than_keels_is_refused(tmp_path: Path):
    run = keel("drill", "killswitch", "--halt-target-ms", "101", "--folder", str(tmp_path), cwd=tmp_path, check=False)
    assert run.returncode == 2 and "never loosen" in run.stderr
    assert not any(tmp_path.iterdir())  # refused before anything ran


def test_the_killswitch_drill_never_touches_the_operators_control_plane(tmp_path: Path):
    keel(
        "drill",
        "killswitch",
        "--trips",
        "1",
        "--burst",
        "3",
        "--folder",
        str(tmp_path),
        "--json",
        cwd=tmp_path,
        check=False,
    )
    status = json.loads(keel("status", "--json", cwd=tmp_path).stdout)
    assert status["state"] == "active"


def test_chaos_short_form_has_no_duplicate_no_lost_acknowledgement_and_no_unresolved_unknown(tmp_path: Path):
    run = keel(
        "drill",
        "chaos",
        "--rounds",
        "20",
        "--seed",
        "7",
        "--folder",
        str(tmp_path),
        "--json",
        cwd=tmp_path,
        check=False,
    )
    record = json.loads(run.stdout)
    assert record["error"] is None
    assert record["counts"] == {
        "duplicates": 0,
        "lost_acknowledged": 0,
        "phantom_executed": 0,
        "unresolved_unknowns": 0,
        "never_claimed": 0,
        "workers_failed": 0,  # a locked database (a real lock), a failed log write: handled, never a worker's death
    }
    assert run.returncode == 0
    assert len(record["faults"]) == 14  # every fault at least once in a short run
    assert record["restarts"] >= 1 and record["intents"] == 40
