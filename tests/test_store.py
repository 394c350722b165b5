"""The results store holds one run: its shards, manifest, model and claims are checked where the
store is read, created or shared (issue 37 §1)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pandas as pd
import pytest

import xtl
from helpers import PROMPTS, run_cli
from xtl.engine import Pair, read_store, sweep
from xtl.engine.store import ResultsStore, complete, read_settings
from xtl.errors import StoreError

PAIRS = [Pair(PROMPTS["zh"], PROMPTS["en"], "p0", {"lang": "en", "dataset": "toy", "gold": "B"}),
         Pair(PROMPTS["en"], PROMPTS["zh"] + "答", "p1", {"lang": "zh", "dataset": "toy", "gold": "B"})]
KW = dict(src_layers=[1], tgt_layers=[0], max_new_tokens=2, progress=False)


def _one_line_exit_2(proc, message: str) -> None:
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [l for l in proc.stderr.strip().splitlines() if l.startswith("xtl: error")]
    assert len(lines) == 1 and message in lines[0], proc.stderr[-2000:]


def test_a_shard_of_another_run_is_refused_wherever_the_store_is_read(tiny_models, tmp_path):
    """A shard dropped in from a store of other settings was accepted by the sweep ("nothing to
    do") and the report: every shard's settings are checked against the manifest."""
    _, model = tiny_models["llama"]
    mine, other = tmp_path / "mine", tmp_path / "other"
    sweep(model, PAIRS[:1], site="mlp", store=mine, **KW)
    sweep(model, PAIRS, site="attn", store=other, **KW)
    settings = read_settings(mine)
    stray = next(p for p in other.glob("item-*.parquet") if not (mine / p.name).exists())
    shutil.copy(stray, mine / stray.name)
    message = f'{stray.name} in {mine} holds rows of another run (site: manifest "mlp", shard "attn")'
    for read in (lambda: read_store(mine), lambda: xtl.open_run(mine, task="x.jsonl"),
                 lambda: ResultsStore(mine, settings), lambda: sweep(model, PAIRS, site="mlp", store=mine, **KW),
                 lambda: complete(mine, {"src_layers": [1], "tgt_layers": [0]}, ["toy/en/p0"])):  # "nothing to do"
        with pytest.raises(StoreError, match=message.replace("(", r"\(").replace(")", r"\)")):
            read()
    _one_line_exit_2(run_cli("report", str(mine), "--task", "x.jsonl"), "holds rows of another run")


def test_a_hand_edited_manifest_does_not_outrank_its_shards(tiny_models, tmp_path):
    _, model = tiny_models["llama"]
    store = tmp_path / "s"
    sweep(model, PAIRS, site="mlp", store=store, **KW)
    manifest = json.loads((store / "manifest.json").read_text())
    (store / "manifest.json").write_text(json.dumps({**manifest, "site": "attn", "max_new_tokens": 5}))
    message = r'disagrees with all 2 shards \(max_new_tokens: manifest 5, shard 2; site: manifest "attn", shard "mlp"\)'
    with pytest.raises(StoreError, match=message):
        read_store(store)
    with pytest.raises(StoreError, match=message):              # the edited manifest's own settings
        sweep(model, PAIRS, site="attn", store=store, **{**KW, "max_new_tokens": 5})


def test_a_parquet_file_that_is_not_a_shard_is_named(tiny_models, tmp_path):
    """A stray item-zzz.parquet ended `xtl report` in "TypeError: bad operand type for unary ~"."""
    _, model = tiny_models["llama"]
    store = tmp_path / "s"
    sweep(model, PAIRS, site="mlp", store=store, **KW)
    pd.DataFrame({"a": [1], "b": ["x"]}).to_parquet(store / "item-zzz.parquet")
    with pytest.raises(StoreError, match=r"item-zzz.parquet is not a shard of an xtl results store \(it lacks"):
        read_store(store)
    _one_line_exit_2(run_cli("report", str(store), "--task", "x.jsonl"), "item-zzz.parquet is not a shard")


def test_the_library_refuses_an_item_twice(tiny_models, tmp_path):
    """open_run returned repeated (item, source, target) rows without a word (the CLI's grid refused them)."""
    _, model = tiny_models["llama"]
    store = tmp_path / "s"
    sweep(model, PAIRS, site="mlp", store=store, **KW)
    shard = sorted(store.glob("item-*.parquet"))[0]
    shutil.copy(shard, store / "item-copy.parquet")
    first, second = sorted([shard.name, "item-copy.parquet"])
    with pytest.raises(StoreError, match=rf"holds item toy/\w+/p\d \(-1, -1\) in {first} and {second}"):
        xtl.open_run(store, task="x.jsonl")


CREATE = textwrap.dedent("""
    import os, sys, time
    from xtl.engine import store
    from xtl.errors import StoreError
    from xtl.schema import SweepSettings

    to_dict = SweepSettings.to_dict
    def slow(self):   # the manifest's text takes a while: a window between the look and the write
        time.sleep(0.3)
        return to_dict(self)
    SweepSettings.to_dict = slow
    go = sys.argv[2] + ".go"
    while not os.path.exists(go):
        time.sleep(0.01)
    try:
        store.ResultsStore(sys.argv[2], SweepSettings("m", 2, sys.argv[1], (0,), (0,)))
        print("accepted")
    except StoreError as exc:
        print("refused:", exc)
""")


def test_two_processes_creating_one_store_with_different_settings(tmp_path):
    """Both were accepted in 4 of 30 tries: the manifest was checked, then written, unlocked."""
    store = tmp_path / "new"
    procs = [subprocess.Popen([sys.executable, "-c", CREATE, site, str(store)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for site in ("attn", "mlp")]
    time.sleep(0.2)
    (tmp_path / "new.go").touch()
    outs = [p.communicate(timeout=120) for p in procs]
    said = sorted(out.strip().split(":")[0] for out, _ in outs)
    assert said == ["accepted", "refused"], outs
    refused = next(out for out, _ in outs if out.startswith("refused"))
    assert "holds a sweep with other settings (site: store" in refused
    assert json.loads((store / "manifest.json").read_text())["site"] in refused


def test_two_models_of_one_name_fill_no_store(tmp_path, tokenizer, capsys):
    """models/a/tiny and models/b/tiny (or q4/model.gguf and q8/model.gguf) were one model to a store."""
    from helpers import tiny_hf, write_tiny_gguf
    from xtl.cli import main
    from xtl.models.identity import model_identity

    folders = []
    for name, seed in (("a", 0), ("b", 1)):
        folder = tmp_path / "models" / name / "tiny"
        tiny_hf("llama", seed=seed, n_layers=2).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders.append(folder)
    a, b = (xtl.load_model(f, dtype="float64", device="cpu") for f in folders)
    assert a.cfg.model_name == b.cfg.model_name == "tiny" and a.xtl_identity != b.xtl_identity
    assert a.xtl_identity == model_identity(folders[0])       # known before loading, for the CLI's quick look
    store = tmp_path / "store"
    sweep(a, PAIRS, site="mlp", store=store, **KW)
    with pytest.raises(StoreError, match="model_identity: store"):
        sweep(b, PAIRS, site="mlp", store=store, **KW)
    task = tmp_path / "task.jsonl"
    task.write_text("\n".join(json.dumps({"id": it.id, "lang": it.lang, "source": it.source, "target": it.target,
                                          "gold": "B"}) for it in PAIRS))
    cli = ["sweep", "--task", str(task), "--dtype", "float64", "--site", "mlp", "--max-new-tokens", "2",
           "--src-layers", "1", "--tgt-layers", "0", "--out", str(tmp_path / "cli")]
    assert main([*cli, "--model", str(folders[0])]) == 0
    capsys.readouterr()
    assert main([*cli, "--model", str(folders[1])]) == 2       # a finished store: refused before loading
    assert "model_identity: store" in capsys.readouterr().err
    for name, seed in (("q4", 0), ("q8", 1)):
        write_tiny_gguf((tmp_path / name).mkdir() or tmp_path / name / "model.gguf", "llama", seed=seed)
    q4, q8 = model_identity(tmp_path / "q4" / "model.gguf"), model_identity(tmp_path / "q8" / "model.gguf")
    assert q4 and q8 and q4 != q8


def test_a_model_without_identity_is_recorded_as_such(tiny_models, tmp_path, caplog):
    _, model = tiny_models["llama"]                              # from_hf: weights built in memory
    store = tmp_path / "s"
    with caplog.at_level("INFO", logger="xtl"):
        sweep(model, PAIRS[:1], site="mlp", store=store, **KW)
    assert read_settings(store).model_identity is None
    assert "has no identity (weights built in memory, or a hub name)" in caplog.text


def _claim(path, pid: int, made: float, started: float | None) -> None:
    info = {"pid": pid, "host": socket.gethostname(), "time": made}
    path.write_text(json.dumps(info if started is None else {**info, "started": started}))


def test_a_claim_whose_pid_was_reused_is_taken_over(tiny_models, tmp_path):
    """kill -9 left a claim whose pid now names an unrelated live process: the sweep waited forever."""
    from xtl.engine.claims import process_start
    from xtl.engine.store import _shard_name

    _, model = tiny_models["llama"]
    store = tmp_path / "s"
    sweep(model, PAIRS[:1], site="mlp", store=store, **KW)
    claim = ResultsStore(store, read_settings(store)).claim_file("toy/zh/p1")
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = process_start(unrelated.pid)
        assert started is not None
        for record in (started - 500.0, None):                  # as xtl writes claims now, and as it did before
            _claim(claim, unrelated.pid, started - 600.0, record)
            out = {}
            t = threading.Thread(target=lambda: out.setdefault("df", sweep(model, PAIRS, site="mlp", store=store,
                                                                           claim_wait=0.05, **KW)), daemon=True)
            t.start()
            t.join(30)
            assert not t.is_alive(), "the sweep waits for a claim of a process that is gone"
            assert sorted(out["df"]["item_id"].unique()) == ["p0", "p1"] and not claim.exists()
            (store / _shard_name("toy/zh/p1")).unlink()          # to be run again in the next round
    finally:
        unrelated.kill()
        unrelated.wait()
