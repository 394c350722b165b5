"""Sweep engine vs the naive per-configuration hooked generate vs the decoding floor.

Side by side in one process, same model, same prompt pairs (an XNLI pair and an XQuAD pair from
../shared/data, or the built-in pair when the data is absent). Prints configurations/s of each
and the ratios, checks that naive and engine outputs agree on every timed configuration, and
reports the process's peak resident memory.

    python benchmarks/sweep_speed.py [--model gemma-3-270m-q4km] [--naive-sample 4] [--repeats 3]
                                     [--tgt-layers 0] [--compare-tl 2] [--batch-size 512]
    python benchmarks/sweep_speed.py --device cuda --shape llama-7b|qwen2-7b|mistral-7b [--profile]

``--shape`` builds random weights of a real model's shape directly on the device (no download;
they time like real weights), in ``--dtype`` (default bfloat16), with a byte-level tokenizer and
prompts cut to ``--prompt-tokens``. ``--profile`` adds the GPU busy fraction of one engine run
(kernel time over wall time, from torch.profiler).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import time
from pathlib import Path

import torch

import xtl
from xtl.engine import engines
from xtl.engine import kernel as fastpath
from xtl.engine import sweep
from xtl.patching import Site, broadcast_cache, prefix_cache, stop_token_ids, tokenize

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "xtransplant"


def pairs(model) -> list[tuple[str, str, str]]:
    if not DATA.is_dir():
        pair = json.loads((Path(xtl.__file__).parent / "data" / "builtin_pair.json").read_text())
        return [("builtin", pair["source"], pair["target"])]

    def line(path: Path, k: int) -> str:
        return json.loads(path.read_text(encoding="utf-8").splitlines()[k])

    xnli = DATA / "XNLI" / "XNLI_sample" / "split"
    xquad = DATA / "XQuAD" / "XQuAD_sample" / "split"
    de = [json.loads(x) for x in (xquad / "xquad.de.json").read_text(encoding="utf-8").splitlines()]
    k = next(k for k, text in enumerate(de) if len(tokenize(model, text)) >= 250)  # ~250+ tokens
    return [("xnli-sw", line(xnli / "en.json", 0), line(xnli / "sw.json", 0)),
            ("xquad-de", line(xquad / "xquad.en.json", k), de[k])]


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


def floor(model, target: str, n_configs: int, batch: int, max_new: int, fast: bool) -> float:
    """The same number of cached single-token decode steps, no patching, same batch size.

    ``fast``: steps of the shared-prefix path (greedy token and its log-prob, as the engine
    decodes); otherwise TransformerLens' cached forward.
    """
    tokens = tokenize(model, target)
    base = prefix_cache(model, tokens)
    with torch.no_grad():
        model(tokens[None, -1:].to(model.cfg.device), past_kv_cache=base)
    pre = fastpath.prefix_from_cache(model, base)
    start = time.perf_counter()
    done = 0
    with torch.no_grad():
        while done < n_configs:
            b = min(batch, n_configs - done)
            nxt = torch.zeros(b, dtype=torch.long, device=model.cfg.device) + int(tokens[-1])
            if fast:
                rows = fastpath.Rows.empty(pre, b, max_new)
                for _ in range(max_new):
                    nxt = fastpath.decode_pick(model, pre, rows, nxt).token
            else:
                cache = broadcast_cache(base, b)
                for _ in range(max_new):
                    nxt = model(nxt[:, None], past_kv_cache=cache)[:, -1].argmax(-1)
            done += b
    return time.perf_counter() - start


SHAPES = {  # architecture, hidden, layers, heads, kv heads, mlp, vocab
    "llama-7b": ("LlamaForCausalLM", 4096, 32, 32, 32, 11008, 32000),
    "mistral-7b": ("MistralForCausalLM", 4096, 32, 32, 8, 14336, 32768),
    "qwen2-7b": ("Qwen2ForCausalLM", 3584, 28, 28, 4, 18944, 152064),
    "llama-tiny": ("LlamaForCausalLM", 256, 4, 4, 2, 688, 32000),  # a CPU smoke test of this path
}


def _shape_config(shape: str):
    """The Hugging Face config of a real model's shape (both backends' random models use it)."""
    import transformers as tf

    arch, hidden, layers, heads, kv, mlp, vocab = SHAPES[shape]
    config_cls = {"LlamaForCausalLM": tf.LlamaConfig, "MistralForCausalLM": tf.MistralConfig,
                  "Qwen2ForCausalLM": tf.Qwen2Config}[arch]
    hf_config = config_cls(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                           num_key_value_heads=kv, intermediate_size=mlp, vocab_size=vocab,
                           max_position_embeddings=4096, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    hf_config.architectures = [arch]
    return hf_config


def random_model(shape: str, dtype: str, device: str):
    """A HookedTransformer of a real model's shape with random weights, built on ``device``."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from xtl.models import _finish, tl_config_from_hf

    hf_config = _shape_config(shape)
    cfg = tl_config_from_hf(hf_config)
    cfg.update(dtype=getattr(torch, dtype), device=device, model_name=shape, init_weights=True)
    with torch.device(device):
        model = HookedTransformer(HookedTransformerConfig(**cfg), tokenizer=None, move_to_device=False)
    return _finish(model, _byte_tokenizer())


