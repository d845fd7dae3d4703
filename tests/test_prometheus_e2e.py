"""Prometheus end to end: two instrumented apps (free and tier_1, each configured by
OTEL_INSTRUMENTATION_GEMINI_TIER, each with its own fake Gemini) serve /metrics through
opentelemetry-exporter-prometheus; a real Prometheus scrapes them and loads the alert rules; then
EVERY query of the Grafana dashboard and of the alert rules runs through /api/v1/query and must
return the expected series and values.

Exactness. Gauges are compared exactly. Counter queries go through increase()/rate(), which
extrapolate: Prometheus scales a series' growth inside the window by a factor >= 1 that depends
only on its sample timestamps. The apps therefore run their scenario once BEFORE serving /metrics
and once more after Prometheus has scraped that: every series of one app then shares its first
and last sample times and its growth ratio, hence one factor. The test measures that factor on
one counter per app (gcp_gemini_requests_total) and predicts every other counter query exactly
from it. Latency quantiles, the one thing that depends on timing, are range-checked.

Skipped when prometheus is missing, except with CI=true where that fails.
"""

from __future__ import annotations

import json
import math
import operator
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

import prometheus_app as app
from opentelemetry.instrumentation.gemini.attributes import DURATION_BUCKETS
from opentelemetry.instrumentation.gemini.quota.limits import LimitTable
from opentelemetry.instrumentation.gemini.testing.fake_gemini import DEFAULT_USAGE
from tools import free_port, require_tool

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "examples" / "grafana" / "gemini-dashboard.json"
ALERT_RULES = ROOT / "examples" / "grafana" / "alerts" / "gemini-alerts.yml"
TIERS = ("free", "tier_1")
WINDOW_SECONDS = 300
# Grafana fills these in; the test picks a window covering the whole run and "All" filters.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "5m", "$tier": ".*", "$model": ".*"}
APP_LIFETIME = 90.0
WAIT = 30.0  # the longest any single wait may take
FLASH, PRO, UNPRICED = app.FLASH, app.PRO, app.UNPRICED
LIVE = app.LIVE
INPUT_TOKENS = DEFAULT_USAGE["promptTokenCount"]
OUTPUT_TOKENS = DEFAULT_USAGE["candidatesTokenCount"]
LIMITS = LimitTable.load()
ALERT_EXPR = re.compile(r"^(?P<measure>.*\S)\s*(?P<op>>=|>)\s*(?P<threshold>[0-9.]+)\s*$", re.S)
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")

Series = frozenset[tuple[str, str]]


def s(**labels: str) -> Series:
    return frozenset(labels.items())


@dataclass(frozen=True)
class Between:
    """For values that depend on timing: low < value <= high."""

    low: float
    high: float


Expected = dict[Series, "float | Between"]


@dataclass
class Run:
    """What the apps did in their second phase, and how Prometheus saw it."""

    cost: dict[str, dict[str, float]]  # tier -> priced model -> billed USD in one phase (spans)
    list_cost: dict[str, dict[str, float]]  # the same at pay-as-you-go prices
    factor: dict[str, float]  # tier -> increase() extrapolation factor of that app's series
    fresh: bool  # all traffic within the last minute, so rpm/tpm windows still hold it
    batch_cost: dict[str, dict[str, float]] = field(default_factory=dict)  # tier -> model -> USD
    batch_list_cost: dict[str, dict[str, float]] = field(default_factory=dict)

    def spend(self, tier: str, model: str | None = None) -> float:
        """Billed USD of one phase, online and batch, for one model or all."""
        both = (self.cost[tier], self.batch_cost.get(tier, {}))
        return sum(c.get(model, 0) if model else sum(c.values()) for c in both)

    def list_spend(self, tier: str) -> float:
        both = (self.list_cost[tier], self.batch_list_cost.get(tier, {}))
        return sum(sum(c.values()) for c in both)

    def increase(self, per_phase: Callable[[str], float]) -> float:
        """What increase(counter[5m]) returns, summed over the apps, for a counter that grew
        by ``per_phase(tier)`` in the second phase."""
        return sum(self.factor[t] * per_phase(t) for t in TIERS)

    def per_minute(self, per_phase: Callable[[str], float]) -> float:
        return self.increase(per_phase) / WINDOW_SECONDS * 60

    def priced(self) -> list[tuple[str, str]]:
        """(tier, model) pairs with cost series: every priced model, free tier included (at 0)."""
        return [(t, m) for t in TIERS for m in self.cost[t]]


