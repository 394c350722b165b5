"""The CLI's commands: each a thin wrapper over library calls (``xtl demo|transplant|sweep|eval|
report|paper|lens``). Everything that can be checked without a model is checked first."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

from xtl.cli.checks import (absolute, check_context, check_layers, check_out_file, check_site, data_settings, depth,
                            langs_arg, longest_prompts, parse_layers, read_prompt)
from xtl.errors import PromptError, XtlError
from xtl.evaluation.groups import describe_grouping
from xtl.evaluation.lid import lid_model

__all__ = ["COMMANDS"]


def _load(args):
    from xtl.models import load_model

    return load_model(args.model, dtype=args.dtype, device=args.device, backend=getattr(args, "backend", "auto"))


def _print_result(res, as_json: bool) -> None:
    changed = res.tokens != res.vanilla_tokens
    if as_json:
        print(json.dumps({"site": str(res.site), "src_layer": res.src_layer, "tgt_layer": res.tgt_layer,
                          "vanilla": res.vanilla_text, "vanilla_tokens": res.vanilla_tokens,
                          "transplanted": res.text, "tokens": res.tokens, "changed": changed},
                         ensure_ascii=False))
    else:
        print(f"site={res.site}  source layer {res.src_layer} -> target layer {res.tgt_layer}")
        print(f"vanilla     : {res.vanilla_text!r}")
        print(f"transplanted: {res.text!r}")
        print("the transplant changed the answer" if changed else
              "the transplant did not change the answer (try other layers or --site)")


def cmd_transplant(args) -> None:
    from xtl.tasks.registry import builtin_pair

    check_site(args.site, args.model)
    check_layers(args.model, source_layer=args.src_layer, target_layer=args.tgt_layer)
    if not (args.source or args.target):  # the built-in zh -> en pair
        pair = builtin_pair()
        source, target = pair["source"], pair["target"]
    else:
        if not (args.source and args.target):
            raise PromptError("give both --source FILE and --target FILE")
        source, target = read_prompt(args.source), read_prompt(args.target)
    check_context(args.model, {"source prompt": source}, 0, args.chat)
    check_context(args.model, {"target prompt": target}, args.max_new_tokens, args.chat)
    from xtl.patching.variants import check_alpha

    check_alpha(args.alpha, args.extrapolate)
    from xtl.patching.single import transplant  # torch and TransformerLens: only once the checks pass

    model = _load(args)
    n = model.cfg.n_layers
    src = args.src_layer if args.src_layer is not None else n // 2
    tgt = args.tgt_layer if args.tgt_layer is not None else n // 6
    res = transplant(model, source=source, target=target, src_layer=src, tgt_layer=tgt, site=args.site,
                     max_new_tokens=args.max_new_tokens, chat=args.chat, alpha=args.alpha, span=args.span,
                     positions=args.positions, extrapolate=args.extrapolate)
    _print_result(res, args.json)


def use_color(choice: str = "auto") -> bool:
    """Whether to write ANSI colours: ``always``/``never`` as said; ``auto`` on a terminal
    (standard output a TTY, ``TERM`` not ``dumb``) unless ``NO_COLOR`` is set (no-color.org)."""
    if choice != "auto":
        return choice == "always"
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM", "") != "dumb"


def cmd_demo(args) -> None:
    """The built-in pair's whole grid, scored, with the best configuration's logit lens."""
    from xtl.tasks.registry import builtin_pair

    check_site(args.site, args.model)
    check_out_file(args.out)
    from xtl.interpret.showcase import SET_ITEMS, SET_STEP
    from xtl.tasks.demo_set import load_demo_set

    pair = builtin_pair()
    check_context(args.model, {"source prompt": pair["source"], "target prompt": pair["target"]},
                  args.max_new_tokens, args.chat)
    langs = langs_arg(args.langs)
    items = args.items if args.items is not None else SET_ITEMS
    if not args.no_set:
        load_demo_set(langs, items)  # --items beyond the set, a language it lacks: one line, before the load
    elif args.items is not None or langs or args.set_step is not None:
        raise XtlError("--items, --langs and --set-step choose the demo set's sweep; leave them out with --no-set")
    model = _load(args)
    from xtl.figures.plots import save_page
    from xtl.interpret.showcase import INTRO, demo

    print(f"xtl demo: the built-in {pair['source_lang']} -> {pair['target_lang']} question on "
          f"{model.cfg.model_name} ({model.cfg.n_layers} layers): every (source, target) layer pair", flush=True)
    result = demo(model, pair, site=args.site, max_new_tokens=args.max_new_tokens, chat=args.chat, mode=args.mode,
                  with_set=not args.no_set, limit=items, langs=langs, set_step=args.set_step or SET_STEP)
    summary = result.summary()
    print(result.summary(color=True) if use_color(args.color) else summary)
    path = save_page(result.figures(), args.out, f"xtl demo — {model.cfg.model_name}", f"{INTRO}\n\n{summary}")
    print(f"page        : {path} (the margin-gain heatmap; the logit lens of the configuration shown beside "
          f"vanilla{'' if args.no_set else '; the demo set: gain heatmaps and the bounds as bars'})")


def cmd_sweep(args) -> None:
    from xtl.engine.store import check_writable_dir
    from xtl.tasks import load_task

    check_site(args.site, args.model)
    srcs, tgts = parse_layers(args.src_layers), parse_layers(args.tgt_layers)
    if args.grid == "cross" and (srcs is not None or tgts is not None):
        raise XtlError("--grid cross sweeps the last source layer into every target and every source into "
                       "target 0 (2N − 1 configurations); leave --src-layers and --tgt-layers out")
    check_layers(args.model, source_layers=srcs, target_layers=tgts)
    langs = langs_arg(args.langs)
    variant = _variant_kwargs(args)
    items = load_task(args.task, langs=langs, limit=args.limit, data_root=args.data_root, source_langs=args.source_langs)
    if not items:
        raise XtlError(f"no items in {args.task} for languages {langs}; check --langs")
    if args.shard:
        from xtl.tasks import shard

        items = shard(items, args.shard)
    check_writable_dir(args.out)
    settings = {**data_settings(args.task), "langs": langs, "limit": args.limit,
                "data_root": absolute(args.data_root)}
    if _nothing_to_do(args, items, srcs, tgts, settings):
        print(f"nothing to do: all {len(items)} item(s) are already in {args.out} with these settings")
        return
    check_context(args.model, longest_prompts(items), args.max_new_tokens, args.chat)
    if args.ray:
        from xtl.engine.distributed import sweep_ray

        df = sweep_ray(args.model, items, args.out, dtype=args.dtype, device=args.device, backend=args.backend,
                       address=args.ray, workers=args.workers, site=args.site, src_layers=srcs,
                       tgt_layers=tgts, max_new_tokens=args.max_new_tokens, mode=args.mode,
                       batch_size=args.batch_size, candidates=args.candidates or (), chat=args.chat,
                       settings=settings, grid=args.grid, screen=args.screen, **variant)
        print(f"{len(df)} rows in {args.out}")
        return
    model = _load(args)
    from xtl.engine.run import sweep

    df = sweep(model, items, site=args.site, src_layers=srcs, tgt_layers=tgts,
               max_new_tokens=args.max_new_tokens, mode=args.mode, store=args.out,
               batch_size=args.batch_size, candidates=args.candidates or (), chat=args.chat,
               settings=settings, grid=args.grid, screen=args.screen, **variant)
    print(f"{len(df)} rows in {args.out}")


def _variant_kwargs(args) -> dict:
    """The sweep's transplant variant from its options, checked before anything loads."""
    from xtl.engine.settings import SweepRequest

    kw = dict(alpha=list(args.alpha), span=args.span, positions=args.positions,
              source_langs=tuple(args.source_langs or ()), weights=args.weights, extrapolate=args.extrapolate)
    SweepRequest(**kw)  # one clear line for bad values, before a model or the data loads
    depth_ = depth(args.model)
    if depth_ is not None and args.span > depth_:
        raise XtlError(f"span {args.span} is longer than the model ({depth_} layers); use at most {depth_}")
    return kw


