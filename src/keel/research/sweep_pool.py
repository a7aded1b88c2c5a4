"""Where a sweep's combinations run: in this process, in a local process pool, or on a Ray cluster.

Every backend evaluates the same chunks of combinations with the same engine (`SweepEngine`), so the results do not
depend on where they ran; only the time does. Chunks keep each worker busy on many combinations at once (the
indicators of a window are computed once per worker and reused), and small enough that progress moves.

- in process (`workers=1`): no start-up cost; the right choice below a few hundred combinations;
- process pool (`workers=N`, the default): `forkserver` workers, each sent the bars once; workers ignore Ctrl-C, so
  an interrupt reaches only this process, which cancels what has not started and keeps what finished;
- Ray (`ray_address`): tasks on an existing cluster (`ray start --head`, then `--ray ADDRESS`); the bars go to its
  object store once. Ray is an optional extra (`pip install 'keel[ray]'`), imported only here.
"""

from __future__ import annotations

import math
import multiprocessing
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from keel.data.frame import OHLCV
from keel.domain.errors import InputError, KeelError
from keel.research.sweep import ComboResult, SweepEngine
from keel.research.sweep_fills import SimulationConfig

__all__ = ["chunked", "evaluate"]

Combos = Sequence[tuple[int, dict[str, Any]]]
_ENGINE: SweepEngine | None = None


def chunked(combos: Combos, workers: int) -> list[Combos]:
    """About sixteen chunks per worker, 1 to 64 combinations each, in grid order."""
    if not combos:
        return []
    size = max(1, min(64, math.ceil(len(combos) / (max(workers, 1) * 16))))
    return [combos[i : i + size] for i in range(0, len(combos), size)]


def evaluate(
    bars: OHLCV,
    strategy: str,
    config: SimulationConfig,
    combos: Combos,
    *,
    workers: int,
    ray_address: str | None = None,
    on_results: Callable[[list[ComboResult]], None],
) -> str:
    """Evaluate every combination, handing each finished chunk to `on_results`; returns how it ran, in words."""
    if ray_address is not None:
        return _on_ray(bars, strategy, config, combos, ray_address, on_results)
    if workers <= 1 or len(combos) <= 1:
        engine = SweepEngine(bars, strategy, config)
        for chunk in chunked(combos, 1):
            on_results(engine.evaluate_many(chunk))
        return "in this process"
    return _in_pool(bars, strategy, config, combos, workers, on_results)


# -- local process pool -----------------------------------------------------------------------------------------------


def _init_worker(bars: OHLCV, strategy: str, config: SimulationConfig) -> None:
    global _ENGINE
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it cancels and keeps results
    _ENGINE = SweepEngine(bars, strategy, config)


def _run_chunk(chunk: Combos) -> list[ComboResult]:
    assert _ENGINE is not None, "worker not initialised"
    return _ENGINE.evaluate_many(chunk)


def _in_pool(
    bars: OHLCV,
    strategy: str,
    config: SimulationConfig,
    combos: Combos,
    workers: int,
    on_results: Callable[[list[ComboResult]], None],
) -> str:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["keel.research.sweep_pool"])
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(bars, strategy, config)
    )
    pending: set[Future] = set()
    try:
        pending = {pool.submit(_run_chunk, chunk) for chunk in chunked(combos, workers)}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                on_results(future.result())
    except BaseException:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return f"process pool, {workers} workers"


# -- Ray ----------------------------------------------------------------------------------------------------------------

_RAY_ENGINES: dict[str, SweepEngine] = {}


def _ray_chunk(key: str, payload: tuple[OHLCV, str, SimulationConfig], chunk: Combos) -> list[ComboResult]:
    """Runs on a Ray worker: the engine is built once per worker process and sweep (`key`), then reused."""
    engine = _RAY_ENGINES.get(key)
    if engine is None:
        _RAY_ENGINES.clear()
        engine = _RAY_ENGINES[key] = SweepEngine(*payload)
    return engine.evaluate_many(chunk)


def _probe(address: str) -> None:
    """Fail at once when nothing listens at a `host:port` address (Ray itself would retry for minutes)."""
    import socket

    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto", a name Ray resolves itself: let it
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=5):
            pass
    except OSError as exc:
        raise KeelError(
            f"--ray {address}: could not connect to a Ray cluster: nothing answers there ({exc.strerror or exc})",
            hint="start one with `ray start --head` and pass the address it prints (e.g. 127.0.0.1:6379)",
        ) from None


def _on_ray(
    bars: OHLCV,
    strategy: str,
    config: SimulationConfig,
    combos: Combos,
    address: str,
    on_results: Callable[[list[ComboResult]], None],
) -> str:
    try:
        import ray
    except ImportError:
        raise InputError(
            "--ray needs Ray, which is not installed", hint="install the extra: pip install 'keel[ray]'"
        ) from None
    started_here = not ray.is_initialized()
    if started_here:
        _probe(address)
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise KeelError(
                f"--ray {address}: could not connect to a Ray cluster: {exc}",
                hint="start one with `ray start --head` and pass the address it prints (e.g. 127.0.0.1:6379)",
            ) from None
    try:
        remote = ray.remote(_ray_chunk)
        payload = ray.put((bars, strategy, config))
        key = f"{bars.fingerprint()}:{strategy}:{config!r}"
        nodes = max(1, int(ray.cluster_resources().get("CPU", 1)))
        pending = [remote.remote(key, payload, chunk) for chunk in chunked(combos, nodes)]
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    on_results(ray.get(ref))
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        return f"Ray cluster at {address}, {nodes} CPUs"
    finally:
        if started_here:
            ray.shutdown()
