"""The gradient screen against the exact grid on the shared PilotSets: how well its first-order
estimate ranks the N² cells, and what it costs per item against the full grid.

For each PilotSet with options (XNLI, GlobalOpinionQA; XQuAD's answers are text, which the screen
does not score) and each site, on the same machine and model, side by side:

* the screen of every item (`xtl.screen`: one source pass, one target forward and backward);
* the exact full grid (`xtl.sweep(mode="logits")`, first-token statistics of every cell);
* the screened sweep (`xtl.sweep(mode="logits", screen=K)`: the screen, then K exact cells);

then per item the Spearman correlation of estimate and exact change of the gold margin, whether
the exact best cell and a right-answer cell are among the K best-estimated, and the share of the
right cells found (right recall@K = right cells in the K / min(K, right cells)).

    python benchmarks/screen.py --data-root ../shared/data [--limit 1] [--k 5 20] [--sites ...]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("xnli", "globalopinionqa")
SITES = ("attn", "mlp", "block", "attn-authors", "heads:0")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=os.environ.get("XTL_DATA", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--model", default="gemma-3-270m-q4km")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--limit", type=int, default=1, help="items per language")
    ap.add_argument("--items", type=int, default=None, help="at most this many items per task (the first languages)")
    ap.add_argument("--time-k", type=int, default=None, help="time the screened sweep of this K only (default: every K)")
    ap.add_argument("--k", type=int, nargs="+", default=[5, 20], help="cells run exactly per item")
    ap.add_argument("--tasks", nargs="+", default=list(TASKS))
    ap.add_argument("--sites", nargs="+", default=list(SITES))
    args = ap.parse_args()

    import numpy as np

    import xtl
    from xtl.analysis.grids import dense_array
    from xtl.analysis.screened import margin_changes, screen_quality
    from xtl.tasks import get_task

    model = xtl.load_model(args.model, device="cpu", backend=args.backend)
    n = model.cfg.n_layers
    print(f"{args.model} ({model.cfg.n_layers} layers, backend {getattr(model, 'backend', 'hooked')}, "
          f"{model.cfg.dtype}, CPU, {os.cpu_count()} cores); {args.limit} item(s) per language")
    timed = [args.time_k] if args.time_k else args.k
    head = (f"| task | site | items | Spearman ρ | " + " | ".join(
        f"best@{k} | right@{k} | right recall@{k}" for k in args.k) +
        " | screen s/item | full grid s/item | " + " | ".join(f"screen={k} sweep s/item" for k in timed) +
        " | full ÷ screen |")
    rows = []
    for task in args.tasks:
        items = xtl.load_task(task, limit=args.limit, data_root=args.data_root)[:args.items]
        cands = list(get_task(task).candidates)
        for site in args.sites:  # one item of each first, so that no timing pays a first call's costs
            xtl.screen(model, items[:1], site=site, candidates=cands, progress=False)
            xtl.sweep(model, items[:1], site=site, mode="logits", candidates=cands, tgt_layers=[0], progress=False)
            t = time.perf_counter()
            res = xtl.screen(model, items, site=site, candidates=cands, progress=False)
            screen_s = time.perf_counter() - t
            t = time.perf_counter()
            full = xtl.sweep(model, items, site=site, mode="logits", candidates=cands, progress=False)
            full_s = time.perf_counter() - t
            swept = []
            for k in timed:
                t = time.perf_counter()
                xtl.sweep(model, items, site=site, mode="logits", candidates=cands, screen=k, progress=False)
                swept.append(time.perf_counter() - t)
            ch = margin_changes(full)
            exact = dense_array(ch, "exact_change", res.items, range(n), range(n))
            right = dense_array(ch, "right", res.items, range(n), range(n)) > 0
            cells = [screen_quality(res.estimate, exact, right, k).summary() for k in args.k]
            m = len(items)
            rho = cells[0]["spearman"]
            quality = " | ".join(f"{c[f'best@{k}']:.2f} | {c[f'right@{k}']:.2f} | {c[f'right recall@{k}']:.2f}"
                                 for k, c in zip(args.k, cells))
            row = (f"| {task} | {site} | {m} | {rho:.2f} | {quality} | {screen_s / m:.2f} | {full_s / m:.2f} | "
                   + " | ".join(f"{s / m:.2f}" for s in swept) + f" | {full_s / screen_s:.1f}× |")
            rows.append(row)
            print(row, flush=True)
            van = full[full["is_vanilla"]].set_index("item_key").loc[res.items, "gold_margin"].to_numpy() > 0
            fixable = ~van & right.any(axis=(1, 2))
            fixed = {k: screen_quality(res.estimate[fixable], exact[fixable], right[fixable], k).summary()[f"right@{k}"]
                     for k in args.k} if fixable.any() else {}
            print(f"   vanilla right {van.mean():.2f}; items with a right cell {right.any(axis=(1, 2)).mean():.2f}; "
                  f"right cells per item {right.sum(axis=(1, 2)).mean():.1f} of {n * n}; vanilla-wrong items "
                  f"with a right cell: {int(fixable.sum())}, one among the K best-estimated: "
                  + ", ".join(f"K={k} {v:.2f}" for k, v in fixed.items()), flush=True)
    print()
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
