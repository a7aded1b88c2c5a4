"""The `llm` section of the settings: env keys, switches, separation of duties, secrets never shown."""

import pytest

from keel.domain.errors import ConfigError
from keel.settings import check_settings, describe_settings, load_settings

SECRET = "sk-unit-NEVER-SHOWN-777"


def test_roles_are_off_by_default():
    llm = load_settings().llm
    assert not (llm.outlook.enabled or llm.strategist.enabled or llm.critic.enabled)


def test_environment_keys_reach_every_nested_setting(monkeypatch):
    monkeypatch.setenv("KEEL_LLM__CRITIC__BASE_URL", "http://127.0.0.1:8000/v1")
    monkeypatch.setenv("KEEL_LLM__CRITIC__ENABLED", "true")
    monkeypatch.setenv("KEEL_LLM__CRITIC__MODEL", "critic-m")
    monkeypatch.setenv("KEEL_LLM__CRITIC__BREAKER__COOLDOWN_S", "12.5")
    monkeypatch.setenv("KEEL_LLM__CRITIC__PRICES__COMPLETION_PER_1K", "0.002")
    critic = load_settings().llm.critic
    assert (critic.base_url, critic.enabled, critic.model) == ("http://127.0.0.1:8000/v1", True, "critic-m")
    assert critic.breaker.cooldown_s == 12.5 and critic.prices.completion_per_1k == 0.002


def test_an_unknown_llm_key_is_reported(monkeypatch):
    monkeypatch.setenv("KEEL_LLM__CRITIC__TEMPERATURE", "0.3")
    assert any("llm.critic.temperature" in p for p in check_settings())


def _both(monkeypatch, critic_url="http://127.0.0.1:8000/v1/", critic_model="same"):
    monkeypatch.setenv("KEEL_LLM__STRATEGIST__ENABLED", "1")
    monkeypatch.setenv("KEEL_LLM__STRATEGIST__MODEL", "same")
    monkeypatch.setenv("KEEL_LLM__STRATEGIST__API_KEY", SECRET)
    monkeypatch.setenv("KEEL_LLM__CRITIC__ENABLED", "1")
    monkeypatch.setenv("KEEL_LLM__CRITIC__MODEL", critic_model)
    monkeypatch.setenv("KEEL_LLM__CRITIC__BASE_URL", critic_url)
    monkeypatch.setenv("KEEL_LLM__CRITIC__API_KEY", SECRET)


def test_a_critic_on_the_strategists_model_is_refused_without_showing_a_key(monkeypatch):
    _both(monkeypatch)  # the same model behind the same URL, spelled with a trailing slash
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert "separation of duties" in str(exc.value)
    assert SECRET not in str(exc.value)


@pytest.mark.parametrize(
    "critic", [{"critic_model": "other"}, {"critic_url": "http://127.0.0.1:9000/v1"}], ids=["model", "provider"]
)
def test_another_model_or_provider_for_the_critic_is_fine(monkeypatch, critic):
    _both(monkeypatch, **critic)
    assert load_settings().llm.critic.enabled


def test_the_same_model_is_fine_when_one_of_them_is_off(monkeypatch):
    _both(monkeypatch)
    monkeypatch.setenv("KEEL_LLM__STRATEGIST__ENABLED", "false")
    assert load_settings().llm.critic.enabled


def test_an_enabled_role_needs_a_model_and_the_problem_shows_no_key(monkeypatch):
    monkeypatch.setenv("KEEL_LLM__OUTLOOK__ENABLED", "true")
    monkeypatch.setenv("KEEL_LLM__OUTLOOK__API_KEY", SECRET)
    problems = check_settings()
    assert len(problems) == 1 and problems[0].startswith("llm.outlook: enabled needs a model")
    assert SECRET not in problems[0]


def test_api_keys_are_masked_in_config_show(monkeypatch):
    monkeypatch.setenv("KEEL_LLM__STRATEGIST__API_KEY", SECRET)
    rows = {k: v for k, v, _ in describe_settings()}
    assert rows["llm.strategist.api_key"] == "**********"
    assert rows["llm.critic.api_key"] is None
    assert SECRET not in repr(rows) and SECRET not in repr(load_settings())


def test_a_base_url_must_be_http(monkeypatch):
    monkeypatch.setenv("KEEL_LLM__STRATEGIST__BASE_URL", "127.0.0.1:8000/v1")
    assert any(p.startswith("llm.strategist.base_url: ") and "http://" in p for p in check_settings())


def test_a_base_url_with_credentials_is_refused_so_they_are_never_shown():
    import pytest

    from keel.domain.errors import ConfigError
    from keel.settings import load_settings

    with pytest.raises(ConfigError, match=r"llm\.critic.*credentials") as exc:
        load_settings(llm={"critic": {"base_url": "http://user:hunter2@127.0.0.1:8000/v1"}})
    assert "hunter2" not in str(exc.value)
