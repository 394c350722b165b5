"""Resuming `xtl sft` (xtl.training.resume): from the last complete checkpoint after a kill, and
never onto another run's data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("accelerate")

import xtl  # noqa: E402
from helpers import run_cli  # noqa: E402
from test_sft import FAST, _pairs, _weights  # noqa: E402
from xtl.errors import DataError  # noqa: E402
from xtl.hashing import file_sha256  # noqa: E402
from xtl.training.resume import is_complete, resume_point  # noqa: E402


def _stop_at(step: int):
    from transformers import TrainerCallback

    class StopAt(TrainerCallback):  # what Ctrl-C does: a checkpoint at the end of the step, then stop
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == step:
                control.should_save = control.should_training_stop = True
            return control
    return StopAt()


def _checkpoint(folder: Path, step: int, complete: bool) -> Path:
    path = folder / "checkpoints" / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    if complete:
        (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return path


def test_the_last_complete_checkpoint_is_resumed_and_incomplete_ones_are_set_aside(tmp_path, caplog):
    """The issue's folder: checkpoint-10 holds only config.json, checkpoint-5 is whole."""
    out = tmp_path / "run"
    _checkpoint(out, 5, complete=True)
    _checkpoint(out, 10, complete=False)
    truncated = _checkpoint(out, 15, complete=False)
    (truncated / "trainer_state.json").write_text('{"global_st')    # killed while writing the last file
    assert not is_complete(truncated) and is_complete(out / "checkpoints" / "checkpoint-5")
    with caplog.at_level("WARNING", logger="xtl"):
        assert resume_point(out) == out / "checkpoints" / "checkpoint-5"
    assert "checkpoint-10 is incomplete (the run was stopped while saving it): resuming from checkpoint-5" \
        in caplog.text
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == \
        ["checkpoint-5", "incomplete-checkpoint-10", "incomplete-checkpoint-15"]
    _checkpoint(out, 10, complete=False)                           # killed at the same step again
    assert resume_point(out, main_process=False) == out / "checkpoints" / "checkpoint-5"
    assert (out / "checkpoints" / "checkpoint-10").is_dir()        # only the main process renames
    resume_point(out)
    assert (out / "checkpoints" / "incomplete-checkpoint-10-2").is_dir()
    assert resume_point(tmp_path / "new") is None


_SLOW_SAVE = """
import os, sys, time
from transformers.trainer_callback import TrainerState
from xtl.cli import main

save = TrainerState.save_to_json

def slow(self, path):  # the Trainer writes trainer_state.json last: hold the process inside checkpoint-4's save
    if os.sep + "checkpoint-4" + os.sep in str(path):
        open(os.environ["SAVING"], "w").close()
        time.sleep(600)
    save(self, path)

TrainerState.save_to_json = slow
sys.exit(main(sys.argv[1:]))
"""


def test_a_run_killed_while_saving_a_checkpoint_resumes_from_the_last_complete_one(tiny_folder, tmp_path):
    """kill -9 in the middle of writing checkpoint-4: the same command again sets it aside,
    resumes from checkpoint-2 and ends with the weights of an uninterrupted run."""
    data = _pairs(tmp_path)
    out = tmp_path / "killed"
    saving = tmp_path / "saving"
    args = ["sft", "--model", tiny_folder, "--data", data, "--out", out, "--n", "16", "--max-steps", "6",
            "--save-steps", "2", "--dtype", "float32", "--lr", "2e-3", "--warmup-ratio", "0", "--batch-size", "4",
            "--max-length", "96"]
    script = tmp_path / "slow_save.py"
    script.write_text(_SLOW_SAVE, encoding="utf-8")
    root = str(Path(xtl.__file__).resolve().parents[1])                # this checkout's xtl, in the child too
    env = {**os.environ, "SAVING": str(saving), "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(script), *map(str, args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not saving.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert saving.exists(), f"the run never reached checkpoint-4's save (exit code {proc.poll()})"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    half = out / "checkpoints" / "checkpoint-4"
    assert (half / "model.safetensors").is_file() and not (half / "trainer_state.json").exists()
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "checkpoint-4 is incomplete (the run was stopped while saving it): resuming from checkpoint-2" \
        in again.stderr
    assert (out / "checkpoints" / "incomplete-checkpoint-4").is_dir()
    manifest = json.loads((out / "xtl-sft.json").read_text())
    assert manifest["finished"] and manifest["steps"] == 6 and manifest["resumed"]
    whole = xtl.sft(str(tiny_folder), str(data), tmp_path / "whole", n=16, max_steps=6, progress=False,
                    **{**FAST, "save_steps": 2})
    a, b = _weights(whole.folder), _weights(out)
    assert all(np.allclose(a[k], b[k], rtol=0, atol=1e-6) for k in a)


def test_a_run_whose_data_file_changed_is_neither_resumed_nor_returned(tiny_folder, tmp_path):
    """An interrupted run would go on from step 3 on the new data, and a finished one be handed
    back as trained on it: both are refused, naming the two hashes. A setting added since a run
    was written (its manifest lacks it) means its default, and a memory-only setting
    (gradient_checkpointing) may change when a run resumes."""
    data = _pairs(tmp_path)
    out = tmp_path / "run"
    kw = dict(n=16, max_steps=4, progress=False, **{**FAST, "save_steps": 1})
    with pytest.raises(KeyboardInterrupt, match="stopped at step 2 of 4"):
        xtl.sft(str(tiny_folder), str(data), out, callbacks=[_stop_at(2)], **kw)
    original = data.read_text(encoding="utf-8")
    old = file_sha256(data)
    data.write_text(original.replace("say ok", "say no"), encoding="utf-8")
    new = file_sha256(data)
    with pytest.raises(DataError, match=rf"holds a run that trained on .*aya.jsonl with sha256 {old}, but that "
                                        rf"file's sha256 is now {new}; restore the file"):
        xtl.sft(str(tiny_folder), str(data), out, **kw)
    data.write_text(original, encoding="utf-8")
    manifest = json.loads((out / "xtl-sft.json").read_text())
    for added in ("weights_dtype", "gradient_checkpointing"):          # as xtl before these settings wrote it
        del manifest["settings"][added]
    (out / "xtl-sft.json").write_text(json.dumps(manifest))
    done = xtl.sft(str(tiny_folder), str(data), out, **{**kw, "gradient_checkpointing": True})
    assert done.resumed and done.steps == 4
    data.write_text(original.replace("say ok", "say no"), encoding="utf-8")
    with pytest.raises(DataError, match=rf"holds a model trained on .*aya.jsonl with sha256 {old}, but that "
                                        rf"file's sha256 is now {new}"):
        xtl.sft(str(tiny_folder), str(data), out, **kw)
    cli = run_cli("sft", "--model", tiny_folder, "--data", data, "--out", out, "--n", "16", "--max-steps", "4",
                  "--save-steps", "1", "--dtype", "float32", "--lr", "2e-3", "--warmup-ratio", "0",
                  "--batch-size", "4", "--max-length", "96")
    assert cli.returncode == 2 and cli.stderr.count("\n") == 1 and f"now {new}" in cli.stderr
