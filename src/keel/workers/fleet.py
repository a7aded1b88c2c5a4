"""Worker processes a drill (or a test) starts and stops: each a `python -m keel.workers.process` of its own, its
spec in a file beside its log, the venue's keys in its environment only."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from keel.control.workers import WorkerRegistry
from keel.domain.errors import KeelError
from keel.journal.store import IntentStore
from keel.workers.process import spawn, write_spec
from keel.workers.spec import WorkerSpec


class FleetError(KeelError):
    """A worker process did not come up, or did not stop, in time (exit 1, the message shown)."""


class Fleet:
    """Worker processes by id. `registry` is where they say they are up."""

    def __init__(
        self,
        specs: Iterable[WorkerSpec],
        *,
        key: str,
        secret: str,
        folder: Path,
        env: Mapping[str, str] | None = None,
        standby: bool = False,
    ) -> None:
        self.specs = {s.worker_id: s for s in specs}
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._env = {**os.environ, **(env or {})}
        self._keys = (key, secret)
        self.procs: dict[str, subprocess.Popen] = {}
        #: warm spares, one per worker id (`standby`): a restart takes one and a new one is started behind it
        self._spares: dict[str, subprocess.Popen] = {}
        self._standby = standby
        self.started: dict[str, int] = {}  # starts per worker (a restart after a kill counts)
        #: how each replaced process had ended, by worker, in order (a restart after a crash records the crash's code)
        self.exits: dict[str, list[int]] = {}
        first = next(iter(self.specs.values()))
        # The schemas exist before the workers start (the registry's store creates the control schema): several
        # processes creating the same tables at once on a fresh PostgreSQL database can fail on the catalogue's keys.
        self.registry = WorkerRegistry.open(first.control_url, connect_args=first.connect_args)
        try:
            IntentStore.open(first.journal_url, write_through=True, connect_args=first.connect_args).close()
        except BaseException:
            self.registry.close()
            raise

    def _spawn(self, worker_id: str, args: list[str], *, spare: bool) -> subprocess.Popen:
        return spawn(worker_id, args, folder=self.folder, keys=self._keys, env=self._env, standby=spare)

    def start(self, worker_id: str) -> subprocess.Popen:
        spec = self.specs[worker_id]
        old = self.procs.get(worker_id)
        if old is not None and old.poll() is not None:
            self.exits.setdefault(worker_id, []).append(old.returncode)
        path = write_spec(self.folder, spec)
        spare = self._spares.pop(worker_id, None)
        if spare is not None and spare.poll() is None and spare.stdin is not None:
            spare.stdin.write(f"{path}\n".encode())
            spare.stdin.close()
            proc = spare
        else:
            proc = self._spawn(worker_id, [str(path)], spare=False)
        if self._standby:
            self._spares[worker_id] = self._spawn(worker_id, ["--standby"], spare=True)
        self.procs[worker_id] = proc
        self.started[worker_id] = self.started.get(worker_id, 0) + 1
        return proc

    def start_all(self) -> None:
        for wid in self.specs:
            self.start(wid)

    def running(self, worker_id: str) -> bool:
        proc = self.procs.get(worker_id)
        return proc is not None and proc.poll() is None

    def wait_up(self, ids: Iterable[str] | None = None, *, timeout: float = 60.0) -> None:
        """Until each worker's registry row says running with the pid just started (a restart's new row)."""
        want = list(ids if ids is not None else self.specs)
        deadline = time.monotonic() + timeout
        while True:
            rows = {r.worker_id: r for r in self.registry.records()}
            pending = [
                w
                for w in want
                if not (
                    w in rows
                    and rows[w].status == "running"
                    and rows[w].pid == self.procs[w].pid
                    and rows[w].trading_state is not None
                )
            ]
            if not pending:
                return
            dead = [w for w in pending if not self.running(w)]
            if dead:
                raise FleetError(f"worker(s) {', '.join(dead)} exited at start-up: {self.stderr(dead[0])}")
            if time.monotonic() > deadline:
                raise FleetError(f"worker(s) {', '.join(pending)} not up after {timeout:g} s")
            time.sleep(0.02)

    def kill(self, worker_id: str) -> None:
        """SIGKILL: no boundary, no clean-up; the worker takes over its claims when it starts again."""
        proc = self.procs[worker_id]
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop_all(self, *, timeout: float = 30.0) -> dict[str, int]:
        """SIGTERM every running worker (each stops at its next boundary) and wait; returns the exit codes. Spares
        are released."""
        for spare in self._spares.values():
            if spare.stdin is not None:
                spare.stdin.close()  # an empty line: it exits
        for spare in self._spares.values():
            try:
                spare.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                spare.kill()
                spare.wait()
        self._spares.clear()
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: dict[str, int] = {}
        for wid, proc in self.procs.items():
            try:
                codes[wid] = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[wid] = proc.wait()
        return codes

    def stderr(self, worker_id: str) -> str:
        path = self.folder / f"{worker_id}.stderr"
        text = path.read_text(errors="replace") if path.exists() else ""
        return text.strip().splitlines()[-1] if text.strip() else "(nothing on stderr)"

    def close(self) -> None:
        self.stop_all()
        self.registry.close()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_for(cond: Callable[[], bool], *, timeout: float, what: str, every: float = 0.01) -> None:
    """Until `cond()`; `FleetError` naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise FleetError(f"{what}: not after {timeout:g} s")
        time.sleep(every)
