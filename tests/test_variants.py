"""Transplant variants (alpha, span, positions, several sources): the defaults are today's
transplant bitwise; alpha 0 and sources that are all the target prompt reproduce vanilla; every
variant equals a plain Hugging Face forward-hook reference token for token on two architectures
and both backends, through xtl.transplant, the shared-prefix engine and the per-step path."""

from __future__ import annotations

import pytest
import torch

import xtl
from xtl.engine import Pair, sweep
from xtl.errors import XtlError
from xtl.patching import Site, last_token_logits, prefix_cache, tokenize
from xtl.patching.ops import broadcast_cache, log_probs, patch_hook
from helpers import PROMPTS
from reference import hf_variant_reference

MAX_NEW = 8
JA = "人間：日本の首都はどの都市ですか？\n(A) 大阪 (B) 東京\nアシスタント：私の答え："
SOURCES = {"zh": PROMPTS["zh"], "ja": JA}
#: (variant keywords, the sources it mixes): each variant alone, then all of them at once
VARIANTS = [
    (dict(alpha=0.4), ["zh"]),
    (dict(span=2), ["zh"]),
    (dict(positions=3), ["zh"]),
    (dict(weights=[0.7, 0.3]), ["zh", "ja"]),
    (dict(alpha=0.6, span=2, positions=2), ["zh", "ja"]),
]
SITES = ["attn", "mlp", "block", "heads:1,3"]
CONFIGS = [(0, 2), (2, 0), (1, 1)]
#: candidates whose first-token log-probs a sweep records: one byte token each
CANDIDATES = list("abcdefghijklmnopqrst")


def _transplant(model, i, j, site, kw, langs):
    kw = dict(kw)
    if len(langs) > 1:
        return xtl.transplant(model, target=PROMPTS["en"], src_layer=i, tgt_layer=j, site=site,
                              max_new_tokens=MAX_NEW, sources={lang: SOURCES[lang] for lang in langs}, **kw)
    kw.pop("weights", None)
    return xtl.transplant(model, source=SOURCES[langs[0]], target=PROMPTS["en"], src_layer=i, tgt_layer=j, site=site,
                          max_new_tokens=MAX_NEW, **kw)


def _today(model, i, j, site):
    """The transplant as xtl computed it before variants (capture, one hook, cached last token)."""
    site = Site.parse(site)
    value = xtl.capture(model, PROMPTS["zh"], site).acts[i][None]
    tokens = tokenize(model, PROMPTS["en"])
    cache = broadcast_cache(prefix_cache(model, tokens))
    return log_probs(last_token_logits(model, cache, tokens[-1], [(site.hook_name(j), patch_hook(site, value))]))[0]


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_defaults_are_todays_transplant_bitwise(tiny_models, arch):
    _, model = tiny_models[arch]
    for site in SITES:
        for i, j in CONFIGS:
            plain = xtl.transplant(model, source=PROMPTS["zh"], target=PROMPTS["en"], src_layer=i, tgt_layer=j,
                                   site=site, max_new_tokens=MAX_NEW)
            spelled = xtl.transplant(model, target=PROMPTS["en"], src_layer=i, tgt_layer=j, site=site,
                                     max_new_tokens=MAX_NEW, alpha=1.0, span=1, positions=1,
                                     sources={"zh": PROMPTS["zh"]})
            assert torch.equal(plain.first_logprobs, _today(model, i, j, site))
            assert torch.equal(spelled.first_logprobs, plain.first_logprobs)
            assert spelled.tokens == plain.tokens


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_alpha_zero_and_sources_that_are_the_target_reproduce_vanilla_bitwise(tiny_models, arch):
    _, model = tiny_models[arch]
    for site in SITES:
        for i, j in CONFIGS:
            res = xtl.transplant(model, source=PROMPTS["zh"], target=PROMPTS["en"], src_layer=i, tgt_layer=j,
                                 site=site, max_new_tokens=MAX_NEW, alpha=0.0, span=2)
            assert torch.equal(res.first_logprobs, res.vanilla_first_logprobs), (site, i, j)
        for layer in range(model.cfg.n_layers - 1):
            res = xtl.transplant(model, target=PROMPTS["en"], src_layer=layer, tgt_layer=layer,
                                 site=site, max_new_tokens=MAX_NEW, span=2, alpha=0.5,
                                 sources={"a": PROMPTS["en"], "b": PROMPTS["en"], "c": PROMPTS["en"]},
                                 weights=[0.2, 0.3, 0.5])
            assert torch.equal(res.first_logprobs, res.vanilla_first_logprobs), (site, layer)
            assert res.tokens == res.vanilla_tokens
        # positions > 1 recompute the patched positions in one pass: the same tokens as vanilla
        res = xtl.transplant(model, source=PROMPTS["en"], target=PROMPTS["en"], src_layer=1, tgt_layer=1, site=site,
                             max_new_tokens=MAX_NEW, positions=4)
        assert res.tokens == res.vanilla_tokens


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
@pytest.mark.parametrize("variant", range(len(VARIANTS)))
def test_transplant_variants_equal_hugging_face_hooks(tiny_models, tokenizer, arch, variant):
    hf, model = tiny_models[arch]
    kw, langs = VARIANTS[variant]
    for site in SITES:
        for i, j in CONFIGS:
            got = _transplant(model, i, j, site, kw, langs)
            expected, logprobs = hf_variant_reference(hf, tokenizer, [SOURCES[lang] for lang in langs],
                                                      PROMPTS["en"], i, j, site, MAX_NEW, logprobs=True, **kw)
            assert got.tokens == expected, (arch, site, i, j, kw)
            # the tiny models' tokens rarely move; their log-probs always do
            torch.testing.assert_close(got.first_logprobs.double(), logprobs, atol=1e-6, rtol=0)  # generate keeps its logits in float32


