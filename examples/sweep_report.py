"""Sweep a few XNLI PilotSet items (attention site) on the demo model, score them, write a report.

Data: the authors' data/ folder (git clone https://github.com/YYF-Tommy/XTransplant), found through
$XTL_DATA or ../shared/data beside the project. Every third layer (7 × 7 configurations + vanilla for
4 items) keeps it small, though not to a minute: measured (demo model already converted, loading
included) 87 s and 326 s in two runs on a shared 2-core CPU with a load average of about 4, and 413 s
in an earlier trial on such a machine.
"""

import os
from pathlib import Path

import xtl
from xtl import analysis
from xtl.figures.report import build_report

root = Path(os.environ.get("XTL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
model = xtl.load_model("gemma-3-270m-q4km")
n = model.cfg.n_layers
layers = list(range(0, n, 3)) + [n - 1]
items = xtl.load_task("xnli", langs=["en", "sw"], limit=2, data_root=root)
df = xtl.sweep(model, items, site="attn", src_layers=layers, tgt_layers=layers, max_new_tokens=8,
               store="xnli-attn-store")          # resumable: run again and nothing is recomputed
ev = xtl.evaluate(df, items)
print(analysis.accuracy_table(ev, ("lang",)).round(1).to_string(index=False))
print(analysis.headline(xtl.grid(ev), "attn", n))
print("report:", build_report(ev, "xnli-attn-report.html"))
