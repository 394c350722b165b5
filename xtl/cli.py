"""Command line: thin wrappers over the library (``xtl demo|transplant|sweep|eval|report|paper|lens``).

Everything that can be checked without a model (site, layer syntax, counts, the data file, the
output paths) is checked before the model loads; torch and TransformerLens are imported only by
the commands that need them, so ``xtl --help`` answers at once.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from importlib import resources
from pathlib import Path

from xtl.errors import PromptError, XtlError
from xtl.names import DEMO_ALIASES, DEMO_LAYERS, DEMO_MODEL

DATA_HELP = ("task: xnli, xquad, globalopinionqa (add :unseen for the unseen sets), xcopa, mkqa "
             "(hub), or a JSON Lines file, e.g. xnli:unseen or my_task.jsonl")
STORE_HELP = "a results store written by `xtl sweep` (or an `xtl eval` output folder), e.g. runs/xnli-attn"
LAYERS_HELP = "layers as a list or ranges, e.g. 0 8 16 31, 0,8,16 or 0-31:2 (step 2); negative counts from the end"


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


def parse_layers(values: list[str] | None) -> list[int] | None:
    """``["0-31:2"]``, ``["0", "8", "16"]`` or ``["0,8,16"]`` -> layer numbers (None: all)."""
    if not values:
        return None
    out: list[int] = []
    for token in (t.strip() for v in values for t in str(v).split(",")):
        if not token:
            continue
        m = re.fullmatch(r"(\d+)-(\d+)(?::(\d+))?", token)
        if m:
            start, stop, step = int(m[1]), int(m[2]), int(m[3] or 1)
            if step < 1 or start > stop:
                raise XtlError(f"bad layer range {token!r}; write START-STOP[:STEP] with START <= STOP "
                               "and STEP >= 1, e.g. 0-31:2")
            out.extend(range(start, stop + 1, step))
        elif re.fullmatch(r"-?\d+", token):
            out.append(int(token))
        else:
            raise XtlError(f"bad layer selection {token!r}; {LAYERS_HELP}")
    return list(dict.fromkeys(out))


def _langs_arg(langs):
    """``--langs de fr`` or ``--langs de,fr``."""
    if not langs:
        return None
    return [l for part in langs for l in part.split(",") if l]


def _abs(path):
    """A data root as an absolute path (what the store records), or None."""
    value = path or os.environ.get("XTL_DATA")
    return str(Path(value).expanduser().resolve()) if value else None


def _check_site(spec: str) -> None:
    from xtl.sites import Site

    Site.parse(spec)


def _depth(spec: str | None) -> int | None:
    """The model's number of layers when it can be read without loading it (demo, local folder)."""
    if spec in (DEMO_MODEL, *DEMO_ALIASES):
        return DEMO_LAYERS
    config = Path(str(spec)).expanduser() / "config.json"
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
        data = data if "num_hidden_layers" in data else data.get("text_config", {})
        return int(data["num_hidden_layers"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # known only after loading; the library checks then


def _check_layers(model: str, **layers) -> None:
    """Layer numbers against the model's depth, before the model loads."""
    n = _depth(model)
    if n is None:
        return
    for what, values in layers.items():
        values = [values] if isinstance(values, int) else (values or [])
        bad = [v for v in values if not -n <= v < n]
        if bad:
            raise XtlError(f"{what.replace('_', ' ')} {', '.join(map(str, bad))} out of range; "
                           f"{model} has layers 0..{n - 1}")


def _check_out_file(path: str | None) -> None:
    """An output file we will be able to write (checked before any model loads)."""
    if not path:
        return
    p = Path(path)
    if p.is_dir():
        raise XtlError(f"--out {p} is a folder; give a file name, e.g. {p / 'out.html'}")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise XtlError(f"cannot write {p} ({exc.strerror or exc}); choose an --out you can write to") from exc
    if not os.access(p.parent, os.W_OK | os.X_OK):
        raise XtlError(f"cannot write into {p.parent}; choose an --out you can write to")


def _load(args):
    from xtl.models import load_model

    return load_model(args.model, dtype=args.dtype, device=args.device)


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


def cmd_transplant(args, demo: bool = False) -> None:
    from xtl.transplant import transplant

    _check_site(args.site)
    _check_layers(args.model, source_layer=args.src_layer, target_layer=args.tgt_layer)
    if demo and not (args.source_prompt or args.target_prompt):
        pair = builtin_pair()
        source, target = pair["source"], pair["target"]
    else:
        if not (args.source_prompt and args.target_prompt):
            raise PromptError("give both --source-prompt FILE and --target-prompt FILE")
        source, target = _read_prompt(args.source_prompt), _read_prompt(args.target_prompt)
    model = _load(args)
    n = model.cfg.n_layers
    src = args.src_layer if args.src_layer is not None else n // 2
    tgt = args.tgt_layer if args.tgt_layer is not None else n // 6
    res = transplant(model, target, source, src, tgt, site=args.site,
                     max_new_tokens=args.max_new_tokens, chat=args.chat)
    _print_result(res, args.json)


def cmd_sweep(args) -> None:
    from xtl.store import check_writable_dir
    from xtl.tasks import load_task

    _check_site(args.site)
    srcs, tgts = parse_layers(args.src_layers), parse_layers(args.tgt_layers)
    _check_layers(args.model, source_layers=srcs, target_layers=tgts)
    langs = _langs_arg(args.langs)
    items = load_task(args.data, langs=langs, limit=args.limit, root=args.data_root)
    if not items:
        raise XtlError(f"no items in {args.data} for languages {langs}; check --langs")
    if args.shard:
        from xtl.tasks import shard

        items = shard(items, args.shard)
    check_writable_dir(args.out)
    settings = {"data": args.data, "langs": langs, "limit": args.limit, "data_root": _abs(args.data_root)}
    if args.ray:
        from xtl.distributed import sweep_ray

        df = sweep_ray(args.model, items, args.out, dtype=args.dtype, device=args.device,
                       address=args.ray, workers=args.workers, site=args.site, src_layers=srcs,
                       tgt_layers=tgts, max_new_tokens=args.max_new_tokens, mode=args.mode,
                       batch_size=args.batch_size, candidates=args.candidates or (), chat=args.chat,
                       settings=settings)
        print(f"{len(df)} rows in {args.out}")
        return
    model = _load(args)
    from xtl.engine import sweep

    df = sweep(model, items, site=args.site, src_layers=srcs, tgt_layers=tgts,
               max_new_tokens=args.max_new_tokens, mode=args.mode, store=args.out,
               batch_size=args.batch_size, candidates=args.candidates or (), chat=args.chat,
               settings=settings)
    print(f"{len(df)} rows in {args.out}")


def _eval_folder(args, srcs, tgts) -> Path:
    """Default output folder of `xtl eval`, named by the settings that change its results."""
    def part(xs):
        return "all" if xs is None else "-".join(map(str, xs))
    name = re.sub(r"[^\w.-]+", "_", Path(args.data).stem if args.data.endswith((".json", ".jsonl")) else args.data)
    what = "vanilla" if not srcs else f"{args.site}-s{part(srcs)}-t{part(tgts)}"
    return Path("xtl-eval") / f"{name}-{what}{'-cot' if args.cot else ''}-{args.max_new_tokens}tok"


def cmd_eval(args) -> None:
    from xtl.tasks import COT_MAX_NEW_TOKENS, cot_items, load_task

    _check_site(args.site)
    srcs, tgts = parse_layers(args.src_layers), parse_layers(args.tgt_layers)
    if (srcs is None) != (tgts is None):
        raise XtlError("give both --src-layer and --tgt-layer (or neither, for vanilla only)")
    if args.cot and srcs is not None:
        raise XtlError("--cot is the vanilla chain-of-thought baseline; leave out the layers")
    _check_layers(args.model, source_layers=srcs, target_layers=tgts)
    items = load_task(args.data, langs=_langs_arg(args.langs), limit=args.limit, root=args.data_root)
    if not items:
        raise XtlError(f"no items in {args.data} for languages {args.langs}; check --langs")
    max_new = args.max_new_tokens
    if args.cot:
        items = cot_items(items)
        max_new = COT_MAX_NEW_TOKENS if args.max_new_tokens is None else args.max_new_tokens
    max_new = max_new or 20
    args.max_new_tokens = max_new
    out = Path(args.out) if args.out else _eval_folder(args, srcs, tgts)
    from xtl.store import check_writable_dir

    check_writable_dir(out)
    model = _load(args)
    from xtl.analysis import accuracy_table
    from xtl.engine import sweep
    from xtl.metrics import evaluate

    df = sweep(model, items, site=args.site, src_layers=srcs or [], tgt_layers=tgts or [],
               max_new_tokens=max_new, store=out / "rows", batch_size=args.batch_size, chat=args.chat,
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


def _open_run(path: str, args, model=None):
    """A store (or an ``xtl eval`` folder) evaluated with its recorded task: a tables.Run."""
    from xtl.metrics import evaluate
    from xtl.store import MANIFEST, read_manifest, read_store
    from xtl.tables import Run

    store = Path(path)
    if not (store / MANIFEST).exists() and (store / "rows" / MANIFEST).exists():
        store = store / "rows"  # an `xtl eval` output folder
    settings = read_manifest(store)
    df = read_store(store)
    if df.empty:
        raise XtlError(f"{store} holds no finished items yet; let the sweep run first")
    data = getattr(args, "data", None) or settings.get("data")
    if not data:
        raise XtlError(f"{store} does not record its task; give --data SPEC")
    srcs, tgts = parse_layers(getattr(args, "src_layers", None)), parse_layers(getattr(args, "tgt_layers", None))
    if srcs is not None or tgts is not None:
        keep = df["is_vanilla"] | ((srcs is None) | df["src_layer"].isin(srcs or [])) & (
            (tgts is None) | df["tgt_layer"].isin(tgts or []))
        df = df[keep].reset_index(drop=True)
    root = args.data_root or settings.get("data_root")
    df = evaluate(df, data, model=model, root=root, chat=bool(settings.get("chat")), rules=args.rules)
    return Run(df, {**settings, "data": data})


def cmd_report(args) -> None:
    from xtl.report import build_report

    _check_out_file(args.out)
    model = _load(args) if args.model else None
    run = _open_run(args.store, args, model)
    settings = run.settings
    title = args.title or f"xtl report: {settings.get('model', '')} · {settings['data']} · {settings.get('site', '')}"
    path = build_report(run.df, args.out, title, average=args.average, settings=settings, light=args.light)
    print(f"report written to {path}")


def cmd_paper(args) -> None:
    from xtl.store import check_writable_dir

    out = check_writable_dir(args.out)
    model = _load(args) if args.model else None
    runs = [_open_run(path, args, model) for path in args.stores]
    from xtl.tables import paper_table, to_csv, to_latex, to_markdown

    for number in args.table:
        table = paper_table(number, runs, average=args.average, rules=args.rules)
        text = to_markdown(table)
        print(text)
        for ext, render in (("md", lambda t: text), ("csv", to_csv), ("tex", to_latex)):
            (out / f"table{number}.{ext}").write_text(render(table), encoding="utf-8")
    print(f"written to {out}/ (table<N>.md, .csv, .tex)")


def cmd_lens(args) -> None:
    _check_site(args.site)
    _check_layers(args.model, source_layer=args.src_layer, target_layer=args.tgt_layer)
    _check_out_file(args.out)
    prompt = _read_prompt(args.prompt)
    source = None
    if args.source or args.src_layer is not None or args.tgt_layer is not None:
        if not (args.source and args.src_layer is not None and args.tgt_layer is not None):
            raise XtlError("a transplanted lens needs --source FILE, --src-layer I and --tgt-layer J")
        source = _read_prompt(args.source)
    model = _load(args)
    from xtl.lens import Patch, lens
    from xtl.plots import save

    patch = Patch(source, args.src_layer, args.tgt_layer, args.site) if source else None
    res = lens(model, prompt, patch, positions=args.positions, k=args.k, track=args.track or (),
               sublayers=args.sublayers, max_new_tokens=args.max_new_tokens, chat=args.chat)
    res.title = "Logit lens" + (f" — transplanted {args.site} {args.src_layer}→{args.tgt_layer}" if patch else "")
    print(res.table())
    if res.response:
        print(f"response: {res.response!r}")
    if args.out:
        print(f"figure written to {save(res.figure(args.track[0] if args.track else None), args.out)}")


# ---------------------------------------------------------------- the parser
class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none (the help says what happens)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line and exit code 2, like every other xtl error."""

    def error(self, message: str):  # noqa: D401
        self.exit(2, f"xtl: error: {message} (see `{self.prog} --help`)\n")


def _at_least(low: int):
    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, not {value}")
        return value
    return check


def _model_options(p: argparse.ArgumentParser, model_default: str | None = None) -> None:
    p.add_argument("--model", default=model_default, required=model_default is None,
                   help=f"the demo model {DEMO_MODEL}, a TransformerLens name (Qwen/Qwen2-7B-Instruct), "
                        "a local Hugging Face folder or a .gguf file")
    p.add_argument("--dtype", default="float32", help="float32, bfloat16, float16 or float64")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: cuda when available)")


def _common(p: argparse.ArgumentParser, model_default: str | None = None, max_new: int | None = 20) -> None:
    _model_options(p, model_default)
    p.add_argument("--site", default="mlp",
                   help="attn | mlp | block | heads:0,3 | attn-authors (the authors' released variant)")
    p.add_argument("--max-new-tokens", type=_at_least(1), default=max_new, help="greedy tokens per response")
    p.add_argument("--chat", action="store_true", help="apply the tokenizer's chat template")


def _data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help=DATA_HELP)
    p.add_argument("--data-root", default=None,
                   help="folder of the paper's data (default: $XTL_DATA), e.g. XTransplant/data")
    p.add_argument("--langs", nargs="*", default=None, help="languages to run, e.g. sw ur (default: all)")
    p.add_argument("--limit", type=_at_least(1), default=None, help="items per language (default: all)")


def _scoring(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rules", default="authors", choices=["authors", "lenient"],
                   help="scoring: the authors' released scripts, or lenient (full-width parentheses "
                        "normalised for every task; not the paper's)")
    p.add_argument("--average", default="language", choices=["language", "pooled"],
                   help="group averages: mean over languages (the paper's) or pooled over items")


def _version() -> str:
    from xtl import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    fmt = _Help
    parser = _Parser(prog="xtl", description="Cross-lingual latent transplantation (XTransplant)")
    parser.add_argument("--version", action="version", version=f"xtl {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in ("demo", "transplant"):
        p = sub.add_parser(name, formatter_class=fmt,
                           help="transplant one prompt pair" if name == "transplant"
                           else "transplant the built-in zh->en pair on the demo model")
        _common(p, DEMO_MODEL if name == "demo" else None)
        p.add_argument("--source-prompt", required=name == "transplant", help="text file of the source prompt")
        p.add_argument("--target-prompt", required=name == "transplant", help="text file of the target prompt")
        p.add_argument("--src-layer", type=int, default=None, help="source layer (default: about half depth)")
        p.add_argument("--tgt-layer", type=int, default=None, help="target layer (default: about one sixth depth)")
        p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("sweep", formatter_class=fmt, help="all (source, target) layer pairs over a dataset")
    _common(p)
    _data(p)
    p.add_argument("--out", required=True, help="results store folder (resumable), e.g. runs/xnli-attn")
    p.add_argument("--src-layers", nargs="+", default=None, help=f"source layers (default: all); {LAYERS_HELP}")
    p.add_argument("--tgt-layers", nargs="+", default=None, help=f"target layers (default: all); {LAYERS_HELP}")
    p.add_argument("--candidates", nargs="+", default=None,
                   help="strings whose first-token log-probs are recorded, e.g. A B C")
    p.add_argument("--mode", default="generate", choices=["generate", "logits"],
                   help="generate responses, or first-token statistics only")
    p.add_argument("--batch-size", type=_at_least(1), default=None,
                   help="configurations decoded together (default: 512 on a CPU, as many as fit on a GPU)")
    p.add_argument("--shard", default=None,
                   help="run shard K/N of the items (by a hash of each item), e.g. 2/8 in a SLURM "
                        "array job; every shard writes into the same --out store")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="spread items over a Ray cluster, one worker per GPU (or CPU worker): "
                        "--ray for a local cluster, --ray ray://host:10001 to join one "
                        "(pip install 'xtl[ray]')")
    p.add_argument("--workers", type=_at_least(1), default=None,
                   help="Ray workers (default: one per GPU, else one per two CPUs)")

    p = sub.add_parser("eval", formatter_class=fmt,
                       help="accuracy per language and resource group, vanilla vs transplanted")
    _common(p, max_new=None)
    _data(p)
    p.add_argument("--src-layer", "--src-layers", dest="src_layers", nargs="+", default=None,
                   help=f"source layer(s) to transplant from (default: vanilla only); {LAYERS_HELP}")
    p.add_argument("--tgt-layer", "--tgt-layers", dest="tgt_layers", nargs="+", default=None,
                   help="target layer(s), same syntax")
    p.add_argument("--cot", action="store_true", help="the CoT baseline (200 new tokens unless --max-new-tokens)")
    p.add_argument("--no-ppl", action="store_true", help="skip response perplexity")
    p.add_argument("--batch-size", type=_at_least(1), default=None,
                   help="configurations decoded together (default: 512 on a CPU, as many as fit on a GPU)")
    p.add_argument("--out", default=None,
                   help="output folder (default: xtl-eval/<task>-<site and layers>[-cot]-<tokens>tok)")
    _scoring(p)

    p = sub.add_parser("report", formatter_class=fmt, help="one self-contained HTML page of a sweep store")
    p.add_argument("store", help=STORE_HELP)
    p.add_argument("--out", default="report.html", help="HTML file to write")
    p.add_argument("--data", default=None, help=f"override the task the store recorded; {DATA_HELP}")
    p.add_argument("--data-root", default=None, help="data folder (default: the one the store recorded)")
    p.add_argument("--src-layers", nargs="+", default=None, help=f"report these source layers only; {LAYERS_HELP}")
    p.add_argument("--tgt-layers", nargs="+", default=None, help="report these target layers only")
    _model_options(p, model_default="")
    p.set_defaults(model=None)
    p.add_argument("--title", default=None, help="page title (default: model · task · site)")
    p.add_argument("--light", action="store_true",
                   help="load plotly.js from plotly.min.js written once beside the page (4.8 MB less per page)")
    _scoring(p)

    p = sub.add_parser("paper", formatter_class=fmt,
                       help="the paper's Tables 1-4 from stores, as Markdown, CSV and LaTeX")
    p.add_argument("stores", nargs="+", help=f"{STORE_HELP}: PilotSet N² sweeps for Tables 1 and 4, "
                   "coarse runs for Tables 2 and 3, an `xtl eval --cot` folder for the CoT rows")
    p.add_argument("--table", type=int, nargs="+", default=[1, 2, 3, 4], choices=[1, 2, 3, 4],
                   help="which tables")
    p.add_argument("--out", default="xtl-tables", help="folder for table<N>.md/.csv/.tex")
    p.add_argument("--data-root", default=None, help="data folder (default: the one each store recorded)")
    _model_options(p, model_default="")
    p.set_defaults(model=None)
    _scoring(p)

    p = sub.add_parser("lens", formatter_class=fmt, help="logit lens of one prompt, vanilla or transplanted")
    _common(p)
    p.add_argument("--prompt", required=True, help="text file of the (target) prompt")
    p.add_argument("--source", default=None, help="source prompt file, for a transplanted lens")
    p.add_argument("--src-layer", type=int, default=None, help="source layer of the transplant")
    p.add_argument("--tgt-layer", type=int, default=None, help="target layer of the transplant")
    p.add_argument("--positions", default="generated", choices=["last", "generated"],
                   help="decode the last prompt position or every generated step")
    p.add_argument("--k", type=_at_least(1), default=5, help="top tokens per cell")
    p.add_argument("--track", nargs="*", default=None, help="tokens to track, e.g. A B")
    p.add_argument("--sublayers", action="store_true", help="also decode after attention / MLP")
    p.add_argument("--out", default=None, help="write the heatmap to this HTML file")
    return parser


COMMANDS = {"demo": lambda a: cmd_transplant(a, demo=True), "transplant": cmd_transplant,
            "sweep": cmd_sweep, "eval": cmd_eval, "report": cmd_report, "paper": cmd_paper,
            "lens": cmd_lens}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
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
