"""Training throughput of `xtl sft` (the ML-SFT baseline) on this machine, full fine-tuning and
LoRA side by side, and what the paper's run (20,236 pairs x 3 epochs of a 7B model on 8 GPUs)
would cost by the stack's published throughput (labelled as an estimate).

Builds a random-weight Llama-architecture model of a named shape and a synthetic multilingual
instruction file (no download), trains a few steps of each kind in a fresh process, and prints
tokens per second, seconds per step and peak resident memory.

    python benchmarks/sft_speed.py --shape llama-tiny --steps 6
    python benchmarks/sft_speed.py --shape llama-300m --steps 4 --json
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

SHAPES = {  # hidden, layers, heads, mlp, vocab (Llama architecture, byte-level vocabulary padded)
    "llama-tiny": (256, 4, 4, 688, 512),
    "llama-100m": (768, 12, 12, 2048, 32000),
    "llama-300m": (1024, 8, 16, 2816, 32000),
}
#: The paper's run (section F) and the assumptions of the estimate.
PAPER_PAIRS, PAPER_EPOCHS, PARAMS_7B = 20_236, 3, 6.7e9
A100_BF16_FLOPS = 312e12  # NVIDIA A100 80 GB dense bf16 peak (datasheet)
MFU = 0.40  # model FLOPs utilisation typical of ZeRO-3 / FSDP full fine-tuning of 7B models (assumed)


def build(shape: str, root: Path) -> tuple[Path, Path]:
    """A random model folder and a JSONL of 96 pairs in 3 languages under ``root``."""
    import torch
    import transformers as tf

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from helpers import byte_tokenizer

    hidden, layers, heads, mlp, vocab = SHAPES[shape]
    cfg = tf.LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=mlp, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=1024,
                         bos_token_id=1, eos_token_id=2, pad_token_id=0)
    torch.manual_seed(0)
    folder = root / "model"
    tf.LlamaForCausalLM(cfg).save_pretrained(folder)
    byte_tokenizer().save_pretrained(folder)
    rows = [{"inputs": f"Question {k} in {lang}: what is {k} plus {k}? Answer briefly and explain.",
             "targets": f"The answer is {2 * k}, because {k} plus {k} makes {2 * k}.", "language": lang}
            for lang in ("German", "Swahili", "Chinese") for k in range(32)]
    data = root / "pairs.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    return folder, data


def child(folder: str, data: str, out: str, steps: int, batch: int, lora: bool) -> None:
    """One training run in this process; prints a JSON line."""
    import xtl
    from xtl.training.finetune import frame_example
    from xtl.training.data import read_pairs
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    lengths = [len(e["input_ids"]) for e in (frame_example(tok, p, False, 512) for p in read_pairs(data)) if e]
    start = time.perf_counter()
    res = xtl.sft(folder, data, out, n=96, max_steps=steps, batch_size=batch, dtype="float32", lr=1e-4,
                  warmup_ratio=0.0, max_length=512, lora=lora, progress=False, save_steps=10_000)
    wall = time.perf_counter() - start
    tokens = steps * batch * sum(lengths) / len(lengths)
    print(json.dumps({"lora": lora, "steps": res.steps, "wall_s": wall, "train_s": res.wall_s,
                      "tokens_per_s": tokens / res.wall_s, "s_per_step": res.wall_s / res.steps,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "mean_tokens_per_pair": sum(lengths) / len(lengths)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="llama-tiny", choices=list(SHAPES))
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--tokens-per-pair", type=float, default=300.0,
                    help="mean tokens per Aya pair for the paper-scale estimate (an assumption)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        folder, data, out, steps, batch, lora = args.child
        child(folder, data, out, int(steps), int(batch), lora == "1")
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder, data = build(args.shape, Path(tmp))
        runs = {}
        for lora in (False, True):
            cmd = [sys.executable, __file__, "--child", str(folder), str(data), str(Path(tmp) / f"out{int(lora)}"),
                   str(args.steps), str(args.batch_size), "1" if lora else "0"]
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
            if proc.returncode:
                sys.exit(proc.stderr[-2000:])
            runs["lora" if lora else "full"] = json.loads(proc.stdout.strip().splitlines()[-1])
    total_tokens = PAPER_PAIRS * PAPER_EPOCHS * args.tokens_per_pair
    flops = 6 * PARAMS_7B * total_tokens
    estimate_s = flops / (8 * A100_BF16_FLOPS * MFU)
    result = {"shape": args.shape, "steps": args.steps, "batch": args.batch_size, **{k: v for k, v in runs.items()},
              "lora_over_full_tokens_per_s": runs["lora"]["tokens_per_s"] / runs["full"]["tokens_per_s"],
              "paper_estimate_s": estimate_s,
              "paper_estimate_assumes": f"6 x 6.7e9 x {total_tokens:.3g} tokens / (8 A100-80GB x 312 TFLOPS bf16 x "
                                        f"{MFU:.0%} MFU); {args.tokens_per_pair:.0f} tokens per pair"}
    if args.json:
        print(json.dumps(result))
        return
    print(f"shape {args.shape}, {args.steps} steps of batch {args.batch_size} on this CPU (float32)")
    for name in ("full", "lora"):
        r = runs[name]
        print(f"  {name:4s}: {r['tokens_per_s']:8.0f} tokens/s  {r['s_per_step']:.2f} s/step  "
              f"peak RSS {r['peak_rss_mb']:.0f} MB  ({r['mean_tokens_per_pair']:.0f} tokens per pair)")
    print(f"  LoRA / full tokens per second: {result['lora_over_full_tokens_per_s']:.2f}x")
    print(f"estimate (not measured): the paper's ML-SFT run, 7B full fine-tuning on 8 GPUs: "
          f"{estimate_s / 60:.0f} min ({result['paper_estimate_assumes']})")


if __name__ == "__main__":
    main()
