"""Training baselines the paper compares transplantation with: multilingual supervised
fine-tuning (ML-SFT, section F) on the standard stack (``transformers`` Trainer + ``accelerate``;
``pip install 'xtl[sft]'``). Nothing else in xtl imports this package."""

from xtl._lazy import lazy_exports

_EXPORTS = {
    "sft": "xtl.training.finetune", "SftSettings": "xtl.training.settings", "SftResult": "xtl.training.finetune",
    "read_sft_manifest": "xtl.models.sftfolder", "frame_example": "xtl.training.finetune",
    "Pair": "xtl.training.data", "read_pairs": "xtl.training.data", "select_pairs": "xtl.training.data",
    "language_counts": "xtl.training.data", "PAPER_N": "xtl.training.data", "AYA_HUB": "xtl.training.data",
    "state_memory": "xtl.training.memory", "StateMemory": "xtl.training.memory",
    "accelerate_config": "xtl.training.configs", "ACCELERATE_CONFIGS": "xtl.training.configs",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
