"""The fleet, proven (issue 18): three instrumented processes (tests/fleet_app.py), each with
its own fake Gemini, in two Google Cloud projects; a real Prometheus scrapes all three and loads
the recording rules (examples/grafana/rules) and the alerts (the gemini-fleet group). Through its
HTTP API the test checks that the rules compute per project exactly what the processes did, that
the forecasts are built from their parts, that the alerts fire for the right project and only
for it, and every query of the dashboard's fleet row.

  p1, p2  project "team-paid", tier_1, production: a daily budget far below their spend, a
          monthly budget (carried by p2 only: max by project tolerates it) at 90% of it, an
          RPD of 3 (limits file) that their 6 requests pass.
  p3      project "team-free", free tier, production: no budget, an RPD no run can reach.

Skipped when prometheus is missing, except with CI=true where that fails; skipped too in the
two minutes around a Pacific midnight, when "today" resets under the running test.
"""

from __future__ import annotations

import json
import math
import os
import queue
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import test_prometheus_e2e as e2e
from opentelemetry.instrumentation.gemini.quota.windows import pacific_day_bounds
from tools import free_port, require_tool

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "examples" / "grafana" / "rules" / "gemini-rules.yml"
ALERTS = ROOT / "examples" / "grafana" / "alerts" / "gemini-alerts.yml"
LIFETIME = 60.0
MODEL = "gemini-2.5-flash"
PAID, FREE = "team-paid", "team-free"
DAILY_BUDGET = 1e-9  # USD: any paid call passes it
MONTHLY_SHARE = 0.9  # the paid project's spend this month against its monthly budget
PAID_RPD = 3
FREE_RPD = 10**9
# Rules run every 1.3 s against scrapes every 1 s. With equal intervals the two lock in phase: a
# scrape stamped just before each evaluation and landing just after it is missed by every
# evaluation, and the rule never agrees with the raw query at its own timestamp (CI saw 8 in a
# row). At 1.3 s the phase moves 300 ms an evaluation, so a scrape in flight at one is not at
# the next.
EVALUATION = 1.3  # seconds

Series = frozenset[tuple[str, str]]


def s(**labels: str) -> Series:
    return frozenset(labels.items())


@dataclass
class Process:
    name: str
    project: str
    tier: str
    calls: int  # per phase
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[str] | None = None
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    stderr: list[str] = field(default_factory=list)
    cost: float = 0.0

    def start(self, limits_file: Path) -> None:
        env = {
            **os.environ,
            "OTEL_INSTRUMENTATION_GEMINI_TIER": self.tier,
            "OTEL_INSTRUMENTATION_GEMINI_PROJECT": self.project,
            "OTEL_INSTRUMENTATION_GEMINI_LIMITS_FILE": str(limits_file),
            "OTEL_RESOURCE_ATTRIBUTES": (
                f"service.name=fleet-{self.name},deployment.environment=production"
            ),
            "FLEET_CALLS": str(self.calls),
            "FLEET_APP_LIFETIME": str(LIFETIME),
            **self.env,
        }
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("fleet_app.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        e2e._drain(self.proc.stdout, self.lines.put)
        e2e._drain(self.proc.stderr, self.stderr.append)

    def read(self) -> dict[str, Any]:
        try:
            answer = dict(json.loads(self.lines.get(timeout=e2e.WAIT)))
        except queue.Empty:
            raise AssertionError(f"{self.name} said nothing: {''.join(self.stderr)}") from None
        self.cost += answer["cost"]
        return answer

    def run(self) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()


def close(value: float, expected: float) -> bool:
    return math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-15)


