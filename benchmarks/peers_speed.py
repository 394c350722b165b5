"""xtl's sweep engine against the other libraries' batched generate, on the same N² grid.

One process, one model (the demo model by default, float32, weights read once from its Hugging
Face folder), one prompt pair (the built-in question), site ``mlp`` (Gemma 3: the output of the
post-feed-forward norm, what is added to the residual stream), greedy decoding of
``--max-new-tokens`` tokens, stop tokens as xtl's. Each way runs the whole grid (or the source
layers of ``--tgt-layers`` sampled target layers), source capture included:

* ``xtl hooked`` / ``xtl bridge``: ``xtl.sweep`` on each backend (its shared-prefix engine);
* ``nnsight``: ``TransformersModel.generate`` over a batch of rows per target layer (one row per
  source layer), each row's last prompt position replaced on the prompt pass;
* ``pyvene``: ``IntervenableModel.generate`` with ``source_representations`` and
  ``intervene_on_prompt=True``, one batch per target layer (a pyvene config names one layer, so a
  batch cannot mix target layers); Gemma 3, which pyvene 0.1.8 does not list, is registered with
  the same component (``post_feedforward_layernorm`` output).

It prints configurations/s of each, the engine's speed as a multiple of each peer's, and how many
configurations each peer answers with exactly the engine's tokens. nnsight and pyvene are not xtl
dependencies: install them beside xtl to run this (``pip install nnsight pyvene``).

    python benchmarks/peers_speed.py [--model gemma-3-270m-q4km] [--pair builtin|xnli-sw|xquad-de]
                                     [--tgt-layers 0] [--max-new-tokens 20]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

import xtl
from xtl.models.gguf import local_folder
from xtl.patching import stop_token_ids


def _cut(ids: list[int], stop: set[int]) -> list[int]:
    for k, t in enumerate(ids):
        if t in stop:
            return ids[:k]
    return ids


def source_acts(hf, ids: torch.Tensor) -> list[torch.Tensor]:
    """The site at the source's last prompt token, every layer (plain forward hooks)."""
    acts: dict[int, torch.Tensor] = {}
    handles = [layer.post_feedforward_layernorm.register_forward_hook(
        lambda m, i, o, k=k: acts.__setitem__(k, o[0, -1].detach().clone()))
        for k, layer in enumerate(hf.model.layers)]
    try:
        with torch.no_grad():
            hf(ids)
    finally:
        for h in handles:
            h.remove()
    return [acts[k] for k in range(len(acts))]


def run_nnsight(hf, tok, src_ids, tgt_ids, configs, gen) -> dict[tuple[int, int], list[int]]:
    from nnsight import TransformersModel

    lm = TransformersModel(hf, tokenizer=tok)
    acts = source_acts(hf, src_ids)
    out = {}
    for j in sorted({j for _, j in configs}):
        rows = [(i, jj) for i, jj in configs if jj == j]
        with lm.generate(tgt_ids.repeat(len(rows), 1), **gen):
            site = lm.model.layers[j].post_feedforward_layernorm.output
            for b, (i, _) in enumerate(rows):
                site[b, -1, :] = acts[i]
            tokens = lm.generator.output.save()
        for b, cfg in enumerate(rows):
            out[cfg] = tokens[b, tgt_ids.shape[1]:].tolist()
    return out


def run_pyvene(hf, tok, src_ids, tgt_ids, configs, gen) -> dict[tuple[int, int], list[int]]:
    import pyvene as pv
    from pyvene.models import intervenable_modelcard as card
    from pyvene.models.constants import CONST_OUTPUT_HOOK

    card.type_to_module_mapping.setdefault(
        type(hf), {"mlp_output": ("model.layers[%s].post_feedforward_layernorm", CONST_OUTPUT_HOOK)})
    card.type_to_dimension_mapping.setdefault(type(hf), {"mlp_output": ("hidden_size",)})
    acts = source_acts(hf, src_ids)
    last = tgt_ids.shape[1] - 1
    out = {}
    for j in sorted({j for _, j in configs}):
        rows = [(i, jj) for i, jj in configs if jj == j]
        cfg = pv.IntervenableConfig(
            representations=[{"layer": j, "component": "mlp_output", "unit": "pos", "max_number_of_units": 1}],
            intervention_types=pv.VanillaIntervention)
        model = pv.IntervenableModel(cfg, hf)
        _, tokens = model.generate({"input_ids": tgt_ids.repeat(len(rows), 1)},
                                   unit_locations={"sources->base": (None, [[[last]] * len(rows)])},
                                   source_representations=torch.stack([acts[i] for i, _ in rows])[:, None, :],
                                   intervene_on_prompt=True, **gen)
        for b, c in enumerate(rows):
            out[c] = tokens[b, tgt_ids.shape[1]:].tolist()
    return out


