"""This checkout's sweep speed against an earlier commit's, side by side on the same machine.

Checks the earlier commit out into a temporary git worktree and times both in alternating fresh
processes (``--rounds`` of each, so that a machine's drift falls on both alike): the demo model,
the built-in pair's full N x N grid at the MLP site, generate (20 new tokens) and logits mode.
Prints each round's configurations/s (wall and process CPU time), the medians, and this
checkout's rate over the earlier one's (1.00: the same; the bar the issues set is 0.95).

    python benchmarks/release_speed.py --base 30a1493 [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Run in each process: the model loaded once, each mode timed ``reps`` times, medians printed.
PROBE = """
import json, statistics, sys, time, warnings
warnings.filterwarnings("ignore")
import xtl
from xtl.engine import sweep
from xtl.tasks.registry import builtin_pair
m = xtl.load_model("gemma-3-270m-q4km", dtype="float32")
p, n, out = builtin_pair(), m.cfg.n_layers, {"file": xtl.__file__}
for mode, reps in (("logits", 9), ("generate", 3)):
    wall, cpu = [], []
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        sweep(m, [(p["source"], p["target"], "pair")], site="mlp", max_new_tokens=20, mode=mode, progress=False)
        wall.append(n * n / (time.perf_counter() - t)); cpu.append(n * n / (time.process_time() - c))
    out[mode] = [statistics.median(wall), statistics.median(cpu)]
print(json.dumps(out))
"""


def probe(code: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code)}
    proc = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, cwd=tempfile.gettempdir())
    if proc.returncode:
        raise SystemExit(f"the probe failed on {code}: {proc.stderr.strip()[-400:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if not out["file"].startswith(str(code)):
        raise SystemExit(f"xtl came from {out['file']}, not {code}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="the earlier commit (e.g. the last release's)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="xtl-base-")) / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-f", "--detach", str(base), args.base],
                   check=True, capture_output=True)
    runs: dict[str, list[dict]] = {"base": [], "head": []}
    try:
        for k in range(args.rounds):
            for name, code in (("head", ROOT), ("base", base)) if k % 2 else (("base", base), ("head", ROOT)):
                runs[name].append(probe(code))
                r = runs[name][-1]
                print(f"round {k + 1} {name}: logits {r['logits'][0]:.1f} cfg/s (cpu {r['logits'][1]:.1f}), "
                      f"generate {r['generate'][0]:.2f} cfg/s (cpu {r['generate'][1]:.2f})", flush=True)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], capture_output=True)
    for mode in ("logits", "generate"):
        med = {name: [statistics.median(r[mode][w] for r in rs) for w in (0, 1)] for name, rs in runs.items()}
        print(f"{mode:8s} base {med['base'][0]:7.2f} cfg/s  head {med['head'][0]:7.2f} cfg/s  "
              f"head/base wall {med['head'][0] / med['base'][0]:.2f}  cpu {med['head'][1] / med['base'][1]:.2f}")
    print(f"load average after: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
