"""Sweeps spread over a local Ray cluster give exactly the single-process results, also when a
worker is killed mid-run; shards of a job array fill one store."""

from __future__ import annotations

import json
import threading
import time

import pytest

import xtl
from xtl.engine.store import read_store

from helpers import PROMPTS

# Ray clusters of this module run on one test worker (pytest -n with --dist loadgroup)
pytestmark = pytest.mark.xdist_group("ray")


COLS = ["item_key", "src_layer", "tgt_layer"]
KW = dict(site="attn", src_layers=[0, 3], tgt_layers=[0, 1], max_new_tokens=12)


@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'xtl[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


def _items(n):
    return [(PROMPTS["zh"] + " " * k, PROMPTS["en"] + "." * k, f"i{k}", {"lang": "de"}) for k in range(n)]


def _single(folder, items):
    model = xtl.load_model(str(folder), dtype="float64", device="cpu")
    return xtl.sweep(model, items, progress=False, **KW).sort_values(COLS).reset_index(drop=True)


def test_ray_sweep_equals_a_single_process(cluster, tiny_folder, tmp_path):
    from xtl.engine.distributed import sweep_ray

    items = _items(6)
    got = sweep_ray(str(tiny_folder), items, tmp_path / "r", dtype="float64", workers=2, progress=False, **KW)
    got = got.sort_values(COLS).reset_index(drop=True)
    ref = _single(tiny_folder, items)
    assert len(got) == len(ref) == 6 * 5 and not got.duplicated(COLS).any()
    assert got["token_ids"].map(list).tolist() == ref["token_ids"].map(list).tolist()
    assert got["loglik"].tolist() == ref["loglik"].tolist()
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["model"] == tiny_folder.name and manifest["src_layers"] == [0, 3]
    assert manifest["engine"] == "shared-prefix"           # the driver records the path its workers took
    # the same store resumes in a single process without recomputing anything
    model = xtl.load_model(str(tiny_folder), dtype="float64", device="cpu")
    again = xtl.sweep(model, items, store=tmp_path / "r", progress=False, **KW)
    assert len(again) == len(got)


def test_a_ray_resume_takes_the_stores_engine_path(cluster, tiny_folder, tmp_path):
    """A store begun on the per-step path in one process is finished by Ray on that path."""
    from xtl.engine.distributed import sweep_ray

    items = _items(4)
    model = xtl.load_model(str(tiny_folder), dtype="float64", device="cpu")
    xtl.sweep(model, items[:1], store=tmp_path / "p", fast=False, progress=False, **KW)
    assert json.loads((tmp_path / "p" / "manifest.json").read_text())["engine"] == "per-step"
    got = sweep_ray(str(tiny_folder), items, tmp_path / "p", dtype="float64", workers=2, progress=False, **KW)
    assert len(got) == 4 * 5 and not got.duplicated(COLS).any()
    assert json.loads((tmp_path / "p" / "manifest.json").read_text())["engine"] == "per-step"
    ref = _single(tiny_folder, items)
    assert got.sort_values(COLS)["token_ids"].map(list).tolist() == ref["token_ids"].map(list).tolist()


def test_a_killed_worker_loses_and_duplicates_nothing(cluster, tiny_folder, tmp_path, caplog):
    from xtl.engine.distributed import sweep_ray

    ray = cluster
    items = _items(10)
    store = tmp_path / "k"
    killed = []

    def kill_one():
        deadline = time.time() + 300
        while time.time() < deadline and not list(store.glob("item-*.parquet")):
            time.sleep(0.01)
        for name in ("xtl-worker-1", "xtl-worker-2"):
            try:
                ray.kill(ray.get_actor(name))
                killed.append(name)
                return
            except ValueError:
                continue

    thread = threading.Thread(target=kill_one)
    thread.start()
    got = sweep_ray(str(tiny_folder), items, store, dtype="float64", workers=2, progress=False,
                    **{**KW, "max_new_tokens": 40})
    thread.join()
    assert killed, "no worker was killed"
    assert "a Ray worker died" in caplog.text              # the library logs it; the CLI shows it
    model = xtl.load_model(str(tiny_folder), dtype="float64", device="cpu")
    ref = xtl.sweep(model, items, progress=False, **{**KW, "max_new_tokens": 40}).sort_values(COLS)
    got = read_store(store).sort_values(COLS)
    assert len(got) == 10 * 5 and not got.duplicated(COLS).any()
    assert got["token_ids"].map(list).tolist() == ref["token_ids"].map(list).tolist()


def test_shards_of_a_job_array_fill_one_store(tiny_folder, tmp_path):
    from xtl.cli import main

    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps({"id": f"i{k}", "source": PROMPTS["zh"] + " " * k,
                                          "target": PROMPTS["en"] + "." * k, "gold": "B"}, ensure_ascii=False)
                              for k in range(9)), encoding="utf-8")
    common = ["sweep", "--model", str(tiny_folder), "--dtype", "float64", "--task", str(path),
              "--src-layers", "1", "--tgt-layers", "0", "--max-new-tokens", "3", "--out", str(tmp_path / "s")]
    sizes = []
    for k in (1, 2, 3):
        assert main([*common, "--shard", f"{k}/3"]) == 0
        sizes.append(read_store(tmp_path / "s")["item_key"].nunique())
    assert sizes[-1] == 9 and sizes[0] < sizes[1] < sizes[2]
    whole = tmp_path / "w"
    assert main([*common[:-1], str(whole)]) == 0
    a = read_store(tmp_path / "s").sort_values(COLS)
    b = read_store(whole).sort_values(COLS)
    assert a["token_ids"].map(list).tolist() == b["token_ids"].map(list).tolist()
    assert main([*common, "--shard", "4/3"]) == 2


def test_cli_ray_sweep(tiny_folder, tmp_path):
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'xtl[ray]'")
    import subprocess
    import sys

    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps({"id": f"i{k}", "source": PROMPTS["zh"], "target": PROMPTS["en"] + "." * k,
                                          "gold": "B"}, ensure_ascii=False) for k in range(3)), encoding="utf-8")
    out = tmp_path / "s"
    proc = subprocess.run([sys.executable, "-m", "xtl.cli", "sweep", "--model", str(tiny_folder), "--dtype", "float64",
                           "--task", str(path), "--src-layers", "1", "--tgt-layers", "0", "--max-new-tokens", "3",
                           "--out", str(out), "--ray", "--workers", "1"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert read_store(out)["item_key"].nunique() == 3