def random_bridge_model(shape: str, dtype: str, device: str):
    """A bridge model of a real model's shape with random weights, built on ``device``."""
    import transformers as tf

    hf_config = _shape_config(shape)
    arch = hf_config.architectures[0]
    with torch.device(device):
        hf = getattr(tf, arch)(hf_config).to(getattr(torch, dtype))
    tok = _byte_tokenizer()
    return xtl.from_hf(hf, tok, dtype=dtype, device=device, backend="bridge")


def _byte_tokenizer():
    import transformers as tf
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab_map = {"<pad>": 0, "<bos>": 1, "<eos>": 2, **{ch: 3 + k for k, ch in enumerate(sorted(alphabet))}}
    tok = Tokenizer(models.BPE(vocab=vocab_map, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tf.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>")


def compare_backends(args, backends: list[str]) -> None:
    """Each backend's sweep engine on the same model and item, side by side, as ratios to the first."""
    rates = {}
    for backend in backends:
        if args.shape:
            model = (random_model(args.shape, args.dtype or "bfloat16", args.device or "cuda") if backend == "hooked"
                     else random_bridge_model(args.shape, args.dtype or "bfloat16", args.device or "cuda"))
        else:
            model = xtl.load_model(args.model, dtype=args.dtype or "float32", device=args.device, backend=backend)
        n = model.cfg.n_layers
        tgts = sorted(random.Random(0).sample(range(n), args.tgt_layers)) if args.tgt_layers else list(range(n))
        name, source, target = pairs(model)[0]
        if args.shape:
            source, target = source[-args.prompt_tokens:], target[-args.prompt_tokens:]
        sweep(model, [(source, target, name)], site=args.site, tgt_layers=tgts[:1], max_new_tokens=2,
              progress=False)  # warm-up
        runs = []
        for _ in range(max(1, args.repeats)):
            df, sec = _timed(lambda: sweep(model, [(source, target, name)], site=args.site, tgt_layers=tgts,
                                           max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                                           progress=False))
            runs.append(n * len(tgts) / sec)
        engine = "shared-prefix kernel" if backend == "hooked" else "shared-prefix engine on Hugging Face modules"
        rates[backend] = (statistics.median(runs), engines.unsupported(model) or engine, df)
        del model
    first = backends[0]
    for backend, (rate, path, df) in rates.items():
        same = df.token_ids.map(list).tolist() == rates[first][2].token_ids.map(list).tolist()
        print(f"backend {backend:7s} {rate:8.2f} configurations/s | {first}/{backend} "
              f"{rates[first][0] / rate:5.2f}x per configuration | same tokens as {first}: {same} | path: {path}")


def gpu_busy(fn) -> float:
    """Fraction of the wall time of ``fn()`` that CUDA kernels were running (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        wall = time.perf_counter() - start
    busy = sum(e.device_time for e in prof.events() if e.device_type.name == "CUDA") / 1e6
    return busy / wall


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


class PeakRss:
    """Peak resident memory of what runs inside the block: the kernel's high-water mark (VmHWM)
    is reset on entry through /proc/self/clear_refs, so nothing samples during the timing."""

    def __enter__(self):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return self

    def __exit__(self, *exc):
        with open("/proc/self/status") as f:
            hwm = next(line for line in f if line.startswith("VmHWM:"))
        self.peak = int(hwm.split()[1]) / 1024


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="gemma-3-270m-q4km")
    ap.add_argument("--site", default="mlp")
    ap.add_argument("--naive-sample", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3,
                    help="interleaved runs of engine, naive sample and floor; medians are reported")
    ap.add_argument("--tgt-layers", type=int, default=0,
                    help="target layers swept by the engine, all source layers each (0: all, the full grid)")
    ap.add_argument("--compare-tl", type=int, default=2, metavar="K",
                    help="also time the TransformerLens-forward path on K target layers (0: skip)")
    ap.add_argument("--max-new-tokens", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--device", default=None)
    ap.add_argument("--shape", default=None, choices=list(SHAPES),
                    help="random weights of this shape instead of --model (no download)")
    ap.add_argument("--dtype", default=None, help="default: float32 for --model, bfloat16 for --shape")
    ap.add_argument("--prompt-tokens", type=int, default=126, help="with --shape: prompts cut to this length")
    ap.add_argument("--profile", action="store_true", help="GPU busy fraction of one engine run (CUDA)")
    ap.add_argument("--backend", nargs="+", default=None, metavar="NAME",
                    help="hooked and/or bridge: compare the backends' engines side by side (and nothing else)")
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.backend:
        compare_backends(args, args.backend)
        return
    if args.shape:
        model = random_model(args.shape, args.dtype or "bfloat16", args.device or "cuda")
        args.model = f"{args.shape} (random weights, {args.dtype or 'bfloat16'})"
    else:
        model = xtl.load_model(args.model, dtype=args.dtype or "float32", device=args.device)
    site = Site.parse(args.site)
    n = model.cfg.n_layers
    rng = random.Random(0)
    tgts = sorted(rng.sample(range(n), args.tgt_layers)) if args.tgt_layers else list(range(n))
    tl_tgts = sorted(rng.sample(tgts, min(args.compare_tl, len(tgts))))
    bs, new, reps = args.batch_size, args.max_new_tokens, max(1, args.repeats)
    print(f"model {args.model} ({n} layers) on {model.cfg.device}, site {site}, {new} new tokens, "
          f"batch {bs}, shared-prefix path: {engines.unsupported(model) or 'yes'}; engine on "
          f"{len(tgts)} target x {n} source layers, TransformerLens path on target layers {tl_tgts}; "
          f"medians of {reps} interleaved runs (rates in configurations/s)")
    for name, source, target in pairs(model):
        if args.shape:  # byte-level tokens: cut the texts to the prompt length asked for
            source, target = source[-args.prompt_tokens:], target[-args.prompt_tokens:]
        t_len = len(tokenize(model, target))
        configs = [(i, j) for j in tgts for i in range(n)]
        sample = rng.sample(configs, args.naive_sample)
        naive_generate = None

        def run(mode: str, fast: bool, layers: list[int], batch: int):
            return sweep(model, [(source, target, name)], site=site, tgt_layers=layers, fast=fast,
                         max_new_tokens=new, mode=mode, batch_size=batch, progress=False)

        for mode in ("generate", "logits"):
            engine, naive_rates, floors = [], [], []
            for r in range(reps):
                before = _rss_mib()
                with PeakRss() as mem:
                    df, sec = _timed(lambda: run(mode, True, tgts, bs))
                engine.append(len(configs) / sec)
                if r == 0:
                    rise, held = mem.peak - before, before
                naive_out, sec = _timed(lambda: {c: naive(model, source, target, *c, site, new, mode == "logits")
                                                 for c in sample})
                naive_rates.append(len(sample) / sec)
                if mode == "generate":
                    floors.append(len(configs) / floor(model, target, len(configs), bs, new, True))
            agree = sum(list(df[(df.src_layer == i) & (df.tgt_layer == j)].iloc[0].token_ids) == out
                        for (i, j), out in naive_out.items()) if mode == "generate" else len(sample)
            e, nv = statistics.median(engine), statistics.median(naive_rates)
            spread = f"{min(engine) / nv:.0f}-{max(engine) / nv:.0f}x"
            line = (f"{name:9s} {t_len:4d} tok {mode:8s} engine {e:7.2f} | naive {nv:6.3f} | "
                    f"engine/naive {e / nv:6.1f}x (runs {spread})")
            if mode == "generate":
                naive_generate = nv
                fl = statistics.median(floors)
                line += f" | floor {fl:6.2f} | floor/engine {fl / e:4.2f}x | naive==engine {agree}/{len(sample)}"
            else:
                line += (f" [naive: one hooked forward per configuration] | engine/naive generate "
                         f"{e / naive_generate:6.1f}x")
            line += f" | engine memory +{rise:.0f} MiB over {held:.0f}"
            line += f" | {len(configs) / e:.3f} s per item"
            if args.profile and model.cfg.device.startswith("cuda"):
                line += f" | GPU busy {100 * gpu_busy(lambda: run(mode, True, tgts, bs)):.0f}%"
            if tl_tgts:
                k = len(tl_tgts) * n
                tl_df, sec = _timed(lambda: run(mode, False, tl_tgts, n))
                sub = df[df.tgt_layer.isin(tl_tgts) | df.is_vanilla].sort_values(["src_layer", "tgt_layer"])
                same = sub.token_ids.map(list).tolist() == tl_df.sort_values(
                    ["src_layer", "tgt_layer"]).token_ids.map(list).tolist()
                line += f" | TL path {k / sec:6.2f} (engine/TL {e * sec / k:4.1f}x, same tokens: {same})"
            print(line, flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
