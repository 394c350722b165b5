"""The paper's ML-SFT baseline (section F): full-parameter supervised fine-tuning of a Hugging
Face causal LM with the ``transformers`` Trainer (so ``accelerate launch`` spreads it over GPUs
with DDP, DeepSpeed or FSDP), loss on the response tokens only, the prompt framed exactly as
xtl's evaluation frames it. The output folder loads with :func:`xtl.load_model` and tells the
stores swept on it that it is an ML-SFT model (Tables 4, 6, 7 and 11)."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from xtl.errors import DataError, ModelSpecError, TrainingError, XtlError
from xtl.models.sftfolder import MANIFEST, read_sft_manifest
from xtl.training.data import Pair, data_sha256, language_counts, read_pairs, select_pairs
from xtl.training.memory import state_memory
from xtl.training.resume import CHECKPOINTS, SELECTION, check_out, resume_point
from xtl.training.settings import SFT_DTYPES, SftSettings

__all__ = ["SFT_DTYPES", "SftSettings", "SftResult", "sft", "MANIFEST", "read_sft_manifest", "frame_example"]

log = logging.getLogger("xtl")


@dataclass(frozen=True)
class SftResult:
    """Where the fine-tuned model is and how training went."""

    folder: Path
    steps: int
    losses: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    examples: int = 0
    resumed: bool = False


# ---------------------------------------------------------------- examples
def _has_chat_template(tokenizer: Any) -> bool:
    return getattr(tokenizer, "chat_template", None) is not None


def frame_example(tokenizer: Any, pair: Pair, chat: bool, max_length: int) -> dict[str, list[int]] | None:
    """Token ids and labels of one pair: the prompt as xtl's evaluation tokenises it (the chat
    template's user turn with the generation prompt, or the PilotSets' ``Human: … Assistant:``
    frame), then the response and its end (end-of-turn or EOS). Prompt labels are -100, so only
    response tokens carry loss. None when the prompt alone fills ``max_length``."""
    from xtl.patching.prompts import chat_prompt, encode

    if chat:
        prompt = chat_prompt(tokenizer, pair.inputs)
        full = tokenizer.apply_chat_template([{"role": "user", "content": pair.inputs},
                                              {"role": "assistant", "content": pair.targets}], tokenize=False)
        if not full.startswith(prompt):
            raise XtlError("this tokenizer's chat template does not extend the prompt with the answer; "
                           "train without the chat template (--no-chat)")
        completion = full[len(prompt):]
        end: list[int] = []
    else:
        prompt = f"Human: {pair.inputs}\n\nAssistant:"
        completion = f" {pair.targets}"
        end = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    prompt_ids = encode(tokenizer, prompt)
    answer_ids = tokenizer(completion, add_special_tokens=False)["input_ids"] + end
    if len(prompt_ids) >= max_length:
        return None
    answer_ids = answer_ids[:max_length - len(prompt_ids)]
    return {"input_ids": prompt_ids + answer_ids, "labels": [-100] * len(prompt_ids) + answer_ids}


class _Collator:
    """Right-pads a batch: pad id for inputs, -100 for labels, a 0 attention mask over padding."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(b["input_ids"]) for b in batch)
        ids = [b["input_ids"] + [self.pad_id] * (width - len(b["input_ids"])) for b in batch]
        labels = [b["labels"] + [-100] * (width - len(b["labels"])) for b in batch]
        mask = [[1] * len(b["input_ids"]) + [0] * (width - len(b["input_ids"])) for b in batch]
        return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels),
                "attention_mask": torch.tensor(mask)}


# ---------------------------------------------------------------- checks
def _check_base_model(spec: str) -> None:
    from xtl.models.names import DEMO_ALIASES, DEMO_MODEL

    text = str(spec)
    if text in (DEMO_MODEL, *DEMO_ALIASES) or text.lower().endswith(".gguf"):
        raise ModelSpecError(f"{text} is a quantised GGUF model, which cannot be fine-tuned; fine-tune its source "
                             "model (a Hugging Face folder or hub name, e.g. google/gemma-3-270m) instead")
    path = Path(text).expanduser()
    if not path.exists() and (text.startswith((".", "/", "~")) or text.count("/") > 1 or os.sep + os.sep in text):
        raise ModelSpecError(f"base model folder {path} does not exist; give a Hugging Face model folder or hub name")
    if path.exists() and not (path / "config.json").is_file():
        raise ModelSpecError(f"{path} is not a Hugging Face model folder (no config.json)")


