"""What the parity tests compare xtl against: the transplant written with plain Hugging Face
forward hooks (as the authors did), and the sweep checked cell by cell against single transplants."""

from __future__ import annotations

import torch

import xtl
from helpers import PROMPTS


def _post_norm(layer, name: str):
    return getattr(layer, name, None)


def hf_reference(hf, tokenizer, source, target, i, j, site, max_new):
    """The transplant written with plain Hugging Face forward hooks. The site is what the layer
    adds to the residual stream: after the sublayer's own output norm where the architecture has
    one (Gemma 2/3, OLMo 2), the sublayer's output otherwise."""
    layers = hf.model.layers
    kind = site.split(":")[0]
    heads = [int(h) for h in site.split(":")[1].split(",")] if kind == "heads" else None
    d = hf.config.head_dim if getattr(hf.config, "head_dim", None) else hf.config.hidden_size // hf.config.num_attention_heads

    def module(layer, what):
        block = layers[layer]
        if what == "attn":
            return _post_norm(block, "post_attention_layernorm") if hasattr(block, "post_feedforward_layernorm") \
                else block.self_attn
        if what == "mlp":
            return _post_norm(block, "post_feedforward_layernorm") or block.mlp
        return {"block": block, "heads": block.self_attn.o_proj}[what]

    def first(out):
        return out[0] if isinstance(out, tuple) else out

    store = {}
    ids_src = torch.tensor([tokenizer(source)["input_ids"]])
    hooks = []
    if kind == "attn-authors":  # the authors' variant: h + a at the source, a written at the target
        hooks.append(layers[i].register_forward_pre_hook(
            lambda m, args, kwargs: store.__setitem__("h", (kwargs.get("hidden_states", args[0] if args else None))[0, -1].clone()),
            with_kwargs=True))
        hooks.append(module(i, "attn").register_forward_hook(
            lambda m, a, out: store.__setitem__("v", store["h"] + first(out)[0, -1])))
        kind = "attn"
    elif kind == "heads":
        hooks.append(module(i, "heads").register_forward_pre_hook(lambda m, args: store.__setitem__("v", args[0][0, -1].clone())))
    else:
        hooks.append(module(i, kind).register_forward_hook(lambda m, a, out: store.__setitem__("v", first(out)[0, -1].clone())))
    with torch.no_grad():
        hf(ids_src)
    for h in hooks:
        h.remove()
    value, calls = store["v"], {"n": 0}
    if kind == "heads":
        def pre(m, args):
            calls["n"] += 1
            if calls["n"] > 1:
                return None
            x = args[0].clone()
            for hh in heads:
                x[0, -1, hh * d:(hh + 1) * d] = value[hh * d:(hh + 1) * d]
            return (x,) + tuple(args[1:])
        h = module(j, "heads").register_forward_pre_hook(pre)
    else:
        def post(m, a, out):
            calls["n"] += 1
            if calls["n"] > 1:  # prompt pass only
                return None
            t = first(out).clone()
            t[0, -1] = value
            return (t,) + tuple(out[1:]) if isinstance(out, tuple) else t
        h = module(j, kind).register_forward_hook(post)
    ids = torch.tensor([tokenizer(target)["input_ids"]])
    with torch.no_grad():
        out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new,
                          do_sample=False, eos_token_id=2, pad_token_id=0)
    h.remove()
    new = out[0, ids.shape[1]:].tolist()
    return new[:new.index(2)] if 2 in new else new


def assert_sweep_equals_transplant(model, df, site, max_new: int, n_items: int = 1, every: int = 1) -> None:
    """Every ``every``-th configuration of a sweep of ``PROMPTS["zh"]`` into ``PROMPTS["en"]``
    has the tokens :func:`xtl.transplant` gives (the vanilla row those of :func:`xtl.vanilla`),
    and the full grid is there."""
    n = model.cfg.n_layers
    assert len(df) == n_items * (n * n + 1)
    vanilla = xtl.vanilla(model, PROMPTS["en"], max_new_tokens=max_new).tokens
    for row in df.itertuples():
        if row.is_vanilla:
            assert list(row.token_ids) == vanilla
        elif (row.src_layer + row.tgt_layer) % every == 0:
            res = xtl.transplant(model, source=PROMPTS["zh"], target=PROMPTS["en"], src_layer=row.src_layer,
                                 tgt_layer=row.tgt_layer, site=site, max_new_tokens=max_new)
            assert list(row.token_ids) == res.tokens, (site, row.src_layer, row.tgt_layer)


