"""Command line: thin wrappers over the library (``xtl demo|transplant|sweep|eval|report|lens``)."""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path

from xtl.errors import PromptError, XtlError


def _read_prompt(path: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptError(f"cannot read prompt file {path}: {exc.strerror if isinstance(exc, OSError) else exc}; "
                          "give a readable UTF-8 text file") from exc
    if not text.strip():
        raise PromptError(f"prompt file {path} is empty; put the prompt text in it")
    return text


def builtin_pair() -> dict:
    """The English/Chinese multiple-choice pair shipped with xtl (Chinese source, English target)."""
    return json.loads(resources.files("xtl").joinpath("data/builtin_pair.json").read_text("utf-8"))


def _print_result(res, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"site": str(res.site), "src_layer": res.src_layer, "tgt_layer": res.tgt_layer,
                          "vanilla": res.vanilla_text, "vanilla_tokens": res.vanilla_tokens,
                          "transplanted": res.text, "tokens": res.tokens}, ensure_ascii=False))
    else:
        print(f"site={res.site}  source layer {res.src_layer} -> target layer {res.tgt_layer}")
        print(f"vanilla     : {res.vanilla_text!r}")
        print(f"transplanted: {res.text!r}")


def cmd_transplant(args, demo: bool = False) -> None:
    from xtl.models import load_model
    from xtl.transplant import transplant

    if demo and not (args.source_prompt or args.target_prompt):
        pair = builtin_pair()
        source, target = pair["source"], pair["target"]
    else:
        if not (args.source_prompt and args.target_prompt):
            raise PromptError("give both --source-prompt FILE and --target-prompt FILE")
        source, target = _read_prompt(args.source_prompt), _read_prompt(args.target_prompt)
    model = load_model(args.model, dtype=args.dtype, device=args.device)
    n = model.cfg.n_layers
    src = args.src_layer if args.src_layer is not None else n // 2
    tgt = args.tgt_layer if args.tgt_layer is not None else n // 6
    res = transplant(model, target, source, src, tgt, site=args.site,
                     max_new_tokens=args.max_new_tokens, chat=args.chat)
    _print_result(res, args.json)


def cmd_sweep(args) -> None:
    from xtl.models import load_model
    from xtl.sweep import sweep
    from xtl.tasks import load_task

    langs = _langs_arg(args.langs)
    items = load_task(args.data, langs=langs, limit=args.limit, root=args.data_root)
    model = load_model(args.model, dtype=args.dtype, device=args.device)
    df = sweep(model, items, site=args.site, max_new_tokens=args.max_new_tokens, mode=args.mode,
               store=args.out, batch_size=args.batch_size, chat=args.chat,
               settings={"data": args.data, "langs": langs, "limit": args.limit,
                         "data_root": _abs(args.data_root)})
    print(f"{len(df)} rows in {args.out}")


def _abs(path):
    """A data root as an absolute path (what the store records), or None."""
    import os

    value = path or os.environ.get("XTL_DATA")
    return str(Path(value).expanduser().resolve()) if value else None


def _langs_arg(langs):
    """``--langs de fr`` or ``--langs de,fr``."""
    if not langs:
        return None
    return [l for part in langs for l in part.split(",") if l]


def cmd_eval(args) -> None:
    import pandas as pd

    from xtl.analysis import accuracy_table
    from xtl.metrics import evaluate
    from xtl.models import load_model
    from xtl.sweep import sweep
    from xtl.tasks import COT_MAX_NEW_TOKENS, cot_items, load_task

    if (args.src_layer is None) != (args.tgt_layer is None):
        raise XtlError("give both --src-layer and --tgt-layer (or neither, for vanilla only)")
    items = load_task(args.data, langs=_langs_arg(args.langs), limit=args.limit, root=args.data_root)
    if not items:
        raise XtlError(f"no items in {args.data} for languages {args.langs}")
    max_new = args.max_new_tokens
    if args.cot:
        if args.src_layer is not None:
            raise XtlError("--cot is the vanilla chain-of-thought baseline; leave out the layers")
        items = cot_items(items)
        max_new = COT_MAX_NEW_TOKENS if args.max_new_tokens == 20 else args.max_new_tokens
    model = load_model(args.model, dtype=args.dtype, device=args.device)
    srcs = [args.src_layer] if args.src_layer is not None else []
    tgts = [args.tgt_layer] if args.tgt_layer is not None else []
    out = Path(args.out)
    df = sweep(model, items, site=args.site, src_layers=srcs, tgt_layers=tgts, max_new_tokens=max_new,
               store=out / "rows", batch_size=1, chat=args.chat,
               settings={"data": args.data, "langs": _langs_arg(args.langs), "limit": args.limit,
                         "cot": args.cot, "data_root": _abs(args.data_root)})
    df = evaluate(df, items, model=None if args.no_ppl else model, chat=args.chat, rules=args.rules)
    df.to_parquet(out / "evaluated.parquet", index=False)
    tables = {"lang": accuracy_table(df, ("lang",), average=args.average),
              "group": accuracy_table(df, ("group",), average=args.average)}
    for name, table in tables.items():
        table.to_csv(out / f"accuracy_by_{name}.csv", index=False)
    _print_tables(tables, transplanted=bool(srcs), rules=args.rules, average=args.average)
    print(f"saved to {out}/ (evaluated.parquet, accuracy_by_lang.csv, accuracy_by_group.csv)")


