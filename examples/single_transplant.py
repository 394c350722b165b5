"""Transplant the built-in Chinese prompt's MLP output into the English prompt, on the demo model.

Measured (the demo model already converted, loading included): 66 s and 96 s in two runs on a shared
2-core CPU with a load average of 3 and 5.5 (other jobs holding the cores).
"""

import xtl

model = xtl.load_model("gemma-3-270m-q4km")
pair = xtl.builtin_pair()
n = model.cfg.n_layers
res = xtl.transplant(model, source=pair["source"], target=pair["target"], src_layer=n // 2, tgt_layer=n // 6,
                     site="mlp")
print("vanilla     :", repr(res.vanilla_text))
print("transplanted:", repr(res.text))