def _nothing_to_do(args, items, srcs, tgts, settings: dict) -> bool:
    """A finished store of these settings needs no model (its manifest against the settings
    the library says this sweep records)."""
    from xtl.engine.settings import SweepRequest, known_settings
    from xtl.engine.store import complete

    request = SweepRequest(site=args.site, src_layers=srcs, tgt_layers=tgts, max_new_tokens=args.max_new_tokens,
                           mode=args.mode, candidates=tuple(args.candidates or ()), chat=args.chat,
                           recorded=settings, grid=args.grid, screen=args.screen, **_variant_kwargs(args))
    expected = known_settings(request, args.model, dtype=args.dtype, backend=getattr(args, "backend", None))
    return complete(args.out, expected, [it.key for it in items])


def _eval_folder(args, srcs, tgts, max_new: int) -> Path:
    """Default output folder of `xtl eval`, named by the settings that change its results."""
    def part(xs):
        return "all" if xs is None else "-".join(map(str, xs))
    name = re.sub(r"[^\w.-]+", "_", Path(args.task).stem if args.task.endswith((".json", ".jsonl")) else args.task)
    what = "vanilla" if not srcs else f"{args.site}-s{part(srcs)}-t{part(tgts)}"
    return Path("xtl-eval") / f"{name}-{what}{'-cot' if args.cot else ''}-{max_new}tok"