def _print_tables(tables, transplanted: bool, rules: str = "authors", average: str = "language") -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    how = "means over languages" if average == "language" else "pooled over items"
    for name, df in tables.items():
        t = Table(title=f"accuracy by {name} (%) · rules={rules} · groups: {how}")
        cols = [name, "n"] + (["langs"] if "langs" in df.columns and name != "lang" else []) + ["vanilla"]
        cols += ["transplanted", "delta"] if transplanted else []
        cols += [c for c in ("lang_ok_vanilla", "ppl_vanilla") if c in df.columns]
        for c in cols:
            t.add_column(c, justify="left" if c == name else "right")
        for _, row in df.iterrows():
            t.add_row(*[str(row[c]) if c in (name, "n", "langs") else f"{row[c]:.1f}" for c in cols])
        console.print(t)


def cmd_report(args) -> None:
    import json

    from xtl.metrics import evaluate
    from xtl.report import build_report
    from xtl.store import MANIFEST, read_store

    store = Path(args.store)
    df = read_store(store)
    if df.empty:
        raise XtlError(f"{store} holds no finished items yet; let the sweep run first")
    settings = json.loads((store / MANIFEST).read_text())
    data = args.data or settings.get("data")
    if not data:
        raise XtlError("the store does not record its data; give --data SPEC")
    model = None
    if args.model:
        from xtl.models import load_model

        model = load_model(args.model, dtype=args.dtype, device=args.device)
    root = args.data_root or settings.get("data_root")
    df = evaluate(df, data, model=model, root=root, chat=bool(settings.get("chat")), rules=args.rules)
    title = args.title or f"xtl report: {settings.get('model', '')} · {data} · {settings.get('site', '')}"
    path = build_report(df, args.out, title, average=args.average, settings=settings)
    print(f"report written to {path}")


def _open_run(path: str, args, model=None):
    """A store (or an ``xtl eval`` folder) evaluated with its recorded task: a tables.Run."""
    import json

    from xtl.metrics import evaluate
    from xtl.store import MANIFEST, read_store
    from xtl.tables import Run

    store = Path(path)
    if not (store / MANIFEST).exists() and (store / "rows" / MANIFEST).exists():
        store = store / "rows"  # an `xtl eval` output folder
    df = read_store(store)
    if df.empty:
        raise XtlError(f"{store} holds no finished items yet; let the sweep run first")
    settings = json.loads((store / MANIFEST).read_text())
    if not settings.get("data"):
        raise XtlError(f"{store} does not record its task; it was not written by `xtl sweep` or `xtl eval`")
    root = args.data_root or settings.get("data_root")
    df = evaluate(df, settings["data"], model=model, root=root, chat=bool(settings.get("chat")),
                  rules=args.rules)
    return Run(df, settings)


def cmd_paper(args) -> None:
    from xtl.tables import paper_table, to_csv, to_latex, to_markdown

    model = None
    if args.model:
        from xtl.models import load_model

        model = load_model(args.model, dtype=args.dtype, device=args.device)
    runs = [_open_run(path, args, model) for path in args.stores]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for number in args.table:
        table = paper_table(number, runs, average=args.average, rules=args.rules)
        text = to_markdown(table)
        print(text)
        for ext, render in (("md", lambda t: text), ("csv", to_csv), ("tex", to_latex)):
            (out / f"table{number}.{ext}").write_text(render(table), encoding="utf-8")
    print(f"written to {out}/ (table<N>.md, .csv, .tex)")


def cmd_lens(args) -> None:
    from xtl.lens import Patch, lens
    from xtl.models import load_model
    from xtl.plots import save

    prompt = _read_prompt(args.prompt)
    patch = None
    if args.source or args.src_layer is not None or args.tgt_layer is not None:
        if not (args.source and args.src_layer is not None and args.tgt_layer is not None):
            raise XtlError("a transplanted lens needs --source FILE, --src-layer I and --tgt-layer J")
        patch = Patch(_read_prompt(args.source), args.src_layer, args.tgt_layer, args.site)
    model = load_model(args.model, dtype=args.dtype, device=args.device)
    res = lens(model, prompt, patch, positions=args.positions, k=args.k, track=args.track or (),
               sublayers=args.sublayers, max_new_tokens=args.max_new_tokens, chat=args.chat)
    res.title = "Logit lens" + (f" — transplanted {args.site} {args.src_layer}→{args.tgt_layer}" if patch else "")
    print(res.table())
    if res.response:
        print(f"response: {res.response!r}")
    if args.out:
        print(f"figure written to {save(res.figure(args.track[0] if args.track else None), args.out)}")


