"""The gradient screen: its estimate is the first-order change of the gold margin (against finite
differences and against plain Hugging Face autograd), and sweep(screen=K) runs exactly the K
best-estimated cells with the rows a full sweep gives them."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

import xtl
from helpers import PROMPTS, run_cli
from xtl.engine.screening import screen
from xtl.errors import XtlError
from xtl.patching.ops import write_site
from xtl.patching.sites import Site

CANDS = ["A", "B"]


def _items():
    return [xtl.Item("a", "toy", "en", PROMPTS["zh"], PROMPTS["en"], "B", "choice", {"A": "A", "B": "B"}),
            xtl.Item("b", "toy", "de", PROMPTS["en"], PROMPTS["zh"], "A", "choice", {"A": "A", "B": "B"})]


def _margin(model, prompt: str, hooks=()) -> float:
    """Gold ("B") minus the other candidate's last-token logit: one plain full forward."""
    ids = model.tokenizer(prompt)["input_ids"]
    with torch.no_grad(), model.hooks(fwd_hooks=list(hooks)):
        logits = model(torch.tensor([ids]))[0, -1]
    a, b = (model.tokenizer(c, add_special_tokens=False)["input_ids"][0] for c in CANDS)
    return float(logits[b] - logits[a])


def _acts(model, prompt: str, hook_name: str):
    """The activation of ``hook_name`` at every layer, last token, from a plain forward's cache."""
    ids = torch.tensor([model.tokenizer(prompt)["input_ids"]])
    _, cache = model.run_with_cache(ids)
    return [cache[hook_name.format(layer=l)][0, -1] for l in range(model.cfg.n_layers)]


@pytest.mark.parametrize("site", ["mlp", "attn", "block", "heads:0,2", "attn-authors"])
def test_the_estimate_is_the_first_order_change_of_the_gold_margin(tiny_models, site):
    """Blending the source in at a small alpha changes the margin by alpha times the estimate."""
    _, model = tiny_models["llama"]
    item = _items()[0]
    res = screen(model, [item], site=site, candidates=CANDS, progress=False)
    s = Site.parse(site)
    a_s = _acts(model, item.source, s.source_hook_name(0).replace(".0.", ".{layer}."))
    a_t = _acts(model, item.target, s.hook_name(0).replace(".0.", ".{layer}."))
    base = _margin(model, item.target)
    assert res.vanilla_margin[0] == pytest.approx(base, abs=1e-9)
    # central differences; the bridge takes its attention softmax in float32 (test_transplant), so
    # its differences need a wider step and looser tolerance than float64 throughout
    hooked = getattr(model, "backend", "hooked") == "hooked"
    alpha, tol = (1e-4, 1e-6) if hooked else (3e-3, 1e-3)
    for i, j in [(0, 0), (3, 1), (1, 3), (2, 2)]:
        def blended(a: float):
            def hook(act, hook=None, v=a_t[j] + a * (a_s[i] - a_t[j])):  # noqa: ARG001
                return write_site(act, v[None], s.heads)
            return _margin(model, item.target, [(s.hook_name(j), hook)])
        change = (blended(alpha) - blended(-alpha)) / (2 * alpha)
        assert res.estimate[0, i, j] == pytest.approx(change, rel=tol, abs=1e-8), (site, i, j)


def test_the_gradient_matches_plain_hugging_face_autograd(tiny_models):
    """The mlp estimate from Hugging Face's own modules: hook the MLP output of every layer, take
    autograd of the gold margin, and form ∇m · (a_s − a_t) by hand."""
    hf, model = tiny_models["llama"]
    hf = copy.deepcopy(hf)
    item = _items()[0]
    a, b = (model.tokenizer(c, add_special_tokens=False)["input_ids"][0] for c in CANDS)

    def run(prompt: str, grad: bool):
        kept = {}
        handles = []
        for l, layer in enumerate(hf.model.layers):
            def keep(module, inputs, output, l=l):  # noqa: ARG001
                if grad:
                    output.retain_grad()
                kept[l] = output
            handles.append(layer.mlp.register_forward_hook(keep))
        try:
            with torch.set_grad_enabled(grad):
                logits = hf(torch.tensor([model.tokenizer(prompt)["input_ids"]])).logits[0, -1]
        finally:
            for h in handles:
                h.remove()
        return logits, kept

    _, src = run(item.source, False)
    logits, tgt = run(item.target, True)
    (logits[b] - logits[a]).backward()
    n = model.cfg.n_layers
    want = np.array([[float(tgt[j].grad[0, -1] @ (src[i][0, -1] - tgt[j][0, -1].detach())) for j in range(n)]
                     for i in range(n)])
    res = screen(model, [item], site="mlp", candidates=CANDS, progress=False)
    # TransformerLens and Hugging Face agree to about 1e-7 relative in float64 (test_models: 1e-6)
    np.testing.assert_allclose(res.estimate[0], want, rtol=1e-5, atol=1e-9)


