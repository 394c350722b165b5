"""Transplant the built-in Chinese prompt's MLP output into the English prompt, on the demo model."""

import xtl

model = xtl.load_model("gemma-3-270m-q4km")
pair = xtl.builtin_pair()
n = model.cfg.n_layers
res = xtl.transplant(model, source=pair["source"], target=pair["target"], src_layer=n // 2, tgt_layer=n // 6,
                     site="mlp")
print("vanilla     :", repr(res.vanilla_text))
print("transplanted:", repr(res.text))