def _common(p: argparse.ArgumentParser, model_default: str | None = None) -> None:
    p.add_argument("--model", default=model_default, required=model_default is None,
                   help="demo name gemma-3-270m, a TransformerLens name, a local HF folder or a .gguf")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--device", default=None)
    p.add_argument("--site", default="mlp",
                   help="attn | mlp | block | heads:0,3 | attn-authors (the authors' released variant)")
    p.add_argument("--max-new-tokens", type=int, default=20)
    p.add_argument("--chat", action="store_true", help="apply the tokenizer's chat template")


def _scoring(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rules", default="authors", choices=["authors", "lenient"],
                   help="scoring: the authors' released scripts (default) or lenient (full-width "
                        "parentheses normalised for every task; not the paper's)")
    p.add_argument("--average", default="language", choices=["language", "pooled"],
                   help="group averages: mean over languages, as the paper (default), or pooled over items")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xtl", description="Cross-lingual latent transplantation")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("demo", "transplant"):
        p = sub.add_parser(name, help="transplant one prompt pair" if name == "transplant"
                           else "transplant the built-in zh->en pair on the demo model")
        _common(p, "gemma-3-270m" if name == "demo" else None)
        p.add_argument("--source-prompt", required=False)
        p.add_argument("--target-prompt", required=False)
        p.add_argument("--src-layer", type=int, default=None, help="default: about half depth")
        p.add_argument("--tgt-layer", type=int, default=None, help="default: about one sixth depth")
        p.add_argument("--json", action="store_true")
    p = sub.add_parser("sweep", help="all (source, target) layer pairs over a dataset")
    _common(p)
    p.add_argument("--data", required=True, help="xnli | xquad | globalopinionqa | xcopa | FILE.jsonl")
    p.add_argument("--data-root", default=None)
    p.add_argument("--langs", nargs="*", default=None)
    p.add_argument("--limit", type=int, default=None, help="items per language")
    p.add_argument("--out", required=True)
    p.add_argument("--mode", default="generate", choices=["generate", "logits"])
    p.add_argument("--batch-size", type=int, default=512)

    p = sub.add_parser("eval", help="accuracy per language and resource group, vanilla vs one transplant")
    _common(p)
    p.add_argument("--data", required=True, help="xnli | xquad | globalopinionqa | xcopa | FILE.jsonl")
    p.add_argument("--data-root", default=None)
    p.add_argument("--langs", nargs="*", default=None)
    p.add_argument("--limit", type=int, default=None, help="items per language")
    p.add_argument("--src-layer", type=int, default=None)
    p.add_argument("--tgt-layer", type=int, default=None)
    p.add_argument("--cot", action="store_true", help="the CoT baseline (200 new tokens)")
    p.add_argument("--no-ppl", action="store_true", help="skip response perplexity")
    p.add_argument("--out", default="xtl-eval")
    _scoring(p)

    p = sub.add_parser("report", help="one self-contained HTML page of a sweep store")
    p.add_argument("store")
    p.add_argument("--out", default="report.html")
    p.add_argument("--data", default=None, help="task spec (default: the one the sweep recorded)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--model", default=None, help="score response perplexity with this model")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--device", default=None)
    p.add_argument("--title", default=None)
    _scoring(p)

    p = sub.add_parser("paper", help="the paper's Tables 1-4 from stores, as Markdown, CSV and LaTeX")
    p.add_argument("stores", nargs="+", help="sweep stores or `xtl eval` folders (PilotSet N² sweeps "
                   "for Tables 1 and 4, coarse runs for Tables 2 and 3, a --cot eval for the CoT rows)")
    p.add_argument("--table", type=int, nargs="+", default=[1, 2, 3, 4], choices=[1, 2, 3, 4],
                   help="which tables (default: all four)")
    p.add_argument("--out", default="xtl-tables", help="folder for table<N>.md/.csv/.tex (default: %(default)s)")
    p.add_argument("--data-root", default=None, help="data folder (default: the one each store recorded)")
    p.add_argument("--model", default=None, help="score response perplexity with this model")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--device", default=None)
    _scoring(p)

    p = sub.add_parser("lens", help="logit lens of one prompt, vanilla or transplanted")
    _common(p)
    p.add_argument("--prompt", required=True, help="prompt text file (the target)")
    p.add_argument("--source", default=None, help="source prompt file, for a transplanted lens")
    p.add_argument("--src-layer", type=int, default=None)
    p.add_argument("--tgt-layer", type=int, default=None)
    p.add_argument("--positions", default="generated", choices=["last", "generated"])
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--track", nargs="*", default=None, help="tokens to track, e.g. A B")
    p.add_argument("--sublayers", action="store_true")
    p.add_argument("--out", default=None, help="write the heatmap to this HTML file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            cmd_transplant(args, demo=True)
        elif args.command == "transplant":
            cmd_transplant(args)
        elif args.command == "sweep":
            cmd_sweep(args)
        elif args.command == "eval":
            cmd_eval(args)
        elif args.command == "report":
            cmd_report(args)
        elif args.command == "lens":
            cmd_lens(args)
        elif args.command == "paper":
            cmd_paper(args)
    except XtlError as exc:
        print(f"xtl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("xtl: interrupted; finished items are saved, run the same command to resume",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
