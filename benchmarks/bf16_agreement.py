"""How often a transplant's greedy tokens agree in bfloat16: the noise floor, and xtl against it.

For each architecture (random weights of a real layout, ``--width`` wide), every (source, target)
configuration of a few prompt pairs at one site is run

* by plain Hugging Face forward hooks, one configuration at a time (the reference);
* by the same hooks, all sources of one target layer in one batch, and one at a time with the
  prompt but its last token computed first into a K/V cache (HF against itself: batching and
  splitting change the order of floating-point sums; these are the **noise floor**);
* by the same hooks, one at a time, with eager attention instead of SDPA (the bridge and the
  hooked backend compute attention as eager does; in bfloat16 SDPA rounds otherwise);
* by xtl's shared-prefix engine and by its per-step path, on each backend (agreement with the
  SDPA reference, and in brackets with the eager one).

A configuration agrees when its greedy tokens equal the reference's. Printed side by side:
the share of configurations that agree (and for HF batched the mean absolute difference of the
reference first token's log-probability). In float32 and float64 every column is 100 %
(the parity tests); in bfloat16 xtl's columns should not fall below the noise floor.

    python benchmarks/bf16_agreement.py                       # all architectures, 2-core CPU: ~2 min
    python benchmarks/bf16_agreement.py --arch llama gemma3 --width 128 --dtype bfloat16
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import xtl  # noqa: E402
from helpers import PROMPTS, byte_tokenizer, tiny_hf  # noqa: E402
from xtl.models.backends import hooked_available  # noqa: E402

PAIRS = [(PROMPTS["zh"], PROMPTS["en"]), (PROMPTS["en"], PROMPTS["zh"]),
         ("Question: what is two plus two?\nAnswer:", "Frage: was ist zwei plus zwei?\nAntwort:")]


def _widen(hf, width: int, dtype: torch.dtype, seed: int):
    """The same architecture and config, ``width`` wide (random weights), in ``dtype``."""
    cfg = hf.config
    cfg.hidden_size, cfg.intermediate_size = width, 2 * width
    if getattr(cfg, "head_dim", None):
        cfg.head_dim = width // cfg.num_attention_heads
    if hasattr(cfg, "query_pre_attn_scalar"):
        cfg.query_pre_attn_scalar = width // cfg.num_attention_heads
    torch.manual_seed(seed)
    model = type(hf)(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(torch.randn_like(p) * 0.3 + (0.0 if "gemma" in cfg.model_type else 1.0))
    return model.to(dtype)


def _module(hf, layer: int, site: str):
    block = hf.model.layers[layer]
    if site == "mlp":
        return getattr(block, "post_feedforward_layernorm", None) or block.mlp
    return block


def _first(out):
    return out[0] if isinstance(out, tuple) else out


@torch.no_grad()
def hf_rows(hf, tok, source: str, target: str, src: list[int], tgt: int, site: str, max_new: int,
            split: bool = False):
    """Greedy tokens and first-step log-probs of the sources ``src`` into ``tgt``, as one batch.
    ``split``: the target prompt but its last token first, into a K/V cache, then the rest (the
    order in which the shared-prefix engine computes it)."""
    acts = {}
    hooks = [_module(hf, i, site).register_forward_hook(
        lambda m, a, out, i=i: acts.__setitem__(i, _first(out)[0, -1].clone())) for i in src]
    hf(torch.tensor([tok(source)["input_ids"]]))
    for h in hooks:
        h.remove()
    values = torch.stack([acts[i] for i in src])
    ids = torch.tensor([tok(target)["input_ids"]] * len(src))
    calls = {"n": 0}
    extra = {}
    if split:
        from transformers import DynamicCache
        cache = DynamicCache()
        hf(ids[:, :-1], past_key_values=cache, use_cache=True)
        extra["past_key_values"] = cache

    def post(m, a, out):
        calls["n"] += 1
        if calls["n"] > 1:
            return None
        t = _first(out).clone()
        t[:, -1] = values.to(t.dtype)
        return (t, *out[1:]) if isinstance(out, tuple) else t

    h = _module(hf, tgt, site).register_forward_hook(post)
    out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new, do_sample=False,
                      eos_token_id=2, pad_token_id=0, output_scores=True, return_dict_in_generate=True,
                      **extra)
    h.remove()
    first = torch.log_softmax(out.scores[0].float(), -1)
    tokens = []
    for row in out.sequences[:, ids.shape[1]:].tolist():
        tokens.append(row[:row.index(2)] if 2 in row else row)
    return tokens, first


def run(arch: str, width: int, dtype: torch.dtype, site: str, max_new: int) -> dict[str, tuple[float, float]]:
    tok = byte_tokenizer()
    hf = _widen(tiny_hf(arch), width, dtype, seed=0)
    n = hf.config.num_hidden_layers
    ref: dict[tuple, list[int]] = {}
    ref_lp: dict[tuple, torch.Tensor] = {}
    batched: dict[tuple, list[int]] = {}
    batched_lp: dict[tuple, torch.Tensor] = {}
    split: dict[tuple, list[int]] = {}
    split_lp: dict[tuple, torch.Tensor] = {}
    eager: dict[tuple, list[int]] = {}
    eager_lp: dict[tuple, torch.Tensor] = {}
    for p, (source, target) in enumerate(PAIRS):
        for j in range(n):
            rows, lp = hf_rows(hf, tok, source, target, list(range(n)), j, site, max_new)
            for i in range(n):
                batched[p, i, j], batched_lp[p, i, j] = rows[i], lp[i]
                one, one_lp = hf_rows(hf, tok, source, target, [i], j, site, max_new)
                ref[p, i, j], ref_lp[p, i, j] = one[0], one_lp[0]
                two, two_lp = hf_rows(hf, tok, source, target, [i], j, site, max_new, split=True)
                split[p, i, j], split_lp[p, i, j] = two[0], two_lp[0]
    hf.set_attn_implementation("eager")
    for p, (source, target) in enumerate(PAIRS):
        for j in range(n):
            for i in range(n):
                three, three_lp = hf_rows(hf, tok, source, target, [i], j, site, max_new)
                eager[p, i, j], eager_lp[p, i, j] = three[0], three_lp[0]
    hf.set_attn_implementation("sdpa")

    def score(got: dict, got_lp: dict) -> tuple[float, float]:
        agree = sum(got[k] == ref[k] for k in ref) / len(ref)
        diffs = [abs(float(got_lp[k][ref[k][0]] - ref_lp[k][ref[k][0]])) for k in ref if ref[k]]
        return agree, sum(diffs) / max(len(diffs), 1)

    out = {"HF batched": score(batched, batched_lp), "HF split prefill": score(split, split_lp),
           "HF eager attention": score(eager, eager_lp)}
    backends = ["bridge"] + (["hooked"] if arch in ("llama", "mistral", "qwen2", "gemma3") and
                             hooked_available() else [])
    for backend in backends:
        model = xtl.from_hf(hf, tok, dtype=dtype, device="cpu", backend=backend)
        for fast in (True, False):
            items = [xtl.Pair(s, t, str(p)) for p, (s, t) in enumerate(PAIRS)]
            try:
                df = xtl.sweep(model, items, site=site, max_new_tokens=max_new, progress=False, fast=fast,
                               candidates=[])
            except xtl.XtlError as exc:
                out[f"xtl {backend} {'engine' if fast else 'per-step'}"] = (float("nan"), float("nan"))
                print(f"  {arch} {backend} fast={fast}: {exc}")
                continue
            got = {(int(row.item_id), row.src_layer, row.tgt_layer): list(row.token_ids)
                   for row in df[~df.is_vanilla].itertuples()}
            agree = sum(got[k] == ref[k] for k in ref) / len(ref)
            agree_eager = sum(got[k] == eager[k] for k in ref) / len(ref)
            out[f"xtl {backend} {'engine' if fast else 'per-step'}"] = (agree, agree_eager)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=["llama", "qwen2", "gemma3", "gemma2", "olmo2", "granite"])
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32", "float64"])
    parser.add_argument("--site", default="mlp", choices=["mlp", "block"])
    parser.add_argument("--max-new-tokens", type=int, default=8)
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    print(f"greedy-token agreement with plain HF hooks, one configuration at a time ({args.dtype}, "
          f"width {args.width}, site {args.site}, {len(PAIRS)} prompt pairs x N^2 configurations)")
    for arch in args.arch:
        results = run(arch, args.width, dtype, args.site, args.max_new_tokens)
        cells = "  ".join(f"{name}: {agree:6.1%}" + ("" if diff != diff else
                                                     f" (eager: {diff:.1%})" if name.startswith("xtl") else
                                                     f" (|dlogp| {diff:.2e})")
                          for name, (agree, diff) in results.items())
        print(f"{arch:8s} {cells}")


if __name__ == "__main__":
    main()