def cmd_eval(args) -> None:
    from xtl.tasks import COT_MAX_NEW_TOKENS, cot_items, load_task

    check_site(args.site, args.model)
    srcs, tgts = parse_layers(args.src_layers), parse_layers(args.tgt_layers)
    if (srcs is None) != (tgts is None):
        raise XtlError("give both --src-layer and --tgt-layer (or neither, for vanilla only)")
    if args.cot and srcs is not None:
        raise XtlError("--cot is the vanilla chain-of-thought baseline; leave out the layers")
    check_layers(args.model, source_layers=srcs, target_layers=tgts)
    lid = lid_model(args.lid_model)
    items = load_task(args.task, langs=langs_arg(args.langs), limit=args.limit, data_root=args.data_root)
    if not items:
        raise XtlError(f"no items in {args.task} for languages {args.langs}; check --langs")
    max_new = args.max_new_tokens
    if args.cot:
        items = cot_items(items)
        max_new = COT_MAX_NEW_TOKENS if args.max_new_tokens is None else args.max_new_tokens
    max_new = max_new or 20
    out = Path(args.out) if args.out else _eval_folder(args, srcs, tgts, max_new)
    from xtl.engine.store import check_writable_dir

    check_writable_dir(out)
    check_context(args.model, longest_prompts(items), max_new, args.chat)
    model = _load(args)
    from xtl.analysis import accuracy_table
    from xtl.engine.run import sweep
    from xtl.evaluation import evaluate

    df = sweep(model, items, site=args.site, src_layers=srcs or [], tgt_layers=tgts or [],
               max_new_tokens=max_new, store=out / "rows", batch_size=args.batch_size, chat=args.chat,
               settings={**data_settings(args.task), "langs": langs_arg(args.langs), "limit": args.limit,
                         "cot": args.cot, "data_root": absolute(args.data_root)})
    df = evaluate(df, items, model=None if args.no_ppl else model, chat=args.chat, rules=args.rules,
                  groups=args.groups, lid_model=lid)
    df.to_parquet(out / "evaluated.parquet", index=False)
    tables = {"lang": accuracy_table(df, ("lang",), average=args.average),
              "group": accuracy_table(df, ("group",), average=args.average)}
    for name, table in tables.items():
        table.to_csv(out / f"accuracy_by_{name}.csv", index=False)
    _print_tables(tables, transplanted=bool(srcs), rules=args.rules, average=args.average)
    print(f"{describe_grouping(args.groups)}. Language ID: {lid}.")
    print(f"saved to {out}/ (evaluated.parquet, accuracy_by_lang.csv, accuracy_by_group.csv)")


