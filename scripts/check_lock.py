#!/usr/bin/env python3
"""Check that the lock (constraints.txt) agrees with pyproject.toml; `--write-digest` stamps it for `make lock`.

Offline, and independent of what the package index serves tomorrow: it reads the two files and nothing else.

(a) Every requirement of `[project].dependencies`, of each extra in `[project].optional-dependencies` and of
    `[build-system].requires` has an exact pin `name==version` in the lock, and the pin satisfies the requirement's
    specifier. A requirement whose environment marker is false for this interpreter is skipped (pip-compile leaves
    it out too), and so is one on the project itself (an extra that pulls in another extra).
(b) The lock's digest header equals the digest of those sections of pyproject.toml: a lock compiled from another
    pyproject.toml fails even when its pins happen to satisfy the current one. The digest ignores the order of the
    requirements and runs of whitespace; any other edit of a requirement, an extra or the build requirements needs
    `make lock`.

The lock itself holds pins only: no options, no hashes, no editable or URL lines, and not the project.

Usage: check_lock.py [--pyproject FILE] [--lock FILE] [--write-digest]
Exit codes: 0 they agree, 1 every problem named (package first), 2 a file is missing or unreadable.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tomllib
from pathlib import Path

try:
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version
except ImportError:  # a bare venv, before anything is installed: pip vendors the same library
    from pip._vendor.packaging.requirements import InvalidRequirement, Requirement
    from pip._vendor.packaging.utils import canonicalize_name
    from pip._vendor.packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
DIGEST_PREFIX = "# pyproject-digest: sha256:"
DIGEST_NOTE = "(of pyproject.toml's dependency sections; `make lock` writes it, scripts/check_lock.py compares it)"


def dependency_sections(pyproject: dict) -> dict[str, list[str]]:
    """The sections the lock is compiled from, by a stable name, each as its list of requirement strings."""
    project = pyproject.get("project", {})
    sections = {"project.dependencies": list(project.get("dependencies", []))}
    for extra, requirements in sorted(project.get("optional-dependencies", {}).items()):
        sections[f"project.optional-dependencies.{extra}"] = list(requirements)
    sections["build-system.requires"] = list(pyproject.get("build-system", {}).get("requires", []))
    return sections


def digest(sections: dict[str, list[str]]) -> str:
    """sha256 of the sections: keys sorted, each list sorted, whitespace runs collapsed (stdlib only, so the
    digest does not depend on the installed version of `packaging`)."""
    canonical = {name: sorted(" ".join(r.split()) for r in reqs) for name, reqs in sections.items()}
    payload = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(payload.encode("ascii")).hexdigest()


def parse_lock(text: str, lock_name: str) -> tuple[dict[str, Version], str | None, list[str]]:
    """The lock's pins by canonical name, its stored digest (None if absent), and the problems of its lines."""
    pins: dict[str, Version] = {}
    stored: str | None = None
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith(DIGEST_PREFIX):
            words = line[len(DIGEST_PREFIX) :].split()
            stored = words[0] if words else ""
            continue
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{lock_name} line {number}"
        if line.startswith("-") or line.endswith("\\"):
            problems.append(f"{where}: {line!r} is not a pin (the lock holds pins only: no options, no hashes)")
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            problems.append(f"{where}: {line!r} is not a requirement: {exc}")
            continue
        specs = list(req.specifier)
        if req.url or req.extras or len(specs) != 1 or specs[0].operator != "==" or "*" in specs[0].version:
            problems.append(f"{req.name}: {where} is {line!r}, not an exact pin name==version")
            continue
        name = canonicalize_name(req.name)
        if name in pins:
            problems.append(f"{req.name}: pinned twice in {lock_name} ({where})")
            continue
        try:
            pins[name] = Version(specs[0].version)
        except InvalidVersion:
            problems.append(f"{req.name}: {where} pins {specs[0].version!r}, which is not a version")
    return pins, stored, problems


def check(pyproject_path: Path, lock_path: Path) -> list[str]:
    """Every disagreement between pyproject.toml and the lock, each naming its package; empty when they agree."""
    pyproject = tomllib.loads(pyproject_path.read_text(encoding="utf-8"))
    lock = lock_path.name
    pins, stored, problems = parse_lock(lock_path.read_text(encoding="utf-8"), lock)
    project = canonicalize_name(pyproject.get("project", {}).get("name", ""))
    if project and project in pins:
        problems.append(f"{project}: the project itself is pinned in {lock}; keep it out (it installs editable)")

    sections = dependency_sections(pyproject)
    for section, requirements in sections.items():
        for raw in requirements:
            try:
                req = Requirement(raw)
            except InvalidRequirement as exc:
                problems.append(f"{section}: {raw!r} is not a requirement: {exc}")
                continue
            name = canonicalize_name(req.name)
            if name == project or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
                continue
            pin = pins.get(name)
            if pin is None:
                problems.append(f"{req.name}: no pin in {lock}, but {section} requires {raw!r}")
            elif not req.specifier.contains(pin, prereleases=True):
                problems.append(f"{req.name}: {lock} pins {pin}, which does not satisfy {raw!r} of {section}")

    expected = digest(sections)
    if stored is None:
        problems.append(f"{lock} has no digest header ({DIGEST_PREFIX}…); run `make lock`")
    elif stored != expected:
        problems.append(
            f"{lock} was compiled from another pyproject.toml: its digest is {stored[:12] or '(empty)'}…, "
            f"the dependency sections of pyproject.toml hash to {expected[:12]}…; run `make lock`"
        )
    return problems


def write_digest(pyproject_path: Path, lock_path: Path) -> str:
    """Put the digest of pyproject.toml's dependency sections on the lock's first line (replacing an old one)."""
    value = digest(dependency_sections(tomllib.loads(pyproject_path.read_text(encoding="utf-8"))))
    lines = [ln for ln in lock_path.read_text(encoding="utf-8").splitlines() if not ln.startswith(DIGEST_PREFIX)]
    lock_path.write_text("\n".join([f"{DIGEST_PREFIX}{value}  {DIGEST_NOTE}", *lines]) + "\n", encoding="utf-8")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    parser.add_argument("--lock", type=Path, default=ROOT / "constraints.txt")
    parser.add_argument("--write-digest", action="store_true", help="stamp the lock (make lock), then check")
    args = parser.parse_args(argv)
    try:
        if args.write_digest:
            write_digest(args.pyproject, args.lock)
        problems = check(args.pyproject, args.lock)
    except OSError as exc:
        print(f"lock check: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        print(f"lock check: cannot parse {args.pyproject.name} or {args.lock.name}: {exc}", file=sys.stderr)
        return 2
    if problems:
        for problem in problems:
            print(f"lock check: {problem}", file=sys.stderr)
        print(f"lock check failed: {len(problems)} problem(s); see above", file=sys.stderr)
        return 1
    print(f"lock check: {args.lock.name} agrees with {args.pyproject.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
