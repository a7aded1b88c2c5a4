"""The kill switch's signal file (`keel.risk.signal_file`) and the guard it feeds: halted while the file exists, even
when its halt cannot be recorded; recorded once per appearance; its first line is the reason."""

from __future__ import annotations

from keel.domain.decisions import TradingState
from keel.risk.signal_file import SignalFile, first_line, release_refused
from keel.risk.trading_state import TradingStateGuard


def test_the_guard_is_halted_while_the_file_exists_and_reads_the_store_again_after(tmp_path):
    path = tmp_path / "HALT"
    recorded: list[str] = []
    reads: list[int] = []

    def read():
        reads.append(1)
        return TradingState.ACTIVE, "store"

    guard = TradingStateGuard(read, lambda: 7, halt_signal=SignalFile(path, recorded.append))
    assert guard.current() == (TradingState.ACTIVE, "store")
    path.write_text("")
    assert guard.current() == (TradingState.HALTED, f"signal file {path}")
    assert guard.current()[0] is TradingState.HALTED
    assert recorded == [f"signal file {path}"]  # once per appearance
    path.unlink()
    assert guard.current() == (TradingState.ACTIVE, "store") and len(reads) == 2  # read again, though the probe kept
    path.write_text("again\n")
    assert guard.current()[1] == f"signal file {path}: again" and len(recorded) == 2


def test_a_halt_that_cannot_be_recorded_still_halts_and_is_recorded_later(tmp_path):
    path = tmp_path / "HALT"
    path.write_text("x")
    attempts: list[str] = []

    def record(reason: str) -> None:
        attempts.append(reason)
        if len(attempts) == 1:
            raise OSError("database is locked")

    signal = SignalFile(path, record)
    assert signal() == f"signal file {path}: x"
    assert signal() == f"signal file {path}: x"
    assert signal() == f"signal file {path}: x"
    assert len(attempts) == 2  # failed once, recorded at the next check, then no more


def test_the_reason_is_the_first_line_shortened_and_a_release_is_refused_while_the_file_exists(tmp_path):
    path = tmp_path / "HALT"
    path.write_bytes(b"\xff" * 10 + b" bad bytes\nsecond")
    assert first_line(path).endswith("bad bytes")
    path.write_text("y" * 1000)
    assert len(first_line(path)) == 200
    path.write_text("   \n\n")
    assert first_line(path) == ""
    assert "is present" in release_refused(path)
    path.unlink()
    assert release_refused(path) is None