def _print_tables(tables, transplanted: bool, rules: str = "authors", average: str = "language") -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)  # no 80-column cut in a pipe or log
    how = "means over languages" if average == "language" else "pooled over items"
    headers = {"lang_ok_vanilla": "LC vanilla", "lang_ok_transplanted": "LC transplanted",
               "ppl_vanilla": "PPL vanilla", "ppl_transplanted": "PPL transplanted"}
    for name, df in tables.items():
        t = Table(title=f"accuracy by {name} (%) · rules={rules} · groups: {how} · LC: language consistency (%)")
        cols = [name, "n"] + (["langs"] if "langs" in df.columns and name != "lang" else []) + ["vanilla"]
        cols += ["transplanted", "delta"] if transplanted else []
        extra = ["lang_ok_vanilla", "ppl_vanilla"] + (["lang_ok_transplanted", "ppl_transplanted"] if transplanted else [])
        cols += [c for c in extra if c in df.columns]
        for c in cols:
            t.add_column(headers.get(c, c), justify="left" if c == name else "right", no_wrap=True)
        for _, row in df.iterrows():
            t.add_row(*[str(row[c]) if c in (name, "n", "langs") else
                        ("–" if row[c] != row[c] else f"{row[c]:.1f}") for c in cols])
        console.print(t)


def _open_run(path: str, args, model=None):
    """A store evaluated with its recorded task (the library's :func:`xtl.evaluation.open_run`)."""
    from xtl.evaluation import open_run

    return open_run(path, task=getattr(args, "task", None), data_root=args.data_root,
                    src_layers=parse_layers(getattr(args, "src_layers", None)),
                    tgt_layers=parse_layers(getattr(args, "tgt_layers", None)), rules=args.rules, model=model,
                    groups=args.groups, lid_model=args.lid_model)


def cmd_report(args) -> None:
    from xtl.figures.report import build_report

    check_out_file(args.out)
    lid_model(args.lid_model)
    model = _load(args) if args.model else None
    run = _open_run(args.store, args, model)
    settings = run.settings
    title = args.title or f"xtl report: {settings.get('model', '')} · {settings['data']} · {settings.get('site', '')}"
    path = build_report(run.df, args.out, title, average=args.average, settings=settings, light=args.light)
    print(f"report written to {path}")


def cmd_paper(args) -> None:
    from xtl.engine.store import check_writable_dir

    if args.table == [] and not args.figure:
        raise XtlError("--table needs the numbers of the tables to write (1 2 3 4 8); without --table, "
                       "Tables 1-4 are written")
    out = check_writable_dir(args.out)
    lid_model(args.lid_model)
    figures = None if args.figure is None else (args.figure or [2, 3, 4])
    numbers = args.table if args.table is not None else ([] if figures else [1, 2, 3, 4])
    model = _load(args) if args.model else None
    runs = [_open_run(path, args, model) for path in args.stores]
    from xtl.analysis.tables import paper_table, to_csv, to_latex, to_markdown

    written = []
    for number in numbers:
        table = paper_table(number, runs, average=args.average, rules=args.rules)
        text = to_markdown(table)
        print(text)
        for ext, render in (("md", lambda t: text), ("csv", to_csv), ("tex", to_latex)):
            (out / f"table{number}.{ext}").write_text(render(table), encoding="utf-8")
        written.append("table<N>.md, .csv, .tex")
    if figures:
        from xtl.figures.paper import paper_figures
        from xtl.figures.plots import save

        for stem, fig in paper_figures(runs, figures, average=args.average, first_layer=args.first_layer).items():
            print(f"figure written to {save(fig, out / f'{stem}.html', plotlyjs=args.plotlyjs)}")
        written.append("figure<N>*.html")
    print(f"written to {out}/ ({'; '.join(dict.fromkeys(written))})")