def _check_dtype(dtype: str) -> None:
    import torch

    if torch.cuda.is_available() and dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
        raise XtlError("this GPU cannot train in bfloat16; use dtype='float16' or 'float32' (--dtype)")
    if dtype == "float16" and not torch.cuda.is_available():
        raise XtlError("float16 training needs a GPU; use dtype='bfloat16' or 'float32' (--dtype) on a CPU")


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _is_main_process() -> bool:
    """Rank 0 of a launch (``accelerate launch`` / ``torchrun`` set ``RANK``), or a single process."""
    return int(os.environ.get("RANK", "0")) == 0


def warmup_steps(ratio: float, total_steps: int) -> int:
    """Optimiser steps of linear warm-up for a warm-up ``ratio`` of ``total_steps`` (rounded up,
    as transformers rounds ``warmup_ratio``): computed here, so the schedule is the same on every
    transformers version (whether ``warmup_steps`` takes a ratio or only a count)."""
    return int(math.ceil(ratio * total_steps)) if ratio > 0 else 0


def total_steps(settings: SftSettings, examples: int) -> int:
    """Optimiser steps of a run: ``max_steps``, or ``epochs`` (fractions too) over ``examples`` at
    the global batch, rounded up as the Trainer rounds them; the Trainer is given this count."""
    if settings.max_steps:
        return int(settings.max_steps)
    return int(math.ceil(settings.epochs * math.ceil(examples / settings.batch_size)))


def _steps(settings: SftSettings) -> tuple[int, int]:
    """(micro batch per device, gradient accumulation) for the global batch on this many devices."""
    micro = settings.micro_batch_size or min(settings.batch_size, 4)
    world = _world_size()
    if settings.batch_size % (micro * world):
        raise XtlError(f"batch_size {settings.batch_size} is not a multiple of micro batch {micro} × {world} "
                       "device(s); change --batch-size or --micro-batch-size")
    return micro, settings.batch_size // (micro * world)


def _check_arguments(model: Any, data: Any, out: Any, progress: Any, callbacks: Any) -> None:
    """One line for an argument of the wrong type, before anything is read or written."""
    for name, value, what, error in (("model", model, "a Hugging Face folder or hub name", ModelSpecError),
                                     ("data", data, "a JSONL/Parquet file or a Hub dataset name", DataError),
                                     ("out", out, "the folder for the fine-tuned model", XtlError)):
        if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
            raise error(f"sft's {name} must be {what} (a str or path), not {value!r}")
    if not isinstance(progress, bool):
        raise XtlError(f"sft's progress must be True or False, not {progress!r}")
    if isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, Sequence):
        raise XtlError(f"sft's callbacks must be a list of transformers.TrainerCallback, not {callbacks!r}")


