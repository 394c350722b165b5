"""How fast the linked explorer opens on a large run, and how big the report's click-through
makes the page: a synthetic evaluated 32 × 32 sweep of 1,000 items (1,025,000 rows), timed for
the report's embedded cell index, one cell's items (a click in Jupyter) and building the
Jupyter widget, side by side.

    python benchmarks/explore_speed.py [--items 1000] [--layers 32]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd


def synthetic(items: int, layers: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = items * layers * layers
    keys = np.array([f"x/{'de' if k % 2 else 'sw'}/{k}" for k in range(items)])
    answers = np.array(["(A) Support, because the question asks for it", "(B) Oppose", "(C) Neither, it depends",
                        "I would say (A)"])
    rest = pd.DataFrame({"item_key": np.repeat(keys, layers * layers),
                         "src_layer": np.tile(np.repeat(np.arange(layers), layers), items),
                         "tgt_layer": np.tile(np.tile(np.arange(layers), layers), items),
                         "is_vanilla": False, "correct": rng.random(n) < 0.35, "response": answers[rng.integers(0, 4, n)],
                         "margin": rng.random(n), "entropy": rng.random(n) * 3})
    van = pd.DataFrame({"item_key": keys, "src_layer": -1, "tgt_layer": -1, "is_vanilla": True,
                        "correct": rng.random(items) < 0.35, "response": answers[rng.integers(0, 4, items)],
                        "margin": rng.random(items), "entropy": rng.random(items) * 3})
    df = pd.concat([van, rest], ignore_index=True)
    df["lang"] = df["item_key"].str.split("/").str[1]
    df["group"] = np.where(df["lang"] == "de", "high", "low")
    df["gold"] = "A"
    df["site"] = "attn"
    df["n_layers"] = layers
    return df


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--layers", type=int, default=32)
    args = ap.parse_args()
    from xtl.analysis.cells import cell_index_json, cell_items
    from xtl.figures.report import PER_CELL

    df = synthetic(args.items, args.layers)
    print(f"{len(df):,} rows: {args.items} items × {args.layers}² configurations")
    t = time.perf_counter()
    embedded = cell_index_json(df, PER_CELL)
    index_s = time.perf_counter() - t
    t = time.perf_counter()
    cell_items(df, 3, 4)
    cell_s = time.perf_counter() - t
    widget_s = float("nan")
    try:
        import xtl
        from xtl.figures import explorer  # noqa: F401 - imports paid once per session, not per explorer

        t = time.perf_counter()
        xtl.explore(df)
        widget_s = time.perf_counter() - t
    except Exception as exc:  # noqa: BLE001 - the widget needs the notebook extra
        print(f"(widget not timed: {exc})")
    print(f"report click-through index: {index_s:.2f} s, {len(embedded) / 1e6:.2f} MB embedded "
          f"({PER_CELL} items per cell)")
    print(f"one cell's items (a click in Jupyter): {cell_s:.3f} s")
    print(f"Jupyter explorer built (heatmap widget): {widget_s:.2f} s")
    print(f"ratio index / one cell: {index_s / cell_s:.0f}x")


if __name__ == "__main__":
    main()