# --- the scenario's own numbers (prometheus_app.py) ------------------------------------------
def attempts(model: str, status: int | None = None) -> int:
    return sum(n for (m, code), n in app.ATTEMPTS.items() if m == model and status in (None, code))


def quota_usage(model: str, dimension: str) -> int:
    """Window usage after both phases: every attempt counts against rpm/rpd, input tokens of
    answered calls against tpm."""
    per_phase = attempts(model) if dimension != "tpm" else app.CALLS_OK[model] * INPUT_TOKENS
    return 2 * per_phase


def quota_rows() -> list[tuple[str, str, str, int]]:
    """(tier, model, dimension, limit) for every published, non-zero limit of the models used."""
    rows = []
    for tier in TIERS:
        for model in app.CALLS_OK:
            limits = LIMITS.lookup(model, tier)
            if limits is None:
                continue
            for dim, limit in (("rpm", limits.rpm), ("tpm", limits.tpm), ("rpd", limits.rpd)):
                if limit:
                    rows.append((tier, model, dim, limit))
    return rows


def batch_limit_rows() -> list[tuple[str, str, str, int]]:
    """(tier, model, "batch_enqueued_tokens", limit) for the models the scenario batches on."""
    rows = []
    for tier in TIERS:
        for model in app.BATCH_REQUESTS_OK:
            limits = LIMITS.lookup(model, tier)
            if limits is not None and limits.batch_enqueued_tokens:
                rows.append((tier, model, "batch_enqueued_tokens", limits.batch_enqueued_tokens))
    return rows


def quota_hits() -> dict[tuple[str, str], int]:
    """(tier, quota id) -> 429 violations per phase."""
    hits: dict[tuple[str, str], int] = {}
    for tier in TIERS:
        for quota_id in app.QUOTA_IDS[tier]:
            hits[(tier, quota_id)] = hits.get((tier, quota_id), 0) + 1
    return hits


def window_value(run: Run, dimension: str, exact: float) -> float | Between:
    # rpd never decays during a run; rpm/tpm hold the traffic only for 60 s after it.
    return exact if run.fresh or dimension == "rpd" else Between(-1, exact)


def utilization(run: Run) -> Expected:
    return {
        s(gen_ai_request_model=m, gcp_gemini_tier=t, gcp_gemini_quota_dimension=d): window_value(
            run, d, quota_usage(m, d) / limit
        )
        for t, m, d, limit in quota_rows()
    }


def spend_10m_share(run: Run) -> Expected:
    out: Expected = {}
    for tier in TIERS:
        limit = LIMITS.spend_limit_10m(tier)
        if limit:
            out[s(gcp_gemini_tier=tier)] = 2 * run.spend(tier) / limit
    return out


def live_session_limits(run: Run) -> Expected:
    """(model, tier) -> the tier's concurrent Live session limit, where one is published."""
    out: Expected = {}
    for tier in TIERS:
        limits = LIMITS.lookup(LIVE, tier)
        if limits is not None and limits.live_sessions:
            out[s(gen_ai_request_model=LIVE, gcp_gemini_tier=tier)] = limits.live_sessions
    return out


def live_sessions_share(run: Run) -> Expected:
    return {key: app.LIVE_OPEN / limit for key, limit in live_session_limits(run).items()}


def latency(models: list[str]) -> Callable[[Run], Expected]:
    return lambda run: {s(gen_ai_request_model=m): Between(0, DURATION_BUCKETS[-1]) for m in models}


def retry_delay_p90(run: Run) -> Expected:
    # Every 429 asked for 26 s: all observations sit in the (20, 30] bucket, where
    # histogram_quantile interpolates linearly.
    low, high = 20, 30
    assert low < app.RETRY_DELAY_SECONDS <= high
    return {s(gen_ai_request_model=PRO): low + (high - low) * 0.9}


