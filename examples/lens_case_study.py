"""Logit lens of the built-in pair, vanilla vs transplanted, and which configurations answer right.

The case study sweeps all 324 configurations of the demo model (6 new tokens each). Measured
(model already converted, loading included): 266 s on a shared 2-core CPU with a load average of 4.5.
"""

import xtl
from xtl.figures.plots import save

model = xtl.load_model("gemma-3-270m-q4km")
n = model.cfg.n_layers
pair = xtl.builtin_pair()
panels = xtl.compare(model, source=pair["source"], target=pair["target"], src_layer=n // 2, tgt_layer=n // 6,
                     site="mlp", max_new_tokens=6, track=["A", "B"])
for name, res in panels.items():
    print(f"{name:15s} -> {res.response!r}")
print(panels["transplanted"].table(width=6))
save(panels["transplanted"].figure(track="B"), "lens-transplanted.html")

cs = xtl.case_study(model, source=pair["source"], target=pair["target"], gold=pair["gold"], site="mlp",
                    max_new_tokens=6)
print(f"vanilla {'right' if cs.vanilla_correct else 'wrong'}; {len(cs.right)}/{cs.correct.size} configurations "
      f"answer {pair['gold']}; over-guidance cells: {len(cs.over_guidance)}")
save(cs.figure(), "case-study-grid.html")
