from keel.domain.reasons import ReasonCode, reason_code_table


def test_every_code_has_a_description_and_a_row_in_the_generated_table():
    table = reason_code_table()
    for code in ReasonCode:
        assert code.description and code.description.endswith(".")
        assert f"| `{code.value}` | {code.description} |" in table


def test_codes_round_trip_by_value():
    for code in ReasonCode:
        assert ReasonCode(code.value) is code
        assert str(code) == code.value
