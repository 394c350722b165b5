"""Peak host memory and time of `xtl.load_model` on a local folder, against the model's size.

Builds a random-weight Hugging Face model of a named shape as a local safetensors folder (no
download), then loads it with `xtl.load_model` in a fresh process and prints the load time, the
peak resident memory (RSS) and its ratio to the loaded model's size; with `--compare` it also
loads it the old way (`from_pretrained` in float32, then `xtl.from_hf`), side by side.

    python benchmarks/load_memory.py --shape llama-300m [--dtype bfloat16] [--compare]
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

    before = _rss_now()
    start = time.perf_counter()
    if way == "xtl":
        model = xtl.load_model(folder, dtype=dtype, device=device)
    else:  # the old way: a float32 HF model, then conversion
        hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        model = from_hf(hf, AutoTokenizer.from_pretrained(folder), dtype=dtype, device=device)
        del hf
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    return {"way": way, "seconds": seconds, "peak_rss": peak, "rss_before": before, "model_bytes": size,
            "ratio": peak / size, "ratio_over_baseline": (peak - before) / size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="llama-300m", choices=list(SHAPES))
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compare", action="store_true", help="also load the old way (from_pretrained + from_hf)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--_measure", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._measure:
        print(json.dumps(measure(args._measure[0], args.dtype, args.device, args._measure[1])))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / args.shape
        size = build(args.shape, folder, args.dtype)
        results = []
        for way in ["xtl"] + (["old"] if args.compare else []):
            proc = subprocess.run([sys.executable, __file__, "--dtype", args.dtype, "--device", args.device,
                                   "--_measure", str(folder), way], capture_output=True, text=True,
                                  env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
            if proc.returncode != 0:
                sys.exit(proc.stderr[-3000:])
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    if args.json:
        print(json.dumps({"shape": args.shape, "dtype": args.dtype, "checkpoint_bytes": size, "results": results}))
        return
    print(f"{args.shape} ({size / 2**30:.2f} GiB of {args.dtype} weights), device {args.device}")
    for r in results:
        print(f"  {r['way']:4s}: {r['seconds']:6.1f} s, peak RSS {r['peak_rss'] / 2**30:.2f} GiB = "
              f"{r['ratio']:.2f}x the model ({r['ratio_over_baseline']:.2f}x over the "
              f"{r['rss_before'] / 2**30:.2f} GiB held before loading)")
    if len(results) == 2:
        print(f"  old / xtl peak: {results[1]['peak_rss'] / results[0]['peak_rss']:.2f}x")


if __name__ == "__main__":
    main()
