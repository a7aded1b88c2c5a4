"""`keel drill killswitch` and `keel drill chaos` through the real command line, short forms: the record is written
where it says, the exit code is the verdict, and the chaos drill's three counts are zero. The drills' timings are
reported, never asserted here (they are measurements: see benchmarks/halt_propagation.py)."""

from __future__ import annotations

import json
from pathlib import Path

from helpers.cli import keel


def test_the_killswitch_drill_writes_its_record_and_its_exit_code_is_the_verdict(tmp_path: Path):
    folder = tmp_path / "drills"
    run = keel(
        "drill",
        "killswitch",
        "--trips",
        "2",
        "--burst",
        "6",
        "--folder",
        str(folder),
        "--json",
        cwd=tmp_path,
        check=False,
    )
    record = json.loads(run.stdout)
    assert run.returncode == (0 if record["passed"] else 1), run.stderr
    assert record["workers"] == 3 and record["trips"] == 2
    on_disk = json.loads(Path(record["record"]).read_text())
    assert on_disk["figures"] == record["figures"] and on_disk["passed"] == record["passed"]
    assert set(on_disk["checks"]) >= {"halt_p99", "cancel_all", "trip", "all_stopped", "recovery", "no_late_submit"}
    assert record["checks"]["no_late_submit"] and record["duplicates"] == 0
    assert len(record["incidents"]) == 2  # one incident per trip, in the drill's own control store
    assert Path(record["sandbox"]).is_dir()


def test_a_missed_target_fails_the_drill(tmp_path: Path):
    run = keel(
        "drill",
        "killswitch",
        "--trips",
        "1",
        "--burst",
        "3",
        "--halt-target-ms",
        "0",
        "--folder",
        str(tmp_path),
        "--json",
        cwd=tmp_path,
        check=False,
    )
    assert run.returncode == 1, run.stderr
    record = json.loads(run.stdout)
    assert record["checks"]["halt_p99"] is False and record["passed"] is False


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
    }
    assert run.returncode == 0
    assert len(record["faults"]) == 14  # every fault at least once in a short run
    assert record["restarts"] >= 1 and record["intents"] == 40
