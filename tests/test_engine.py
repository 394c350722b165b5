import importlib

import numpy as np
import pytest

import xtl
from xtl.errors import StoreError, XtlError
from xtl.analysis import dense
from xtl.engine import read_store
from xtl.engine import Pair, sweep
from helpers import PROMPTS
from reference import assert_sweep_equals_transplant
from xtl.models.backends import hooked_available

#: The shared-prefix kernel's parameter: it runs on HookedTransformer (TransformerLens 3) only.
FAST = [False, pytest.param(True, marks=pytest.mark.skipif(
    not hooked_available(), reason="the shared-prefix kernel runs on HookedTransformer, removed in TransformerLens 4"))]

MAX_NEW = 10
PAIRS = [Pair(PROMPTS["zh"], PROMPTS["en"], "p0", {"lang": "en", "dataset": "toy"}),
         Pair(PROMPTS["en"], PROMPTS["zh"] + "答", "p1", {"lang": "zh", "dataset": "toy"})]


@pytest.mark.parametrize("site", ["attn", "mlp", "block", "heads:0,2", "attn-authors"])
def test_full_grid_token_identical_to_transplant(tiny_models, site):
    _, model = tiny_models["gemma3"]
    df = sweep(model, PAIRS[:1], site=site, max_new_tokens=MAX_NEW, batch_size=3, progress=False)
    assert_sweep_equals_transplant(model, df, site, MAX_NEW)


def test_the_progress_bar_counts_what_it_says(tiny_models, capsys):
    """Issue 38 §4: the demo's bar counted 325 "cfg" for 324 configurations (vanilla is a run too)."""
    _, model = tiny_models["gemma3"]
    sweep(model, PAIRS, site="mlp", src_layers=[0, 1], tgt_layers=[0], max_new_tokens=1, progress=True)
    final = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert "sweep mlp: 2 configurations + vanilla per item, 2/2 items done" in final, final
    assert "6/6 [" in final and "run/s" in final, final


@pytest.mark.parametrize("fast", FAST)
def test_first_token_logprobs_equal_transplant(tiny_models, fast):
    """TransformerLens path at batch 1: bitwise; shared-prefix path (float64 statistics) to the
    float32 rounding of xtl.transplant's log-probs."""
    _, model = tiny_models["llama"]
    df = sweep(model, PAIRS[:1], site="mlp", mode="logits", batch_size=1, progress=False,
               candidates=["A", "B"], fast=fast)
    cand = model.tokenizer(["A", "B"], add_special_tokens=False)["input_ids"]
    for row in df[~df.is_vanilla].itertuples():
        res = xtl.transplant(model, source=PROMPTS["zh"], target=PROMPTS["en"], src_layer=row.src_layer,
                             tgt_layer=row.tgt_layer, site="mlp", max_new_tokens=1)
        for k in range(2):
            expected = float(res.first_logprobs[cand[k][0]])
            assert row.cand_logprobs[k] == (pytest.approx(expected, abs=2e-6) if fast else expected)


def test_logits_mode_entropy_and_candidates(tiny_models):
    _, model = tiny_models["qwen2"]
    df = sweep(model, PAIRS, site="attn", mode="logits", candidates=["A", "B"], progress=False)
    assert (df["response"] == "").all()
    row = df[(df.src_layer == 1) & (df.tgt_layer == 2) & (df.item_id == "p0")].iloc[0]
    res = xtl.transplant(model, source=PROMPTS["zh"], target=PROMPTS["en"], src_layer=1, tgt_layer=2, site="attn",
                         max_new_tokens=1)
    lp = res.first_logprobs.double()
    assert row.entropy == pytest.approx(float(-(lp.exp() * lp).sum()), rel=1e-5)
    with pytest.raises(XtlError, match="first tokens differ"):
        sweep(model, PAIRS, mode="logits", candidates=["A", "A"], progress=False)


@pytest.mark.parametrize("fast", FAST)
def test_cross_grid_sweeps_the_2n_minus_1_configurations_of_the_full_grid(tiny_models, tmp_path, fast):
    _, model = tiny_models["llama"]
    n = model.cfg.n_layers
    full = sweep(model, PAIRS, site="mlp", max_new_tokens=4, progress=False, fast=fast)
    cross = sweep(model, PAIRS, site="mlp", max_new_tokens=4, progress=False, fast=fast, grid="cross",
                  store=tmp_path / "cross")
    want = {(-1, -1)} | {(n - 1, j) for j in range(n)} | {(i, 0) for i in range(n)}
    assert len(want) == 2 * n - 1 + 1 and len(cross) == 2 * len(want)
    assert set(zip(cross.src_layer, cross.tgt_layer)) == want
    key = ["item_id", "src_layer", "tgt_layer"]
    merged = cross.merge(full, on=key, suffixes=("", "_full"))
    assert len(merged) == len(cross)
    assert all(list(a) == list(b) for a, b in zip(merged.token_ids, merged.token_ids_full))
    assert xtl.engine.read_settings(tmp_path / "cross").grid == "cross"
    with pytest.raises(StoreError, match="grid"):  # a full sweep cannot resume a cross store
        sweep(model, PAIRS, site="mlp", max_new_tokens=4, progress=False, store=tmp_path / "cross")
    with pytest.raises(XtlError, match="leave src_layers and tgt_layers out"):
        sweep(model, PAIRS, grid="cross", src_layers=[1], progress=False)
    with pytest.raises(XtlError, match="grid must be 'full'"):
        sweep(model, PAIRS, grid="diagonal", progress=False)