def test_a_screened_sweep_runs_the_k_best_cells_as_a_full_sweep_does(tiny_models):
    _, model = tiny_models["llama"]
    items = _items()
    kw = dict(site="attn", max_new_tokens=3, candidates=CANDS, progress=False)
    full = xtl.sweep(model, items, **kw)
    k = 5
    screened = xtl.sweep(model, items, screen=k, **kw)
    top = screen(model, items, site="attn", candidates=CANDS, progress=False).top(k)
    assert len(screened) == len(items) * (k + 1)
    exact, floats = ["response", "token_ids"], ["entropy", "margin", "loglik", "gold_margin"]
    for it in items:
        rows = screened[screened["item_key"] == it.key]
        assert rows["is_vanilla"].sum() == 1 and np.isnan(rows[rows["is_vanilla"]]["screen_estimate"]).all()
        cells = rows[~rows["is_vanilla"]]
        assert set(zip(cells["src_layer"], cells["tgt_layer"])) == {tuple(c) for c in top[it.key]}
        keyed = ["item_key", "src_layer", "tgt_layer"]
        mine = rows.set_index(keyed).sort_index()
        theirs = full.set_index(keyed).loc[mine.index]
        pd.testing.assert_frame_equal(mine[exact].astype(str), theirs[exact].astype(str))
        # another batch composition: the same sums to float64 rounding (docs/performance.md, Exactness)
        pd.testing.assert_frame_equal(mine[floats], theirs[floats], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(np.stack(mine["cand_logprobs"]), np.stack(theirs["cand_logprobs"]), atol=1e-12)
        assert np.isfinite(cells["screen_estimate"]).all()
        ranked = np.sort(_estimates(model, it).ravel())[::-1]
        np.testing.assert_allclose(np.sort(cells["screen_estimate"].to_numpy())[::-1], ranked[:k])
    assert np.isnan(full["screen_estimate"]).all() and np.isfinite(full["gold_margin"]).all()


def _estimates(model, item) -> np.ndarray:
    return screen(model, [item], site="attn", candidates=CANDS, progress=False).estimate[0]


def test_the_screen_is_recorded_and_a_store_without_its_columns_still_reads(tiny_models, tmp_path):
    import pyarrow.parquet as pq

    _, model = tiny_models["llama"]
    out = tmp_path / "s"
    xtl.sweep(model, _items()[:1], site="mlp", mode="logits", candidates=CANDS, screen=2, store=out, progress=False)
    settings = xtl.engine.read_settings(out)
    assert settings.screen == 2 and settings.configs_per_item == 3
    with pytest.raises(xtl.XtlError, match="screen"):  # resuming without the screen is another sweep
        xtl.sweep(model, _items()[:1], site="mlp", mode="logits", candidates=CANDS, store=out, progress=False)
    shard = next(out.glob("item-*.parquet"))
    table = pq.read_table(shard)
    pq.write_table(table.drop(["screen_estimate", "gold_margin"]).replace_schema_metadata(table.schema.metadata),
                   shard)
    df = xtl.read_store(out)
    assert df["screen_estimate"].isna().all() and df["gold_margin"].isna().all() and len(df) == 3


@pytest.mark.parametrize("kwargs, message", [
    ({"screen": 0}, "screen must be at least 1, not 0"),
    ({"screen": 2.5}, "screen must be an int"),
    ({"screen": 2, "candidates": []}, "needs the options"),
])
def test_bad_screens_are_refused_in_one_line(tiny_models, kwargs, message):
    _, model = tiny_models["llama"]
    kw = {"candidates": CANDS, **kwargs}
    with pytest.raises(XtlError, match=message):
        xtl.sweep(model, _items(), site="mlp", progress=False, **kw)


def test_items_the_screen_cannot_score_are_refused(tiny_models):
    _, model = tiny_models["llama"]
    qa = xtl.Item("q", "toy", "de", PROMPTS["en"], PROMPTS["zh"], "Tokio", "qa")
    with pytest.raises(XtlError, match="screen choice tasks"):
        screen(model, [qa], candidates=CANDS, progress=False)
    with pytest.raises(XtlError, match="gold 'C'"):
        screen(model, [xtl.Item("c", "toy", "en", PROMPTS["zh"], PROMPTS["en"], "C", "choice")], candidates=CANDS,
               progress=False)


def test_the_result_as_a_table_and_a_figure(tiny_models):
    _, model = tiny_models["qwen2"]
    res = xtl.screen(model, _items(), site="block", candidates=CANDS, src_layers=[1, 3], tgt_layers=[0, 2],
                     progress=False)
    frame = res.to_frame()
    assert len(frame) == 2 * 2 * 2 and set(frame["src_layer"]) == {1, 3}
    row = frame[(frame["item_key"] == "toy/de/b") & (frame["src_layer"] == 3) & (frame["tgt_layer"] == 2)].iloc[0]
    assert row["screen_estimate"] == res.estimate[1, 1, 1]
    assert row["estimated_margin"] == pytest.approx(res.vanilla_margin[1] + res.estimate[1, 1, 1])
    assert type(res.figure()).__name__ == "Figure" and type(res.figure("toy/de/b")).__name__ == "Figure"


def test_cli_screen_zero_is_one_line_and_exit_2():
    res = run_cli("sweep", "--task", "xnli", "--out", "x", "--screen", "0")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "--screen" in res.stderr


def test_the_report_and_the_explorer_show_the_screen_beside_the_exact_grid(tiny_models, tmp_path):
    from xtl.analysis.screened import screen_panels
    from xtl.figures.report import build_report

    _, model = tiny_models["llama"]
    items = _items()
    df = xtl.evaluate(xtl.sweep(model, items, site="mlp", mode="logits", candidates=CANDS, screen=3,
                                progress=False), items)
    panels = screen_panels(df)
    assert panels.n.sum() == 2 * 3 and panels.estimate.shape == (len(panels.src_layers), len(panels.tgt_layers))
    cell = df[(df["item_key"] == "toy/en/a") & ~df["is_vanilla"]].iloc[0]
    s, t = panels.src_layers.index(cell["src_layer"]), panels.tgt_layers.index(cell["tgt_layer"])
    same = df[~df["is_vanilla"] & (df["src_layer"] == cell["src_layer"]) & (df["tgt_layer"] == cell["tgt_layer"])]
    assert panels.estimate[s, t] == pytest.approx(same["screen_estimate"].mean())
    page = build_report(df, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "Gradient screen beside the exact grid" in page and "screen estimate (first order)" in page
    full = xtl.evaluate(xtl.sweep(model, items, site="mlp", mode="logits", candidates=CANDS, progress=False), items)
    assert screen_panels(full) is None
    full_page = build_report(full, tmp_path / "f.html").read_text(encoding="utf-8")
    assert "Gradient screen" not in full_page and "Gold-margin gain over vanilla" in full_page
    # the engine's gold_margin column is the margin the analysis computes from the candidates' log-probs
    from xtl.analysis.margins import gold_margins, margin_panel

    np.testing.assert_allclose(full["gold_margin"], gold_margins(full.drop(columns="gold_margin"), CANDS), atol=1e-9)
    panel = margin_panel(full)
    assert panel is not None and np.isfinite(panel.gain).all()
    pytest.importorskip("ipywidgets")
    pytest.importorskip("anywidget")
    box = xtl.explore(df, site="mlp")
    assert len(box.children) == 5 and "Gradient screen" in box.children[-1].layout.title.text
    whole = xtl.explore(full, site="mlp")
    accuracy, margin = whole.children[0].children        # the margin-gain heatmap beside the accuracy one
    assert len(whole.children) == 4 and "margin gain" in margin.layout.title.text
    np.testing.assert_allclose(np.asarray(margin.data[0].z, float), panel.gain)


def test_cli_screen_prints_each_items_best_cells_and_writes_the_estimates(tmp_path, tiny_folder, write_task):
    rows = [{"id": "a", "source": PROMPTS["zh"], "target": PROMPTS["en"], "gold": "B", "lang": "en",
             "kind": "choice", "options": {"A": "Osaka", "B": "Tokyo"}}]
    task = write_task(rows)
    out = tmp_path / "est.csv"
    res = run_cli("screen", "--model", tiny_folder, "--task", task, "--candidates", "A", "B", "--site", "attn",
                  "--top", "2", "--out", out)
    assert res.returncode == 0, res.stderr
    assert "screened 1 item(s) at site attn" in res.stdout and "→" in res.stdout
    frame = pd.read_csv(out)
    assert len(frame) == 16 and {"screen_estimate", "estimated_margin"} <= set(frame.columns)
    bad = run_cli("screen", "--model", tiny_folder, "--task", task, "--out", tmp_path / "est.txt")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and ".csv or .parquet" in bad.stderr


def test_one_item_costs_one_pass_of_each_prompt_and_one_backward(tiny_models):
    """Tokens through the embedding: the source prompt once and the target prompt once."""
    _, model = tiny_models["llama"]
    item = _items()[0]
    seen = []

    def count(act, hook=None):  # noqa: ARG001
        seen.append(act.shape[1])
    with model.hooks(fwd_hooks=[("hook_embed", count)]):
        screen(model, [item], site="mlp", candidates=CANDS, progress=False)
    n_src, n_tgt = (len(model.tokenizer(p)["input_ids"]) for p in (item.source, item.target))
    assert sum(seen) == n_src + n_tgt