# (panel title, refId) -> expected result. Each dashboard query must have exactly one entry.
DASHBOARD_EXPECTATIONS: dict[tuple[str, str], Callable[[Run], Expected]] = {
    ("Spend today (USD)", "A"): lambda run: {s(): run.increase(run.spend)},
    ("Spend today (USD)", "B"): lambda run: {s(): run.increase(run.list_spend)},
    ("Spend today by model", "A"): lambda run: {
        s(gen_ai_request_model=m): run.increase(lambda t, m=m: run.spend(t, m))
        for _, m in run.priced()
    },
    ("Spend, rolling 10 minutes (USD)", "A"): lambda run: {
        s(gcp_gemini_tier=t): 2 * run.spend(t) for t in TIERS
    },
    ("Share of the 10-minute spend limit", "A"): spend_10m_share,
    ("Unpriced calls today", "A"): lambda run: {
        s(
            gen_ai_request_model=UNPRICED, gcp_gemini_cost_unpriced_reason="unknown_model"
        ): run.increase(lambda t: app.CALLS_OK[UNPRICED])
    },
    ("Spend per hour by model", "A"): lambda run: {
        s(gen_ai_request_model=m): run.increase(lambda t, m=m: run.spend(t, m))
        / WINDOW_SECONDS
        * 3600
        for _, m in run.priced()
    },
    # One app's numerator and denominator share its factor: the ratio is exact.
    ("Cost per successful call", "A"): lambda run: {
        s(gen_ai_request_model=m, gcp_gemini_tier=t): run.spend(t, m)
        / (app.CALLS_OK[m] + app.BATCH_REQUESTS_OK.get(m, 0))
        for t, m in run.priced()
    },
    ("Tokens per minute by type", "A"): lambda run: {
        s(gcp_gemini_token_type="input"): run.per_minute(
            lambda t: (sum(app.CALLS_OK.values()) + app.BATCH_RESPONSES) * INPUT_TOKENS
        ),
        s(gcp_gemini_token_type="output"): run.per_minute(
            lambda t: (sum(app.CALLS_OK.values()) + app.BATCH_RESPONSES) * OUTPUT_TOKENS
        ),
    },
    ("Quota utilization: RPM, TPM, RPD against the tier's limits", "A"): utilization,
    ("Usage and limits", "A"): lambda run: {
        s(gen_ai_request_model=m, gcp_gemini_tier=t, gcp_gemini_quota_dimension=d): window_value(
            run, d, quota_usage(m, d)
        )
        for t in TIERS
        for m in app.CALLS_OK
        for d in ("rpm", "tpm", "rpd")
    },
    ("Usage and limits", "B"): lambda run: {
        **{
            s(gen_ai_request_model=m, gcp_gemini_tier=t, gcp_gemini_quota_dimension=d): limit
            for t, m, d, limit in quota_rows() + batch_limit_rows()
        },
        # The limit table lists every limit series: the held Live sessions' one too.
        **{
            key | {("gcp_gemini_quota_dimension", "live_sessions")}: limit
            for key, limit in live_session_limits(run).items()
        },
    },
    ("Requests per minute by HTTP status", "A"): lambda run: {
        s(http_response_status_code=str(code)): run.per_minute(
            lambda t, code=code: (
                sum(n for (_, c), n in app.ATTEMPTS.items() if c == code)
                + (sum(app.BATCH_REQUESTS_OK.values()) if code == 200 else 0)
            )
        )
        for code in {c for _, c in app.ATTEMPTS}
    },
    ("429s per minute by quota", "A"): lambda run: {
        s(gen_ai_request_model=PRO, gcp_gemini_quota_id=q): run.per_minute(
            lambda t, q=q: quota_hits().get((t, q), 0)
        )
        for _, q in quota_hits()
    },
    # Every 429 asked for the same delay: the mean is exact whatever the factors.
    ("Retry delay asked by Google", "A"): lambda run: {
        s(gen_ai_request_model=PRO): float(app.RETRY_DELAY_SECONDS)
    },
    ("Retry delay asked by Google", "B"): retry_delay_p90,
    ("Latency by model", "A"): latency(list(app.CALLS_OK)),
    ("Latency by model", "B"): latency(list(app.CALLS_OK)),
    ("Time to first chunk (streams)", "A"): latency(list(app.STREAMS)),
    ("Time to first chunk (streams)", "B"): latency(list(app.STREAMS)),
    ("Open Live sessions against the tier's limit", "A"): lambda run: {
        s(gen_ai_request_model=LIVE, gcp_gemini_tier=t): app.LIVE_OPEN for t in TIERS
    },
    ("Open Live sessions against the tier's limit", "B"): live_session_limits,
    ("Spend today: batch and online", "A"): lambda run: {
        s(gcp_gemini_cost_processing="online"): run.increase(lambda t: sum(run.cost[t].values())),
        s(gcp_gemini_cost_processing="batch"): run.increase(
            lambda t: sum(run.batch_cost[t].values())
        ),
    },
    ("Spend today by operation", "A"): lambda run: {
        s(gen_ai_operation_name="generate_content"): run.increase(
            lambda t: sum(run.cost[t].values())
        ),
        s(gen_ai_operation_name="batches"): run.increase(lambda t: sum(run.batch_cost[t].values())),
    },
    ("Batch enqueued tokens against the limit", "A"): lambda run: {
        s(gen_ai_request_model=app.FLASH, gcp_gemini_tier=t): 2 * app.BATCH_ENQUEUED for t in TIERS
    },
    ("Batch enqueued tokens against the limit", "B"): lambda run: {
        s(gen_ai_request_model=m, gcp_gemini_tier=t): limit for t, m, _, limit in batch_limit_rows()
    },
}

