"""What an ML-SFT run depends on: :class:`SftSettings`, checked once when it is made (every field
of the right type, every number finite and in range); no torch here."""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any

from xtl.errors import XtlError
from xtl.training.data import PAPER_N

__all__ = ["SFT_DTYPES", "WEIGHT_DTYPES", "RUN_ONLY", "SftSettings", "setting_defaults"]

#: Precisions a run trains (and saves) in.
SFT_DTYPES = ("bfloat16", "float16", "float32")
#: Dtypes the weights (and so their gradients and Adam's states) are held in while training.
WEIGHT_DTYPES = ("float32", "bfloat16")
#: Settings that change how a run uses memory, not what it computes: they may differ when it resumes.
RUN_ONLY = frozenset({"gradient_checkpointing"})

_WHOLE = ("n", "batch_size", "max_length", "save_steps", "lora_r")
_WHOLE_OR_NONE = ("max_steps", "micro_batch_size")
_FLAGS = ("lora", "gradient_checkpointing")


def _number(value: Any) -> bool:
    """A real, finite number (not a bool: ``True`` is no learning rate)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class SftSettings:
    """Everything an ML-SFT run depends on; the paper's recipe by default (section F: 20,236 Aya
    pairs, batch 16, 3 epochs, learning rate 1e-5, warm-up ratio 0.1, bf16)."""

    model: str
    data: str
    n: int = PAPER_N
    langs: tuple[str, ...] | None = None
    seed: int = 0
    epochs: float = 3.0
    max_steps: int | None = None  # stop after this many optimiser steps (overrides epochs)
    batch_size: int = 16  # global: micro batch × devices × accumulation
    micro_batch_size: int | None = None  # per device (default: the batch, at most 4)
    lr: float = 1e-5
    warmup_ratio: float = 0.1
    dtype: str = "bfloat16"  # training (mixed) precision, and the dtype the weights are saved in
    weights_dtype: str = "float32"  # the weights while training: float32 (mixed precision) or bfloat16
    gradient_checkpointing: bool = False  # recompute activations in the backward pass (less memory)
    max_length: int = 2048
    chat: bool | None = None  # frame with the chat template (default: when the tokenizer has one)
    lora: bool = False  # peft LoRA: a cheaper alternative, not the paper's recipe
    lora_r: int = 16
    save_steps: int = 200

    def __post_init__(self) -> None:
        for name in ("model", "data"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise XtlError(f"{name} must be a non-empty string, not {value!r}")
        if self.langs is not None:
            if isinstance(self.langs, str) or not isinstance(self.langs, (list, tuple)) \
                    or not all(isinstance(l, str) and l.strip() for l in self.langs):
                raise XtlError(f"langs must be a list of language names (e.g. ['German']) or None, not {self.langs!r}")
            object.__setattr__(self, "langs", tuple(self.langs))
        for name in _WHOLE:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise XtlError(f"{name} must be a whole number of at least 1, not {value!r}")
        for name in _WHOLE_OR_NONE:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise XtlError(f"{name} must be a whole number of at least 1 (or None), not {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise XtlError(f"seed must be a whole number, not {self.seed!r}")
        if not (_number(self.lr) and self.lr > 0):
            raise XtlError(f"lr must be a finite positive number, not {self.lr!r}")
        if not (_number(self.warmup_ratio) and 0 <= self.warmup_ratio < 1):
            raise XtlError(f"warmup_ratio must be a number in [0, 1), not {self.warmup_ratio!r}")
        if not (_number(self.epochs) and self.epochs > 0):
            raise XtlError(f"epochs must be a finite positive number, not {self.epochs!r}")
        for name in ("lr", "warmup_ratio", "epochs"):  # a numpy number travels as a plain float
            object.__setattr__(self, name, float(getattr(self, name)))
        if self.dtype not in SFT_DTYPES:
            raise XtlError(f"dtype must be bfloat16 (the paper's), float16 or float32, not {self.dtype!r}")
        if self.weights_dtype not in WEIGHT_DTYPES:
            raise XtlError(f"weights_dtype must be float32 (mixed precision) or bfloat16, not {self.weights_dtype!r}")
        if self.weights_dtype == "bfloat16" and self.dtype != "bfloat16":
            raise XtlError(f"bfloat16 weights train in bfloat16; use dtype='bfloat16' (--dtype), not {self.dtype!r}")
        if self.chat is not None and not isinstance(self.chat, bool):
            raise XtlError(f"chat must be True, False or None, not {self.chat!r}")
        for name in _FLAGS:
            if not isinstance(getattr(self, name), bool):
                raise XtlError(f"{name} must be True or False, not {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON values (the manifest's ``settings``)."""
        return json.loads(json.dumps(asdict(self)))


def setting_defaults() -> dict[str, Any]:
    """Each setting's default, as JSON values: what a manifest written before a setting existed meant."""
    return {f.name: f.default for f in fields(SftSettings) if f.name not in ("model", "data")}