def _items():
    return [Pair(PROMPTS["zh"], PROMPTS["en"], "p0", {"lang": "en", "dataset": "toy", "sources": SOURCES})]


def _check_sweep(hf, tokenizer, model, kw, langs, fast, site):
    sweep_kw = {k: v for k, v in kw.items() if k != "alpha"}
    df = sweep(model, _items(), site=site, max_new_tokens=MAX_NEW, batch_size=5, progress=False, fast=fast,
               alpha=[kw.get("alpha", 1.0), 0.0], source_langs=langs if len(langs) > 1 else (),
               candidates=CANDIDATES, **sweep_kw)
    ids = [tokenizer(c, add_special_tokens=False)["input_ids"][0] for c in CANDIDATES]
    n, span = model.cfg.n_layers, kw.get("span", 1)
    assert len(df) == 2 * (n - span + 1) ** 2 + 1  # configurations whose span leaves the model are not run
    vanilla = list(df[df.is_vanilla].iloc[0].token_ids)
    for row in df[~df.is_vanilla].itertuples():
        if row.alpha == 0.0:
            assert list(row.token_ids) == vanilla
            continue
        if (row.src_layer, row.tgt_layer) not in CONFIGS:
            continue
        expected, logprobs = hf_variant_reference(hf, tokenizer, [SOURCES[lang] for lang in langs], PROMPTS["en"],
                                                  row.src_layer, row.tgt_layer, site, MAX_NEW, logprobs=True, **kw)
        assert list(row.token_ids) == expected, (site, row.src_layer, row.tgt_layer, kw, fast)
        torch.testing.assert_close(torch.tensor(list(row.cand_logprobs), dtype=torch.float64), logprobs[ids],
                                   atol=1e-6, rtol=0)  # generate keeps its logits in float32
    assert set(df.span) == {span} and set(df.positions) == {kw.get("positions", 1)}


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
@pytest.mark.parametrize("fast", [True, False])
def test_sweep_variants_equal_hugging_face_hooks(tiny_models, tokenizer, arch, fast):
    hf, model = tiny_models[arch]
    for variant, (kw, langs) in enumerate(VARIANTS):
        if fast and kw.get("positions", 1) > 1:
            continue  # positions > 1 run on the per-step path (tested with fast=False)
        _check_sweep(hf, tokenizer, model, kw, langs, fast, SITES[variant % len(SITES)])


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_bridge_variants_equal_hugging_face_hooks(bridged, tokenizer, arch):
    hf, model = bridged[arch]
    for variant, (kw, langs) in enumerate(VARIANTS):
        site = SITES[variant % len(SITES)]
        _check_sweep(hf, tokenizer, model, kw, langs, None, site)
        i, j = CONFIGS[variant % len(CONFIGS)]
        expected, logprobs = hf_variant_reference(hf, tokenizer, [SOURCES[lang] for lang in langs], PROMPTS["en"],
                                                  i, j, site, MAX_NEW, logprobs=True, **kw)
        got = _transplant(model, i, j, site, kw, langs)
        assert got.tokens == expected
        torch.testing.assert_close(got.first_logprobs.double(), logprobs, atol=1e-6, rtol=0)  # generate keeps its logits in float32


