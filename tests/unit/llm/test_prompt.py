import json

import pytest

from keel.domain.errors import InputError
from keel.llm.prompt import ROLE_SCHEMAS, build_request, load_prompt


@pytest.mark.parametrize("role", sorted(ROLE_SCHEMAS))
def test_every_role_ships_a_v1_prompt_that_names_its_fields(role):
    prompt = load_prompt(role)
    assert prompt.prompt_version == f"{role}/v1"
    assert "JSON" in prompt.text and "evidence_ids" in prompt.text


@pytest.mark.parametrize(("role", "version"), [("trader", "v1"), ("critic", "v99"), ("critic", "../x")])
def test_unknown_prompts_are_refused(role, version):
    with pytest.raises(InputError, match="no prompt"):
        load_prompt(role, version)


def test_a_request_carries_the_prompt_version_and_canonical_context():
    a = build_request(load_prompt("critic"), "m", {"b": 1, "a": [1.5]})
    b = build_request(load_prompt("critic"), "m", {"a": [1.5], "b": 1})
    assert a == b and a.key == b.key
    assert (a.prompt_version, a.schema_name, a.schema_version) == ("critic/v1", "CriticOutput", 1)
    assert json.loads(a.messages[1].content) == {"a": [1.5], "b": 1}


def test_a_context_with_nan_is_refused_before_any_call():
    with pytest.raises(ValueError):
        build_request(load_prompt("outlook"), "m", {"x": float("nan")})
