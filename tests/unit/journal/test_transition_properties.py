"""Property tests: whatever sequence of transition attempts arrives, from racing workers or a replay that commits and
rolls back at random, an intent only ever moves along the table and never executes twice."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from journal_contract import LEGAL_EDGES, T0, make_intent, reachable_states

from keel.domain.errors import IllegalTransition, StaleState
from keel.domain.intents import TRANSITIONS, IntentState
from keel.journal import IntentStore

S = IntentState
OpenStore = Callable[[bool], IntentStore]

#: Half the attempts follow some edge of the table (so intents do move), half are any pair at all.
attempt = st.one_of(
    st.sampled_from(LEGAL_EDGES),
    st.tuples(st.sampled_from(list(IntentState)), st.sampled_from(list(IntentState))),
)
_unique = itertools.count()
#: Derandomized so every run tries the same examples; the stores are opened once per test, each example uses a
#: fresh intent, so sharing them across examples is safe (hence the suppressed fixture health check).
PROPERTY = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture
def workers(open_store: OpenStore) -> tuple[IntentStore, IntentStore]:
    """Two write-through stores on one database: two processes racing for the same intents."""
    return open_store(True), open_store(True)


@pytest.fixture
def replay(open_store: OpenStore) -> tuple[IntentStore, IntentStore]:
    """A buffered store and a second connection that sees only what it committed."""
    return open_store(False), open_store(True)


def assert_history_is_a_walk_of_the_table(store: IntentStore, intent_id: str, final: IntentState) -> None:
    history = store.transitions(intent_id)
    current = S.PROPOSED
    for step in history:
        assert step.from_state is current and step.to_state in TRANSITIONS[current]
        current = step.to_state
    assert current is final and final in reachable_states()
    assert sum(step.to_state is S.EXECUTING for step in history) <= 1
    assert sum(step.to_state is S.EXECUTED for step in history) <= 1


@PROPERTY
@given(attempts=st.lists(st.tuples(st.sampled_from([0, 1]), attempt), min_size=1, max_size=14))
def test_racing_workers_only_move_an_intent_along_the_table_and_never_execute_twice(
    workers: tuple[IntentStore, IntentStore], attempts: list[tuple[int, tuple[IntentState, IntentState]]]
) -> None:
    intent = make_intent(next(_unique))
    workers[0].create_intent(intent, ts=T0)
    iid, model = intent.intent_id, S.PROPOSED
    for worker, (expected, target) in attempts:
        try:
            workers[worker].transition(iid, expected, target, ts=T0, actor=f"worker-{worker}")
        except IllegalTransition:
            assert target not in TRANSITIONS[expected]
        except StaleState:
            assert target in TRANSITIONS[expected] and expected is not model
        else:
            assert expected is model and target in TRANSITIONS[expected]
            model = target
        assert workers[0].state(iid) is model and workers[1].state(iid) is model
    assert_history_is_a_walk_of_the_table(workers[1], iid, model)


action = st.one_of(attempt, st.just("commit"), st.just("rollback"))


@PROPERTY
@given(actions=st.lists(action, min_size=1, max_size=16))
def test_a_buffered_replay_that_commits_and_rolls_back_at_random_keeps_the_table(
    replay: tuple[IntentStore, IntentStore], actions: list[object]
) -> None:
    batch, reader = replay
    intent = make_intent(next(_unique))
    batch.create_intent(intent, ts=T0)
    batch.commit()
    iid, pending, committed = intent.intent_id, S.PROPOSED, S.PROPOSED
    for step in actions:
        if step == "commit":
            batch.commit()
            committed = pending
        elif step == "rollback":
            batch.rollback()
            pending = committed
        else:
            expected, target = step  # type: ignore[misc]
            try:
                batch.transition(iid, expected, target, ts=T0, actor="replay")
            except IllegalTransition:
                assert target not in TRANSITIONS[expected]
            except StaleState:
                assert expected is not pending
            else:
                assert expected is pending
                pending = target
        assert batch.state(iid) is pending
        assert reader.state(iid) is committed
    batch.commit()
    assert_history_is_a_walk_of_the_table(reader, iid, pending)
