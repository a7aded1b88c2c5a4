"""Intents: the intent store's lifecycle rows (a mixin of `IntentStore`, working on its connection and its buffer).

An intent is created once (a replayed decision finds the identical intent and writes nothing; the same id with other
parameters is a conflict) and then moves only by compare-and-set; see `keel.journal.store` for the two write modes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select

from keel.domain.errors import StaleState, UnknownIntent
from keel.domain.intents import IntentState, TradeIntent, check_transition
from keel.journal import schema as s
from keel.journal.errors import DuplicateIntentConflict
from keel.journal.records import IntentRecord, TransitionRecord
from keel.journal.schema import from_iso, stored_json, to_iso

_PROPOSED = IntentState.PROPOSED.value
#: States whose `last_reason` explains why an intent did not trade (what `reason_counts` reports).
_REFUSED = (IntentState.BLOCKED.value, IntentState.REJECTED.value)


class IntentRows:
    """Intents and their transitions of `IntentStore`."""

    def create_intent(self, intent: TradeIntent, *, ts: datetime) -> bool:
        """Record a new intent in state `proposed`. Returns False, changing nothing, when the same intent already
        exists (a replayed decision); raises `DuplicateIntentConflict` when the id exists with other parameters."""
        return self._create_intent(intent, to_iso(ts)) is not None

    def _create_intent(self, intent: TradeIntent, ts: str, payload: str | None = None) -> str | None:
        """`create_intent` with a stored-form timestamp (and the intent's JSON when the caller already has it);
        returns the payload written, None for a replay. The journal facade calls this to serialise only once."""
        if payload is None:
            payload = stored_json(intent.__dict__)  # the journal's form: canonical JSON of the fields
        intent_id = intent.intent_id
        row = {
            "intent_id": intent_id,
            "run_id": intent.run_id,
            "strategy_id": intent.strategy_id,
            "symbol": intent.symbol,
            "side": intent.side._value_,
            "leg": intent.leg._value_,
            "quantity": intent.quantity,
            "state": _PROPOSED,
            "version": 1,
            "created_ts": ts,
            "updated_ts": ts,
            "last_reason": None,
            "payload": payload,
        }
        if self._write_through:
            try:
                if self._exec(self._ins_intent, row) == 1:
                    self._done()
                    return payload
                existing = self._fetch(self._sel_payload, {"b_id": intent_id})[0][0]
                self._failed()
            except BaseException:
                self._failed()
                raise
            _same_or_conflict(intent, payload, existing)
            return None

        buffered = self._new_intents.get(intent_id)
        existing = buffered["payload"] if buffered is not None else None
        if existing is None and self._exists_in_db(intent_id, intent.run_id):
            existing = self._read(self._sel_payload, {"b_id": intent_id})[0][0]
        if existing is not None:
            _same_or_conflict(intent, payload, existing)
            return None
        self._new_intents[intent_id] = row
        self._states[intent_id] = IntentState.PROPOSED
        return payload

    def _exists_in_db(self, intent_id: str, run_id: str) -> bool:
        """Buffered mode: is this (not buffered) intent already committed? Answered from memory for fresh runs."""
        if intent_id in self._states:
            return True
        if run_id in self._fresh_runs:
            return False
        if run_id not in self._checked_runs:
            self._checked_runs.add(run_id)
            if not self._read(self._sel_run_has_intents, {"b_run": run_id})[0][0]:
                self._fresh_runs.add(run_id)
                return False
        return bool(self._read(self._sel_state, {"b_id": intent_id}))

    def state(self, intent_id: str) -> IntentState:
        """The intent's current state (buffered changes included); `UnknownIntent` when there is no such intent."""
        if not self._write_through:
            cached = self._states.get(intent_id)
            if cached is not None:
                return cached
        rows = self._read(self._sel_state, {"b_id": intent_id})
        if not rows:
            raise UnknownIntent(f"intent {intent_id} is not in the journal")
        current = IntentState(rows[0][0])
        if not self._write_through:
            self._states[intent_id] = current
        return current

    def transition(
        self,
        intent_id: str,
        expected: IntentState,
        target: IntentState,
        *,
        ts: datetime,
        actor: str,
        reason: str | None = None,
    ) -> None:
        """Move an intent from `expected` to `target` by compare-and-set, recording the transition.

        Raises `IllegalTransition` for an edge the table does not have (before touching the database),
        `UnknownIntent` for an unknown id, and `StaleState` when the intent is not in `expected` (someone else
        moved it: the caller lost the race and must not act).
        """
        self._transition(intent_id, expected, target, to_iso(ts), actor, reason)

    def _transition(
        self, intent_id: str, expected: IntentState, target: IntentState, ts: str, actor: str, reason: str | None
    ) -> None:
        check_transition(intent_id, expected, target)
        # `_value_` is the plain str behind the member; `.value` is a descriptor, measurably slower per call.
        source, dest = expected._value_, target._value_
        if self._write_through:
            update = {"b_id": intent_id, "b_expected": source, "b_target": dest, "b_ts": ts, "b_reason": reason}
            try:
                if self._exec(self._upd_intent, update) != 1:
                    found = self._fetch(self._sel_state, {"b_id": intent_id})
                    raise _cas_error(intent_id, expected, found[0][0] if found else None)
                if self.transition_rows:
                    self._exec(self._ins_transition, _transition_row(intent_id, source, dest, ts, reason, actor))
                self._done()
            except BaseException:
                self._failed()
                raise
            return

        current = self._states.get(intent_id)
        if current is None:
            current = self.state(intent_id)
        if current != expected:
            raise _cas_error(intent_id, expected, current.value)
        pending = self._new_intents.get(intent_id)
        if pending is not None:
            # Created in this batch: no other writer can hold a row that is not in the database yet, so the
            # compare-and-set was decided above and the insert simply carries the latest state.
            pending["state"] = dest
            pending["version"] += 1
            pending["updated_ts"] = ts
            pending["last_reason"] = reason
        else:
            self._updates.append(
                {"b_id": intent_id, "b_expected": source, "b_target": dest, "b_ts": ts, "b_reason": reason}
            )
        if self.transition_rows:
            self._transitions.append(_transition_row(intent_id, source, dest, ts, reason, actor))
        self._states[intent_id] = target

    def get(self, intent_id: str) -> IntentRecord:
        """The committed intent with its state and history counters; `UnknownIntent` when absent."""
        rows = self._query(select(s.intents).where(s.intents.c.intent_id == intent_id))
        if not rows:
            raise UnknownIntent(f"intent {intent_id} is not in the journal")
        return _intent_record(rows[0])

    def list_intents(
        self, *, run_id: str | None = None, state: IntentState | None = None, limit: int | None = None
    ) -> list[IntentRecord]:
        """Committed intents, oldest first (ties broken by id, so the order is deterministic)."""
        stmt = select(s.intents).order_by(s.intents.c.created_ts, s.intents.c.intent_id)
        if run_id is not None:
            stmt = stmt.where(s.intents.c.run_id == run_id)
        if state is not None:
            stmt = stmt.where(s.intents.c.state == IntentState(state).value)
        if limit is not None:
            stmt = stmt.limit(limit)
        return [_intent_record(row) for row in self._query(stmt)]

    def intent_states(self, run_id: str | None = None) -> dict[str, IntentState]:
        """`intent_id → state` of committed intents, without decoding payloads (what reconciliation compares)."""
        stmt = select(s.intents.c.intent_id, s.intents.c.state)
        if run_id is not None:
            stmt = stmt.where(s.intents.c.run_id == run_id)
        return {row["intent_id"]: IntentState(row["state"]) for row in self._query(stmt)}

    def intent_legs(self, run_id: str, *, pending: bool = False) -> dict[str, str]:
        """`intent_id → leg` of committed intents, without decoding payloads (what the trade ledger needs); `pending`
        adds the intents of the batch not committed yet (see `fill_rows`)."""
        stmt = select(s.intents.c.intent_id, s.intents.c.leg).where(s.intents.c.run_id == run_id)
        legs = {row["intent_id"]: row["leg"] for row in self._query(stmt)}
        if pending:
            for row in self._new_intents.values():
                if row["run_id"] == run_id:
                    legs.setdefault(row["intent_id"], row["leg"])
        return legs

    def transitions(self, intent_id: str) -> list[TransitionRecord]:
        """The committed transitions of one intent, in the order they happened."""
        t = s.intent_transitions
        rows = self._query(select(t).where(t.c.intent_id == intent_id).order_by(t.c.id))
        return [
            TransitionRecord(
                intent_id=row["intent_id"],
                from_state=IntentState(row["from_state"]),
                to_state=IntentState(row["to_state"]),
                ts=from_iso(row["ts"]),
                reason=row["reason"],
                actor=row["actor"],
            )
            for row in rows
        ]

    def counts_by_state(self, run_id: str) -> dict[str, int]:
        """How many committed intents of a run sit in each state (states with none are absent)."""
        i = s.intents
        rows = self._query(
            select(i.c.state, func.count().label("n"))
            .where(i.c.run_id == run_id)
            .group_by(i.c.state)
            .order_by(i.c.state)
        )
        return {row["state"]: int(row["n"]) for row in rows}

    def reason_counts(self, run_id: str) -> dict[str, int]:
        """Why intents of a run did not trade: the last reason of blocked and rejected intents, counted."""
        i = s.intents
        rows = self._query(
            select(i.c.last_reason, func.count().label("n"))
            .where(i.c.run_id == run_id, or_(*(i.c.state == r for r in _REFUSED)), i.c.last_reason.is_not(None))
            .group_by(i.c.last_reason)
            .order_by(i.c.last_reason)
        )
        return {row["last_reason"]: int(row["n"]) for row in rows}


def _cas_error(intent_id: str, expected: IntentState, actual: str | None) -> Exception:
    if actual is None:
        return UnknownIntent(f"intent {intent_id} is not in the journal")
    return StaleState(
        f"intent {intent_id}: expected state {expected.value}, found {actual}; another actor moved it first",
        hint="reload the intent and decide again; never act on a lost compare-and-set",
    )


def _same_or_conflict(intent: TradeIntent, payload: str, existing: str) -> None:
    """Nothing when the stored intent equals this one (compared as models, so formatting drift is not a conflict);
    otherwise `DuplicateIntentConflict` naming the fields that differ."""
    if existing == payload:
        return
    stored = TradeIntent.model_validate_json(existing)
    if stored == intent:
        return
    new = intent.model_dump()
    old = stored.model_dump()
    differences = sorted(k for k in new if new[k] != old.get(k))
    raise DuplicateIntentConflict(intent.intent_id, differences=differences)


def _transition_row(intent_id: str, source: str, dest: str, ts: str, reason: str | None, actor: str) -> dict[str, Any]:
    return {"intent_id": intent_id, "from_state": source, "to_state": dest, "ts": ts, "reason": reason, "actor": actor}


def _intent_record(row: Any) -> IntentRecord:
    return IntentRecord(
        intent=TradeIntent.model_validate_json(row["payload"]),
        state=IntentState(row["state"]),
        version=row["version"],
        created_ts=from_iso(row["created_ts"]),
        updated_ts=from_iso(row["updated_ts"]),
        last_reason=row["last_reason"],
    )
