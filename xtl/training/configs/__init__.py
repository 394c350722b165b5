"""``accelerate`` configurations shipped for ``xtl sft``: one GPU, 8 GPUs data-parallel, and
8 GPUs with DeepSpeed ZeRO-3 or FSDP for full fine-tuning of a 7B model (docs/sft.md)."""

from __future__ import annotations

from pathlib import Path

from xtl.errors import XtlError

__all__ = ["ACCELERATE_CONFIGS", "accelerate_config"]

#: name -> what it is for.
ACCELERATE_CONFIGS = {
    "one-gpu": "one GPU, no distribution",
    "ddp-8gpu": "8 GPUs data-parallel (DDP): a model and its optimiser state must fit on each GPU",
    "deepspeed-zero3-8gpu": "8 GPUs, DeepSpeed ZeRO-3: full 7B fine-tuning on 8 x 80 GB (the paper's setting)",
    "fsdp-8gpu": "8 GPUs, PyTorch FSDP full sharding: ZeRO-3's alternative without DeepSpeed",
}


def accelerate_config(name: str) -> Path:
    """The path of a shipped config, for ``accelerate launch --config_file PATH -m xtl.cli sft ...``."""
    if name not in ACCELERATE_CONFIGS:
        raise XtlError(f"no accelerate config {name!r}; shipped: {', '.join(ACCELERATE_CONFIGS)}")
    return Path(__file__).with_name(f"{name}.yaml")