@pytest.mark.parametrize("fast", [True, False])
def test_sweep_defaults_are_todays_rows(tiny_models, fast):
    _, model = tiny_models["qwen2"]
    kw = dict(site="mlp", max_new_tokens=MAX_NEW, progress=False, fast=fast, mode="generate", candidates=["A", "B"])
    plain = sweep(model, _items(), **kw)
    spelled = sweep(model, _items(), alpha=[1.0], span=1, positions=1, source_langs=["zh"], **kw)
    for col in ("token_ids", "cand_logprobs"):
        assert plain[col].map(list).tolist() == spelled[col].map(list).tolist()
    for col in ("entropy", "margin", "loglik"):
        assert plain[col].tolist() == spelled[col].tolist()
    assert set(plain.alpha) == {1.0} and set(plain.sources) == {""} and set(spelled.sources) == {"zh"}


def test_an_alpha_axis_is_each_alpha_alone(tiny_models):
    _, model = tiny_models["llama"]
    kw = dict(site="block", max_new_tokens=MAX_NEW, progress=False)
    axis = sweep(model, _items(), alpha=[0.25, 0.5, 1.0], **kw)
    assert len(axis) == 3 * model.cfg.n_layers ** 2 + 1 and axis.is_vanilla.sum() == 1
    for a in (0.25, 0.5, 1.0):
        alone = sweep(model, _items(), alpha=a, **kw)
        got = axis[(axis.alpha == a) | axis.is_vanilla]
        assert got.token_ids.map(list).tolist() == alone.token_ids.map(list).tolist()
        assert got.entropy.tolist() == alone.entropy.tolist()


def test_a_store_refuses_another_variant_and_old_stores_read_with_defaults(tiny_models, tmp_path):
    from xtl.engine.store import read_store

    _, model = tiny_models["llama"]
    kw = dict(site="mlp", max_new_tokens=4, progress=False, src_layers=[0, 1], tgt_layers=[0, 1])
    sweep(model, _items(), store=tmp_path / "s", alpha=[0.5, 1.0], **kw)
    for other in (dict(alpha=[0.5]), dict(span=2), dict(positions=2), dict(source_langs=["zh", "ja"])):
        with pytest.raises(XtlError, match="|".join(other)):
            sweep(model, _items(), store=tmp_path / "s", **kw, **other)
    sweep(model, _items(), store=tmp_path / "s", alpha=[0.5, 1.0], **kw)  # the same spec resumes
    # a store written before the variant columns: its rows read as the defaults' run
    df = sweep(model, _items(), store=tmp_path / "old", **kw)
    import pyarrow as pa
    import pyarrow.parquet as pq

    for shard in (tmp_path / "old").glob("item-*.parquet"):
        table = pq.read_table(shard)
        keep = [c for c in table.column_names if c not in ("alpha", "span", "positions", "sources")]
        pq.write_table(pa.Table.from_pandas(table.select(keep).to_pandas(), preserve_index=False)
                       .replace_schema_metadata(table.schema.metadata), shard)
    old = read_store(tmp_path / "old")
    assert old[df.columns].equals(df[df.columns].reset_index(drop=True))


