"""The shared-prefix path against TransformerLens' own forward, on every tiny architecture."""

import numpy as np
import pytest
import torch

from xtl.engine import kernel as fastpath
from xtl.errors import XtlError
from xtl.engine import Pair, sweep
from xtl.patching import decode_resid, prefix_cache, tokenize
from helpers import PROMPTS

PAIR = [Pair(PROMPTS["zh"], PROMPTS["en"], "p0", {"lang": "en", "dataset": "toy"})]


@pytest.mark.parametrize("site", ["attn", "mlp", "block", "heads:1,3", "attn-authors"])
def test_fast_sweep_equals_transformerlens_sweep(tiny_models, arch, site):
    _, model = tiny_models[arch]
    assert fastpath.unsupported(model) is None
    kw = dict(site=site, max_new_tokens=8, batch_size=5, progress=False, candidates=["A", "B"])
    fast = sweep(model, PAIR, fast=True, **kw).sort_values(["src_layer", "tgt_layer"])
    ref = sweep(model, PAIR, fast=False, **kw).sort_values(["src_layer", "tgt_layer"])
    assert fast[["src_layer", "tgt_layer"]].values.tolist() == ref[["src_layer", "tgt_layer"]].values.tolist()
    assert fast.token_ids.map(list).tolist() == ref.token_ids.map(list).tolist()
    # the TransformerLens path reports first-token statistics in float32, as xtl.transplant does
    np.testing.assert_allclose(np.stack(fast.cand_logprobs), np.stack(ref.cand_logprobs), rtol=0, atol=2e-6)
    np.testing.assert_allclose(fast.entropy, ref.entropy, rtol=0, atol=2e-6)
    np.testing.assert_allclose(fast.loglik, ref.loglik, rtol=0, atol=1e-9)


def test_decode_steps_match_full_forward(tiny_models, arch):
    """Feeding tokens one by one on a rotated prefix gives the full forward's logits."""
    _, model = tiny_models[arch]
    tokens = tokenize(model, PROMPTS["en"] + " (B) Tokyo is the capital")  # > sliding window
    split = 9
    cache = prefix_cache(model, tokens[:split + 1])  # caches positions [0, split)
    pre = fastpath.prefix_from_cache(model, cache)
    assert pre.length == split
    rows = fastpath.Rows.empty(pre, 2, len(tokens))
    with torch.no_grad():
        full = model(tokens[None])[0]
        for pos in range(split, len(tokens)):
            logits = fastpath.decode_step(model, pre, rows, tokens[pos].repeat(2))
            torch.testing.assert_close(logits[0], full[pos], rtol=0, atol=1e-10)
            torch.testing.assert_close(logits[1], logits[0], rtol=0, atol=0)


def test_first_step_rows_from_different_target_layers(tiny_models):
    """Rows of mixed target layers in one batch equal the same rows run one by one."""
    _, model = tiny_models["gemma3"]
    kw = dict(site="mlp", mode="logits", progress=False, candidates=["A", "B"])
    together = sweep(model, PAIR, batch_size=64, fast=True, **kw)
    alone = sweep(model, PAIR, batch_size=1, fast=True, **kw)
    np.testing.assert_allclose(np.stack(together.cand_logprobs), np.stack(alone.cand_logprobs),
                               rtol=0, atol=1e-10)


def test_unsupported_models_fall_back_or_refuse(tiny_models):
    _, model = tiny_models["llama"]
    with model.hooks(fwd_hooks=[("blocks.0.hook_resid_post", lambda act, hook: act)]):
        assert fastpath.unsupported(model) == "hooks are attached to the model"
        with pytest.raises(XtlError, match="fast=False"):
            sweep(model, PAIR, site="mlp", max_new_tokens=2, fast=True, progress=False)
        # the default falls back to TransformerLens' forward, which honours the user's hooks
        df = sweep(model, PAIR, site="mlp", src_layers=[0], tgt_layers=[0], max_new_tokens=2,
                   progress=False)
        assert len(df) == 2
    assert fastpath.unsupported(model) is None


def test_first_step_rejects_unsorted_rows(tiny_models):
    _, model = tiny_models["llama"]
    tokens = tokenize(model, PROMPTS["en"])
    pre = fastpath.prefix_from_cache(model, prefix_cache(model, tokens))
    rows = fastpath.Rows.empty(pre, 2, 1)
    with pytest.raises(ValueError, match="sorted"):
        fastpath.first_step(model, pre, rows, [None] * 4, [2, 1], "mlp", torch.zeros(2, 32))