# ---------------------------------------------------------------- the run
def sft(model: str, data: str, out: str | os.PathLike, *, progress: bool = True,
        callbacks: Sequence[Any] = (), **settings: Any) -> SftResult:
    """Fine-tune ``model`` (a Hugging Face folder or hub name) on instruction pairs of ``data``
    (JSONL/Parquet with Aya's ``inputs``, ``targets``, ``language``, or a Hub name such as
    ``CohereForAI/aya_dataset``) into the folder ``out``.

    ``settings`` are :class:`SftSettings` fields (``n``, ``langs``, ``seed``, ``epochs``,
    ``max_steps``, ``batch_size``, ``micro_batch_size``, ``lr``, ``warmup_ratio``, ``dtype``,
    ``weights_dtype``, ``gradient_checkpointing``, ``max_length``, ``chat``, ``lora``,
    ``lora_r``, ``save_steps``); the paper's recipe by default. Checkpoints go to
    ``out/checkpoints`` every ``save_steps`` steps; the same call again resumes from the last
    complete one (a run of other settings or on an edited data file is refused), and Ctrl-C
    saves one before it stops. A loss that becomes NaN or inf stops the run with
    :class:`~xtl.errors.TrainingError`. ``callbacks``: extra ``transformers.TrainerCallback``
    objects.
    """
    _check_arguments(model, data, out, progress, callbacks)
    unknown = sorted(set(settings) - ({f.name for f in fields(SftSettings)} - {"model", "data"}))
    if unknown:
        raise XtlError(f"sft got unknown setting(s) {unknown}; see xtl.training.SftSettings")
    config = SftSettings(model=str(model), data=str(data), **settings)
    _check_base_model(config.model)
    _check_dtype(config.dtype)
    out = Path(out).expanduser()
    data_file = Path(config.data).expanduser()
    data_sha = data_sha256(data_file) if data_file.is_file() else None
    earlier = check_out(out, config, data_sha)
    if earlier is not None and earlier.get("finished"):
        log.info("%s already holds this fine-tuned model; nothing to do", out)
        return SftResult(out, int(earlier.get("steps", 0)), earlier.get("losses", []), earlier.get("wall_s", 0.0),
                         int(earlier.get("examples", 0)))
    pairs = read_pairs(config.data)
    chosen = select_pairs(pairs, config.n, config.langs, config.seed)
    counts = language_counts(chosen)
    log.info("%d pairs in %d languages: %s", len(chosen), len(counts),
             ", ".join(f"{lang} {k}" for lang, k in counts.items()))
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(config.model)
    except Exception as exc:  # noqa: BLE001 - transformers raises many kinds; all mean the same
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        if not Path(config.model).expanduser().exists():
            raise ModelSpecError(
                f"base model {config.model!r} was not found: it is not a local folder (looked in "
                f"{Path(config.model).expanduser().resolve()}) and the Hugging Face Hub did not provide it "
                f"({type(exc).__name__}: {first}); give a local Hugging Face model folder, or a hub name this "
                "machine can download") from exc
        raise ModelSpecError(f"cannot load the tokenizer of {config.model} ({type(exc).__name__}: {first}); give a "
                             "Hugging Face folder or hub name with a tokenizer") from exc
    chat = _has_chat_template(tokenizer) if config.chat is None else config.chat
    if chat and not _has_chat_template(tokenizer):
        raise XtlError(f"{config.model}'s tokenizer has no chat template; train with chat=False (without --chat)")
    examples = [e for e in (frame_example(tokenizer, p, chat, config.max_length) for p in chosen) if e]
    if not examples:
        raise DataError(f"no example fits in max_length {config.max_length}; raise max_length (--max-length)")
    if len(examples) < len(chosen):
        log.warning("%d pair(s) left out: their prompt alone fills max_length %d", len(chosen) - len(examples),
                    config.max_length)
    out.mkdir(parents=True, exist_ok=True)
    source = {"data": str(data_file.resolve()), "data_sha256": data_sha} if data_sha else {"data": config.data}
    manifest: dict[str, Any] = {"settings": config.to_dict(), "base_model": config.model, **source,
                                "prompt_frame": "chat template" if chat else "Human: … Assistant:", "chat": bool(chat),
                                "chat_template_sha256": (hashlib.sha256(tokenizer.chat_template.encode("utf-8")).hexdigest()
                                                         if chat else None),
                                "selected": len(chosen), "examples": len(examples), "languages": counts,
                                "xtl_version": _version(), "finished": False,
                                "wall_s": float((earlier or {}).get("wall_s", 0.0))}
    if _is_main_process():  # one writer: every rank of a launch runs this function
        _write_json(out / MANIFEST, manifest)
        _write_json(out / SELECTION, [p.id for p in chosen])
    return _train(config, tokenizer, examples, out, manifest, chat, progress, callbacks)