# Alert name -> expected value of its measure (the expr left of the threshold).
ALERT_EXPECTATIONS: dict[str, Callable[[Run], Expected]] = {
    "GeminiQuotaNearLimit": utilization,
    "GeminiRateLimited": lambda run: {
        s(gen_ai_request_model=PRO, gcp_gemini_tier=t): run.factor[t] * attempts(PRO, 429)
        for t in TIERS
    },
    "GeminiDailyQuotaExhausted": lambda run: {
        s(gen_ai_request_model=PRO, gcp_gemini_tier=t, gcp_gemini_quota_id=q): run.factor[t] * n
        for (t, q), n in quota_hits().items()
        if "PerDay" in q
    },
    "GeminiDailySpendHigh": lambda run: {s(): run.increase(run.spend)},
    "GeminiSpendNear10MinuteLimit": spend_10m_share,
    "GeminiLiveSessionsNearLimit": live_sessions_share,
    "GeminiBatchEnqueuedNearLimit": lambda run: {
        s(gen_ai_request_model=m, gcp_gemini_tier=t): 2 * app.BATCH_ENQUEUED / limit
        for t, m, _, limit in batch_limit_rows()
    },
}
# ...and which series the whole expr returns, i.e. which alerts the scenario sets off.
ALERTS_FIRING: dict[str, set[Series]] = {
    # 8 attempts in a minute against the free tier's RPM of 2 for 2.5 Pro.
    "GeminiQuotaNearLimit": {
        s(gen_ai_request_model=PRO, gcp_gemini_tier="free", gcp_gemini_quota_dimension="rpm")
    },
    "GeminiRateLimited": {s(gen_ai_request_model=PRO, gcp_gemini_tier=t) for t in TIERS},
    "GeminiDailyQuotaExhausted": {
        s(
            gen_ai_request_model=PRO,
            gcp_gemini_tier="tier_1",
            gcp_gemini_quota_id="GenerateRequestsPerDayPerProjectPerModel-PaidTier",
        )
    },
    "GeminiDailySpendHigh": set(),
    "GeminiSpendNear10MinuteLimit": set(),
    "GeminiLiveSessionsNearLimit": set(),  # 2 of 50: proven by its promtool test instead
    "GeminiBatchEnqueuedNearLimit": set(),
}
# No app here names its project (tests/test_fleet.py covers projects).
VARIABLE_VALUES = {"tier": set(TIERS), "model": set(app.CALLS_OK), "project": set()}
# The fleet row of the dashboard and the gemini-fleet alert group read recording rules: proven by
# tests/test_fleet.py against three processes in two projects, not here.
FLEET_ROW_PREFIX = "Fleet:"
FLEET_GROUP = "gemini-fleet"


# --- reading the examples --------------------------------------------------------------------
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_panels(*, fleet: bool = False) -> list[dict[str, Any]]:
    """The panels above the fleet row (or, with ``fleet``, the fleet row's)."""
    panels = dashboard()["panels"]
    rows = [i for i, p in enumerate(panels) if p["type"] == "row"]
    start = next((i for i in rows if panels[i]["title"].startswith(FLEET_ROW_PREFIX)), len(panels))
    return panels[start:] if fleet else panels[:start]


