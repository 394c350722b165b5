"""The memory an ML-SFT run's model states need (weights, gradients, Adam's two moments), said
before it starts: the ZeRO paper's accounting (Rajbhandari et al., 2020) for what the Trainer
holds; activations come on top and depend on the batch and length."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["StateMemory", "state_memory"]

_BYTES = {"float32": 4, "bfloat16": 2}
GB, MB = 1e9, 1e6


@dataclass(frozen=True)
class StateMemory:
    """Bytes of a run's model states: all weights, gradients and Adam's moments of the
    trainable ones, in total and per device (``shards`` devices share them under ZeRO-3 / FSDP)."""

    weights: int
    gradients: int
    optimizer: int
    weights_dtype: str
    shards: int = 1

    @property
    def total(self) -> int:
        """Bytes of all model states together."""
        return self.weights + self.gradients + self.optimizer

    @property
    def per_device(self) -> int:
        """Bytes on each device."""
        return -(-self.total // self.shards)

    def describe(self) -> str:
        """One line: the total and its parts (in GB, or MB below 1 GB), and each device's share
        when sharded."""
        unit, size = ("GB", GB) if self.total >= GB else ("MB", MB)
        line = (f"the model states need about {self.total / size:.1f} {unit} (weights {self.weights / size:.1f} + "
                f"gradients {self.gradients / size:.1f} + Adam states {self.optimizer / size:.1f}, "
                f"{self.weights_dtype} weights), before activations")
        if self.shards > 1:
            line += f"; {self.per_device / size:.1f} {unit} on each of {self.shards} devices sharing them"
        return line


def state_memory(params: int, trainable: int, weights_dtype: str = "float32", shards: int = 1) -> StateMemory:
    """Model-state memory of training ``trainable`` of ``params`` parameters with AdamW.

    float32 weights (mixed precision): 4 bytes per weight, 4 per gradient and 8 for Adam's two
    float32 moments — 16 bytes per trainable parameter, 112 GB for 7e9. bfloat16 weights: 2 + 2
    + 4 (torch's AdamW keeps its moments in the weights' dtype) — 8 bytes per parameter.
    ``shards``: devices that share the states (ZeRO-3 or FSDP full sharding), else 1.
    """
    size = _BYTES[weights_dtype]
    return StateMemory(weights=params * size, gradients=trainable * size, optimizer=2 * trainable * size,
                       weights_dtype=weights_dtype, shards=max(1, shards))
