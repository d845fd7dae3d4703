"""Where a variant's time goes: ``python benchmarks/profile_call.py ours [scenario] [calls]``.

Runs the worker's calls (in-process transport) under cProfile and prints the instrumentation's
and the OpenTelemetry SDK's functions by cumulative time, then everything by own time. Compare
``ours`` with ``floor`` and ``bare``. cProfile inflates small functions several times: use it to
see where time goes, and run.py to see how much.
"""

from __future__ import annotations

import cProfile
import pstats
import sys

from worker import Bench

INSTRUMENTATION = (
    r"instrumentation/gemini/|benchmarks/floor|opentelemetry/(sdk|trace|context|metrics)"
)


def main() -> None:
    variant = sys.argv[1] if len(sys.argv) > 1 else "ours"
    scenario = sys.argv[2] if len(sys.argv) > 2 else "sync"
    calls = int(sys.argv[3]) if len(sys.argv) > 3 else 3000
    bench = Bench(variant, None, None, chunks=20)
    run = bench.runner(scenario, "inproc")
    run(200)  # warm-up: first-call resolution, caches
    profiler = cProfile.Profile()
    profiler.enable()
    run(calls)
    profiler.disable()
    stats = pstats.Stats(profiler)
    print(f"=== {variant} / {scenario}: instrumentation and OTel SDK, by cumulative time")
    stats.sort_stats("cumtime").print_stats(INSTRUMENTATION, 40)
    print(f"=== {variant} / {scenario}: everything, by own time")
    stats.sort_stats("tottime").print_stats(25)
    bench.tracer_provider.shutdown()


if __name__ == "__main__":
    main()
