"""Sweep engine vs the naive per-configuration hooked generate vs the decoding floor.

Side by side in one process, same model, same prompt pairs (an XNLI pair and an XQuAD pair from
../shared/data, or the built-in pair when the data is absent). Prints configurations/s of each
and the ratios, checks that naive and engine outputs agree on every timed configuration, and
reports the process's peak resident memory.

    python benchmarks/sweep_speed.py [--model gemma-3-270m] [--naive-sample 6] [--tgt-layers 3]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import time
from pathlib import Path

import torch

import xtl
from xtl.sweep import sweep
from xtl.transplant import Site, clone_cache, greedy_decode, prefix_cache, stop_token_ids, tokenize

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "xtransplant"


def pairs() -> list[tuple[str, str, str]]:
    if not DATA.is_dir():
        pair = json.loads((Path(xtl.__file__).parent / "data" / "builtin_pair.json").read_text())
        return [("builtin", pair["source"], pair["target"])]

    def line(path: Path, k: int) -> str:
        return json.loads(path.read_text(encoding="utf-8").splitlines()[k])

    xnli = DATA / "XNLI" / "XNLI_sample" / "split"
    xquad = DATA / "XQuAD" / "XQuAD_sample" / "split"
    return [("xnli-sw", line(xnli / "en.json", 0), line(xnli / "sw.json", 0)),
            ("xquad-de", line(xquad / "xquad.en.json", 0), line(xquad / "xquad.de.json", 0))]


def naive(model, source: str, target: str, i: int, j: int, site: Site, max_new: int, logits_only: bool):
    """What the authors did: capture, then one hooked full generate per configuration, batch 1."""
    value = xtl.capture(model, source, site).acts[i]
    tokens = tokenize(model, target)[None].to(model.cfg.device)
    calls = {"n": 0}

    def hook(act, hook=None):
        calls["n"] += 1
        if calls["n"] == 1:  # prompt pass only
            act = act.clone()
            act[:, -1] = value
        return act

    with torch.no_grad(), model.hooks(fwd_hooks=[(site.hook_name(j), hook)]):
        if logits_only:
            return model(tokens)[0, -1].argmax().item()
        out = model.generate(tokens, max_new_tokens=max_new, do_sample=False, verbose=False,
                             stop_at_eos=True, use_past_kv_cache=True)
    new = out[0, tokens.shape[1]:].tolist()
    stop = stop_token_ids(model)
    for k, t in enumerate(new):
        if t in stop:
            return new[:k]
    return new


def floor(model, target: str, n_configs: int, batch: int, max_new: int) -> float:
    """The same number of cached single-token decode steps, no patching, same batch size."""
    tokens = tokenize(model, target)
    base = prefix_cache(model, tokens)
    with torch.no_grad():
        model(tokens[None, -1:].to(model.cfg.device), past_kv_cache=base)
    start = time.perf_counter()
    done = 0
    with torch.no_grad():
        while done < n_configs:
            b = min(batch, n_configs - done)
            cache = clone_cache(base, b)
            nxt = torch.zeros(b, dtype=torch.long, device=model.cfg.device) + int(tokens[-1])
            for _ in range(max_new):
                nxt = model(nxt[:, None], past_kv_cache=cache)[:, -1].argmax(-1)
            done += b
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--site", default="mlp")
    ap.add_argument("--naive-sample", type=int, default=6)
    ap.add_argument("--tgt-layers", type=int, default=3, help="target layers swept (all sources each)")
    ap.add_argument("--max-new-tokens", type=int, default=20)
    ap.add_argument("--device", default=None)
    args = ap.parse_args()
    torch.manual_seed(0)
    model = xtl.load_model(args.model, device=args.device)
    site = Site.parse(args.site)
    n = model.cfg.n_layers
    rng = random.Random(0)
    tgts = sorted(rng.sample(range(n), args.tgt_layers))
    print(f"model {args.model} ({n} layers) on {model.cfg.device}, site {site}, "
          f"{args.max_new_tokens} new tokens, target layers {tgts} x all {n} source layers")
    for name, source, target in pairs():
        t_len = len(tokenize(model, target))
        configs = [(i, j) for j in tgts for i in range(n)]
        sample = rng.sample(configs, args.naive_sample)
        for mode in ("generate", "logits"):
            start = time.perf_counter()
            df = sweep(model, [(source, target, name)], site=site, tgt_layers=tgts,
                       max_new_tokens=args.max_new_tokens, mode=mode, batch_size=n, progress=False)
            engine_s = time.perf_counter() - start
            engine_rate = len(configs) / engine_s
            start = time.perf_counter()
            naive_out = {c: naive(model, source, target, *c, site, args.max_new_tokens, mode == "logits")
                         for c in sample}
            naive_rate = len(sample) / (time.perf_counter() - start)
            mismatch = 0
            for (i, j), out in naive_out.items():
                row = df[(df.src_layer == i) & (df.tgt_layer == j)].iloc[0]
                mismatch += (list(row.token_ids) != out) if mode == "generate" else 0
            line = (f"{name:9s} {t_len:4d} tok {mode:8s} engine {engine_rate:8.2f} cfg/s | naive "
                    f"{naive_rate:7.3f} cfg/s | engine/naive {engine_rate / naive_rate:7.1f}x")
            if mode == "generate":
                floor_s = floor(model, target, len(configs), n, args.max_new_tokens)
                floor_rate = len(configs) / floor_s
                line += f" | floor {floor_rate:7.2f} cfg/s | floor/engine {floor_rate / engine_rate:4.2f}x"
                line += f" | naive==engine on {len(sample) - mismatch}/{len(sample)} sampled configs"
            print(line, flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