def _train(config: SftSettings, tokenizer: Any, examples: list[dict], out: Path, manifest: dict,
           chat: bool, progress: bool, callbacks: Sequence[Any]) -> SftResult:
    import torch
    from transformers import AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments

    try:
        model = AutoModelForCausalLM.from_pretrained(config.model, dtype=getattr(torch, config.weights_dtype))
    except Exception as exc:  # noqa: BLE001
        raise ModelSpecError(f"cannot load {config.model} for training ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:160] if str(exc) else ''})") from exc
    if config.gradient_checkpointing and not getattr(model, "supports_gradient_checkpointing", False):
        raise TrainingError(f"{type(model).__name__} does not support gradient checkpointing; train without "
                            "gradient_checkpointing (--gradient-checkpointing)")
    if config.lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=config.lora_r, lora_alpha=2 * config.lora_r,
                                                 target_modules="all-linear", task_type="CAUSAL_LM"))
    _say_memory(model, config.weights_dtype)
    micro, accum = _steps(config)
    checkpoints = out / CHECKPOINTS
    resume = resume_point(out, _is_main_process())
    steps = total_steps(config, len(examples))
    args = TrainingArguments(
        output_dir=str(checkpoints), num_train_epochs=config.epochs, max_steps=steps,
        per_device_train_batch_size=micro, gradient_accumulation_steps=accum, learning_rate=config.lr,
        warmup_steps=warmup_steps(config.warmup_ratio, steps), lr_scheduler_type="linear", weight_decay=0.0,
        gradient_checkpointing=config.gradient_checkpointing,
        bf16=config.dtype == "bfloat16", fp16=config.dtype == "float16", logging_steps=1,
        logging_nan_inf_filter=False,  # a NaN loss is logged as NaN (else as the window's mean), so it stops the run
        # bfloat16 autocast on a CPU: transformers asks for use_cpu (else "doesn't support bf16/gpu")
        use_cpu=config.dtype == "bfloat16" and not torch.cuda.is_available(),
        save_strategy="steps", save_steps=config.save_steps, save_total_limit=2, seed=config.seed,
        data_seed=config.seed, report_to=[], remove_unused_columns=False, disable_tqdm=not progress,
        dataloader_num_workers=0, dataloader_pin_memory=torch.cuda.is_available(),
        # several CPU processes (a test of the multi-GPU path, or a CPU cluster): gloo, not NCCL
        **({"ddp_backend": "gloo"} if _world_size() > 1 and not torch.cuda.is_available() else {}))
    stop = _StopOnSignal()

    class _Interrupt(TrainerCallback):
        """Ctrl-C: save a checkpoint at the end of this step, then stop."""

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ARG002
            if stop.asked:
                control.should_save = True
                control.should_training_stop = True
            return control

    class _Diverged(TrainerCallback):
        """A NaN or inf loss: stop at once, without saving this step's checkpoint."""

        step: int | None = None
        loss: float = 0.0

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ARG002
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)) and self.step is None:
                self.step, self.loss = int(state.global_step), float(loss)
            if self.step is not None:
                control.should_save = False
                control.should_training_stop = True
            return control

    diverged = _Diverged()
    trainer = Trainer(model=model, args=args, train_dataset=examples,
                      data_collator=_Collator(tokenizer.pad_token_id if tokenizer.pad_token_id is not None
                                              else tokenizer.eos_token_id or 0),
                      callbacks=[_Interrupt(), diverged, *callbacks])
    start = time.perf_counter()
    with stop:
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    wall = time.perf_counter() - start
    state = trainer.state
    losses = [float(h["loss"]) for h in state.log_history if "loss" in h]
    world = _world_size()
    if world > 1 and getattr(args, "average_tokens_across_devices", False):
        # the Trainer scales each rank's loss by the world size for the gradient average and logs it so
        losses = [loss / world for loss in losses]
    manifest.update(steps=int(state.global_step), losses=losses, wall_s=round(wall + manifest.get("wall_s", 0.0), 3),
                    resumed=bool(resume))
    if diverged.step is not None:
        manifest.update(diverged_at_step=diverged.step)
        if trainer.is_world_process_zero():
            _write_json(out / MANIFEST, manifest)  # unfinished: xtl.load_model refuses the folder
        raise TrainingError(f"the loss became {diverged.loss} at step {diverged.step}, so training stopped; train "
                            f"again with a lower learning rate (--lr, now {config.lr:g}) into another --out (no "
                            f"checkpoint of step {diverged.step} or later was kept)")
    finished = state.global_step >= state.max_steps and not stop.asked
    if not finished:
        if trainer.is_world_process_zero():
            _write_json(out / MANIFEST, manifest)
        raise KeyboardInterrupt(f"training stopped at step {state.global_step} of {state.max_steps}; a checkpoint "
                                f"is in {checkpoints}: run the same command again to resume")
    if config.lora:
        final = trainer.model.merge_and_unload()  # a plain model folder that xtl.load_model loads
        if trainer.is_world_process_zero():
            final.save_pretrained(out, safe_serialization=True)
    else:
        # every rank: under ZeRO-3 or FSDP the weights are sharded over the ranks, and the Trainer
        # gathers the full state dict (rank 0 writes it); a rank-0-only save_pretrained would not
        trainer.save_model(str(out))
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        _cast_saved_weights(out, getattr(torch, config.dtype))
        tokenizer.save_pretrained(out)
        manifest.update(finished=True, saved_dtype=config.dtype)
        _write_json(out / MANIFEST, manifest)  # last: the folder is finished only now
    return SftResult(out, int(state.global_step), losses, manifest["wall_s"], len(examples), bool(resume))