def test_layer_subsets_and_errors(tiny_models):
    _, model = tiny_models["llama"]
    df = sweep(model, PAIRS, site="mlp", src_layers=[3], tgt_layers=[0, 1], max_new_tokens=3,
               progress=False)
    assert sorted(set(zip(df.src_layer, df.tgt_layer))) == [(-1, -1), (3, 0), (3, 1)]
    with pytest.raises(XtlError, match="out of range"):
        sweep(model, PAIRS, src_layers=[7], progress=False)
    with pytest.raises(XtlError, match="mode"):
        sweep(model, PAIRS, mode="beam", progress=False)


def test_store_resumes_without_loss_or_duplicates(tiny_models, tmp_path, monkeypatch):
    _, model = tiny_models["mistral"]
    out = tmp_path / "store"
    import importlib

    engine = importlib.import_module("xtl.engine.run")

    real, calls = engine.sweep_item, []

    def flaky(*args, **kwargs):
        calls.append(args[1].id)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed while the second item is in flight
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "sweep_item", flaky)
    with pytest.raises(KeyboardInterrupt):
        sweep(model, PAIRS, site="mlp", max_new_tokens=4, store=out, progress=False)
    assert read_store(out)["item_id"].unique().tolist() == ["p0"]
    monkeypatch.setattr(engine, "sweep_item", real)
    df = sweep(model, PAIRS, site="mlp", max_new_tokens=4, store=out, progress=False)
    n = model.cfg.n_layers
    assert len(df) == 2 * (n * n + 1)
    assert not df.duplicated(["item_key", "src_layer", "tgt_layer"]).any()
    # same settings again: no work is done
    monkeypatch.setattr(engine, "sweep_item", lambda *a, **k: pytest.fail("recomputed"))
    again = sweep(model, PAIRS, site="mlp", max_new_tokens=4, store=out, progress=False)
    assert len(again) == len(df)
    with pytest.raises(StoreError, match="other settings"):
        sweep(model, PAIRS, site="attn", max_new_tokens=4, store=out, progress=False)


def test_dense_view():
    import pandas as pd

    rows = [dict(item_key="a", src_layer=-1, tgt_layer=-1, is_vanilla=True, correct=1),
            dict(item_key="a", src_layer=0, tgt_layer=1, is_vanilla=False, correct=1),
            dict(item_key="b", src_layer=1, tgt_layer=0, is_vanilla=False, correct=0)]
    arr, keys = dense(pd.DataFrame(rows), "correct", n_layers=2)
    assert keys == ["a", "b"] and arr.shape == (2, 2, 2)
    assert arr[0, 0, 1] == 1 and arr[1, 1, 0] == 0 and np.isnan(arr[0, 0, 0])


@pytest.mark.demo
def test_demo_sample_token_identical(demo_model):
    import random

    from xtl.tasks import builtin_pair

    pair = builtin_pair()
    rng = random.Random(0)
    n = demo_model.cfg.n_layers
    configs = rng.sample([(i, j) for i in range(n) for j in range(n)], 6)
    df = sweep(demo_model, [(pair["source"], pair["target"], "b")], site="mlp",
               src_layers=sorted({i for i, _ in configs}), tgt_layers=sorted({j for _, j in configs}),
               max_new_tokens=8, progress=False)
    for i, j in configs:
        row = df[(df.src_layer == i) & (df.tgt_layer == j)].iloc[0]
        res = xtl.transplant(demo_model, source=pair["source"], target=pair["target"], src_layer=i, tgt_layer=j,
                             site="mlp", max_new_tokens=8)
        assert list(row.token_ids) == res.tokens, (i, j)


