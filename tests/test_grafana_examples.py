"""examples/grafana: the dashboard is well formed and every query in it is one the Prometheus
end-to-end test proves; the alert rules pass promtool's checks and their unit tests; the
provisioning files point Grafana at that dashboard and a Prometheus data source."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

import test_fleet as fleet
import test_prometheus_e2e as e2e
from tools import require_tool

GRAFANA = Path(__file__).resolve().parents[1] / "examples" / "grafana"
DASHBOARD = GRAFANA / "gemini-dashboard.json"
ALERTS = GRAFANA / "alerts"
RULES = GRAFANA / "rules"
PROVISIONING = GRAFANA / "provisioning"
# Variables Grafana itself defines.
BUILTIN_VARIABLES = {"__rate_interval", "__range", "__interval"}


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def query_panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def test_dashboard_identity() -> None:
    board = dashboard()
    assert board["uid"] == "gemini-otel"
    assert board["title"]
    assert isinstance(board["schemaVersion"], int)
    assert "id" not in board  # Grafana assigns it; a fixed id breaks imports


def test_panel_ids_are_unique_and_every_panel_has_a_place() -> None:
    panels = dashboard()["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}, panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]


def test_every_query_panel_has_a_prometheus_datasource_and_queries() -> None:
    variable = {"type": "prometheus", "uid": "${datasource}"}
    for panel in query_panels():
        assert panel["title"] and panel.get("description"), panel["id"]
        assert panel["datasource"] == variable, panel["title"]
        targets = panel["targets"]
        assert targets, panel["title"]
        ref_ids = [t["refId"] for t in targets]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in targets:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"] == variable, panel["title"]
    titles = [p["title"] for p in query_panels()]
    assert len(titles) == len(set(titles))  # the e2e test keys its expectations by title


def test_variables_used_by_queries_are_defined() -> None:
    board = dashboard()
    defined = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "tier", "model"} <= defined
    [source] = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
    assert source["query"] == "prometheus"
    texts = [t["expr"] for p in query_panels() for t in p["targets"]]
    texts += [v["query"] for v in board["templating"]["list"] if v["type"] == "query"]
    used = {m for text in texts for m in re.findall(r"\$\{?(\w+)", text)}
    assert used <= defined | BUILTIN_VARIABLES


def test_the_e2e_test_proves_exactly_the_dashboard_and_alert_queries() -> None:
    panels = {(p["title"], t["refId"]) for p in query_panels() for t in p["targets"]}
    # The fleet row is proven by test_fleet.py (recording rules, three processes, two projects).
    assert set(e2e.dashboard_queries()) == set(e2e.DASHBOARD_EXPECTATIONS)
    assert set(e2e.dashboard_queries(fleet=True)) == set(fleet.FLEET_PANELS)
    assert panels == set(e2e.DASHBOARD_EXPECTATIONS) | set(fleet.FLEET_PANELS)
    rules = yaml.safe_load((ALERTS / "gemini-alerts.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert set(e2e.alert_rules()) == set(e2e.ALERT_EXPECTATIONS) == set(e2e.ALERTS_FIRING)
    assert set(e2e.alert_rules(fleet=True)) == fleet.FLEET_ALERTS
    assert alerts == set(e2e.ALERT_EXPECTATIONS) | fleet.FLEET_ALERTS
    variables = {v["name"] for v in dashboard()["templating"]["list"] if v["type"] == "query"}
    assert variables == set(e2e.VARIABLE_VALUES)


def test_alert_rules_are_documented_and_thresholded() -> None:
    rules = yaml.safe_load((ALERTS / "gemini-alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]
            e2e.split_alert(rule["expr"])  # "<measure> > <threshold>", as the e2e test reads it


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = require_tool("promtool")
    return subprocess.run(
        [promtool, *args], cwd=ALERTS, capture_output=True, text=True, timeout=60, check=False
    )


def test_promtool_check_rules() -> None:
    done = _promtool("check", "rules", "gemini-alerts.yml", str(RULES / "gemini-rules.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_recording_rules_group_by_project() -> None:
    groups = yaml.safe_load((RULES / "gemini-rules.yml").read_text())["groups"]
    for rule in (r for g in groups for r in g["rules"]):
        for clause in re.findall(r"\b(?:sum|max) by \(([^)]*)\)", rule["expr"]):
            assert "gcp_gemini_project" in clause, rule["record"]


def test_promtool_rule_unit_tests() -> None:
    done = _promtool("test", "rules", "gemini-alerts.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_rule_unit_tests_cover_every_alert() -> None:
    tests = yaml.safe_load((ALERTS / "gemini-alerts.test.yml").read_text())
    tested = {
        case["alertname"]
        for test in tests["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert tested == set(e2e.ALERT_EXPECTATIONS) | fleet.FLEET_ALERTS


@pytest.mark.parametrize("path", sorted(PROVISIONING.rglob("*.yml")), ids=lambda p: p.name)
def test_provisioning_files_parse(path: Path) -> None:
    assert yaml.safe_load(path.read_text())["apiVersion"] == 1


def test_provisioning_has_a_default_prometheus_and_loads_the_dashboard() -> None:
    sources = yaml.safe_load((PROVISIONING / "datasources" / "datasources.yml").read_text())
    [prometheus] = [d for d in sources["datasources"] if d["type"] == "prometheus"]
    assert prometheus["isDefault"] is True
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "dashboards.yml").read_text())
    [provider] = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