def test_chunked_vocab_scan_equals_full_unembedding(tiny_models, arch):
    _, model = tiny_models[arch]
    torch.manual_seed(1)
    x = torch.randn(5, 1, model.cfg.d_model, dtype=torch.float64) * 3
    full = decode_resid(model, x[:, -1])
    logprobs = torch.log_softmax(full, -1)
    cands = [0, 65, 66, 258]
    for chunk in (7, 64, 4096):
        nxt = fastpath.scan_vocab(model, x, cands, chunk)
        assert nxt.token.tolist() == full.argmax(-1).tolist()
        torch.testing.assert_close(nxt.logprob, logprobs.gather(1, nxt.token[:, None])[:, 0], rtol=0, atol=1e-12)
        torch.testing.assert_close(nxt.entropy, -(logprobs.exp() * logprobs).sum(-1), rtol=0, atol=1e-12)
        torch.testing.assert_close(nxt.cand_logprobs, logprobs[:, cands], rtol=0, atol=1e-12)
    assert fastpath.scan_vocab(model, x).entropy is None  # decode steps skip the extra terms


def test_chunked_scan_breaks_ties_to_lowest_id_and_peaked_entropy():
    from types import SimpleNamespace

    w_u = torch.zeros(2, 12)
    w_u[0, 3] = w_u[0, 10] = 1.0  # ids 3 and 10 tie, in different chunks of 4
    w_u[1, 5] = 1.0
    model = SimpleNamespace(ln_final=lambda x: x, unembed=SimpleNamespace(W_U=w_u, b_U=torch.zeros(12)),
                            cfg=SimpleNamespace(output_logits_soft_cap=None))
    nxt = fastpath.scan_vocab(model, torch.tensor([[[2.0, 0.0]]]), [], chunk=4)
    assert nxt.token.tolist() == [3]
    expected = 2.0 - torch.logsumexp(torch.tensor([2.0, 2.0] + [0.0] * 10), 0)
    assert nxt.logprob.item() == pytest.approx(expected.item(), abs=1e-6)
    # a nearly one-hot distribution: entropy is tiny and must not drown in rounding
    peaked = fastpath.scan_vocab(model, torch.tensor([[[0.0, 40.0]]]), [5], chunk=4)
    lp = torch.log_softmax(torch.tensor([0.0] * 5 + [40.0] + [0.0] * 6, dtype=torch.float64), 0)
    assert peaked.entropy.item() == pytest.approx(float(-(lp.exp() * lp).sum()), rel=1e-3)
    assert peaked.token.tolist() == [5]


@pytest.mark.parametrize("site", ["block", "attn"])
def test_last_layer_rows_share_decoding_with_vanilla(tiny_models, monkeypatch, site):
    """Rows transplanted at the last layer keep the vanilla cache: one row per distinct first
    token is decoded for them and the vanilla row, and every row still equals the TL path --
    also when some first tokens and some later tokens are stop ids."""
    import importlib

    engine = importlib.import_module("xtl.engine.run")
    _, model = tiny_models["llama"]
    n = model.cfg.n_layers
    kw = dict(site=site, max_new_tokens=6, batch_size=7, progress=False)
    monkeypatch.setattr(engine, "stop_token_ids", lambda m: set())
    free = sweep(model, PAIR, fast=False, **kw)
    firsts = {(r.src_layer, r.tgt_layer): r.token_ids[0] for r in free.itertuples()
              if r.is_vanilla or r.tgt_layer == n - 1}
    assert len(set(firsts.values())) > 1, "the tiny model should give several first tokens"
    counts = list(firsts.values())
    stop_first = max(set(counts), key=counts.count)  # a frequent first token becomes a stop id
    later = next(t for ids in free.token_ids for t in ids[2:] if t not in counts)
    monkeypatch.setattr(engine, "stop_token_ids", lambda m: {stop_first, later})

    decoded = []
    real = fastpath.greedy

    def counting(model, prefix, rows, first, *args, **kwargs):
        decoded.append(first.token.shape[0])
        return real(model, prefix, rows, first, *args, **kwargs)

    monkeypatch.setattr(fastpath, "greedy", counting)
    fast = sweep(model, PAIR, fast=True, **kw).sort_values(["src_layer", "tgt_layer"])
    monkeypatch.setattr(fastpath, "greedy", real)
    ref = sweep(model, PAIR, fast=False, **kw).sort_values(["src_layer", "tgt_layer"])
    assert fast.token_ids.map(list).tolist() == ref.token_ids.map(list).tolist()
    assert fast.stopped.tolist() == ref.stopped.tolist()
    assert (ref.n_tokens == 0).any() and (ref.stopped & (ref.n_tokens > 0)).any()
    np.testing.assert_allclose(fast.loglik, ref.loglik, rtol=0, atol=1e-9)
    assert sum(decoded) == (n - 1) * n + len(set(firsts.values()))
    assert max(decoded) <= 7


