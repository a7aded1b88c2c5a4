"""Injected time. Decisions read the clock they are given, never the wall clock, so replays are reproducible."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from keel.data.frame import ns_to_datetime


class Clock(Protocol):
    def now(self) -> datetime: ...


class ReplayClock:
    """Time of the bar being decided; the replay driver moves it forward."""

    __slots__ = ("_now", "_ns")

    def __init__(self, start_ns: int = 0) -> None:
        self._ns = start_ns
        self._now = ns_to_datetime(start_ns)

    def set_ns(self, ns: int) -> None:
        if ns != self._ns:
            self._ns = ns
            self._now = ns_to_datetime(ns)

    @property
    def ns(self) -> int:
        return self._ns

    def now(self) -> datetime:
        return self._now


class WallClock:
    """Real time, for operator actions (kill, resume) that happen outside any replay."""

    def now(self) -> datetime:
        return datetime.now(UTC)
