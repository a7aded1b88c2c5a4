"""The journal: intent state store (compare-and-set), hash-chained event log, verification and reconciliation.

`Journal` is the facade the rest of Keel uses; the parts are importable on their own for tools and tests.
"""

from keel.journal.errors import DuplicateIntentConflict, DuplicateRun, JournalSchemaError, UnknownRun
from keel.journal.eventlog import ZERO_HASH, Cut, EventLog, canonical, record_hash
from keel.journal.journal import Journal, RecoveryReport
from keel.journal.reconcile import Break, BreakKind, ReconciliationReport, Resolution, reconcile
from keel.journal.records import (
    ApprovalRecord,
    IntentRecord,
    RunRecord,
    RunStatus,
    TradingStateRecord,
    TransitionRecord,
)
from keel.journal.store import IntentStore
from keel.journal.verify import Problem, ProblemKind, VerifyReport, verify_log, verify_run

__all__ = [
    "ZERO_HASH",
    "ApprovalRecord",
    "Break",
    "BreakKind",
    "Cut",
    "DuplicateIntentConflict",
    "DuplicateRun",
    "EventLog",
    "IntentRecord",
    "IntentStore",
    "Journal",
    "JournalSchemaError",
    "Problem",
    "ProblemKind",
    "ReconciliationReport",
    "RecoveryReport",
    "Resolution",
    "RunRecord",
    "RunStatus",
    "TradingStateRecord",
    "TransitionRecord",
    "UnknownRun",
    "VerifyReport",
    "canonical",
    "reconcile",
    "record_hash",
    "verify_log",
    "verify_run",
]
