"""Command line: thin wrappers over the library (``xtl demo|transplant|sweep``)."""

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

    items = load_task(args.data, langs=args.langs, limit=args.limit, root=args.data_root)
    model = load_model(args.model, dtype=args.dtype, device=args.device)
    df = sweep(model, items, site=args.site, max_new_tokens=args.max_new_tokens, mode=args.mode,
               store=args.out, batch_size=args.batch_size, chat=args.chat,
               settings={"data": args.data, "langs": args.langs, "limit": args.limit})
    print(f"{len(df)} rows in {args.out}")


def _common(p: argparse.ArgumentParser, model_default: str | None = None) -> None:
    p.add_argument("--model", default=model_default, required=model_default is None,
                   help="demo name gemma-3-270m, a TransformerLens name, a local HF folder or a .gguf")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--device", default=None)
    p.add_argument("--site", default="mlp", help="attn | mlp | block | heads:0,3")
    p.add_argument("--max-new-tokens", type=int, default=20)
    p.add_argument("--chat", action="store_true", help="apply the tokenizer's chat template")


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
    p.add_argument("--batch-size", type=int, default=32)
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
