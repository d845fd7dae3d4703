"""What the instrumentation costs a generate_content call: ``python benchmarks/run.py [--quick]``.

One run measures, as differences against the same client uninstrumented ("bare"):

* per-call overhead of generate_content, sync and async, and of a 429 answer;
* per-chunk overhead of streaming: the slope between a 1-chunk and an N-chunk stream, over HTTP
  (SSE through the SDK) and over chunks parsed once (no per-chunk SDK work to hide it);
* the time ``import`` + ``instrument()`` adds to start-up, in fresh subprocesses;
* memory (RSS and live Python objects) over 100k calls;
* per Live API message and per streamed Interactions API event, by their own scripts
  (live_messages.py, interactions_chunk.py) in processes of their own.

Each variant (bare; "floor", the least a semconv instrumentation must do, see floor.py; ours;
peers in other virtualenvs via ``--peer``) runs in its own worker process (worker.py) with the
same OpenTelemetry SDK set-up: a TracerProvider with a BatchSpanProcessor to an exporter that
keeps nothing, a MeterProvider with an InMemoryMetricReader. Calls go to an in-process httpx
MockTransport (no network noise) and to the loopback fake server (testing/fake_gemini.py).
Timed blocks run one at a time, interleaved (bare, floor, ours... rotating), and each overhead
is the median and IQR over rounds of the paired difference with the same round's bare block.

Peers: ``--peer otel-contrib=/tmp/venv-otel/bin/python`` (or GEMINI_BENCH_PEERS, comma
separated); the venv needs google-genai, the OpenTelemetry SDK and the peer. Known names:
otel-contrib, traceloop, openinference, openlit; any other as ``name=python=module:Class``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bodies  # noqa: E402

from opentelemetry.instrumentation.gemini.testing.fake_gemini import (  # noqa: E402
    FakeGemini,
    Reply,
)

PEERS = {
    "otel-contrib": "opentelemetry.instrumentation.google_genai:GoogleGenAiSdkInstrumentor",
    "traceloop": "opentelemetry.instrumentation.google_generativeai:GoogleGenerativeAiInstrumentor",
    "openinference": "openinference.instrumentation.google_genai:GoogleGenAIInstrumentor",
    "openlit": "openlit.instrumentation.google_ai_studio:GoogleAIStudioInstrumentor",
}
SCENARIOS = {  # name -> (row label, transports it runs on)
    "sync": ("generate_content, sync", ("inproc", "loopback")),
    "async": ("generate_content, async", ("inproc", "loopback")),
    "sync_429": ("generate_content -> 429", ("inproc", "loopback")),
    "stream_1": ("stream, 1 chunk", ("inproc", "loopback")),
    "stream_n": ("stream, {chunks} chunks", ("inproc", "loopback")),
    "parsed_1": ("parsed stream, 1 chunk", ("inproc",)),
    "parsed_n": ("parsed stream, {parsed_chunks} chunks", ("inproc",)),
    "embed": ("embed_content, sync", ("inproc", "loopback")),
}
# Targets, checked in the same run.
MAX_SYNC_RATIO = 1.3  # our sync overhead / the floor's
MAX_US_PER_CHUNK = 1.0
MAX_STARTUP_MS = 30.0
MEMORY_NOISE_MIB = 1.0  # RSS growth beyond bare's that still counts as flat
MEMORY_NOISE_OBJECTS = 100  # live objects beyond bare's
# Timed workers share one CPU (only one runs at a time) and run.py, with the loopback server,
# keeps to another: no migrations between blocks, and the server never competes with a worker.
_CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
WORKER_CPU = _CPUS[-1] if len(_CPUS) >= 2 else None


# The scenarios the targets are checked on get more rounds: a ratio of two medians needs them.
TARGET_SCENARIOS = ("sync", "parsed_1", "parsed_n")


@dataclass(frozen=True)
class Config:
    rounds: int
    target_rounds: int  # for TARGET_SCENARIOS
    block_seconds: float
    startup_runs: int
    memory_calls: int
    memory_every: int
    processes: int  # worker processes per variant; rounds rotate over them
    chunks: int = 20
    parsed_chunks: int = 1000
    transports: tuple[str, ...] = ("inproc", "loopback")
    scenarios: tuple[str, ...] = tuple(SCENARIOS)


# ~3-4 minutes and ~1.5-2.5 minutes on a 2-CPU machine; ~1.5 min of the first: 100k-call memory.
FULL = Config(
    rounds=101,
    target_rounds=451,
    block_seconds=0.006,
    startup_runs=9,
    memory_calls=100_000,
    memory_every=10_000,
    processes=6,
)
QUICK = Config(
    rounds=41,
    target_rounds=121,
    block_seconds=0.004,
    startup_runs=5,
    memory_calls=20_000,
    memory_every=4_000,
    processes=3,
)


@dataclass
class Variant:
    name: str
    python: str
    kind: str  # bare, floor, ours, peer
    peer: str | None = None
    proc: subprocess.Popen[str] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def start(self, loopback_url: str, cfg: Config) -> None:
        cmd = [self.python, str(HERE / "worker.py"), "--variant", self.kind]
        cmd += ["--loopback-url", loopback_url, "--chunks", str(cfg.chunks)]
        cmd += ["--parsed-chunks", str(cfg.parsed_chunks)]
        if WORKER_CPU is not None:
            cmd += ["--cpu", str(WORKER_CPU), "--start-cpus", ",".join(map(str, _CPUS))]
        if self.peer:
            cmd += ["--peer", self.peer]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )

    def send(self, **cmd: Any) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")

    def receive(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.name} exited (code {self.proc.wait()})")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"worker {self.name}: {reply['error']}")
        return reply

    def ask(self, **cmd: Any) -> dict[str, Any]:
        self.send(**cmd)
        return self.receive()

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            self.send(op="exit")
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


# --- statistics ---------------------------------------------------------------------------------


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def fmt(values: list[float], digits: int = 1) -> str:
    q1, med, q3 = quartiles(values)
    return f"{med:.{digits}f} [{q1:.{digits}f}, {q3:.{digits}f}]"


def median(values: list[float]) -> float:
    return statistics.median(values)


# --- timing -------------------------------------------------------------------------------------

# clock ("cpu" or "wall") -> transport -> scenario -> variant -> us per call, one per round
Timings = dict[str, dict[str, dict[str, dict[str, list[float]]]]]


def script_fake(fake: FakeGemini, scenario: str, n: int, cfg: Config) -> None:
    """Queue the loopback server's answers for one block (the in-process transport reads the
    client's headers instead)."""
    fake.reset()
    reply = {
        "stream_1": Reply(chunks=1, text=bodies.TEXT),
        "stream_n": Reply(chunks=cfg.chunks, text=bodies.TEXT),
        "sync_429": Reply(status=429),
    }.get(scenario, Reply(text=bodies.TEXT, usage=bodies.USAGE))
    fake.enqueue(None, *[reply] * n)


