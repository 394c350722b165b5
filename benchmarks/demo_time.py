"""`xtl demo` end to end, as a new user runs it: wall time of the whole command in a fresh process.

Runs ``python -m xtl.cli demo`` (the console script's entry point) once with the demo set and
once with ``--no-set`` (the single question alone), side by side; with ``--fresh`` on an empty
cache folder (``$XTL_CACHE``), so that the demo model's conversion is included. Prints each
wall time, their difference (what the demo set costs), the machine's cores and its load average
before and after (a busy machine slows both runs alike; say so beside any time you report).

    python benchmarks/demo_time.py [--fresh] [--repeats 1] [--extra "--items 6"]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time


def run(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "xtl.cli", "demo", *args], env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"xtl demo {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fresh", action="store_true", help="an empty $XTL_CACHE per run: the conversion included")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--extra", default="", help="more `xtl demo` arguments, e.g. \"--items 6 --langs de zh\"")
    args = ap.parse_args()
    out = tempfile.mkdtemp(prefix="xtl-demo-time-")
    load_before = os.getloadavg()
    times: dict[str, list[float]] = {"demo": [], "demo --no-set": []}
    for _ in range(args.repeats):
        for name, more in (("demo", []), ("demo --no-set", ["--no-set"])):
            env = dict(os.environ)
            if args.fresh:
                env["XTL_CACHE"] = tempfile.mkdtemp(prefix="xtl-cache-", dir=out)
            times[name].append(run(["--out", os.path.join(out, "page.html"), *more, *shlex.split(args.extra)], env))
    best = {k: min(v) for k, v in times.items()}
    print(json.dumps({"cores": os.cpu_count(), "fresh_cache": args.fresh, "extra": args.extra,
                      "load_average_before": [round(x, 2) for x in load_before],
                      "load_average_after": [round(x, 2) for x in os.getloadavg()],
                      "seconds": {k: [round(x, 1) for x in v] for k, v in times.items()},
                      "demo_set_costs_s": round(best["demo"] - best["demo --no-set"], 1)}, indent=1))


if __name__ == "__main__":
    main()
