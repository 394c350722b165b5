"""What transplant variants cost next to the default sweep, side by side in one process.

Same model, same prompt pair (the built-in zh -> en pair), interleaved runs, medians; prints each
variant's seconds per item and its ratio to the default sweep (alpha 1, span 1, one position,
one source). An alpha axis of K values should cost at most K times one value (the item's
capture, prefix and vanilla passes are shared by every alpha).

    python benchmarks/variant_speed.py [--model gemma-3-270m-q4km] [--tgt-layers 6] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import xtl
from xtl.engine import sweep


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="gemma-3-270m-q4km")
    ap.add_argument("--site", default="mlp")
    ap.add_argument("--tgt-layers", type=int, default=6, help="target layers swept (every source layer each)")
    ap.add_argument("--max-new-tokens", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default=None)
    args = ap.parse_args()
    torch.manual_seed(0)
    model = xtl.load_model(args.model, device=args.device)
    pair = json.loads((Path(xtl.__file__).parent / "data" / "builtin_pair.json").read_text())
    n = model.cfg.n_layers
    tgts = list(range(0, n - 1, max(1, (n - 1) // args.tgt_layers)))[:args.tgt_layers]
    item = [xtl.Pair(pair["source"], pair["target"], "p", {"sources": {"zh": pair["source"], "en": pair["target"]}})]
    variants = {
        "default": {},
        "alpha 0.25": dict(alpha=0.25),
        "alpha 0.5": dict(alpha=0.5),
        "alpha axis 0.25 0.5 1": dict(alpha=[0.25, 0.5, 1.0]),
        "span 2": dict(span=2),
        "two sources": dict(source_langs=["zh", "en"]),
        "positions 2 (per-step path)": dict(positions=2),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(max(1, args.repeats)):
        for name, kw in variants.items():
            start = time.perf_counter()
            sweep(model, item, site=args.site, tgt_layers=tgts, max_new_tokens=args.max_new_tokens,
                  progress=False, **kw)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["default"])
    print(f"model {args.model} ({n} layers) on {model.cfg.device}, site {args.site}, target layers {tgts} x "
          f"{n} sources, {args.max_new_tokens} new tokens; medians of {args.repeats} interleaved runs")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:28s} {med:7.2f} s per item | {med / base:5.2f}x the default")
    alone = sum(statistics.median(times[k]) for k in ("alpha 0.25", "alpha 0.5", "default"))
    print(f"alpha axis of 3 / the 3 alphas run alone: {statistics.median(times['alpha axis 0.25 0.5 1']) / alone:.2f}x; "
          f"/ 3 x the default: {statistics.median(times['alpha axis 0.25 0.5 1']) / (3 * base):.2f}x")


if __name__ == "__main__":
    main()
