"""The control store's contract for approval requests and the session registry (schema 3), run unchanged against
SQLite (`tests/unit/control`) and PostgreSQL (`tests/integration/control`). A test class inherits it and provides
`open_store`, as for `helpers.control_contract`."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from helpers.control_contract import T0, at, change
from keel.control import schema as s
from keel.control.records import ApprovalRequest, ApprovalStatus, SessionRecord, SessionStatus
from keel.domain.decisions import TradingState
from keel.domain.errors import InputError, StaleState

P, AP, RJ = ApprovalStatus.PENDING, ApprovalStatus.APPROVED, ApprovalStatus.REJECTED


def iid(n: int | str) -> str:
    """A well-formed intent id, different for every `n`."""
    return "it-" + hashlib.sha256(str(n).encode()).hexdigest()[:24]


def request(intent_id: str | None = None, *, session: str = "s1", ts: datetime = T0, **kw) -> ApprovalRequest:
    fields = {
        "intent_id": intent_id or iid(1),
        "session": session,
        "run_id": "run-0123456789abcdef",
        "symbol": "BTCUSDT",
        "side": "buy",
        "leg": "entry",
        "quantity": 0.5,
        "notional": 21_000.0,
        "proposer": "sma_cross",
        "bound_hash": "h1",
        "requested_ts": ts,
        "expires_ts": ts + timedelta(seconds=300),
        "preview": {"checks": [{"name": "max_exposure", "passed": True, "reason_code": None}], "seqs": [3, 4]},
    }
    return ApprovalRequest(**(fields | kw))


def published(req: ApprovalRequest) -> ApprovalRequest:
    """`req` as the store reads it back: a new request was last updated when it was requested."""
    return dataclasses.replace(req, updated_ts=req.updated_ts or req.requested_ts)


def decide(store, intent_id=None, *, status=AP, actor="alice", reason="looks right", bound_hash="h1", ts=None):
    return store.decide_request(
        intent_id or iid(1), status=status, actor=actor, reason=reason, bound_hash=bound_hash, ts=ts or at(10)
    )


def session(name: str = "s1", **kw) -> SessionRecord:
    fields = {
        "name": name,
        "run_id": "run-0123456789abcdef",
        "mode": "paper",
        "strategy": "sma_cross",
        "approval_mode": "manual",
        "run_dir": "/var/keel/runs/run-0123456789abcdef",
        "pid": 4242,
        "host": "box-1",
        "started_ts": T0,
        "heartbeat_ts": T0,
    }
    return SessionRecord(**(fields | kw))


class ApprovalRequestContract:
    def test_a_request_is_published_once_and_read_back_as_published(self, open_store):
        store, other = open_store(), open_store()
        req = request()
        assert store.publish_request(req) is True
        assert other.approval_request(req.intent_id) == published(req)
        # a resumed session publishes again: what is there stays, decided or not
        assert decide(other)
        again = dataclasses.replace(req, quantity=9.0, bound_hash="h9")
        assert store.publish_request(again) is False
        seen = other.approval_request(req.intent_id)
        assert (seen.status, seen.quantity, seen.bound_hash, seen.decided_by) == (AP, 0.5, "h1", "alice")
        assert store.approval_request(iid("unknown")) is None

    def test_requests_are_listed_in_queue_order_of_one_session_or_status_and_limited(self, open_store):
        store = open_store()
        late, early, tie_b, tie_a = iid("late"), iid("early"), "it-" + "b" * 24, "it-" + "a" * 24
        store.publish_request(request(late, ts=at(30)))
        store.publish_request(request(early, ts=at(10), session="s2"))
        store.publish_request(request(tie_b, ts=at(20)))
        store.publish_request(request(tie_a, ts=at(20)))
        assert decide(store, late, bound_hash="h1")
        assert [r.intent_id for r in store.approval_requests()] == [early, tie_a, tie_b, late]
        assert [r.intent_id for r in store.approval_requests(session="s1")] == [tie_a, tie_b, late]
        assert [r.intent_id for r in store.approval_requests(statuses=[P])] == [early, tie_a, tie_b]
        assert [r.intent_id for r in store.approval_requests(statuses=[AP, RJ])] == [late]
        assert store.approval_requests(statuses=[]) == []
        assert [r.intent_id for r in store.approval_requests(limit=2)] == [early, tie_a]
        assert store.approval_requests(session="nobody") == []

    def test_a_decision_is_a_compare_and_set_on_pending_and_the_bound_hash(self, open_store):
        session_side, operator = open_store(), open_store()
        session_side.publish_request(request())
        assert decide(operator, bound_hash="stale") is False  # not what will be sent
        assert session_side.approval_request(iid(1)) == published(request())
        assert decide(operator, actor="alice", reason="fine", ts=at(12)) is True
        seen = session_side.approval_request(iid(1))
        assert (seen.status, seen.decided_by, seen.decided_ts, seen.decision_reason, seen.updated_ts) == (
            AP,
            "alice",
            at(12),
            "fine",
            at(12),
        )
        assert decide(operator, status=RJ, actor="bob") is False  # no longer pending
        assert decide(operator, actor="bob") is False
        assert session_side.approval_request(iid(1)) == seen
        assert decide(operator, iid("unknown")) is False

    def test_a_decision_is_approved_or_rejected_by_someone_for_a_reason_at_an_aware_time(self, open_store):
        store = open_store()
        store.publish_request(request())
        for status in (ApprovalStatus.EXECUTED, P, ApprovalStatus.EXPIRED):
            with pytest.raises(ValueError, match="approved or rejected"):
                decide(store, status=status)
        for kwargs in ({"actor": " "}, {"reason": ""}):
            with pytest.raises(InputError, match="non-empty actor and reason"):
                decide(store, **kwargs)
        with pytest.raises(InputError, match="time zone"):
            decide(store, ts=datetime(2024, 1, 1))
        assert store.approval_request(iid(1)).status is P

    def test_of_concurrent_deciders_on_two_connections_each_exactly_one_wins(self, open_store):
        open_store().publish_request(request())
        stores = [open_store() for _ in range(4)]
        outcomes: list[tuple[str, bool]] = []
        barrier = threading.Barrier(len(stores))

        def decide_now(store, status, actor):
            barrier.wait()
            outcomes.append((actor, decide(store, status=status, actor=actor)))

        plan = [(AP, "alice"), (RJ, "bob"), (AP, "carol"), (RJ, "dave")]
        threads = [threading.Thread(target=decide_now, args=(st, *p)) for st, p in zip(stores, plan, strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        winners = [actor for actor, won in outcomes if won]
        assert len(outcomes) == 4 and len(winners) == 1
        seen = open_store().approval_request(iid(1))
        assert seen.decided_by == winners[0] and seen.status is dict((a, st) for st, a in plan)[winners[0]]

    def test_a_rebind_voids_the_decision_and_bumps_the_version(self, open_store):
        session_side, operator = open_store(), open_store()
        session_side.publish_request(request())
        assert decide(operator)
        session_side.rebind_request(
            iid(1), bound_hash="h2", quantity=0.25, notional=10_500.0, preview={"resized": True}, ts=at(20)
        )
        seen = operator.approval_request(iid(1))
        assert (seen.status, seen.version, seen.bound_hash, seen.quantity, seen.notional, seen.preview) == (
            P,
            2,
            "h2",
            0.25,
            10_500.0,
            {"resized": True},
        )
        assert (seen.decided_by, seen.decided_ts, seen.decision_reason, seen.updated_ts) == (None, None, None, at(20))
        assert decide(operator, bound_hash="h1") is False  # decided on what is no longer what will be sent
        session_side.rebind_request(iid(1), bound_hash="h3", quantity=0.2, notional=None, preview={}, ts=at(21))
        assert operator.approval_request(iid(1)).version == 3
        assert decide(operator, bound_hash="h3", actor="bob") is True
        session_side.settle_request(iid(1), status=ApprovalStatus.EXECUTED, reason=None, ts=at(30))
        with pytest.raises(StaleState, match="is executed: it cannot be rebound"):
            session_side.rebind_request(iid(1), bound_hash="h4", quantity=1.0, notional=None, preview={}, ts=at(31))
        with pytest.raises(InputError, match="no approval request for intent"):
            session_side.rebind_request(iid(2), bound_hash="h4", quantity=1.0, notional=None, preview={}, ts=at(31))
        assert operator.approval_request(iid(1)).bound_hash == "h3"

    def test_a_rebind_from_a_version_happens_once_whatever_was_decided_since(self, open_store):
        session_side, operator = open_store(), open_store()
        session_side.publish_request(request())
        assert decide(operator)
        rebind = {"quantity": 0.25, "notional": None, "preview": {}, "ts": at(20)}
        assert session_side.rebind_request(iid(1), bound_hash="h2", from_version=1, **rebind) is True
        assert decide(operator, bound_hash="h2", actor="bob") is True
        # a re-run of the cycle that rebound it applies the decision on version 1 again: nothing changes
        assert session_side.rebind_request(iid(1), bound_hash="h2", from_version=1, **rebind) is False
        seen = operator.approval_request(iid(1))
        assert (seen.version, seen.status, seen.decided_by, seen.bound_hash) == (
            2,
            ApprovalStatus.APPROVED,
            "bob",
            "h2",
        )
        with pytest.raises(StaleState, match="at version 2: a decision on version 3 cannot rebind it"):
            session_side.rebind_request(iid(1), bound_hash="h3", from_version=3, **rebind)

    def test_the_session_settles_a_request_with_its_outcome(self, open_store):
        store = open_store()
        for n in (1, 2, 3, 4):
            store.publish_request(request(iid(n)))
        assert decide(store, iid(1)) and decide(store, iid(2), status=RJ, actor="bob") and decide(store, iid(4))
        store.settle_request(iid(1), status=ApprovalStatus.EXECUTED, reason="filled 0.5 @ 42000", ts=at(20))
        store.settle_request(iid(2), status=RJ, reason="journaled", ts=at(21))
        store.settle_request(iid(3), status=ApprovalStatus.EXPIRED, reason="ttl 300 s", ts=at(22))  # from pending
        store.settle_request(iid(4), status=ApprovalStatus.REFUSED, reason="max_exposure", ts=at(23))
        seen = {r.intent_id: r for r in open_store().approval_requests()}
        assert [(seen[iid(n)].status, seen[iid(n)].outcome_reason, seen[iid(n)].updated_ts) for n in (1, 2, 3, 4)] == [
            (ApprovalStatus.EXECUTED, "filled 0.5 @ 42000", at(20)),
            (RJ, "journaled", at(21)),
            (ApprovalStatus.EXPIRED, "ttl 300 s", at(22)),
            (ApprovalStatus.REFUSED, "max_exposure", at(23)),
        ]
        assert seen[iid(1)].decided_by == "alice"  # the decision stays beside the outcome
        # a resumed session settles again: the first outcome stays
        store.settle_request(iid(1), status=ApprovalStatus.EXECUTED, reason="again", ts=at(40))
        assert store.approval_request(iid(1)) == seen[iid(1)]

    def test_a_rejection_stands_when_the_session_settles_the_request_as_expired(self, open_store):
        # rejected after the session's last read, expired before it could apply that (the session ended)
        store = open_store()
        store.publish_request(request(iid(1)))
        assert decide(store, iid(1), status=RJ, reason="event risk")
        before = store.approval_request(iid(1))
        store.settle_request(iid(1), status=ApprovalStatus.EXPIRED, reason="SESSION_ENDED", ts=at(30))
        assert store.approval_request(iid(1)) == before

    def test_an_outcome_the_status_does_not_allow_is_refused_and_changes_nothing(self, open_store):
        store = open_store()
        store.publish_request(request(iid(1)))
        store.publish_request(request(iid(2)))
        assert decide(store, iid(2), status=RJ)
        before = store.approval_requests()
        with pytest.raises(StaleState, match="is pending: it cannot be settled as executed"):
            store.settle_request(iid(1), status=ApprovalStatus.EXECUTED, reason=None, ts=at(20))
        with pytest.raises(StaleState, match="is rejected: it cannot be settled as failed"):
            store.settle_request(iid(2), status=ApprovalStatus.FAILED, reason=None, ts=at(20))
        for status in (P, AP):
            with pytest.raises(ValueError, match="settles a request as one of"):
                store.settle_request(iid(1), status=status, reason=None, ts=at(20))
        with pytest.raises(InputError, match="no approval request for intent"):
            store.settle_request(iid(3), status=ApprovalStatus.EXPIRED, reason=None, ts=at(20))
        assert store.approval_requests() == before


class SessionRegistryContract:
    def test_a_session_registers_and_a_restart_overwrites_its_row(self, open_store):
        store, other = open_store(), open_store()
        store.register_session(session("s2", detail={"latency_ms": {"p50": 1.5}}))
        store.register_session(session("s1"))
        assert other.session_record("s2") == session("s2", detail={"latency_ms": {"p50": 1.5}})
        assert [r.name for r in other.session_records()] == ["s1", "s2"]
        store.end_session("s1", status=SessionStatus.FAILED, reason="broker down", ts=at(50))
        restarted = session("s1", pid=99, run_id="run-fedcba9876543210", started_ts=at(60), heartbeat_ts=at(60))
        store.register_session(restarted)
        assert other.session_record("s1") == restarted
        assert other.session_record("nobody") is None

    def test_a_heartbeat_records_when_how_many_bars_and_the_sessions_detail(self, open_store):
        store = open_store()
        store.register_session(session())
        store.session_heartbeat("s1", ts=at(5), bars=12, last_bar_ts=at(4), detail={"p99_ms": 3.2})
        seen = open_store().session_record("s1")
        assert (seen.heartbeat_ts, seen.bars, seen.last_bar_ts, seen.detail) == (at(5), 12, at(4), {"p99_ms": 3.2})
        with pytest.raises(InputError, match=r"no session named 'ghost' \(known: s1\)"):
            store.session_heartbeat("ghost", ts=at(6), bars=1, last_bar_ts=None, detail={})

    def test_a_stop_is_requested_once_and_the_first_request_stays(self, open_store):
        session_side, operator = open_store(), open_store()
        session_side.register_session(session())
        rec = operator.request_stop("s1", actor="alice", reason="end of day", ts=at(7))
        assert (rec.status, rec.stop_requested_by, rec.stop_requested_ts, rec.stop_reason) == (
            SessionStatus.STOPPING,
            "alice",
            at(7),
            "end of day",
        )
        assert session_side.session_record("s1") == rec
        again = operator.request_stop("s1", actor="bob", reason="me too", ts=at(8))
        assert again == rec
        session_side.end_session("s1", status=SessionStatus.STOPPED, reason="stop requested by alice", ts=at(9))
        ended = operator.session_record("s1")
        assert (ended.status, ended.ended_ts, ended.end_reason) == (
            SessionStatus.STOPPED,
            at(9),
            "stop requested by alice",
        )

    def test_a_stop_for_an_unknown_or_ended_session_is_refused_and_changes_nothing(self, open_store):
        store = open_store()
        with pytest.raises(InputError, match=r"no session named 's1' \(none is registered\)"):
            store.request_stop("s1", actor="alice", reason="x", ts=at(1))
        store.register_session(session("s1"))
        store.register_session(session("s2"))
        with pytest.raises(InputError, match=r"no session named 's3' \(known: s1, s2\)") as exc:
            store.request_stop("s3", actor="alice", reason="x", ts=at(1))
        assert exc.value.exit_code == 2
        store.end_session("s2", status=SessionStatus.FAILED, reason="crashed", ts=at(2))
        before = store.session_record("s2")
        with pytest.raises(InputError, match=r"session s2 is already failed at .*\(crashed\); nothing was changed"):
            store.request_stop("s2", actor="alice", reason="x", ts=at(3))
        with pytest.raises(InputError, match="non-empty actor and reason"):
            store.request_stop("s1", actor="alice", reason=" ", ts=at(3))
        assert store.session_record("s2") == before and store.session_record("s1") == session("s1")

    def test_a_session_ends_stopped_or_failed_and_only_a_registered_one(self, open_store):
        store = open_store()
        store.register_session(session())
        for status in (SessionStatus.RUNNING, SessionStatus.STOPPING):
            with pytest.raises(ValueError, match="stopped or failed"):
                store.end_session("s1", status=status, reason="x", ts=at(1))
        with pytest.raises(InputError, match="no session named 'ghost'"):
            store.end_session("ghost", status=SessionStatus.STOPPED, reason="x", ts=at(1))
        assert store.session_record("s1") == session()


def downgrade(store, version: int) -> None:
    """Make `store`'s database what a Keel of schema `version` wrote: without the tables added since."""
    api = [s.api_tokens, s.api_calls, s.session_commands, s.executor_workers]
    added = {
        1: [s.limit_overrides, s.approval_requests, s.sessions, *api],
        2: [s.approval_requests, s.sessions, *api],
        3: api,
        4: [s.session_commands, s.executor_workers],
        5: [s.executor_workers],
    }[version]
    with store._engine.begin() as conn:
        for table in added:
            table.drop(conn)
        conn.execute(s.control_schema.update().values(version=version))


def schema_versions(store) -> list[int]:
    with store._engine.connect() as conn:
        return list(conn.execute(select(s.control_schema.c.version)).scalars())


class SchemaMigrationContract:
    @pytest.mark.parametrize("version", [1, 2, 3, 4, 5])
    def test_an_older_store_opens_migrated_keeping_what_it_held(self, open_store, version):
        old = open_store()
        change(old, TradingState.HALTED, expected=None, reason="drill", actor="alice", ts=at(1))
        downgrade(old, version)
        old.close()
        store = open_store()
        assert schema_versions(store) == [s.CONTROL_SCHEMA_VERSION] == [7]
        assert store.trading_state().reason == "drill" and len(store.records()) == 1
        assert store.publish_request(request()) and store.approval_request(iid(1)).status is P
        store.register_session(session())
        assert [r.name for r in open_store().session_records()] == ["s1"]
        assert (
            store.add_override(
                limit="max_exposure", value=1.0, reason="r", actor="a", ts=T0, expires=at(60)
            ).override_id
            == 1
        )