def test_progress_moves_within_an_item(tiny_models, monkeypatch):
    """One batch holds the whole grid; the bar must still move per decode step."""
    engine = importlib.import_module("xtl.engine.run")
    _, model = tiny_models["llama"]
    updates, descs = [], []

    class Bar:
        def __init__(self, total, **kw):
            self.total = total
            descs.append(kw.get("desc"))

        def update(self, n):
            updates.append(n)

        def set_description(self, d):
            descs.append(d)

        def close(self):
            pass

    monkeypatch.setattr(engine, "tqdm", Bar)
    sweep(model, PAIRS, site="mlp", max_new_tokens=8, batch_size=512, progress=True)
    n = model.cfg.n_layers
    assert sum(updates) == 2 * (n * n + 1)
    assert len(updates) >= 2 * 4          # several updates per item, not one
    assert descs == [f"sweep mlp: {n * n} configurations + vanilla per item, {k}/2 items done" for k in range(3)]


def test_items_without_ids_never_share_a_key(tiny_models, tmp_path):
    _, model = tiny_models["llama"]
    from helpers import PROMPTS

    first = [(PROMPTS["zh"], PROMPTS["en"]), (PROMPTS["en"], PROMPTS["zh"])]
    second = [(PROMPTS["zh"], PROMPTS["en"] + " Really?"), (PROMPTS["en"], PROMPTS["zh"] + "？")]
    kw = dict(site="mlp", src_layers=[1], tgt_layers=[0], max_new_tokens=4, progress=False)
    store = tmp_path / "s"
    sweep(model, first, store=store, **kw)
    got = sweep(model, second, store=store, **kw)
    alone = sweep(model, second, **kw)
    assert got["item_key"].nunique() == 4                 # the second list was run, not skipped
    mine = got[got["item_key"].isin(set(alone["item_key"]))].sort_values(["item_key", "src_layer"])
    ref = alone.sort_values(["item_key", "src_layer"])
    assert mine["token_ids"].map(list).tolist() == ref["token_ids"].map(list).tolist()
    with pytest.raises(XtlError, match="same key"):
        sweep(model, [first[0], first[0]], **kw)


def test_an_item_claimed_by_another_live_process_is_not_redone(tiny_models, tmp_path, caplog):
    """Process B (here: a sleeping child) holds item p1; the sweep skips it, waits (and says for
    what: the item, B's pid and host), and takes the rows B writes instead of computing them again."""
    import json
    import socket
    import subprocess
    import sys
    import threading
    import time

    from xtl.engine.claims import process_start
    from xtl.engine.store import _shard_name

    _, model = tiny_models["llama"]
    kw = dict(site="mlp", src_layers=[1], tgt_layers=[0], max_new_tokens=3, progress=False)
    ref = sweep(model, PAIRS, **kw)
    store = tmp_path / "s"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        sweep(model, PAIRS[:1], store=store, **kw)  # creates the store with p0 done
        key = "toy/zh/p1"
        (store / _shard_name(key).replace(".parquet", ".claim")).write_text(json.dumps(  # as B writes it
            {"pid": other.pid, "host": socket.gethostname(), "time": time.time(), "started": process_start(other.pid)}))
        fake = ref[ref.item_id == "p1"].assign(response="written by the other process")
        out = {}
        t = threading.Thread(target=lambda: out.setdefault("df", sweep(model, PAIRS, store=store,
                                                                       claim_wait=0.05, **kw)))
        with caplog.at_level("INFO", logger="xtl"):
            t.start()
            t.join(1.0)
        assert t.is_alive()                                # waiting for p1, not computing it
        assert f"waiting for item {key}: pid {other.pid} on host {socket.gethostname()} since" in caplog.text
        fake.to_parquet(store / _shard_name(key), index=False)
        t.join(30)
        got = out["df"]
        assert set(got[got.item_id == "p1"]["response"]) == {"written by the other process"}
        assert len(got) == len(ref)
        assert got[got.item_id == "p0"]["token_ids"].map(list).tolist() == \
            ref[ref.item_id == "p0"]["token_ids"].map(list).tolist()
    finally:
        other.kill()
        other.wait()


def test_a_claim_of_a_dead_process_is_taken_over(tiny_models, tmp_path):
    import json
    import socket
    import subprocess
    import sys

    from xtl.engine.store import _shard_name

    _, model = tiny_models["llama"]
    kw = dict(site="mlp", src_layers=[1], tgt_layers=[0], max_new_tokens=3, progress=False)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store = tmp_path / "s"
    sweep(model, PAIRS[:1], store=store, **kw)
    (store / _shard_name("toy/zh/p1").replace(".parquet", ".claim")).write_text(
        json.dumps({"pid": dead.pid, "host": socket.gethostname(), "time": 0}))
    got = sweep(model, PAIRS, store=store, claim_wait=0.05, **kw)
    assert sorted(got.item_id.unique()) == ["p0", "p1"]
    assert not list(store.glob("*.claim"))
