"""Errors raised to users: each says what was wrong, where, and what to do.

The CLI maps them to exit codes: `InputError` (bad data, bad config, bad arguments) exits 2,
every other `KeelError` exits 1. Library code raises; only the CLI renders.
"""

from __future__ import annotations


class KeelError(Exception):
    """Base of every error Keel raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class InputError(KeelError):
    """Bad input from a user: a data file, a config, an argument. Nothing was written."""

    exit_code = 2


class DataError(InputError):
    """A market data file failed validation; names the file, row, column and problem."""

    def __init__(self, path: str, problem: str, *, row: int | None = None, column: str | None = None) -> None:
        where = path
        if row is not None:
            where += f", row {row}"
        if column is not None:
            where += f", column '{column}'"
        super().__init__(f"{where}: {problem}", hint="fix the file and run again; nothing was written")
        self.path = path
        self.row = row
        self.column = column
        self.problem = problem


class ConfigError(InputError):
    """A configuration is invalid; carries every problem found, not just the first."""

    def __init__(self, problems: list[str], *, source: str | None = None) -> None:
        head = f"invalid configuration{f' in {source}' if source else ''}: {len(problems)} problem(s)"
        super().__init__(head + "".join(f"\n  - {p}" for p in problems))
        self.problems = problems


class IllegalTransition(KeelError):
    """An intent was asked to move along an edge the transition table does not have."""


class StaleState(KeelError):
    """A compare-and-set lost: the intent was not in the expected state (someone else moved it)."""


class UnknownIntent(InputError):
    """An intent id that the journal does not hold."""


class JournalIntegrityError(KeelError):
    """The event log or the store no longer matches what was committed: tampering or corruption."""


class BrokerError(KeelError):
    """A broker refused or failed an operation."""
