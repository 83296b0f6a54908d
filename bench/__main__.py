"""`python -m bench [name ...]` (via ./bench/run.sh): run the benchmarks, print one table.

Each benchmark is a module bench/<name>.py with run() -> [Row]. A MISS is reported, not an
error: the exit status is non-zero only when a benchmark crashed."""
import importlib
import os
import platform
import sys
import time
import traceback

from .common import load_average, table

BENCHMARKS = ["tag_size", "first_paint", "eval_browser", "decide_python", "results_1m", "aa_peeking", "tag_serving",
              "collect", "store_outage", "redis_memory", "recs_offline", "adaptive_sim", "predict_auc"]


def main(argv):
    names = argv or BENCHMARKS
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    load = load_average()
    print(f"Vitrina benchmarks on {platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}"
          + (f", load average {load[0]:.2f} at start" if load else ""))
    rows, crashed = [], []
    started = time.monotonic()
    for name in names:
        print(f"\n== {name}", flush=True)
        t0 = time.monotonic()
        try:
            module = importlib.import_module(f"bench.{name}")
            got = module.run()
        except Exception:
            traceback.print_exc()
            crashed.append(name)
            continue
        rows += got
        print(table(got))
        print(f"  ({time.monotonic() - t0:.0f} s)", flush=True)
    print(f"\n== summary ({time.monotonic() - started:.0f} s)")
    print(table(rows) if rows else "(no results)")
    missed = [f"{r.bench}/{r.metric}" for r in rows if r.ok is False]
    print(f"\n{sum(r.ok is True for r in rows)} PASS, {len(missed)} MISS"
          + (f", {len(crashed)} crashed: {', '.join(crashed)}" if crashed else ""))
    load = load_average()
    if load and load[0] > (os.cpu_count() or 1):
        print(f"note: load average {load[0]:.2f} on {os.cpu_count()} cores at the end: other work shared the "
              "machine, so absolute figures are pessimistic (ratios share the same conditions)")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
