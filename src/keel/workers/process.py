"""A worker as a process of its own: `python -m keel.workers.process SPEC.json` (what `keel worker start --detach`
and the drills start, both through `spawn`). SIGTERM and SIGINT stop it at its next boundary; it exits 0 when it
stopped as asked, 1 when it failed (the registry says why)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path

from keel.workers.spec import KEY_ENV, SECRET_ENV, WorkerSpec, venue_keys


def write_spec(folder: Path, spec: WorkerSpec) -> Path:
    """The spec's file beside the worker's log (`<folder>/<id>.spec.json`), written atomically: a worker never reads
    half of one. It holds no key."""
    from keel.durable import write_atomic

    folder.mkdir(parents=True, exist_ok=True)
    return write_atomic(folder / f"{spec.worker_id}.spec.json", spec.to_json().encode())


def spawn(
    worker_id: str,
    args: list[str],
    *,
    folder: Path,
    keys: tuple[str, str],
    env: Mapping[str, str] | None = None,
    standby: bool = False,
    detach: bool = False,
) -> subprocess.Popen:
    """Start `python -m keel.workers.process ARGS`: the venue's keys in its environment only (over `env`, default
    this process's), its stderr appended to `<folder>/<id>.stderr`. `standby`: a warm spare, whose spec's path is
    written to its stdin later. `detach`: a session of its own, so that it outlives the command that started it and
    a Ctrl-C there does not reach it."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{worker_id}.stderr", "ab") as err:  # the child has its own descriptor once started
        return subprocess.Popen(
            [sys.executable, "-m", "keel.workers.process", *args],
            env={**(os.environ if env is None else env), KEY_ENV: keys[0], SECRET_ENV: keys[1]},
            stdin=subprocess.PIPE if standby else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=detach,
        )


def connect_broker(spec: WorkerSpec, keys: tuple[str, str] | None = None):
    """The ccxt broker the spec names, with these keys (None: from the environment)."""
    from keel.brokers.ccxt_broker import CcxtBroker

    key, secret = keys if keys is not None else venue_keys()
    v = spec.venue
    return CcxtBroker.connect(
        v.exchange,
        api_key=key,
        secret=secret,
        symbols=list(v.symbols),
        quote=v.quote,
        sandbox=v.sandbox and v.api_url is None,
        api_url=v.api_url,
        timeout_ms=v.timeout_ms,
        rate_limit_ms=v.rate_limit_ms,
    )


def serve(
    spec: WorkerSpec,
    stop: threading.Event,
    *,
    keys: tuple[str, str] | None = None,
    on_started: Callable[[], None] = lambda: None,
) -> str:
    """Run one worker until `stop` is set or a stop is requested; returns why it stopped. The chaos drill's faults
    are injected when the spec names a chaos folder."""
    from keel.workers.worker import Worker

    hook = None
    worker_box: list[Worker] = []
    if spec.chaos_dir is not None:
        from keel.workers.chaos import chaos_hook

        hook = chaos_hook(Path(spec.chaos_dir), lambda: worker_box[0])
    worker = Worker.open(spec, broker=connect_broker(spec, keys), hook=hook)
    worker_box.append(worker)
    if spec.chaos_dir is not None:
        from keel.workers.chaos import chaos_journal

        try:
            chaos_journal(worker.journal)
        except BaseException as exc:
            worker.close(status="failed", reason=f"{type(exc).__name__}: {exc}")
            raise

    def should_stop() -> bool:
        return stop.is_set() or (spec.parent_pid is not None and os.getppid() != spec.parent_pid)

    try:
        worker.start(should_stop=should_stop)
        on_started()
        reason = worker.run(should_stop)
    except BaseException as exc:
        worker.close(status="failed", reason=f"{type(exc).__name__}: {exc}")
        raise
    worker.close(status="stopped", reason=reason)
    return reason


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--standby"]:
        # A warm spare (what a drill restarts a dead worker with): everything imported, then wait for the spec's
        # path on stdin. Start-up is then a matter of milliseconds, not of importing the venue's client.
        import ccxt  # noqa: F401

        import keel.workers.worker  # noqa: F401

        line = sys.stdin.readline().strip()
        if not line:
            return 0  # released unused
        args = [line]
    if len(args) != 1:
        print("usage: python -m keel.workers.process SPEC.json", file=sys.stderr)
        return 2
    spec = WorkerSpec.from_json(Path(args[0]).read_text(encoding="utf-8"))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        serve(spec, stop)
    except Exception as exc:  # where it failed, for whoever reads the worker's stderr file; the summary last
        traceback.print_exc(file=sys.stderr)
        print(f"worker {spec.worker_id} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
