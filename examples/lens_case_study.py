"""Logit lens of the built-in pair, vanilla vs transplanted, and which configurations answer right.

The case study sweeps all 324 configurations of the demo model (6 new tokens each). Measured
(model already converted, loading included): 266 s on a shared 2-core CPU with a load average of 4.5.
"""

import xtl
from xtl.figures.plots import save

model = xtl.load_model("gemma-3-270m-q4km")
n = model.cfg.n_layers
pair = xtl.builtin_pair()
panels = xtl.compare(model, pair["source"], pair["target"], n // 2, n // 6, "mlp", max_new_tokens=6,
                     track=["A", "B"])
for name, res in panels.items():
    print(f"{name:15s} -> {res.response!r}")
print(panels["transplanted"].table(width=6))
save(panels["transplanted"].figure(track="B"), "lens-transplanted.html")

cs = xtl.case_study(  # the full N x N grid through the sweep engine
    model, pair["source"], pair["target"], gold=pair["gold"], site="mlp", max_new_tokens=6)
print(f"vanilla {'right' if cs.vanilla_correct else 'wrong'}; {len(cs.right)}/{cs.correct.size} configurations "
      f"answer {pair['gold']}; over-guidance cells: {len(cs.over_guidance)}")
save(cs.figure(), "case-study-grid.html")