def _site_module(hf, layer: int, kind: str):
    """The module whose output (``heads``: the o-projection's input) is the site at ``layer``."""
    block = hf.model.layers[layer]
    if kind == "attn":
        return block.post_attention_layernorm if hasattr(block, "post_feedforward_layernorm") else block.self_attn
    if kind == "mlp":
        return getattr(block, "post_feedforward_layernorm", None) or block.mlp
    return {"block": block, "heads": block.self_attn.o_proj}[kind]


def hf_variant_reference(hf, tokenizer, sources, target, i, j, site, max_new, *, alpha=1.0, span=1,
                         positions=1, weights=None, logprobs=False):
    """A transplant variant written with plain Hugging Face forward hooks: each source prompt
    run whole, its site kept at layers ``i..i+span-1`` and the last ``positions`` positions;
    the sources' weighted mean (``weights`` normalised, default equal) blended by ``alpha``
    into layers ``j..j+span-1`` of the target's prompt pass (one whole-prompt forward of
    ``generate``), nothing patched while decoding. Returns the greedy tokens (with ``logprobs``:
    and the first generated token's log-probs)."""
    kind = site.split(":")[0]
    heads = [int(h) for h in site.split(":")[1].split(",")] if kind == "heads" else None
    cfg = hf.config
    d = cfg.head_dim if getattr(cfg, "head_dim", None) else cfg.hidden_size // cfg.num_attention_heads
    k = positions
    weights = [1.0] * len(sources) if weights is None else list(weights)
    weights = [w / sum(weights) for w in weights]

    def first(out):
        return out[0] if isinstance(out, tuple) else out

    mean = [0.0] * span
    for src, w in zip(sources, weights):
        kept = {}
        hooks = []
        for m in range(span):
            mod = _site_module(hf, i + m, kind)
            if kind == "heads":
                hooks.append(mod.register_forward_pre_hook(
                    lambda mod_, args, m=m: kept.__setitem__(m, args[0][0, -k:].clone())))
            else:
                hooks.append(mod.register_forward_hook(
                    lambda mod_, a, out, m=m: kept.__setitem__(m, first(out)[0, -k:].clone())))
        with torch.no_grad():
            hf(torch.tensor([tokenizer(src)["input_ids"]]))
        for h in hooks:
            h.remove()
        mean = [mean[m] + w * kept[m] for m in range(span)]
    calls = {m: 0 for m in range(span)}

    def patched(x, value):
        x = x.clone()
        if heads is None:
            x[0, -k:] = (1 - alpha) * x[0, -k:] + alpha * value
        else:
            for hh in heads:
                cols = slice(hh * d, (hh + 1) * d)
                x[0, -k:, cols] = (1 - alpha) * x[0, -k:, cols] + alpha * value[:, cols]
        return x

    hooks = []
    for m in range(span):
        mod = _site_module(hf, j + m, kind)
        if kind == "heads":
            def pre(mod_, args, m=m):
                calls[m] += 1
                return None if calls[m] > 1 else (patched(args[0], mean[m]),) + tuple(args[1:])
            hooks.append(mod.register_forward_pre_hook(pre))
        else:
            def post(mod_, a, out, m=m):
                calls[m] += 1
                if calls[m] > 1:  # prompt pass only
                    return None
                t = patched(first(out), mean[m])
                return (t,) + tuple(out[1:]) if isinstance(out, tuple) else t
            hooks.append(mod.register_forward_hook(post))
    ids = torch.tensor([tokenizer(target)["input_ids"]])
    with torch.no_grad():
        out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new, do_sample=False,
                          eos_token_id=2, pad_token_id=0, output_logits=True, return_dict_in_generate=True)
    for h in hooks:
        h.remove()
    new = out.sequences[0, ids.shape[1]:].tolist()
    new = new[:new.index(2)] if 2 in new else new
    return (new, torch.log_softmax(out.logits[0][0].double(), -1)) if logprobs else new