def test_recording_rules_and_alerts_per_project_on_a_real_prometheus(tmp_path: Path) -> None:
    prometheus_bin = require_tool("prometheus")
    start, end = pacific_day_bounds(time.time())
    if min(time.time() - start, end - time.time()) < 120:
        pytest.skip("too close to midnight Pacific: the day's gauges reset during the run")
    limits = tmp_path / "limits.json"
    limits.write_text(
        json.dumps(
            {
                "version": "fleet-test",
                "models": {MODEL: {"tier_1": {"rpd": PAID_RPD}, "free": {"rpd": FREE_RPD}}},
            }
        )
    )
    daily = {"OTEL_INSTRUMENTATION_GEMINI_DAILY_BUDGET_USD": str(DAILY_BUDGET)}
    p1 = Process("p1", PAID, "tier_1", calls=2, env=daily)
    p2 = Process("p2", PAID, "tier_1", calls=1, env=dict(daily))
    p3 = Process("p3", FREE, "free", calls=2)
    fleet = [p1, p2, p3]
    with ExitStack() as stack:
        p1.start(limits)
        p3.start(limits)
        first = {p1.name: p1.read(), p3.name: p3.read()}
        # p2 learns the monthly budget from p1's price per call: the project's spend after
        # both phases is 90% of it.
        per_call = first["p1"]["per_call"]
        assert per_call > 0
        paid_calls = 2 * (p1.calls + p2.calls)
        p2.env["OTEL_INSTRUMENTATION_GEMINI_MONTHLY_BUDGET_USD"] = repr(
            paid_calls * per_call / MONTHLY_SHARE
        )
        p2.start(limits)
        first[p2.name] = p2.read()
        for p in fleet:
            assert p.proc is not None
            stack.enter_context(e2e.running(p.proc))
        targets = {f"127.0.0.1:{first[p.name]['metrics_port']}": p for p in fleet}

        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            json.dumps(
                {
                    "global": {
                        "scrape_interval": "1s",
                        "scrape_timeout": "1s",
                        "evaluation_interval": f"{round(EVALUATION * 1000)}ms",
                    },
                    "rule_files": [str(RULES), str(ALERTS)],
                    "scrape_configs": [
                        {"job_name": "gemini-fleet", "static_configs": [{"targets": list(targets)}]}
                    ],
                }
            )
        )
        log = stack.enter_context((tmp_path / "prometheus.log").open("w"))
        command = [
            prometheus_bin,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        timeout = shutil.which("timeout")  # bounds Prometheus' life even if this test dies
        if timeout is not None:
            command = [timeout, str(int(LIFETIME)), *command]
        stack.enter_context(e2e.running(subprocess.Popen(command, stdout=log, stderr=log)))
        prom = Prometheus(port)
        e2e.wait_until(prom.ready, "Prometheus to start")

        def requests_seen() -> dict[str, float]:
            rows = prom.query("sum by (instance) (gcp_gemini_requests_total)", time.time())
            return {targets[dict(k)["instance"]].name: v for k, v in rows.items()}

        e2e.wait_until(
            lambda: requests_seen() == {p.name: p.calls for p in fleet}, "the first scrapes"
        )
        for p in fleet:
            p.run()
        for p in fleet:
            p.read()
        e2e.wait_until(
            lambda: requests_seen() == {p.name: 2 * p.calls for p in fleet}, "the last scrapes"
        )
        paid_requests = 2 * (p1.calls + p2.calls)
        free_requests = 2 * p3.calls
        want_today = {
            s(gcp_gemini_project=PAID, gen_ai_request_model=MODEL): paid_requests,
            s(gcp_gemini_project=FREE, gen_ai_request_model=MODEL): free_requests,
        }

        def rules_caught_up() -> bool:
            now = time.time()
            return (
                prom.query("project_model:gcp_gemini_requests_today:sum", now) == want_today
                and len(prom.query("project_model:gcp_gemini_rpd_exhausted_in:seconds", now)) == 2
            )

        e2e.wait_until(rules_caught_up, "the recording rules")
        want_alerts = expected_alerts(targets)
        deadline = time.monotonic() + 15
        while (got_alerts := active_alerts(prom)) != want_alerts and time.monotonic() < deadline:
            time.sleep(0.2)
        assert got_alerts == want_alerts, (got_alerts - want_alerts, want_alerts - got_alerts)
        time.sleep(1.5)  # an evaluation stamped before `at` may still be landing
        at = time.time() - 1.5
        q = lambda expr: prom.query(expr, at)  # noqa: E731

        # --- per project, exactly what the processes did -----------------------------------
        paid_cost = p1.cost + p2.cost
        assert close(paid_cost, paid_calls * per_call)
        assert p3.cost == 0  # the free tier bills nothing
        problems: list[str] = []

        def expect(name: str, got: dict[Series, float], want: dict[Series, float]) -> None:
            if set(got) != set(want) or not all(close(got[k], v) for k, v in want.items()):
                problems.append(f"{name}: {got}, expected {want}")

        expect("requests today", q("project_model:gcp_gemini_requests_today:sum"), want_today)
        spend = {s(gcp_gemini_project=PAID): paid_cost, s(gcp_gemini_project=FREE): 0.0}
        expect("spend today", q("project:gcp_gemini_spend_today:sum"), spend)
        expect("spend this month", q("project:gcp_gemini_spend_month:sum"), spend)
        expect(
            "daily budget",
            q("project:gcp_gemini_budget_day:max"),
            {s(gcp_gemini_project=PAID): DAILY_BUDGET},
        )
        monthly = paid_calls * per_call / MONTHLY_SHARE
        expect(
            "monthly budget",
            q("project:gcp_gemini_budget_month:max"),
            {s(gcp_gemini_project=PAID): monthly},
        )
        expect(
            "month / budget",
            q("project:gcp_gemini_spend_month:budget_ratio"),
            {s(gcp_gemini_project=PAID): MONTHLY_SHARE},
        )
        expect(
            "RPD limit",
            q("project_model:gcp_gemini_rpd_limit:max"),
            {
                s(gcp_gemini_project=PAID, gen_ai_request_model=MODEL): PAID_RPD,
                s(gcp_gemini_project=FREE, gen_ai_request_model=MODEL): FREE_RPD,
            },
        )

        # --- rates and forecasts, from their parts -----------------------------------------
        rate10 = q("project_model:gcp_gemini_requests:rate10m")
        rate60 = q("project_model:gcp_gemini_requests:rate1h")
        rate = q("project_model:gcp_gemini_requests:rate_forecast")
        assert set(rate10) == set(rate60) == set(rate) == set(want_today), rate10
        # Each project's rate is its own processes' rate, as of the rule's evaluation. A scrape
        # that started before an evaluation and landed after it is in the raw query at that
        # time but was not in the rule's: such a pair is compared again at a later evaluation.
        for project in (PAID, FREE):
            tries: list[tuple[float, float]] = []
            for _ in range(8):
                when = time.time() - 0.5
                stamp = evaluated_at(prom, "project_model:gcp_gemini_requests:rate10m", when)
                [value] = prom.query(
                    f'project_model:gcp_gemini_requests:rate10m{{gcp_gemini_project="{project}"}}',
                    stamp,
                ).values()
                raw = prom.query(
                    "sum by (gen_ai_request_model) (rate(gcp_gemini_requests_total"
                    f'{{gcp_gemini_project="{project}"}}[10m]))',
                    stamp,
                )[s(gen_ai_request_model=MODEL)]
                tries.append((value, raw))
                if close(value, raw):
                    break
                time.sleep(EVALUATION + 0.1)  # the next evaluation
            else:
                raise AssertionError((project, tries))
        for key in rate:
            assert rate[key] > 0 and close(rate[key], max(rate10[key], rate60[key]))
        [remaining] = q("gcp_gemini_day_remaining:seconds").values()
        assert 0 < remaining <= 25 * 3600
        projected = q("project_model:gcp_gemini_requests_at_reset:projected")
        expect(
            "projected requests",
            projected,
            {k: want_today[k] + rate[k] * remaining for k in want_today},
        )
        limit = {
            s(gcp_gemini_project=PAID, gen_ai_request_model=MODEL): PAID_RPD,
            s(gcp_gemini_project=FREE, gen_ai_request_model=MODEL): FREE_RPD,
        }
        expect(
            "RPD at reset",
            q("project_model:gcp_gemini_rpd_at_reset:ratio"),
            {k: projected[k] / limit[k] for k in limit},
        )
        expect(
            "RPD exhausted in",
            q("project_model:gcp_gemini_rpd_exhausted_in:seconds"),
            {k: max(limit[k] - want_today[k], 0) / rate[k] for k in limit},
        )
        cost_rate = q("project:gcp_gemini_cost:rate_forecast")
        assert set(cost_rate) == set(spend) and cost_rate[s(gcp_gemini_project=FREE)] == 0
        expect(
            "projected spend",
            q("project:gcp_gemini_spend_at_reset:projected"),
            {k: spend[k] + cost_rate[k] * remaining for k in spend},
        )

        # --- the dashboard's fleet row -----------------------------------------------------
        variables = {"$project": ".*", "$model": ".*"}
        for key, expr in e2e.dashboard_queries(fleet=True).items():
            for name, value in variables.items():
                expr = expr.replace(name, value)
            assert "$" not in expr, expr
            got = q(expr)
            if set(got) != FLEET_PANELS[key]:
                problems.append(f"panel {key}: {sorted(map(dict, got))}")
        assert not problems, "\n".join(problems)

        # --- Prometheus evaluated every rule without errors ---------------------------------
        groups = prom.get("/api/v1/rules")["groups"]
        health = {r["name"]: r["health"] for g in groups for r in g["rules"]}
        assert set(health.values()) == {"ok"}, health
        for p in fleet:
            assert p.proc is not None and p.proc.stdin is not None
            p.proc.stdin.close()


class Prometheus(e2e.Prometheus):
    def query(self, expr: str, at: float) -> dict[Series, float]:
        """Results keyed by their labels, the recorded series' __name__ left out."""
        return {
            frozenset((k, v) for k, v in key if k != "__name__"): value
            for key, value in super().query(expr, at).items()
        }


def evaluated_at(prom: e2e.Prometheus, series: str, at: float) -> float:
    """When the rule that recorded ``series`` last ran before ``at``."""
    data = prom.get("/api/v1/query", query=f"timestamp({series})", time=at)
    stamps = {float(row["value"][1]) for row in data["result"]}
    assert len(stamps) == 1, stamps
    return stamps.pop()


def active_alerts(prom: e2e.Prometheus) -> set[tuple[str, Series]]:
    """(alert name, labels without severity) of every pending or firing alert."""
    out = set()
    for alert in prom.get("/api/v1/alerts")["alerts"]:
        labels = dict(alert["labels"])
        name = labels.pop("alertname")
        labels.pop("severity", None)
        if alert["state"] in ("pending", "firing"):
            out.add((name, frozenset(labels.items())))
    return out


def expected_alerts(targets: dict[str, Process]) -> set[tuple[str, Series]]:
    [free_instance] = [i for i, p in targets.items() if p.project == FREE]
    paid_model = s(gcp_gemini_project=PAID, gen_ai_request_model=MODEL)
    paid = s(gcp_gemini_project=PAID)
    return {
        # The per-process alert of the "gemini" group sums by project too: 6 of 3 (paid) is
        # near the limit, 4 of 10**9 (free) is not.
        (
            "GeminiQuotaNearLimit",
            paid_model | s(gcp_gemini_tier="tier_1", gcp_gemini_quota_dimension="rpd"),
        ),
        ("GeminiRpdExhaustedBeforeReset", paid_model),
        ("GeminiDailySpendOverBudgetForecast", paid),
        ("GeminiDailyBudget80", paid),
        ("GeminiDailyBudgetExceeded", paid),
        ("GeminiMonthlyBudget80", paid),
        (
            "GeminiFreeTierInProduction",
            s(
                gcp_gemini_project=FREE,
                gen_ai_request_model=MODEL,
                job="gemini-fleet",
                instance=free_instance,
            ),
        ),
    }


# Which alerts the scenario sets off (expected_alerts) and which it leaves quiet.
FLEET_ALERTS = {
    "GeminiRpdExhaustedBeforeReset",
    "GeminiDailySpendOverBudgetForecast",
    "GeminiDailyBudget80",
    "GeminiDailyBudgetExceeded",
    "GeminiMonthlyBudget80",
    "GeminiMonthlyBudgetExceeded",  # 90% of the monthly budget: quiet
    "GeminiFreeTierInProduction",
}

_BOTH = {
    s(gcp_gemini_project=PAID, gen_ai_request_model=MODEL),
    s(gcp_gemini_project=FREE, gen_ai_request_model=MODEL),
}
# (panel title, refId) -> the series the query returns in this scenario.
FLEET_PANELS: dict[tuple[str, str], set[Series]] = {
    ("Time to RPD exhaustion", "A"): _BOTH,
    ("Time to RPD exhaustion", "B"): {s()},
    ("Requests by midnight Pacific, projected, against RPD", "A"): _BOTH,
    ("Projected end-of-day spend against the daily budget", "A"): {
        s(gcp_gemini_project=PAID),
        s(gcp_gemini_project=FREE),
    },
    ("Projected end-of-day spend against the daily budget", "B"): {
        s(gcp_gemini_project=PAID),
        s(gcp_gemini_project=FREE),
    },
    ("Projected end-of-day spend against the daily budget", "C"): {s(gcp_gemini_project=PAID)},
    ("Spend against budgets", "A"): {s(gcp_gemini_project=PAID)},
    ("Spend against budgets", "B"): {s(gcp_gemini_project=PAID)},
    ("Spend against budgets", "C"): {s(gcp_gemini_project=PAID)},
}