def cmd_lens(args) -> None:
    check_site(args.site, args.model)
    check_layers(args.model, source_layer=args.src_layer, target_layer=args.tgt_layer)
    check_out_file(args.out)
    prompt = read_prompt(args.target)
    source = None
    if args.source or args.src_layer is not None or args.tgt_layer is not None:
        if not (args.source and args.src_layer is not None and args.tgt_layer is not None):
            raise XtlError("a transplanted lens needs --source FILE, --src-layer I and --tgt-layer J")
        source = read_prompt(args.source)
        check_context(args.model, {"source prompt": source}, 0, args.chat)
    check_context(args.model, {"prompt": prompt}, args.max_new_tokens, args.chat)
    model = _load(args)
    from xtl.figures.plots import save
    from xtl.interpret.logit_lens import Patch, lens

    patch = Patch(source, args.src_layer, args.tgt_layer, args.site) if source else None
    res = lens(model, prompt, transplant=patch, positions=args.positions, k=args.k, track=args.track or (),
               sublayers=args.sublayers, max_new_tokens=args.max_new_tokens, chat=args.chat)
    res.title = "Logit lens — " + (f"transplanted {args.site} {args.src_layer}→{args.tgt_layer}" if patch else "vanilla")
    run = (f"transplanted: {args.site} of {args.source} at source layer {args.src_layer} -> target layer "
           f"{args.tgt_layer}" if patch else "vanilla: no transplant")
    print(f"logit lens of {args.target}, {run}")
    table = res.table(max_width=shutil.get_terminal_size().columns)
    print(table)
    path = save(res.figure(args.track[0] if args.track else None), args.out) if args.out else None
    if table.rsplit("\n", 1)[-1].startswith("… "):  # the terminal is too narrow for every position
        print(f"  every position: {path}" if path else "  every position: add --out lens.html (the figure)")
    if res.response:
        print(f"response ({'transplanted' if patch else 'vanilla'}): {res.response!r}")
    if path:
        print(f"figure written to {path}")


def cmd_select(args) -> None:
    from xtl.engine.store import check_writable_dir

    seen: dict[Path, str] = {}
    for path in args.stores:  # one store twice would only be compared with itself
        key = Path(path).expanduser().resolve()
        if key in seen:
            also = "" if seen[key] == path else f" (also as {seen[key]})"
            raise XtlError(f"{path} is given twice{also}; give each store once")
        seen[key] = path
    out = check_writable_dir(args.out)
    lid_model(args.lid_model)
    from xtl.analysis.render import frame_markdown
    from xtl.strategies import DEFAULT_STRATEGIES, make_strategy, select

    names = args.strategy or DEFAULT_STRATEGIES  # the default leaves out, with a note, what cannot run here
    # unknown names fail here, before any store is evaluated; figures are named by the registered name
    file_names = {make_strategy(name).name: name for name in names}
    from xtl.figures.plots import chosen_layers, save

    for path in args.stores:
        run = _open_run(path, args)
        if not run.transplanted:
            raise XtlError(f"{path} holds no transplanted configurations; sweep it (xtl sweep --grid cross)")
        sel = select(run.df, names, cv=args.cv, by_language=args.by_language, seed=args.seed,
                     n_layers=run.n_layers, site=run.site, average=args.average)
        stem = re.sub(r"[^\w.-]+", "_", f"{run.name}-{run.site}")
        table = sel.table.reset_index()
        print(f"### {run.name} · {run.model} · {run.site} · {sel.protocol}\n")
        print(frame_markdown(table))
        for note in sel.notes:
            print(f"- {note}")
        table.to_csv(out / f"{stem}.csv", index=False)
        sel.choices.to_csv(out / f"{stem}-choices.csv", index=False)
        if len(sel.importances):
            sel.importances.to_csv(out / f"{stem}-features.csv", index=False)
            top = sel.importances.groupby("strategy").head(5)
            print("\nfeatures that drive the learned choice (learned: permutation importance; "
                  "learned-logistic: |coefficient| of the standardised feature):")
            for r in top.itertuples():
                what = "|coef|" if "logistic" in r.strategy else "perm. imp."
                print(f"  {r.strategy}: {r.feature} {what} {r.importance:.4f}")
        for name in sel.choices["strategy"].unique():
            fig = chosen_layers(sel.chosen_layers(name), run.n_layers, f"{name}: configurations chosen — {run.name}")
            slug = file_names.get(name) or re.sub(r"[^\w.-]+", "_", name).strip("_")
            save(fig, out / f"{stem}-{slug}-layers.html", plotlyjs=args.plotlyjs)
        print()
    print(f"written to {out}/ (<dataset>-<site>.csv, -choices.csv, -features.csv, -<strategy>-layers.html)")


