"""SIGKILL a paper run at many random points, restart it each time, and compare with an uninterrupted run.

Paper mode commits every write before the next one, so a kill can land between any two: after an intent was
committed `executing` and before its order was sent, between a fill and its event, mid-way through a log write.
The restart resumes from the last checkpoint, re-runs the interrupted cycle recognising every record the journal
already holds, reconciles, and must end exactly where a run that was never interrupted ends."""

from __future__ import annotations

import pytest

from helpers.crash import sigkill_and_compare


@pytest.mark.slow
def test_sigkill_of_a_paper_run_at_random_points_resumes_to_the_same_money(tmp_path):
    sigkill_and_compare(tmp_path, 1_500, {"KEEL_MODE": "paper"})
