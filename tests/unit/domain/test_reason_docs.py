from pathlib import Path

from keel.domain.reasons import reason_code_table

DOC = Path(__file__).resolve().parents[3] / "docs" / "reason-codes.md"


def test_committed_reason_code_page_is_generated_from_the_enum():
    assert DOC.read_text().rstrip().endswith(reason_code_table()), (
        "docs/reason-codes.md is stale: regenerate it from `keel reasons`"
    )