@pytest.mark.parametrize("call, match", [
    (dict(alpha=1.5), "extrapolate=True"),
    (dict(alpha=-0.1), "outside"),
    (dict(span=9), "longer than the model"),
    (dict(span=3, src=3), "leaves the model"),
    (dict(positions=999), "beyond the target prompt"),
    (dict(sources={"zh": PROMPTS["zh"]}, weights=[1, 2]), "one weight per source"),
    (dict(sources={"zh": PROMPTS["zh"], "ja": JA}, weights={"zh": 1}), "one weight per source"),
    (dict(weights=[1.0]), "several sources"),
])
def test_bad_variants_are_one_clear_error(tiny_models, call, match):
    _, model = tiny_models["llama"]
    call = dict(call)
    src = call.pop("src", 0)
    source = None if "sources" in call else PROMPTS["zh"]
    with pytest.raises(XtlError, match=match):
        xtl.transplant(model, source=source, target=PROMPTS["en"], src_layer=src, tgt_layer=0, site="mlp",
                       max_new_tokens=4, **call)


def test_extrapolation_is_allowed_when_asked(tiny_models):
    _, model = tiny_models["llama"]
    res = xtl.transplant(model, source=PROMPTS["zh"], target=PROMPTS["en"], src_layer=1, tgt_layer=1, site="mlp",
                         max_new_tokens=4, alpha=1.5, extrapolate=True)
    assert res.variant.alpha == 1.5
    with pytest.raises(XtlError, match="extrapolate"):
        sweep(model, _items(), alpha=[0.5, 2.0], progress=False)
    with pytest.raises(XtlError, match="no source prompt in ko"):
        sweep(model, _items(), source_langs=["zh", "ko"], progress=False, max_new_tokens=2)


def _one_line_exit_2(proc, message: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = [l for l in proc.stderr.strip().splitlines() if l.startswith("xtl: error")]
    assert "Traceback" not in proc.stderr and len(lines) == 1 and message in lines[0], proc.stderr[-2000:]


def test_cli_sweeps_a_variant_and_refuses_bad_ones(tmp_path, tiny_folder):
    from helpers import run_cli, write_jsonl
    from xtl.engine.store import read_store

    task = write_jsonl(tmp_path / "task.jsonl", [{"id": "0", "lang": "de", "source": PROMPTS["zh"],
                                                 "target": PROMPTS["en"], "gold": "B"}])
    base = ["sweep", "--model", str(tiny_folder), "--task", str(task), "--max-new-tokens", "2"]
    out = tmp_path / "store"
    assert run_cli(*base, "--out", out, "--alpha", "0.5", "1", "--span", "2").returncode == 0
    df = read_store(out)
    assert sorted(set(df.alpha)) == [0.5, 1.0] and set(df.span) == {2} and len(df) == 2 * 3 * 3 + 1
    _one_line_exit_2(run_cli(*base, "--out", out, "--alpha", "0.5"), "alpha")  # another spec: refused
    new = tmp_path / "new"
    _one_line_exit_2(run_cli(*base, "--out", new, "--alpha", "1.5"), "extrapolate")
    _one_line_exit_2(run_cli(*base, "--out", new, "--span", "9"), "longer than the model")
    _one_line_exit_2(run_cli(*base, "--out", new, "--positions", "999"), "beyond the target prompt")
    _one_line_exit_2(run_cli(*base, "--out", new, "--source-langs", "zh"), "no parallel prompts")
    _one_line_exit_2(run_cli(*base, "--out", new, "--source-langs", "zh", "ja", "--weights", "1"),
                     "one weight per source")


def test_source_langs_load_each_items_parallel_prompts(shared_data):
    items = xtl.load_task("xnli", langs=["de"], limit=2, data_root=shared_data, source_langs=["zh", "es"])
    zh = {it.key: it.source for it in xtl.load_task("xnli@zh", langs=["de"], limit=2, data_root=shared_data)}
    assert [it.meta["sources"]["zh"] for it in items] == [zh[it.key] for it in items]
    with pytest.raises(XtlError, match="xx"):
        xtl.load_task("xnli", langs=["de"], limit=2, data_root=shared_data, source_langs=["xx"])
