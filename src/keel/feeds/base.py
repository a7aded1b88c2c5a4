"""The feed contract a session's driver consumes.

A feed hands the driver the timeline indices of the bars that have arrived, in order, each once. The bars carry their
own timestamps (the decision clock is set from them, never from the wall clock), so *when* a bar arrives changes
nothing that is decided at it: a paced replay at any speed leaves the journal the replay driver leaves.

`poll` waits at most `timeout` seconds, so the driver stays responsive between bars (a stop request, an operator's
approval, its heartbeat) however slowly bars arrive.
"""

from __future__ import annotations

from typing import Protocol


class Feed(Protocol):
    def start(self, after: int) -> None:
        """Deliver the bars after timeline index `after` (-1: from the first); a resumed session starts after its
        checkpoint."""

    def poll(self, timeout: float) -> list[int]:
        """The timeline indices that arrived since the last call (ascending; empty when none did within `timeout`)."""

    @property
    def exhausted(self) -> bool:
        """Every bar the feed will ever deliver has been delivered."""