@pytest.mark.parametrize("fast", [True, False])
def test_first_token_margin_equals_the_gap_of_a_plain_forward(tiny_models, fast):
    """The recorded margin (top-1 minus top-2 logit) is the gap in a plain forward's logits."""
    import xtl
    from xtl.patching import Site, patch_hook, tokenize

    _, model = tiny_models["qwen2"]
    df = sweep(model, PAIR, site="mlp", src_layers=[0, 3], tgt_layers=[1, 2], max_new_tokens=2,
               progress=False, fast=fast, batch_size=3)
    source, target = PAIR[0].source, PAIR[0].target
    tokens = tokenize(model, target)
    site = Site.parse("mlp")
    for row in df.itertuples():
        hooks = []
        if not row.is_vanilla:
            value = xtl.capture(model, source, "mlp").acts[row.src_layer][None]
            hooks = [(site.hook_name(row.tgt_layer), patch_hook(site, value))]
        with torch.no_grad(), model.hooks(fwd_hooks=hooks):
            logits = model(tokens[None])[0, -1]
        top = logits.topk(2).values
        assert row.margin == pytest.approx(float(top[0] - top[1]), abs=1e-9 if fast else 1e-5)
        assert row.margin >= 0


def test_device_aware_defaults_on_cpu(tiny_models):
    """On a CPU: batches of 512 and vocabulary chunks of 1,024 rows; the chunked scan equals
    one product over the whole vocabulary (what a GPU uses)."""
    from xtl.engine import schedule

    _, model = tiny_models["llama"]
    assert schedule.default_batch_size(model, 10_000, 20) == schedule.CPU_BATCH == 512
    x = torch.randn(5, 1, model.cfg.d_model, dtype=torch.float64)
    small = fastpath.scan_vocab(model, x, [3, 7], chunk=64)
    whole = fastpath.scan_vocab(model, x, [3, 7], chunk=model.cfg.d_vocab)
    default = fastpath.scan_vocab(model, x, [3, 7])
    for a in (whole, default):
        assert torch.equal(a.token, small.token)
        torch.testing.assert_close(a.logprob, small.logprob, rtol=0, atol=1e-12)
        torch.testing.assert_close(a.margin, small.margin, rtol=0, atol=1e-12)
        torch.testing.assert_close(a.entropy, small.entropy, rtol=0, atol=1e-12)


def test_batches_of_an_item_plan():
    from xtl.engine import schedule
    from xtl.schema import Config

    configs = schedule.by_target([Config(i, j) for j in range(4) for i in range(4)])
    shared, own = schedule.split_shared(configs, 4, generate=True)
    assert shared == [Config(i, 3) for i in range(4)] and len(own) == 12
    assert schedule.split_shared(configs, 4, generate=False) == ([], configs)
    batches = schedule.decode_batches(own, [17, 5], batch_size=5)
    assert [b.size for b in batches] == [5, 5, 4]
    assert [c for b in batches for c in b.configs] == own and batches[-1].continuations == [17, 5]


def test_the_gpu_budget_counts_the_key_value_buffers_the_engine_allocates(tiny_models, monkeypatch):
    """:func:`schedule.row_bytes` counts each row's key/value suffix twice (a stopped row's
    ``select`` copies every buffer before the old one is freed): measured on the engine's own
    allocations during a sweep, the K/V term equals what it allocates per row."""
    from xtl.engine import kernel, schedule

    _, model = tiny_models["llama"]
    seen: list[tuple[int, int]] = []
    original = kernel.Rows.empty.__func__

    def empty(cls, prefix, batch, capacity):
        rows = original(cls, prefix, batch, capacity)
        seen.append((batch, sum(t.nbytes for t in rows.keys + rows.values)))
        return rows

    monkeypatch.setattr(kernel.Rows, "empty", classmethod(empty))
    max_new = 6
    sweep(model, [Pair(PROMPTS["zh"], PROMPTS["en"], "p")], site="mlp", max_new_tokens=max_new, progress=False, fast=True)
    assert seen
    cfg = model.cfg
    elt = torch.finfo(cfg.dtype).bits // 8
    kv_per_row = cfg.n_layers * 2 * (cfg.n_key_value_heads or cfg.n_heads) * cfg.d_head * (max_new + 1) * elt
    assert max(nbytes / batch for batch, nbytes in seen) <= kv_per_row
    assert max(nbytes / batch for batch, nbytes in seen) >= kv_per_row * max_new / (max_new + 1)
    gpu = schedule.row_bytes(cfg, max_new, on_gpu=True)
    assert gpu >= 2 * kv_per_row + 14 * cfg.d_vocab
