"""The alerting rules that ship with the service (deploy/prometheus/alerts.yml):
valid for Prometheus (`promtool check rules`), each one unit-tested
(`promtool test rules deploy/prometheus/alerts_test.yml`) firing and quiet,
each with its runbook entry, and each on a metric the service exposes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

import devstack
from payment.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"
# What the issue asks alerts on, and more: each must be watched by a rule.
WATCHED = {
    "payment_outbox_oldest_unsent_age_seconds", "payment_pending_overdue_payments", "payment_reconciliations_total",
    "payment_http_requests_total", "payment_payments_total", "payment_db_pool_requests_waiting",
    "payment_upstream_errors_total", "payment_pending_overdue_refunds",
}


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def promtool() -> str:
    return devstack.promtool_binary()


def test_the_rules_are_valid(promtool):
    result = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_every_rule_passes_its_unit_tests(promtool):
    result = subprocess.run([promtool, "test", "rules", str(TESTS)], capture_output=True, text=True,
                            cwd=TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_rule_is_tested_firing_and_quiet():
    tested: dict[str, set[bool]] = {}
    for case in yaml.safe_load(TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            tested.setdefault(check["alertname"], set()).add(bool(check["exp_alerts"]))
    assert tested == {rule["alert"]: {True, False} for rule in rules()}


def test_every_rule_has_a_runbook_entry():
    runbook = RUNBOOK.read_text()
    headings = {re.sub(r"[^a-z0-9]", "", line.lstrip("#").strip().lower())
                for line in runbook.splitlines() if line.startswith("## ")}
    for rule in rules():
        anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert rule["annotations"]["runbook_url"] == f"docs/runbook.md#{anchor}"
        assert anchor == rule["alert"].lower() and anchor in headings, rule["alert"]


def exposed_names() -> set[str]:
    """Every sample name GET /metrics can hold (and Prometheus' own `up`)."""
    metrics = Metrics(pool_stats=lambda: {}, outbox_backlog=lambda: (0, None), overdue_payments=lambda: 0,
                      overdue_refunds=lambda: 0)
    families = list(metrics.registry.collect())
    families += text_string_to_metric_families(metrics.exposition().decode())
    names = {"up"}
    for family in families:
        names |= {family.name, f"{family.name}_total", f"{family.name}_count", f"{family.name}_sum",
                  f"{family.name}_bucket"}
    return names


def test_every_rule_reads_metrics_the_service_exposes():
    used = set()
    for rule in rules():
        used |= {name for name in re.findall(r"\b([a-z_]+)(?=[{\[ )])", rule["expr"])
                 if name.startswith("payment_") or name == "up"}
    assert used <= exposed_names(), used - exposed_names()
    assert WATCHED <= used