def cmd_sft(args) -> None:
    if args.accelerate_configs:
        from xtl.training.configs import ACCELERATE_CONFIGS, accelerate_config

        for name, what in ACCELERATE_CONFIGS.items():
            print(f"{name}: {what}\n  accelerate launch --config_file {accelerate_config(name)} -m xtl.cli sft ...")
        return
    missing = [f"--{k}" for k in ("model", "data", "out") if not getattr(args, k)]
    if missing:
        raise XtlError(f"xtl sft needs {', '.join(missing)}; e.g. xtl sft --model BASE --data aya.jsonl --out runs/sft")
    from xtl.training.finetune import sft

    res = sft(args.model, args.data, args.out, n=args.n, langs=tuple(langs_arg(args.langs)) if args.langs else None,
              seed=args.seed, epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size,
              micro_batch_size=args.micro_batch_size, lr=args.lr, warmup_ratio=args.warmup_ratio,
              dtype=args.dtype, weights_dtype=args.weights_dtype, gradient_checkpointing=args.gradient_checkpointing,
              max_length=args.max_length, chat=args.chat, lora=args.lora, lora_r=args.lora_r,
              save_steps=args.save_steps)
    first, last = (res.losses[0], res.losses[-1]) if res.losses else (float("nan"), float("nan"))
    print(f"fine-tuned model in {res.folder} ({res.steps} steps, loss {first:.3f} -> {last:.3f}, "
          f"{res.wall_s:.0f} s); sweep it with: xtl sweep --model {res.folder} ...")


def cmd_screen(args) -> None:
    """The gradient screen of a task's items: every cell's estimated change of the gold margin."""
    from xtl.engine.screening import screen
    from xtl.tasks import load_task

    check_site(args.site, args.model)
    srcs, tgts = parse_layers(args.src_layers), parse_layers(args.tgt_layers)
    check_layers(args.model, source_layers=srcs, target_layers=tgts)
    if args.out and not str(args.out).endswith((".csv", ".parquet")):
        raise XtlError(f"--out must name a .csv or .parquet file, not {args.out!r}")
    items = load_task(args.task, langs=langs_arg(args.langs), limit=args.limit, data_root=args.data_root)
    if not items:
        raise XtlError(f"no items in {args.task} for languages {args.langs}; check --langs")
    check_context(args.model, longest_prompts(items), 0, args.chat)
    model = _load(args)
    res = screen(model, items, site=args.site, candidates=args.candidates, src_layers=srcs, tgt_layers=tgts,
                 chat=args.chat)
    print(f"screened {len(items)} item(s) at site {res.site} in {res.seconds:.1f} s "
          f"({res.seconds / len(items):.2f} s per item, {len(res.src_layers) * len(res.tgt_layers)} cells each)")
    for key, configs in res.top(args.top).items():
        print(f"{key}: " + ", ".join(f"{c.src}→{c.tgt}" for c in configs))
    if args.out:
        frame = res.to_frame()
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(args.out, index=False) if str(args.out).endswith(".csv") else frame.to_parquet(args.out, index=False)
        print(f"estimates   : {args.out}")


COMMANDS = {"demo": cmd_demo, "transplant": cmd_transplant,
            "sweep": cmd_sweep, "eval": cmd_eval, "report": cmd_report, "paper": cmd_paper,
            "lens": cmd_lens, "sft": cmd_sft, "select": cmd_select, "screen": cmd_screen}
