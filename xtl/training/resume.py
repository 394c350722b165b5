"""Resuming an ``xtl sft`` run: what ``--out`` already holds (the same run to resume or return,
a run that never got going, or something to refuse) and the last complete checkpoint, with any
checkpoint a kill left half-written set aside; no torch here."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from xtl.errors import DataError, XtlError
from xtl.models.sftfolder import MANIFEST, read_sft_manifest
from xtl.training.settings import RUN_ONLY, SftSettings, setting_defaults

__all__ = ["SELECTION", "CHECKPOINTS", "STATE", "checkpoints", "is_complete", "resume_point", "check_out"]

log = logging.getLogger("xtl")

#: The ids of the pairs a run trained on, beside its manifest (xtl.models.sftfolder.MANIFEST).
SELECTION = "selection.json"
#: The Trainer's checkpoints, inside ``--out``.
CHECKPOINTS = "checkpoints"
#: The file the Trainer writes last into a checkpoint: a checkpoint without it is incomplete.
STATE = "trainer_state.json"

_NAME = re.compile(r"^checkpoint-(\d+)$")


def checkpoints(out: Path) -> list[Path]:
    """The checkpoint folders in ``out/checkpoints``, complete or not, in step order."""
    folder = out / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def is_complete(checkpoint: Path) -> bool:
    """Whether the Trainer finished writing ``checkpoint``: it writes the weights, optimiser,
    scheduler and RNG states first and ``trainer_state.json`` last, so a checkpoint is whole when
    that file is there and reads as the state of its step."""
    try:
        state = json.loads((checkpoint / STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    match = _NAME.match(checkpoint.name)
    return isinstance(state, dict) and match is not None and state.get("global_step") == int(match.group(1))


def _set_aside(checkpoint: Path) -> Path:
    """Rename an incomplete checkpoint out of the Trainer's sight (``incomplete-checkpoint-N``)."""
    target = checkpoint.with_name(f"incomplete-{checkpoint.name}")
    k = 1
    while target.exists():
        k += 1
        target = checkpoint.with_name(f"incomplete-{checkpoint.name}-{k}")
    os.replace(checkpoint, target)
    return target


def resume_point(out: Path, main_process: bool = True) -> Path | None:
    """The last complete checkpoint of the run in ``out`` (None: start from the base model).
    Incomplete checkpoints (a run killed while saving) are set aside by the main process, with
    a warning, so that neither resuming nor the Trainer's rotation of old checkpoints picks them."""
    found = checkpoints(out)
    complete = [p for p in found if is_complete(p)]
    last = complete[-1] if complete else None
    for bad in (p for p in found if p not in complete):
        if main_process:
            aside = _set_aside(bad)
            log.warning("%s is incomplete (the run was stopped while saving it): %s; it is set aside as %s "
                        "(delete it to free the space)", bad,
                        f"resuming from {last.name}" if last else "starting from the base model", aside.name)
    return last


def _data_changed(out: Path, manifest: dict[str, Any], data_sha: str | None) -> None:
    """Refuse to resume or return a run whose data file is no longer the one it trained on."""
    before = manifest.get("data_sha256")
    if not before or not data_sha or before == data_sha:
        return
    what = "holds a model trained" if manifest.get("finished") else "holds a run that trained"
    raise DataError(f"{out} {what} on {manifest.get('data')} with sha256 {before}, but that file's sha256 is now "
                    f"{data_sha}; restore the file it trained on, or train on the new data into another --out")


def check_out(out: Path, settings: SftSettings, data_sha: str | None = None) -> dict[str, Any] | None:
    """The manifest of an earlier run of these settings in ``out`` (to resume or return), None
    for a new run; an error for a folder that holds something else, another run, or a run whose
    data file (``data_sha``: its sha256 now) has changed. A run that never reached a complete
    checkpoint is replaced (a corrected command is not blocked by a failed start); a larger
    ``max_steps`` extends a run from its last checkpoint."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise XtlError(f"out {out} is a file (--out); give a folder for the fine-tuned model")
    manifest = read_sft_manifest(out)
    if manifest is None:
        if any(out.iterdir()):
            raise XtlError(f"out {out} (--out) already holds other files; give an empty or new folder")
        return None
    started = manifest.get("finished") or any(is_complete(p) for p in checkpoints(out))
    before = {**setting_defaults(), **manifest.get("settings", {})}  # a setting added since means its default
    now = settings.to_dict()
    differ = {k: (before.get(k), now.get(k)) for k in now if k not in RUN_ONLY and before.get(k) != now.get(k)}
    if not started:  # nothing trained yet: the run starts again, on the data and settings given now
        if not differ:
            return manifest
        log.warning("%s held a run that stopped before its first checkpoint; starting again with these settings", out)
        for name in (MANIFEST, SELECTION):
            (out / name).unlink(missing_ok=True)
        return None
    if not differ:
        _data_changed(out, manifest, data_sha)
        return manifest
    old_steps, new_steps = differ.get("max_steps", (None, None))
    if set(differ) == {"max_steps"} and isinstance(old_steps, int) and isinstance(new_steps, int) \
            and new_steps > old_steps:
        if not any(is_complete(p) for p in checkpoints(out)):
            raise XtlError(f"{out} finished at step {old_steps} and kept no checkpoint to go on from; train "
                           f"{new_steps} steps into a new --out")
        _data_changed(out, manifest, data_sha)
        log.info("%s: extending the run from step %d to %d (from its last checkpoint)", out, old_steps, new_steps)
        return {**manifest, "finished": False}
    detail = "; ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in sorted(differ.items()))
    hint = (" (a larger --max-steps alone extends a run)" if "max_steps" in differ else "")
    raise XtlError(f"{out} holds a run of other settings ({detail}); use another --out or the same "
                   f"settings{hint}")