def run_block(
    variant: Variant, fake: FakeGemini, transport: str, scenario: str, n: int, cfg: Config
) -> dict[str, float]:
    """One timed block; microseconds per call by clock: process CPU time and wall clock."""
    if transport == "loopback":
        script_fake(fake, scenario, n, cfg)
    reply = variant.ask(op="block", scenario=scenario, transport=transport, n=n)
    return {"cpu": reply["cpu"] / n * 1e6, "wall": reply["seconds"] / n * 1e6}


def time_scenarios(
    workers: dict[str, list[Variant]], fake: FakeGemini, cfg: Config, log: Callable[[str], None]
) -> Timings:
    """Rounds of one block per variant, in rotating order. Each variant has several worker
    processes and a round uses the same-numbered one of each, in turn: a process's own speed
    (memory layout, hash seed) differs from another's by several percent, which one process
    per variant would carry into every round."""
    out: Timings = {"cpu": {}, "wall": {}}
    names = list(workers)
    processes = min(len(ws) for ws in workers.values())
    for transport in cfg.transports:
        for scenario in cfg.scenarios:
            if transport not in SCENARIOS[scenario][1]:
                continue
            t0 = time.perf_counter()
            # Warm every worker up; size blocks so the slowest variant's last ~block_seconds.
            for ws in workers.values():
                for v in ws:
                    run_block(v, fake, transport, scenario, 15, cfg)
            slowest = max(
                run_block(ws[0], fake, transport, scenario, 30, cfg)["wall"]
                for ws in workers.values()
            )
            n = max(3, int(cfg.block_seconds * 1e6 / slowest))
            per: dict[str, dict[str, list[float]]] = {c: {name: [] for name in names} for c in out}
            rounds = cfg.target_rounds if scenario in TARGET_SCENARIOS else cfg.rounds
            for r in range(rounds):
                w = r % processes
                k = (r // processes) % len(names)
                for name in names[k:] + names[:k]:
                    block = run_block(workers[name][w], fake, transport, scenario, n, cfg)
                    for clock, value in block.items():
                        per[clock][name].append(value)
            for clock in out:
                out[clock].setdefault(transport, {})[scenario] = per[clock]
            spent = time.perf_counter() - t0
            log(f"{transport:8s} {scenario:9s} {n:4d} calls/block  {spent:5.1f} s")
    return out


def overheads(per: dict[str, list[float]], name: str) -> list[float]:
    return [v - b for v, b in zip(per[name], per["bare"], strict=True)]


def ratio_interval(
    ours: list[float], floor: list[float], processes: int, resamples: int = 2000
) -> tuple[float, float]:
    """95% bootstrap interval of median(ours) / median(floor): how far this run's ratio could
    be from the machine's. Round r ran on worker process r % processes of each variant, and a
    process's own speed is luck of its own (memory layout, hash seed: a few us a call), so the
    resampling is two-level: processes, then rounds (each round's pair together) within each."""
    rng = random.Random(7)  # the same data gives the same interval
    by_process = [range(w, len(ours), processes) for w in range(processes)]
    by_process = [rounds for rounds in by_process if len(rounds)]
    ratios = []
    for _ in range(resamples):
        picks = [
            i
            for rounds in rng.choices(by_process, k=len(by_process))
            for i in rng.choices(rounds, k=len(rounds))
        ]
        floor_median = median([floor[i] for i in picks])
        if floor_median > 0:
            ratios.append(median([ours[i] for i in picks]) / floor_median)
    if not ratios:
        return float("inf"), float("inf")
    ratios.sort()
    return ratios[int(0.025 * len(ratios))], ratios[int(0.975 * len(ratios)) - 1]


def per_chunk(
    by_scenario: dict[str, dict[str, list[float]]], name: str, one: str, many: str, chunks: int
) -> list[float] | None:
    """Per-round slope of the overhead between a 1-chunk and a ``chunks``-chunk stream."""
    if one not in by_scenario or many not in by_scenario:
        return None
    ones, manys = overheads(by_scenario[one], name), overheads(by_scenario[many], name)
    return [(m - o) / (chunks - 1) for m, o in zip(manys, ones, strict=True)]


# --- start-up -----------------------------------------------------------------------------------

STARTUP_PROBE = r"""
import sys, time
import google.genai
from google.genai import types
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
if sys.argv[2] == "preloaded":
    import opentelemetry.instrumentation.instrumentor  # opentelemetry-instrument loads it
tp = TracerProvider()
mp = MeterProvider(metric_readers=[InMemoryMetricReader()])
spec = sys.argv[1]
t0 = time.perf_counter()
if spec == "ours":
    from opentelemetry.instrumentation.gemini import GeminiInstrumentor
    GeminiInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
else:
    import importlib
    module, _, attr = spec.partition(":")
    instrumentor = getattr(importlib.import_module(module), attr)()
    instrumentor.instrument(tracer_provider=tp, meter_provider=mp, skip_dep_check=True)
t1 = ready = time.perf_counter()
if spec == "ours":  # prices load in the background: when could the first call be priced?
    from opentelemetry.instrumentation.gemini import instrumentor
    instrumentor.active_recorder.prices.wait()
    ready = time.perf_counter()
print((t1 - t0) * 1e3, (ready - t0) * 1e3)
"""


def measure_startup(
    variants: list[Variant], cfg: Config, log: Callable[[str], None]
) -> dict[str, dict[str, dict[str, list[float]]]]:
    """variant -> baseline -> {"instrument": ms, "ready": ms}, one value per fresh process.

    The timed part is import + instrument() in a process that has already imported google-genai
    and the OpenTelemetry SDK ("app"), or those plus opentelemetry-instrumentation's base class
    ("preloaded": what ``opentelemetry-instrument`` has loaded before it instruments). Bytecode
    is cached, as for an installed package, in a private PYTHONPYCACHEPREFIX warmed by one
    discarded run (this repository's environment sets PYTHONDONTWRITEBYTECODE).
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    out: dict[str, dict[str, dict[str, list[float]]]] = {}
    targets = [v for v in variants if v.kind in ("ours", "peer")]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gemini-bench-pyc-") as pyc:
        env["PYTHONPYCACHEPREFIX"] = pyc
        for baseline in ("app", "preloaded"):
            for v in targets:
                out.setdefault(v.name, {})[baseline] = {"instrument": [], "ready": []}
            for r in range(cfg.startup_runs + 1):
                for v in targets:
                    spec = "ours" if v.kind == "ours" else (v.peer or "")
                    result = subprocess.run(
                        [v.python, "-c", STARTUP_PROBE, spec, baseline],
                        capture_output=True,
                        text=True,
                        env=env,
                        timeout=120,
                    )
                    if result.returncode != 0:
                        raise RuntimeError(f"start-up probe {v.name}: {result.stderr[-2000:]}")
                    instrument_ms, ready_ms = map(float, result.stdout.split()[-2:])
                    if r:  # the first run compiles bytecode
                        out[v.name][baseline]["instrument"].append(instrument_ms)
                        out[v.name][baseline]["ready"].append(ready_ms)
    log(
        f"start-up  {cfg.startup_runs} fresh processes per variant and baseline  "
        f"{time.perf_counter() - t0:5.1f} s"
    )
    return out


# --- memory -------------------------------------------------------------------------------------


def measure_memory(
    variants: list[Variant], cfg: Config, log: Callable[[str], None]
) -> dict[str, dict[str, Any]]:
    """Bare and ours, in parallel (time does not matter here): RSS and live Python objects."""
    chosen = [v for v in variants if v.kind in ("bare", "ours")]
    t0 = time.perf_counter()
    warmup = min(5_000, cfg.memory_calls // 10)
    for v in chosen:
        v.send(op="memory", n=cfg.memory_calls, warmup=warmup, every=cfg.memory_every)
    out = {v.name: v.receive() for v in chosen}
    spent = time.perf_counter() - t0
    log(f"memory    {cfg.memory_calls} calls after {warmup} warm-up  {spent:5.1f} s")
    return out


def growth(m: dict[str, Any]) -> tuple[float, int]:
    """RSS (MiB) and live objects gained between the first and the last sample."""
    return (m["rss"][-1] - m["rss"][0]) / 2**20, m["objects"][-1] - m["objects"][0]


# --- report -------------------------------------------------------------------------------------


def pkg_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "-"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> str:
    packages = ", ".join(
        f"{p} {pkg_version(p)}"
        for p in ("google-genai", "opentelemetry-sdk", "opentelemetry-instrumentation-gemini")
    )
    return (
        f"{time.strftime('%Y-%m-%d')}; {os.cpu_count()} CPUs ({cpu_model()}); "
        f"Python {platform.python_version()}; {packages}"
    )


def measure_surfaces(log: Callable[[str], None]) -> dict[str, float]:
    """Ours per Live API message (audio chunk; turn end with usage, and that usage's later
    drain) and per streamed Interactions API event: each script's own numbers (``--json``)."""
    out: dict[str, float] = {}
    for script in ("live_messages.py", "interactions_chunk.py"):
        log(f"{script} ...")
        proc = subprocess.run(
            [sys.executable, str(HERE / script), "--json"],
            capture_output=True,
            text=True,
            check=True,
            cwd=HERE,
        )
        out.update(json.loads(proc.stdout.splitlines()[-1]))
    return out


def report(
    variants: list[Variant],
    timings: Timings,
    startup: dict[str, dict[str, dict[str, list[float]]]],
    memory: dict[str, dict[str, Any]],
    cfg: Config,
    clock: str,
    surfaces: dict[str, float] | None = None,
) -> tuple[str, bool]:
    names = [v.name for v in variants]
    others = names[1:]
    what = "process CPU time" if clock == "cpu" else "wall-clock time"
    lines = [
        machine(),
        f"us per call ({what}); overhead = median [Q1, Q3] over interleaved rounds of "
        f"(variant - bare) in the same round: {cfg.target_rounds} rounds for sync and parsed "
        f"streams (the targets), {cfg.rounds} for the others, rotating over "
        f"{cfg.processes} worker processes per variant",
        "",
    ]
    fill = {"chunks": cfg.chunks, "parsed_chunks": cfg.parsed_chunks}
    for transport, by_scenario in timings[clock].items():
        title = {"inproc": "in-process transport", "loopback": "loopback fake server"}[transport]
        header = f"{title:34s}{'bare':>9s}" + "".join(f"{n + ' overhead':>27s}" for n in others)
        lines += [header, "-" * len(header)]
        for scenario, per in by_scenario.items():
            row = f"{SCENARIOS[scenario][0].format(**fill):34s}{median(per['bare']):9.1f}"
            row += "".join(f"{fmt(overheads(per, n)):>27s}" for n in others)
            lines.append(row)
        for label, one, many, chunks in (
            ("per chunk, SSE", "stream_1", "stream_n", cfg.chunks),
            ("per chunk, parsed", "parsed_1", "parsed_n", cfg.parsed_chunks),
        ):
            slopes = {n: per_chunk(by_scenario, n, one, many, chunks) for n in others}
            if all(s is not None for s in slopes.values()):
                row = f"{label:34s}{'':9s}"
                row += "".join(f"{fmt(s, 2):>27s}" for s in slopes.values() if s is not None)
                lines.append(row)
        lines.append("")

    if startup:
        lines.append("start-up: import + instrument(), ms, median [Q1, Q3] over fresh processes")
        for name, by_baseline in startup.items():
            for baseline, values in by_baseline.items():
                after = (
                    "after google-genai + OTel SDK imports"
                    if baseline == "app"
                    else "... and opentelemetry.instrumentation (as opentelemetry-instrument)"
                )
                line = f"  {name:14s}{fmt(values['instrument']):>20s}  {after}"
                if values["ready"] != values["instrument"]:
                    line += f"; prices ready at {fmt(values['ready'])}"
                lines.append(line)
        lines.append("")

    if memory:
        lines.append(f"memory: growth over {cfg.memory_calls} sync calls after warm-up")
        for name, m in memory.items():
            rss, objects = growth(m)
            lines.append(f"  {name:14s}RSS {rss:+6.2f} MiB   live objects {objects:+d}")
        lines.append("")

    if surfaces:
        lines += [
            "per message / event, ours minus bare (their own scripts)",
            f"  per Live API message, audio chunk       {surfaces['live_audio']:+.2f} us "
            "(live_messages.py, process CPU time)",
            f"  per Live API message, usage             {surfaces['live_usage']:+.2f} us "
            f"(+{surfaces['live_usage_drain']:.2f} us later, at the next collection)",
            f"  per streamed Interactions API event     {surfaces['interactions_event']:+.2f} us "
            "(interactions_chunk.py, best of 7, wall-clock)",
            "",
        ]

    checks: list[tuple[str, bool]] = []
    if surfaces:
        worst_live = max(surfaces["live_audio"], surfaces["live_usage"])
        checks += [
            (
                f"{worst_live:.2f} us per Live API message (<= {MAX_US_PER_CHUNK})",
                worst_live <= MAX_US_PER_CHUNK,
            ),
            (
                f"{surfaces['interactions_event']:.2f} us per streamed Interactions API event "
                f"(<= {MAX_US_PER_CHUNK})",
                surfaces["interactions_event"] <= MAX_US_PER_CHUNK,
            ),
        ]
    for transport, by_scenario in timings[clock].items():
        if {"floor", "ours"} <= set(names) and "sync" in by_scenario:
            ours = median(overheads(by_scenario["sync"], "ours"))
            floor = median(overheads(by_scenario["sync"], "floor"))
            ratio = ours / floor if floor > 0 else float("inf")
            low, high = ratio_interval(
                overheads(by_scenario["sync"], "ours"),
                overheads(by_scenario["sync"], "floor"),
                cfg.processes,
            )
            checks.append(
                (
                    f"{transport}: sync overhead {ours:.1f} us = {ratio:.2f} x the floor's "
                    f"{floor:.1f} us (95% interval {low:.2f}-{high:.2f}; <= {MAX_SYNC_RATIO})",
                    ratio <= MAX_SYNC_RATIO,
                )
            )
        slope = per_chunk(by_scenario, "ours", "parsed_1", "parsed_n", cfg.parsed_chunks)
        if slope is not None:
            chunk = median(slope)
            checks.append(
                (
                    f"{transport}: {chunk:.2f} us per streamed chunk (<= {MAX_US_PER_CHUNK})",
                    chunk <= MAX_US_PER_CHUNK,
                )
            )
    if "ours" in startup:
        preloaded = median(startup["ours"]["preloaded"]["instrument"])
        app = median(startup["ours"]["app"]["instrument"])
        checks.append(
            (
                f"start-up: {preloaded:.1f} ms under opentelemetry-instrument, {app:.1f} ms in "
                f"an app that has not loaded opentelemetry.instrumentation (<= {MAX_STARTUP_MS})",
                preloaded <= MAX_STARTUP_MS,
            )
        )
    if "ours" in memory and "bare" in memory:
        (ours_rss, ours_objects), (bare_rss, bare_objects) = (
            growth(memory["ours"]),
            growth(memory["bare"]),
        )
        extra_rss, extra_objects = ours_rss - bare_rss, ours_objects - bare_objects
        checks.append(
            (
                f"memory: {extra_rss:+.2f} MiB RSS, {extra_objects:+d} live objects beyond bare "
                f"over {cfg.memory_calls} calls (flat: <= {MEMORY_NOISE_MIB} MiB, "
                f"<= {MEMORY_NOISE_OBJECTS} objects)",
                extra_rss <= MEMORY_NOISE_MIB and extra_objects <= MEMORY_NOISE_OBJECTS,
            )
        )
    lines.append("targets")
    lines += [f"  [{'PASS' if passed else 'FAIL'}] {text}" for text, passed in checks]
    return "\n".join(lines), all(passed for _, passed in checks)


# --- main ---------------------------------------------------------------------------------------


def variants_line(workers: dict[str, list[Variant]]) -> list[str]:
    return [f"{name} x{len(ws)}" for name, ws in workers.items()]


def parse_peers(specs: list[str]) -> list[Variant]:
    out = []
    for spec in specs:
        name, _, rest = spec.partition("=")
        python, _, target = rest.partition("=")
        target = target or PEERS.get(name, "")
        if not python or not target:
            raise SystemExit(f"--peer {spec!r}: expected NAME=PYTHON (NAME one of {list(PEERS)})")
        out.append(Variant(name, python, "peer", target))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, calls (~1.5-2.5 min)")
    parser.add_argument(
        "--peer",
        action="append",
        default=[p for p in os.environ.get("GEMINI_BENCH_PEERS", "").split(",") if p],
        help="NAME=PYTHON[=module:Class]: a peer instrumentation's venv (repeatable)",
    )
    parser.add_argument("--no-floor", action="store_true", help="skip the floor variant")
    parser.add_argument("--no-loopback", action="store_true", help="in-process transport only")
    parser.add_argument("--scenarios", help=f"comma separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per scenario")
    parser.add_argument("--block-seconds", type=float, help="length of one timed block")
    parser.add_argument("--processes", type=int, help="worker processes per variant")
    parser.add_argument("--no-startup", action="store_true")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument(
        "--no-surfaces",
        action="store_true",
        help="skip the per Live message and per Interactions event scripts (~20 s)",
    )
    parser.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="what the tables show: process CPU time (default; on a shared machine it leaves "
        "out time spent waiting for a core) or wall-clock time; the JSON has both",
    )
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)

    cfg = QUICK if args.quick else FULL
    if args.no_loopback:
        cfg = dataclasses.replace(cfg, transports=("inproc",))
    if args.rounds:
        cfg = dataclasses.replace(cfg, rounds=args.rounds, target_rounds=args.rounds)
    if args.block_seconds:
        cfg = dataclasses.replace(cfg, block_seconds=args.block_seconds)
    if args.processes:
        cfg = dataclasses.replace(cfg, processes=max(1, args.processes))
    if args.scenarios:
        chosen = tuple(args.scenarios.split(","))
        unknown = set(chosen) - set(SCENARIOS)
        if unknown:
            parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
        cfg = dataclasses.replace(cfg, scenarios=chosen)
    started = time.perf_counter()
    if WORKER_CPU is not None:
        os.sched_setaffinity(0, set(_CPUS) - {WORKER_CPU})

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:5.0f} s] {msg}", file=sys.stderr, flush=True)

    me = sys.executable
    variants = [Variant("bare", me, "bare")]
    if not args.no_floor:
        variants.append(Variant("floor", me, "floor"))
    variants.append(Variant("ours", me, "ours"))
    variants += parse_peers(args.peer)
    # variants[i] is its variant's first worker, the one memory is measured on.
    workers = {
        v.name: [v] + [dataclasses.replace(v, info={}) for _ in range(cfg.processes - 1)]
        for v in variants
    }
    every = [w for ws in workers.values() for w in ws]

    with FakeGemini(max_lifetime=1800) as fake:
        try:
            for w in every:
                w.start(fake.url, cfg)
            for w in every:
                w.info = w.receive()
            log(f"workers ready: {', '.join(variants_line(workers))}")
            timings = time_scenarios(workers, fake, cfg, log)
            for w in every:  # each instrumented worker recorded what it was timed on
                if w.kind != "bare" and not w.ask(op="stats").get("spans"):
                    raise RuntimeError(f"{w.name} recorded no spans")
            memory = {} if args.no_memory else measure_memory(variants, cfg, log)
        finally:
            for w in every:
                w.stop()
    startup = {} if args.no_startup else measure_startup(variants, cfg, log)
    surfaces = {} if args.no_surfaces else measure_surfaces(log)

    text, ok = report(variants, timings, startup, memory, cfg, args.clock, surfaces)
    log(f"done in {time.perf_counter() - started:.0f} s")
    print(text)
    if args.json:
        raw = {"machine": machine(), "config": dataclasses.asdict(cfg), "timings": timings}
        raw.update(startup=startup, memory=memory, surfaces=surfaces)
        args.json.write_text(json.dumps(raw, indent=1))
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
