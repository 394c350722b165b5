"""Time and peak host memory of `xtl.load_model` on a local folder, side by side with
transformers' `from_pretrained` of the same folder.

Builds a random-weight Hugging Face model of a named shape as a local safetensors folder (no
download) -- or, with `--demo`, takes the demo model's cached folder (Gemma 3 270M, 262k
vocabulary) -- and loads it in a fresh process per way, libraries imported before the clock
starts, printing time, peak resident memory (RSS) and its ratio to the loaded model's size:

* `xtl`: `xtl.load_model(folder)` (default backend), tokenizer included;
* `hf`: `AutoModelForCausalLM.from_pretrained(folder)` and `AutoTokenizer.from_pretrained(folder)`,
  timed apart (what a plain Hugging Face user pays);
* `bridge`: `xtl.load_model(folder, backend="bridge")`;
* `old`: `from_pretrained` in float32, then `xtl.from_hf` (the load before streaming).

    python benchmarks/load_memory.py --shape llama-300m [--dtype bfloat16] [--ways xtl hf old]
    python benchmarks/load_memory.py --demo --dtype float32 --ways xtl hf bridge --repeats 3
    python benchmarks/load_memory.py --shape llama-7b --device cuda      # on a GPU machine

`--json` prints one JSON object (what the test reads).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPES = {  # Llama-architecture shapes: hidden, layers, heads, kv heads, mlp, vocab
    "llama-tiny": (256, 4, 4, 4, 688, 32000),
    "llama-300m": (1024, 8, 16, 16, 2816, 32000),
    "llama-400m": (1024, 24, 16, 16, 2816, 8000),
    "llama-1b": (2048, 16, 16, 16, 5632, 32000),
    "llama-7b": (4096, 32, 32, 32, 11008, 32000),
}


def build(shape: str, folder: Path, dtype: str) -> int:
    """Save a random model of ``shape`` in ``dtype`` to ``folder``; returns its parameter bytes."""
    import torch
    import transformers as tf

    hidden, layers, heads, kv, mlp, vocab = SHAPES[shape]
    cfg = tf.LlamaConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                         num_key_value_heads=kv, intermediate_size=mlp, vocab_size=vocab,
                         max_position_embeddings=2048, tie_word_embeddings=False)
    cfg.architectures = ["LlamaForCausalLM"]
    torch_dtype = getattr(torch, dtype)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch_dtype)  # parameters are created in the target dtype directly
    try:
        torch.manual_seed(0)
        model = tf.LlamaForCausalLM(cfg)
    finally:
        torch.set_default_dtype(previous)
    model.save_pretrained(folder, max_shard_size="2GB")
    tok = tf.PreTrainedTokenizerFast(tokenizer_object=_tokenizer(), bos_token="<s>", eos_token="</s>")
    tok.save_pretrained(folder)
    return sum(p.numel() * p.element_size() for p in model.parameters())


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<s>": 0, "</s>": 1, **{chr(97 + k): 2 + k for k in range(26)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="</s>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


def _rss_now() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def measure(folder: str, dtype: str, device: str, way: str) -> dict:
    """Run in a fresh process: load and report time and memory."""
    import torch

    import xtl
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import xtl.models.checkpoint  # noqa: F401  (every library is imported before the baseline is read)
    from xtl.models import from_hf
    from transformers.models.llama import modeling_llama  # noqa: F401

    if way == "bridge":
        import transformer_lens.model_bridge  # noqa: F401
    before = _rss_now()
    start = time.perf_counter()
    parts = {}
    if way in ("xtl", "bridge"):
        model = xtl.load_model(folder, dtype=dtype, device=device, backend="auto" if way == "xtl" else "bridge")
    elif way == "hf":  # what a plain Hugging Face user pays: the model, then its tokenizer
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype), device_map=device)
        parts["model_s"] = time.perf_counter() - start
        AutoTokenizer.from_pretrained(folder)
        parts["tokenizer_s"] = time.perf_counter() - start - parts["model_s"]
    else:  # the old way: a float32 HF model, then conversion
        hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        model = from_hf(hf, AutoTokenizer.from_pretrained(folder), dtype=dtype, device=device)
        del hf
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    params = (model.hf if hasattr(model, "hf") else model).parameters()  # a bridge: its HF model's
    size = sum(p.numel() * p.element_size() for p in params)
    return {"way": way, "seconds": seconds, "peak_rss": peak, "rss_before": before, "model_bytes": size,
            "ratio": peak / size, "ratio_over_baseline": (peak - before) / size, **parts}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="llama-300m", choices=list(SHAPES))
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--demo", action="store_true", help="the demo model's cached folder instead of --shape")
    ap.add_argument("--ways", nargs="+", default=["xtl", "hf"], choices=["xtl", "hf", "bridge", "old"])
    ap.add_argument("--compare", action="store_true", help="also load the old way (same as adding 'old' to --ways)")
    ap.add_argument("--repeats", type=int, default=1, help="runs per way, interleaved; the median is shown")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--_measure", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._measure:
        print(json.dumps(measure(args._measure[0], args.dtype, args.device, args._measure[1])))
        return
    ways = list(dict.fromkeys(args.ways + (["old"] if args.compare else [])))
    with tempfile.TemporaryDirectory() as tmp:
        if args.demo:
            from xtl.models import demo_gguf_path, gguf_to_folder

            folder, label = gguf_to_folder(demo_gguf_path()), "demo model (Gemma 3 270M)"
            size = None
        else:
            folder, label = Path(tmp) / args.shape, args.shape
            size = build(args.shape, folder, args.dtype)
        runs: dict[str, list[dict]] = {way: [] for way in ways}
        for _ in range(args.repeats):
            for way in ways:
                proc = subprocess.run([sys.executable, __file__, "--dtype", args.dtype, "--device", args.device,
                                       "--_measure", str(folder), way], capture_output=True, text=True,
                                      env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
                if proc.returncode != 0:
                    sys.exit(proc.stderr[-3000:])
                runs[way].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    results = [sorted(runs[way], key=lambda r: r["seconds"])[len(runs[way]) // 2] for way in ways]
    if args.json:
        print(json.dumps({"shape": "demo" if args.demo else args.shape, "dtype": args.dtype,
                          "checkpoint_bytes": size, "results": results}))
        return
    size_text = f"{size / 2**30:.2f} GiB of {args.dtype} weights" if size else f"loaded in {args.dtype}"
    print(f"{label} ({size_text}), device {args.device}, median of {args.repeats}")
    for r in results:
        split = (f" (model {r['model_s']:.1f} s + tokenizer {r['tokenizer_s']:.1f} s)" if "model_s" in r else "")
        print(f"  {r['way']:6s}: {r['seconds']:6.1f} s{split}, peak RSS {r['peak_rss'] / 2**30:.2f} GiB = "
              f"{r['ratio']:.2f}x the model ({r['ratio_over_baseline']:.2f}x over the "
              f"{r['rss_before'] / 2**30:.2f} GiB held before loading)")
    by = {r["way"]: r for r in results}
    if "xtl" in by and "hf" in by:
        hf = by["hf"]
        print(f"  xtl / hf time: {by['xtl']['seconds'] / hf['seconds']:.2f}x "
              f"(over the model alone: {by['xtl']['seconds'] / hf['model_s']:.2f}x); "
              f"peak: {by['xtl']['peak_rss'] / hf['peak_rss']:.2f}x")
    if "old" in by and "xtl" in by:
        print(f"  old / xtl peak: {by['old']['peak_rss'] / by['xtl']['peak_rss']:.2f}x")


if __name__ == "__main__":
    main()
