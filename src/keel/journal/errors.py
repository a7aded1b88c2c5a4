"""Errors the journal raises on purpose, beyond the shared ones in `keel.domain.errors`.

Input errors (exit code 2) are caller mistakes the journal refused before writing anything; integrity errors
(`keel.domain.errors.JournalIntegrityError`) mean the stored evidence no longer matches what was committed.
"""

from __future__ import annotations

from keel.domain.errors import InputError, KeelError


class DuplicateIntentConflict(InputError):
    """An intent id already exists with different parameters.

    Intent ids are derived from the decision that produced them, so the same id with other parameters means two
    different decisions collided (or a replay diverged): executing either would be wrong, so nothing is written.
    """

    def __init__(self, intent_id: str, *, differences: list[str] | None = None) -> None:
        detail = f": {', '.join(differences)} differ" if differences else ""
        super().__init__(
            f"intent {intent_id} already exists with different parameters{detail}",
            hint="an intent id identifies one decision; check the replayed inputs or the id derivation",
        )
        self.intent_id = intent_id
        self.differences = differences or []


class DuplicateRun(InputError):
    """A run id that the store already holds: a run is started once, then resumed from its checkpoint."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id} already exists", hint="resume it from its checkpoint or use a new run id")
        self.run_id = run_id


class UnknownRun(InputError):
    """A run id that the store does not hold."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id} is not in the journal")
        self.run_id = run_id


class JournalSchemaError(KeelError):
    """The database holds a journal schema this version does not know how to read; nothing was changed."""


class ResumeDiverged(KeelError):
    """A resumed run, re-running its interrupted cycle, did not write what the journal already holds.

    The journal is intact (nothing was written twice or changed); the run cannot continue deterministically from it:
    its inputs, its configuration or its trading state differ from when it stopped."""
