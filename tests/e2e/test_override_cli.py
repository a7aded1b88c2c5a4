"""`keel override propose | approve | list` end to end: two holders of the risk role, clear refusals."""

from __future__ import annotations

import json

from helpers.cli import keel


def _setup(tmp_path):
    (tmp_path / "keel.toml").write_text('[risk]\noperators = ["alice", "bob"]\n')
    return {"KEEL_HOME": str(tmp_path / "home")}


def test_an_override_needs_a_second_holder_of_the_risk_role(tmp_path):
    env = _setup(tmp_path)
    args = [
        "override",
        "propose",
        "--limit",
        "max_exposure",
        "--value",
        "80000",
        "--for",
        "600",
        "--reason",
        "rebalance",
    ]
    proposed = keel(*args, "--actor", "alice", cwd=tmp_path, env=env)
    assert (
        "override 1: risk.max_exposure = 80000" in proposed.stdout and "awaiting a second approver" in proposed.stdout
    )
    own = keel("override", "approve", "1", "--actor", "alice", cwd=tmp_path, env=env, check=False)
    assert own.returncode == 1 and "second, distinct actor" in own.stderr
    outsider = keel("override", "approve", "1", "--actor", "carol", cwd=tmp_path, env=env, check=False)
    assert outsider.returncode == 1 and "risk role" in outsider.stderr
    listed = json.loads(keel("override", "list", "--json", cwd=tmp_path, env=env).stdout)
    assert [o["in_force"] for o in listed] == [False]
    keel("override", "approve", "1", "--actor", "bob", cwd=tmp_path, env=env)
    listed = json.loads(keel("override", "list", "--json", cwd=tmp_path, env=env).stdout)
    assert [(o["approved_by"], o["in_force"]) for o in listed] == [("bob", True)]


def test_a_bad_override_is_refused_with_exit_2_and_nothing_recorded(tmp_path):
    env = _setup(tmp_path)
    bad = keel(
        *("override", "propose", "--limit", "price_collar_pct", "--value", "9", "--for", "60", "--reason", "x"),
        *("--actor", "alice"),
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert bad.returncode == 2 and "cannot be overridden" in bad.stderr
    assert keel("override", "list", cwd=tmp_path, env=env).stdout.strip() == "no overrides"
    unknown = keel("override", "approve", "7", "--actor", "bob", cwd=tmp_path, env=env, check=False)
    assert unknown.returncode == 2 and "no override with id 7" in unknown.stderr
