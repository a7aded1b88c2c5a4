"""SIGKILL a paper session at many random points, start it again each time, and compare with a session that was never
interrupted: the same money, the same intents and orders, zero duplicates, zero lost intents, a journal that verifies.

A session commits each cycle's writes before its orders leave (write-ahead) and checkpoints after each cycle; started
again under its name, it resumes from its checkpoint, re-runs the interrupted cycle recognising what the journal holds,
reconciles with the broker and goes on."""

from __future__ import annotations

import pytest

from helpers.crash import session_at, sigkill_and_compare


@pytest.mark.slow
def test_sigkill_of_a_paper_session_at_random_points_resumes_to_the_same_money(tmp_path):
    sigkill_and_compare(tmp_path, 800, {}, launch=session_at)
