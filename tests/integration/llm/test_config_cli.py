"""`keel config show` masks the LLM keys; `keel config check` refuses a critic on the strategist's model (exit 2)."""

from __future__ import annotations

import json

from helpers.cli import keel

SECRET = "sk-cli-NEVER-SHOWN-4242"


def test_config_show_masks_every_llm_api_key(tmp_path):
    env = {
        "KEEL_LLM__CRITIC__BASE_URL": "http://127.0.0.1:8000/v1",
        "KEEL_LLM__CRITIC__API_KEY": SECRET,
        "KEEL_LLM__STRATEGIST__API_KEY": SECRET + "-2",
    }
    proc = keel("config", "show", "--json", cwd=tmp_path, env=env)
    rows = {r["key"]: r for r in json.loads(proc.stdout)}
    assert rows["llm.critic.api_key"]["value"] == "**********"
    assert rows["llm.critic.api_key"]["source"] == "env KEEL_LLM__CRITIC__API_KEY"
    assert rows["llm.critic.base_url"]["value"] == "http://127.0.0.1:8000/v1"
    assert rows["llm.strategist.api_key"]["value"] == "**********"
    table = keel("config", "show", cwd=tmp_path, env=env)
    assert SECRET not in proc.stdout + proc.stderr + table.stdout + table.stderr


def test_a_critic_on_the_strategist_model_is_a_config_problem(tmp_path):
    (tmp_path / "keel.toml").write_text(
        "[llm.strategist]\nenabled = true\nmodel = 'm-1'\n"
        f"api_key = '{SECRET}'\n"
        "[llm.critic]\nenabled = true\nmodel = 'm-1'\nbase_url = 'http://127.0.0.1:8000/v1/'\n"
        f"api_key = '{SECRET}'\n"
    )
    proc = keel("config", "check", "--json", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    problems = json.loads(proc.stdout)["problems"]
    assert len(problems) == 1 and "separation of duties" in problems[0]
    show = keel("config", "show", cwd=tmp_path, check=False)
    assert show.returncode == 2
    assert SECRET not in proc.stdout + proc.stderr + show.stdout + show.stderr
