"""The results schema and the sweep settings: what a store holds, written down once."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import xtl
from helpers import PROMPTS
from xtl.errors import StoreError, XtlError
from xtl.schema import COLUMNS, EVALUATION, SWEEP, Config, SweepSettings, column_names

DTYPES = {"str": "O", "int": "i", "bool": "b", "float": "f", "list[int]": "O", "list[float]": "O"}


def _items():
    return [xtl.Item("a", "toy", "en", PROMPTS["zh"], PROMPTS["en"], "B", "choice", {"A": "A", "B": "B"}),
            xtl.Item("b", "toy", "de", PROMPTS["en"], PROMPTS["zh"], "A", "choice", {"A": "A", "B": "B"})]


def test_a_stores_files_conform_to_the_schema(tiny_models, tmp_path):
    _, model = tiny_models["llama"]
    out = tmp_path / "store"
    df = xtl.sweep(model, _items(), site="mlp", src_layers=[0, 3], tgt_layers=[1], max_new_tokens=2,
                   candidates=["A", "B"], store=out, progress=False)
    for shard in out.glob("item-*.parquet"):
        part = pd.read_parquet(shard)
        assert list(part.columns) == column_names("engine")
        for col in SWEEP:
            assert part[col.name].dtype.kind == DTYPES[col.dtype], col.name
        assert part["is_vanilla"].sum() == 1 and len(part) == 1 + 2 * 1
    settings = SweepSettings.from_dict(json.loads((out / "manifest.json").read_text()))
    assert settings == xtl.engine.read_settings(out)
    assert settings.src_layers == (0, 3) and settings.tgt_layers == (1,) and settings.candidates == ("A", "B")
    assert settings.configs_per_item == 3 and SweepSettings.from_dict(settings.to_dict()) == settings
    ev = xtl.evaluate(df, _items())
    assert set(ev.columns) == set(column_names()) and [c.name for c in EVALUATION] == column_names("evaluation")
    assert len({c.name for c in COLUMNS}) == len(COLUMNS)


def test_a_store_written_before_the_settings_object_still_resumes(tiny_models, tmp_path):
    """A manifest as xtl 0.2 wrote it (a plain dict, no cot/data fields) opens and resumes."""
    _, model = tiny_models["llama"]
    out = tmp_path / "old"
    xtl.sweep(model, _items()[:1], site="mlp", src_layers=[1], tgt_layers=[0], max_new_tokens=2, store=out,
              progress=False)
    old = {"model": model.cfg.model_name, "n_layers": 4, "site": "mlp", "src_layers": [1], "tgt_layers": [0],
           "max_new_tokens": 2, "mode": "generate", "candidates": [], "chat": False}
    (out / "manifest.json").write_text(json.dumps(old))
    df = xtl.sweep(model, _items(), site="mlp", src_layers=[1], tgt_layers=[0], max_new_tokens=2, store=out,
                   progress=False)
    assert sorted(df["item_id"].unique()) == ["a", "b"] and len(df) == 4


def test_settings_that_differ_are_named_with_both_values(tiny_models, tmp_path):
    _, model = tiny_models["llama"]
    out = tmp_path / "s"
    xtl.sweep(model, _items()[:1], site="mlp", src_layers=[1], tgt_layers=[0], max_new_tokens=2, store=out,
              progress=False)
    with pytest.raises(StoreError, match=r'max_new_tokens: store 2, now 3; site: store "mlp", now "attn"'):
        xtl.sweep(model, _items()[:1], site="attn", src_layers=[1], tgt_layers=[0], max_new_tokens=3,
                  store=out, progress=False)


def test_configs_are_source_then_target():
    c = Config(3, 0)
    assert (c.src, c.tgt) == (3, 0) and c == (3, 0)


@pytest.mark.parametrize("kwargs, message", [
    ({"mode": "logit"}, "Did you mean 'logits'"),
    ({"src_layers": []}, "src_layers is empty"),
    ({"src_layers": 5}, "must be a list of layer numbers"),
    ({"src_layers": [True]}, "must hold whole numbers"),
    ({"candidates": "AB"}, "candidates must be a list of strings"),
    ({"max_new_tokens": "3"}, "max_new_tokens must be an int"),
    ({"batch_size": 0}, "batch_size must be at least 1"),
    ({"settings": {"site": "attn"}}, "may not override"),
])
def test_sweep_arguments_are_checked(tiny_models, kwargs, message):
    _, model = tiny_models["llama"]
    with pytest.raises(XtlError, match=message):
        xtl.sweep(model, _items()[:1], progress=False, **kwargs)


def test_one_item_type(tiny_models):
    from xtl.tasks import Pair, as_items

    p = Pair("s", "t", "x", {"lang": "de", "dataset": "toy", "gold": "B"})
    assert isinstance(p, xtl.Item) and p.key == "toy/de/x" and p.gold == "B"
    items = as_items([("s", "t"), ("s2", "t2", "id2", {"lang": "fr"})])
    assert items[0].id.startswith("h") and items[1].key == "/fr/id2"
    with pytest.raises(XtlError, match="wrap a single item in a list"):
        as_items(_items()[0])
    with pytest.raises(XtlError, match="same key"):
        as_items([("s", "t"), ("s", "t")])


def test_the_architecture_doc_lists_the_schema_as_declared():
    from pathlib import Path

    from xtl.schema import describe_columns

    doc = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert describe_columns() in doc, "regenerate the table in docs/architecture.md from xtl.schema"


def test_a_store_holds_one_run(tiny_models, tmp_path):
    """Issue 20, point 2: dtype and device are settings; shards carry theirs; dead temporaries go."""
    import os
    import time

    from xtl.engine.store import shard_settings

    _, model = tiny_models["llama"]
    out = tmp_path / "one"
    kw = dict(src_layers=[1], tgt_layers=[0], max_new_tokens=2, store=out, progress=False)
    xtl.sweep(model, _items()[:1], site="attn", **kw)
    settings = xtl.engine.read_settings(out)
    assert (settings.dtype, settings.device, settings.xtl_version) == ("float64", "cpu", xtl.__version__)
    (shard,) = out.glob("item-*.parquet")
    assert shard_settings(shard) == settings
    with pytest.raises(StoreError, match='dtype: store "float64", now "float32"'):
        xtl.engine.run_sweep(model, _items()[:1], settings.replace(dtype="float32"), store=out)
    (out / "manifest.json").unlink()                     # the manifest is lost: the shards still say
    with pytest.raises(StoreError, match='no manifest.json but holds shards of other settings .*site: shards "attn", now "mlp"'):
        xtl.sweep(model, _items()[:1], site="mlp", **kw)
    stale = out / "item-0123456789abcdef0123.999999999.partial"
    fresh = out / "item-0123456789abcdef0124.999999999.partial"
    stale.write_bytes(b"cut short"), fresh.write_bytes(b"being written")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    xtl.sweep(model, _items(), site="attn", **kw)      # same settings: resumes, and tidies up
    assert not stale.exists() and fresh.exists()


def test_a_store_written_from_python_records_its_task_and_refuses_an_edited_file(tiny_models, write_task, tmp_path):
    """xtl.sweep records the task items came from (path and hash), so the store opens alone and
    an edited JSONL does not resume into it."""
    import json

    import pytest

    import xtl
    from xtl.errors import StoreError
    from helpers import PROMPTS

    _, model = tiny_models["llama"]
    rows = [{"id": "a", "source": PROMPTS["zh"], "target": PROMPTS["en"], "gold": "B", "options": {"A": "x", "B": "y"}}]
    path = write_task(rows)
    items = xtl.load_task(str(path))
    store = tmp_path / "py-store"
    kw = dict(site="mlp", src_layers=[0], tgt_layers=[1], max_new_tokens=2, progress=False)
    xtl.sweep(model, items, store=store, **kw)
    manifest = json.loads((store / "manifest.json").read_text())
    assert manifest["data"] == str(path.resolve()) and len(manifest["data_sha256"]) == 64
    run = xtl.open_run(store)                                # no data argument: the store knows its task
    assert len(run.df) == 2 and "correct" in run.df.columns
    path.write_text(json.dumps({**rows[0], "gold": "A"}) + "\n", encoding="utf-8")
    with pytest.raises(StoreError, match="data_sha256: store"):
        xtl.sweep(model, xtl.load_task(str(path)), store=store, **kw)
