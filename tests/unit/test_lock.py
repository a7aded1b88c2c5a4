"""The lock (constraints.txt) agrees with pyproject.toml, and scripts/check_lock.py catches each way it can disagree.

Every negative case works on copies in a temp folder; the repository's own files are only read.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check_lock.py"
PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / "constraints.txt"

_spec = importlib.util.spec_from_file_location("check_lock", SCRIPT)
check_lock = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_lock)


@pytest.fixture
def copies(tmp_path: Path) -> tuple[Path, Path]:
    pyproject, lock = tmp_path / "pyproject.toml", tmp_path / "constraints.txt"
    shutil.copyfile(PYPROJECT, pyproject)
    shutil.copyfile(LOCK, lock)
    return pyproject, lock


def _first_dependency(pyproject: Path) -> Requirement:
    """The first plain runtime dependency (no marker, no extras), whatever pyproject.toml lists today."""
    for raw in tomllib.loads(pyproject.read_text())["project"]["dependencies"]:
        req = Requirement(raw)
        if req.marker is None and not req.extras and str(req.specifier):
            return req
    raise AssertionError("pyproject.toml has no plain dependency with a specifier")


def _replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not in {path.name} exactly once"
    path.write_text(text.replace(old, new))


def _lock_line(lock: Path, name: str) -> str:
    """The lock's pin line of a package, by canonical name."""
    for line in lock.read_text().splitlines():
        if "==" in line and not line.startswith("#") and canonicalize_name(line.split("==")[0]) == name:
            return line
    raise AssertionError(f"{name} has no pin line")


def test_the_repository_lock_agrees_with_pyproject():
    assert check_lock.check(PYPROJECT, LOCK) == []


def test_the_lock_holds_exact_pins_of_every_extra_and_not_the_project():
    pins, stored, problems = check_lock.parse_lock(LOCK.read_text(), LOCK.name)
    assert problems == [] and stored
    assert "keel" not in pins
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    assert set(project["optional-dependencies"]) >= {"dev", "postgres"}
    for extra, requirements in project["optional-dependencies"].items():
        for raw in requirements:
            assert canonicalize_name(Requirement(raw).name) in pins, (extra, raw)
    assert {"pytest", "ruff", "psycopg", "psycopg-binary", "setuptools"} <= set(pins)  # extras and build deps
    assert "--hash" not in LOCK.read_text()


def test_a_missing_pin_is_named(copies):
    pyproject, lock = copies
    req = _first_dependency(pyproject)
    name = canonicalize_name(req.name)
    _replace_once(lock, _lock_line(lock, name) + "\n", "")
    problems = check_lock.check(pyproject, lock)
    assert len(problems) == 1, problems  # the digest still matches: only the pin is missing
    assert problems[0].startswith(f"{req.name}: no pin in constraints.txt")


def test_an_unsatisfied_pin_is_named(copies):
    pyproject, lock = copies
    req = _first_dependency(pyproject)
    name = canonicalize_name(req.name)
    bad = next(v for v in ("0.0.1", "999999.0") if not req.specifier.contains(Version(v)))
    _replace_once(lock, _lock_line(lock, name) + "\n", f"{name}=={bad}\n")
    problems = check_lock.check(pyproject, lock)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{req.name}: constraints.txt pins {bad}, which does not satisfy")
    assert "project.dependencies" in problems[0]


@pytest.mark.parametrize(("name", "section"), [("ruff", "optional-dependencies.dev"), ("setuptools", "build-system")])
def test_pins_of_the_extras_and_the_build_requirements_are_checked_too(copies, name, section):
    pyproject, lock = copies
    _replace_once(lock, _lock_line(lock, name) + "\n", f"{name}==0.0.1\n")
    problems = check_lock.check(pyproject, lock)
    assert len(problems) == 1 and problems[0].startswith(f"{name}: constraints.txt pins 0.0.1"), problems
    assert section in problems[0]


def test_a_stale_digest_fails_even_when_every_pin_still_satisfies(copies):
    pyproject, lock = copies
    req = _first_dependency(pyproject)
    raw = next(r for r in tomllib.loads(pyproject.read_text())["project"]["dependencies"] if Requirement(r) == req)
    _replace_once(pyproject, f'"{raw}"', f'"{raw},!=0.0.1"')  # a new specifier that the pin still satisfies
    problems = check_lock.check(pyproject, lock)
    assert len(problems) == 1, problems
    assert "compiled from another pyproject.toml" in problems[0] and "make lock" in problems[0]
    # What `make lock` does after pip-compile: the digest is rewritten and the check passes again.
    check_lock.write_digest(pyproject, lock)
    assert check_lock.check(pyproject, lock) == []
    assert sum(line.startswith(check_lock.DIGEST_PREFIX) for line in lock.read_text().splitlines()) == 1


def test_a_new_dependency_without_pin_fails_twice(copies):
    pyproject, lock = copies
    _replace_once(pyproject, "dependencies = [\n", 'dependencies = [\n  "keel-no-such-package>=1",\n')
    problems = check_lock.check(pyproject, lock)
    assert any(p.startswith("keel-no-such-package: no pin") for p in problems), problems
    assert any("compiled from another pyproject.toml" in p for p in problems), problems


def test_the_digest_ignores_order_and_whitespace_only():
    base = {"project.dependencies": ["a>=1", "b<2"], "build-system.requires": ["setuptools"]}
    same = {"build-system.requires": ["setuptools"], "project.dependencies": ["b<2", "a>=1 "]}
    other = {"project.dependencies": ["a>=1", "b<3"], "build-system.requires": ["setuptools"]}
    assert check_lock.digest(base) == check_lock.digest(same) != check_lock.digest(other)


def test_a_lock_without_digest_or_with_other_lines_fails(copies):
    pyproject, lock = copies
    text = "\n".join(ln for ln in lock.read_text().splitlines() if not ln.startswith(check_lock.DIGEST_PREFIX))
    lock.write_text(text + "\n--index-url https://example.invalid/simple\nkeel==0.1.0\nrequests>=2\n")
    problems = check_lock.check(pyproject, lock)
    assert any("no digest header" in p for p in problems)
    assert any("'--index-url" in p and "not a pin" in p for p in problems)
    assert any(p.startswith("keel: the project itself is pinned") for p in problems)
    assert any(p.startswith("requests: ") and "not an exact pin" in p for p in problems)


def test_the_command_line_exit_codes(copies):
    pyproject, lock = copies
    run = [sys.executable, str(SCRIPT), "--pyproject", str(pyproject), "--lock", str(lock)]
    ok = subprocess.run(run, capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and "agrees" in ok.stdout, ok.stderr
    req = _first_dependency(pyproject)
    _replace_once(lock, _lock_line(lock, canonicalize_name(req.name)) + "\n", "")
    bad = subprocess.run(run, capture_output=True, text=True, check=False)
    assert bad.returncode == 1 and f"{req.name}: no pin" in bad.stderr
    missing = subprocess.run([*run[:-1], str(lock.with_name("nope.txt"))], capture_output=True, text=True, check=False)
    assert missing.returncode == 2 and "nope.txt" in missing.stderr


def test_it_runs_before_anything_is_installed(copies):
    """CI checks the lock in a bare venv: without `packaging`, the checker falls back on the copy pip vendors."""
    pyproject, lock = copies
    code = (
        "import runpy, sys; sys.modules['packaging'] = None; "
        f"sys.argv = ['check_lock.py', '--pyproject', {str(pyproject)!r}, '--lock', {str(lock)!r}]; "
        f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "agrees" in result.stdout, result.stderr
