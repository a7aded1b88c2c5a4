"""`deploy/`: the alert rules pass `promtool check rules` and their unit tests (`promtool test rules`), and the rules
and the Grafana dashboard use only metrics the API exports (the frozen schema)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from keel.api.metrics import SCHEMA

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "alerts_test.yml"
DASHBOARD = DEPLOY / "grafana" / "keel.json"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not found: it comes with Debian's prometheus package (apt-get install prometheus)",
)
#: what Prometheus adds itself
BUILTIN = {"up"}


def promtool(*args: str) -> subprocess.CompletedProcess:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120, cwd=RULES.parent, check=False)


@needs_promtool
def test_the_alert_rules_are_valid():
    got = promtool("check", "rules", RULES.name)
    assert got.returncode == 0, got.stdout + got.stderr
    assert "SUCCESS: 13 rules found" in got.stdout


@needs_promtool
def test_each_alert_fires_on_its_breach_and_not_before():
    got = promtool("test", "rules", RULE_TESTS.name)
    assert got.returncode == 0, got.stdout + got.stderr
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    assert {
        "KeelTradingHalted",
        "KeelDailyLossLimitBreached",
        "KeelLLMCircuitOpen",
        "KeelIntentStuckExecuting",
        "KeelMoneyLoss",
    } <= tested


def _metrics_in(expr: str) -> set[str]:
    words = set(re.findall(r"\b([a-z_][a-z0-9_]*)\s*(?:\{|\[|\)|$|\s|==|>|<)", expr))
    return {w for w in words if w.startswith("keel_") or w in BUILTIN}


def test_the_rules_and_the_dashboard_use_only_exported_metrics():
    exported = {m.name for m in SCHEMA} | BUILTIN
    exprs = re.findall(r"expr: (.+(?:\n {10}.+)*)", RULES.read_text())
    dashboard = json.loads(DASHBOARD.read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = set().union(*(_metrics_in(e) for e in exprs))
    assert used and used <= exported, used - exported
    assert {"keel_trading_state", "keel_daily_pnl", "keel_open_exposure", "keel_llm_circuit_open"} <= used
