"""What the worker tests share besides fixtures: where a backend is, and a worker's spec against the local exchange."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from keel.workers.spec import VenueSpec, WorkerSpec
from keel.workers.venue import KEY, SECRET, SYMBOL, CountingExchange

__all__ = ["KEY", "SECRET", "SYMBOL", "Backend", "worker_spec"]


@dataclass(frozen=True)
class Backend:
    name: str
    journal_url: str
    control_url: str


def worker_spec(backend: Backend, exchange: CountingExchange, tmp_path: Path, worker_id: str, **kw) -> WorkerSpec:
    return WorkerSpec(
        worker_id=worker_id,
        journal_url=backend.journal_url,
        control_url=backend.control_url,
        log_dir=str(tmp_path / "logs"),
        venue=VenueSpec(exchange="binance", symbols=(SYMBOL,), api_url=exchange.url, timeout_ms=2_000, rate_limit_ms=1),
        seed=sum(map(ord, worker_id)),
        **kw,
    )
