"""SIGKILL a replay at many random points, restart it each time, and compare with an uninterrupted run: the same
money (every fill, the equity at every bar, the round trips, the summary), no duplicate order, no lost intent, and
a journal that still verifies. Replay commits in batches: a kill loses the open batch, which the restart redoes."""

from __future__ import annotations

import pytest

from helpers.crash import sigkill_and_compare


@pytest.mark.slow
def test_sigkill_of_a_replay_at_random_points_resumes_to_the_same_money(tmp_path):
    sigkill_and_compare(tmp_path, 6_000, {"KEEL_JOURNAL__BATCH_SIZE": "40"})  # many small commits: many crash points