def unembedding_floor(hf, tokens: dict, max_new: int, stop: set[int]) -> tuple[float, int]:
    """Seconds the unembedding alone takes for every decoding step of the grid (each row's tokens up
    to its stop token, the step that produced the stop included), at batches of 512 rows, and how
    many steps that is: a bound below every exact way, which must unembed each of them in full."""
    steps = sum(min(len(_cut(t, stop)) + 1, max_new) for t in tokens.values())
    weight = hf.get_output_embeddings().weight.detach()
    x = torch.randn(512, weight.shape[1], dtype=weight.dtype)
    with torch.no_grad():
        for _ in range(2):
            x @ weight.T
        start = time.perf_counter()
        for _ in range(5):
            x @ weight.T
    return (time.perf_counter() - start) / 5 / 512 * steps, steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gemma-3-270m-q4km")
    ap.add_argument("--tgt-layers", type=int, default=0, help="sampled target layers (0: all, the full grid)")
    ap.add_argument("--max-new-tokens", type=int, default=20)
    ap.add_argument("--pair", default="builtin", choices=["builtin", "xnli-sw", "xquad-de"],
                    help="the prompt pair: the built-in question (46 target tokens), or the XNLI (98 tokens) and XQuAD "
                         "(322 tokens) pairs of benchmarks/sweep_speed.py (../shared/data)")
    ap.add_argument("--ways", nargs="+", default=["hooked", "bridge", "nnsight", "pyvene"],
                    choices=["hooked", "bridge", "nnsight", "pyvene"])
    args = ap.parse_args()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    first = xtl.load_model(args.model, device="cpu")  # converts a GGUF / the demo model once, if needed
    folder = local_folder(args.model) or Path(args.model)
    pair = json.loads((Path(xtl.__file__).parent / "data" / "builtin_pair.json").read_text())
    if args.pair != "builtin":
        import sys

        sys.path.insert(0, str(Path(__file__).parent))
        from sweep_speed import pairs  # the same XNLI / XQuAD pairs as the engine's own benchmark

        found = {name: (source, target) for name, source, target in pairs(first)}
        if args.pair not in found:
            raise SystemExit(f"the {args.pair} pair needs ../shared/data beside the project")
        pair = {"source": found[args.pair][0], "target": found[args.pair][1]}
    del first  # each way below loads its own model
    tok = AutoTokenizer.from_pretrained(folder)
    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
    if not hasattr(hf.model.layers[0], "post_feedforward_layernorm"):
        raise SystemExit("this benchmark writes the Gemma-style post-feed-forward norm; use a Gemma 2/3 model")
    n = hf.config.num_hidden_layers
    tgts = sorted(random.Random(0).sample(range(n), args.tgt_layers)) if args.tgt_layers else list(range(n))
    configs = [(i, j) for j in tgts for i in range(n)]
    src_ids = tok(pair["source"], return_tensors="pt").input_ids
    tgt_ids = tok(pair["target"], return_tensors="pt").input_ids
    results: dict[str, tuple[float, dict]] = {}
    stop: set[int] = set()
    for way in args.ways:
        if way in ("hooked", "bridge"):
            model = xtl.load_model(args.model, device="cpu", backend=way)
            stop = set(stop_token_ids(model))
            xtl.sweep(model, [(pair["source"], pair["target"], "builtin")], site="mlp", tgt_layers=tgts[:1],
                      max_new_tokens=2, progress=False)  # warm-up
            start = time.perf_counter()
            df = xtl.sweep(model, [(pair["source"], pair["target"], "builtin")], site="mlp", tgt_layers=tgts,
                           max_new_tokens=args.max_new_tokens, progress=False)
            sec = time.perf_counter() - start
            rows = df[~df.is_vanilla]
            tokens = {(int(r.src_layer), int(r.tgt_layer)): list(r.token_ids) for r in rows.itertuples()}
            del model
        else:
            gen = dict(max_new_tokens=args.max_new_tokens, do_sample=False, eos_token_id=sorted(stop) or None,
                       pad_token_id=tok.pad_token_id)
            start = time.perf_counter()
            tokens = (run_nnsight if way == "nnsight" else run_pyvene)(hf, tok, src_ids, tgt_ids, configs, gen)
            sec = time.perf_counter() - start
        results[way] = (len(configs) / sec, tokens)
        print(f"{way:8s} {len(configs) / sec:7.2f} configurations/s ({sec:.1f} s)", flush=True)
    print(f"grid: {len(tgts)} target x {n} source layers = {len(configs)} configurations, "
          f"{args.max_new_tokens} new tokens, pair {args.pair} ({tgt_ids.shape[1]} target tokens), site mlp, float32")
    engines = [w for w in ("hooked", "bridge") if w in results]
    floor = unembedding_floor(hf, results[engines[0]][1] if engines else next(iter(results.values()))[1],
                              args.max_new_tokens, stop)
    print(f"floor: the unembedding alone of the {floor[1]} decoding steps (row x token) the grid needs takes "
          f"{floor[0]:.1f} s ({len(configs) / floor[0]:.2f} configurations/s); no exact way can beat that")
    for peer in (w for w in ("nnsight", "pyvene") if w in results):
        print(f"  so at most {len(configs) / floor[0] / results[peer][0]:.1f}x over {peer} on this pair and machine")
    for peer in (w for w in ("nnsight", "pyvene") if w in results):
        rate, tokens = results[peer]
        for engine in engines:
            same = sum(_cut(tokens[c], stop) == _cut(results[engine][1][c], stop) for c in configs)
            print(f"xtl {engine} / {peer}: {results[engine][0] / rate:5.1f}x faster per configuration; "
                  f"same tokens on {same}/{len(configs)} configurations")


if __name__ == "__main__":
    main()