def dashboard_queries(*, fleet: bool = False) -> dict[tuple[str, str], str]:
    return {
        (panel["title"], target["refId"]): target["expr"]
        for panel in dashboard_panels(fleet=fleet)
        for target in panel.get("targets", [])
    }


def alert_rules(*, fleet: bool = False) -> dict[str, str]:
    groups = yaml.safe_load(ALERT_RULES.read_text())["groups"]
    return {
        r["alert"]: r["expr"]
        for g in groups
        if (g["name"] == FLEET_GROUP) == fleet
        for r in g["rules"]
        if "alert" in r
    }


def split_alert(expr: str) -> tuple[str, Callable[[float, float], bool], float]:
    match = ALERT_EXPR.match(expr)
    assert match, f"alert expr is not '<measure> > <threshold>': {expr}"
    op = operator.ge if match["op"] == ">=" else operator.gt
    return match["measure"], op, float(match["threshold"])


def fill_variables(expr: str) -> str:
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unknown Grafana variable left in {expr}"
    return expr


# --- processes -------------------------------------------------------------------------------
class App:
    """One prometheus_app.py subprocess and its JSON lines."""

    def __init__(self, tier: str) -> None:
        self.tier = tier
        env = {**os.environ, "OTEL_INSTRUMENTATION_GEMINI_TIER": tier}
        env["PROM_APP_LIFETIME"] = str(APP_LIFETIME)
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("prometheus_app.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self._stderr: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        _drain(self.proc.stdout, self._lines.put)
        _drain(self.proc.stderr, self._stderr.append)

    def read(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self._lines.get(timeout=WAIT)))
        except queue.Empty:
            raise AssertionError(f"{self.tier} app said nothing: {''.join(self._stderr)}") from None

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()


def _drain(stream: IO[str], sink: Callable[[str], None]) -> None:
    threading.Thread(target=lambda: [sink(line) for line in stream], daemon=True).start()


@contextmanager
def running(proc: subprocess.Popen[Any]) -> Iterator[subprocess.Popen[Any]]:
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


class Prometheus:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params: Any) -> Any:
        query = urllib.parse.urlencode(params, doseq=True)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str, at: float) -> dict[Series, float]:
        data = self.get("/api/v1/query", query=expr, time=f"{at:.3f}")
        assert data["resultType"] == "vector", data
        return {frozenset(r["metric"].items()): float(r["value"][1]) for r in data["result"]}

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def compare(name: str, got: dict[Series, float], want: Expected) -> list[str]:
    def show(keys: Any) -> list[dict[str, str]]:
        return sorted((dict(k) for k in keys), key=lambda d: sorted(d.items()))

    if set(got) != set(want):
        return [f"{name}: series {show(got)}, expected {show(want)}"]
    problems = []
    for key, value in got.items():
        expected = want[key]
        if isinstance(expected, Between):
            ok = expected.low < value <= expected.high
        else:
            ok = math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-12)
        if not ok:
            problems.append(f"{name} {dict(key)}: {value!r}, expected {expected!r}")
    return problems