def _say_memory(model: Any, weights_dtype: str) -> None:
    """Log the memory the model states need (:func:`~xtl.training.memory.state_memory`) before
    training starts, and warn when it is more than the GPU has."""
    import torch

    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    env = os.environ
    sharded = env.get("ACCELERATE_USE_FSDP", "").lower() == "true" or (
        env.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true" and env.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3")
    need = state_memory(params, trainable, weights_dtype, _world_size() if sharded else 1)
    if not _is_main_process():
        return
    log.info("%s", need.describe())
    if torch.cuda.is_available():
        have = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
        if need.per_device > have:
            log.warning("that is more than this GPU's %.1f GB: train bfloat16 weights (--weights-dtype bfloat16), "
                        "LoRA (--lora), or shard over GPUs with ZeRO-3 / FSDP (xtl sft --accelerate-configs)",
                        have / 1e9)


def _cast_saved_weights(folder: Path, dtype: Any) -> None:
    """Rewrite the saved safetensors files' floating tensors in ``dtype`` (one file at a time)."""
    from safetensors.torch import load_file, save_file

    for path in sorted(folder.glob("model*.safetensors")):
        tensors = load_file(str(path))
        if all(not t.is_floating_point() or t.dtype == dtype for t in tensors.values()):
            continue
        cast = {k: (t.to(dtype) if t.is_floating_point() else t).contiguous() for k, t in tensors.items()}
        tmp = path.with_name(path.name + ".partial")
        save_file(cast, str(tmp), metadata={"format": "pt"})
        os.replace(tmp, path)
    config = folder / "config.json"
    if config.is_file():
        data = json.loads(config.read_text(encoding="utf-8"))
        data["dtype"] = str(dtype).removeprefix("torch.")
        data.pop("torch_dtype", None)
        _write_json(config, data)


class _StopOnSignal:
    """Turns Ctrl-C during training into a request to checkpoint and stop (a second Ctrl-C
    stops at once)."""

    def __init__(self) -> None:
        self.asked = False
        self._old = None

    def __enter__(self) -> "_StopOnSignal":
        try:
            self._old = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: leave Ctrl-C alone
            self._old = None
        return self

    def _handle(self, signum, frame) -> None:  # noqa: ARG002
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True
        log.warning("stopping after this step and saving a checkpoint (Ctrl-C again to stop at once)")

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def _version() -> str:
    from xtl import __version__

    return __version__