# --- the test ---------------------------------------------------------------------------------
def test_dashboard_and_alert_queries_against_a_real_prometheus(tmp_path: Path) -> None:
    prometheus_bin = require_tool("prometheus")
    started = time.monotonic()
    with ExitStack() as stack:
        apps: dict[str, App] = {}
        for tier in TIERS:
            apps[tier] = App(tier)
            stack.enter_context(running(apps[tier].proc))
        first = {tier: a.read() for tier, a in apps.items()}
        targets = {f"127.0.0.1:{first[t]['metrics_port']}": t for t in TIERS}

        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            json.dumps(  # JSON is YAML
                {
                    "global": {
                        "scrape_interval": "1s",
                        "scrape_timeout": "1s",
                        "evaluation_interval": "1s",
                    },
                    "rule_files": [str(ALERT_RULES)],
                    "scrape_configs": [
                        {"job_name": "gemini-app", "static_configs": [{"targets": list(targets)}]}
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
        # coreutils timeout bounds Prometheus' life even if this test process dies.
        timeout = shutil.which("timeout")
        if timeout is not None:
            command = [timeout, str(int(APP_LIFETIME)), *command]
        stack.enter_context(running(subprocess.Popen(command, stdout=log, stderr=log)))
        prom = Prometheus(port)
        wait_until(prom.ready, "Prometheus to start")

        per_phase = sum(app.ATTEMPTS.values()) + sum(app.BATCH_REQUESTS_OK.values())

        def requests_seen(at: float) -> dict[str, float]:
            rows = prom.query("sum by (instance) (gcp_gemini_requests_total)", at)
            return {targets[dict(k)["instance"]]: v for k, v in rows.items()}

        wait_until(
            lambda: requests_seen(time.time()) == dict.fromkeys(TIERS, per_phase),
            "the first scrape of both apps",
        )
        for a in apps.values():
            a.send("run")
        second = {tier: a.read()["phase"] for tier, a in apps.items()}

        checked_at: list[float] = []

        def all_scraped() -> bool:
            now = time.time()
            checked_at.append(now)
            return requests_seen(now) == dict.fromkeys(TIERS, 2 * per_phase)

        wait_until(all_scraped, "the scrape after the second phase")
        at = checked_at[-1]
        # A scrape stamped before `at` may still be in flight: let it land, so that every query
        # below sees the same samples.
        time.sleep(1.5)

        increases = prom.query("sum by (instance) (increase(gcp_gemini_requests_total[5m]))", at)
        factor = {targets[dict(k)["instance"]]: v / per_phase for k, v in increases.items()}
        assert set(factor) == set(TIERS)
        assert all(1 <= f < 5 for f in factor.values()), factor
        run = Run(
            cost={t: second[t]["cost"] for t in TIERS},
            list_cost={t: second[t]["list_cost"] for t in TIERS},
            batch_cost={t: second[t]["batch_cost"] for t in TIERS},
            batch_list_cost={t: second[t]["batch_list_cost"] for t in TIERS},
            factor=factor,
            fresh=time.monotonic() - started < 55,
        )
        assert sorted(run.priced()) == [(t, m) for t in TIERS for m in (FLASH, PRO)]

        problems: list[str] = []
        for key, expr in dashboard_queries().items():
            got = prom.query(fill_variables(expr), at)
            problems += compare(f"panel {key}", got, DASHBOARD_EXPECTATIONS[key](run))
        for name, expr in alert_rules().items():
            measure, op, threshold = split_alert(expr)
            want = ALERT_EXPECTATIONS[name](run)
            problems += compare(f"alert {name} measure", prom.query(measure, at), want)
            firing = prom.query(expr, at)
            problems += compare(
                f"alert {name}", firing, {k: v for k, v in want.items() if k in firing}
            )
            if set(firing) != ALERTS_FIRING[name]:
                problems.append(f"alert {name} fires for {firing}, expected {ALERTS_FIRING[name]}")
            if any(not op(v, threshold) for v in firing.values()):
                problems.append(f"alert {name} returned values short of its threshold: {firing}")
        for variable in dashboard()["templating"]["list"]:
            if variable["type"] != "query":
                continue
            match = LABEL_VALUES.match(fill_variables(variable["query"]))
            assert match, variable["query"]
            values = prom.get(
                f"/api/v1/label/{match['label']}/values",
                **{"match[]": match["selector"], "start": at - WINDOW_SECONDS, "end": at},
            )
            if set(values) != VARIABLE_VALUES[variable["name"]]:
                problems.append(f"variable {variable['name']}: {values}")
        assert not problems, "\n".join(problems)

        # Prometheus itself evaluates the rule file without errors.
        def rules() -> list[dict[str, Any]]:
            groups = prom.get("/api/v1/rules")["groups"]
            return [r for g in groups for r in g["rules"]]

        wait_until(lambda: all(r["health"] != "unknown" for r in rules()), "rule evaluation")
        health = {r["name"]: r["health"] for r in rules()}
        assert set(alert_rules()) | set(alert_rules(fleet=True)) == set(health)
        assert {name: health[name] for name in alert_rules()} == dict.fromkeys(alert_rules(), "ok")
        for a in apps.values():
            assert a.proc.stdin is not None
            a.proc.stdin.close()
