"""The CLI's argument parser: every subcommand, option and help text."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from xtl.cli.checks import LAYERS_HELP
from xtl.models.names import DEMO_MODEL
from xtl.options import AVERAGES, GRIDS, GROUPINGS, MODES, PLOTLYJS, POSITIONS, RULES
from xtl.training.settings import SFT_DTYPES, WEIGHT_DTYPES, SftSettings

__all__ = ["build_parser"]

TASK_HELP = ("task: xnli, xquad, globalopinionqa (add :unseen for the unseen sets), xcopa, mkqa "
             "(hub), culturalbench (with translated prompts, see docs/reproduce.md), or a JSON Lines file, e.g. xnli:unseen or my_task.jsonl; @LANG sets XNLI's and XQuAD's "
             "source language, e.g. xnli@zh (default English)")
#: ``xtl sft``'s defaults: the library's (the paper's recipe), one home.
SFT = {f.name: f.default for f in fields(SftSettings)}
STORE_HELP = "a results store written by `xtl sweep` (or an `xtl eval` output folder), e.g. runs/xnli-attn"



class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none (the help says what happens)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line and exit code 2, like every other xtl error; no abbreviated
    options (``--data`` must not be taken for ``--data-root``)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # noqa: D401
        self.exit(2, f"xtl: error: {message} (see `{self.prog} --help`)\n")


class _Spelled(argparse.Action):
    """An option with old spellings (``--data`` for ``--task``): they still work for one release,
    and say so on stderr."""

    def __init__(self, option_strings, dest, old=(), **kwargs):
        self.old = tuple(old)
        super().__init__(list(option_strings) + list(self.old), dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string in self.old:
            print(f"xtl: {option_string} is now {self.option_strings[0]} (the old spelling goes in the next release)",
                  file=sys.stderr)
        setattr(namespace, self.dest, values)


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
    p.add_argument("--backend", default="auto",
                   help="auto | hooked | bridge: TransformerLens' HookedTransformer (3.x) or TransformerBridge "
                        "(default auto: hooked where it builds the model, else the bridge; docs/backends.md)")


def _common(p: argparse.ArgumentParser, model_default: str | None = None, max_new: int | None = 20) -> None:
    _model_options(p, model_default)
    p.add_argument("--site", default="mlp",
                   help="attn | mlp | block | heads:0,3 | attn-authors (the authors' released variant)")
    p.add_argument("--max-new-tokens", type=_at_least(1), default=max_new, help="greedy tokens per response")
    p.add_argument("--chat", action=argparse.BooleanOptionalAction, default=None,
                   help="apply the tokenizer's chat template (default: as an xtl sft model was trained, else no)")


def _data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True, action=_Spelled, old=("--data",), help=TASK_HELP)
    p.add_argument("--data-root", default=None,
                   help="folder of the paper's data (default: $XTL_DATA), e.g. XTransplant/data")
    p.add_argument("--langs", nargs="*", default=None, help="languages to run, e.g. sw ur (default: all)")
    p.add_argument("--limit", type=_at_least(1), default=None, help="items per language (default: all)")


def _scoring(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rules", default="authors", choices=RULES,
                   help="scoring: the authors' released scripts, or lenient (full-width parentheses "
                        "normalised for every task; not the paper's)")
    p.add_argument("--average", default="language", choices=AVERAGES,
                   help="group averages: mean over languages (the paper's) or pooled over items")
    p.add_argument("--groups", default="paper", choices=GROUPINGS,
                   help="High/Mid/Low: the paper's table headers per dataset, or Joshi et al.'s lang2tax classes")
    p.add_argument("--lid-model", default=None, metavar="PATH",
                   help="fastText language-ID model, e.g. the paper's lid.176.bin (default: $XTL_LID_MODEL, "
                        "else the built-in lid.176.ftz)")


def _variant(p: argparse.ArgumentParser, axis: bool) -> None:
    """The transplant variant's options (docs/extensions.md)."""
    p.add_argument("--alpha", type=float, nargs="+" if axis else None, default=[1.0] if axis else 1.0,
                   help="blend a_t <- (1 - alpha) a_t + alpha a_s (1: replace)" + ("; several values sweep it as an axis"
                                                                                    if axis else ""))
    p.add_argument("--extrapolate", action="store_true", help="allow --alpha outside [0, 1] (not a blend)")
    p.add_argument("--span", type=_at_least(1), default=1, help="layers i..i+span-1 into j..j+span-1")
    p.add_argument("--positions", type=_at_least(1), default=1,
                   help="the last prompt positions transplanted, aligned from the end")


def _version() -> str:
    from xtl import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    fmt = _Help
    parser = _Parser(prog="xtl", description="Cross-lingual latent transplantation (XTransplant)")
    parser.add_argument("--version", action="version", version=f"xtl {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("demo", formatter_class=fmt,
                       help="the built-in zh->en question: every layer pair, which ones answer right, the best one")
    _common(p, DEMO_MODEL)
    p.add_argument("--out", default="xtl-demo.html", help="the HTML page written (gain heatmap + logit lens)")
    p.add_argument("--items", "--limit", dest="items", type=_at_least(2), default=None,
                   help="the demo set's questions per language (default: 6 of its 10, 24 items: the demo in about a "
                        "minute on a 2-core CPU)")
    p.add_argument("--langs", nargs="*", default=None, help="the demo set's languages, e.g. de zh (default: de es zh sw)")
    p.add_argument("--set-step", type=_at_least(1), default=None,
                   help="sweep the demo set on every K-th layer and the last (default: 3; 1: every layer)")
    p.add_argument("--no-set", action="store_true", help="the single question only (no demo set)")
    p.add_argument("--mode", choices=("auto", "logits", "generate"), default="auto",
                   help="how a configuration answers: logits (the option with the most likely first token), "
                        "generate (the authors' rule on the greedy response); auto: generate with --chat (a model "
                        "that answers in the asked format), else logits")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="colour the margin-gain grid (auto: on a terminal that shows colour, off in a pipe or "
                        "with NO_COLOR set)")
    p = sub.add_parser("transplant", formatter_class=fmt,
                       help="transplant one prompt pair (the built-in zh->en pair without prompt files)")
    _common(p, DEMO_MODEL)
    p.add_argument("--source", default=None, action=_Spelled, old=("--source-prompt",),
                   help="text file of the source prompt (default: the built-in pair)")
    p.add_argument("--target", default=None, action=_Spelled, old=("--target-prompt",),
                   help="text file of the target prompt (default: the built-in pair)")
    p.add_argument("--src-layer", type=int, default=None, help="source layer (default: about half depth)")
    p.add_argument("--tgt-layer", type=int, default=None, help="target layer (default: about one sixth depth)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _variant(p, axis=False)

    p = sub.add_parser("sweep", formatter_class=fmt, help="all (source, target) layer pairs over a dataset")
    _common(p)
    _data(p)
    p.add_argument("--out", required=True, help="results store folder (resumable), e.g. runs/xnli-attn")
    p.add_argument("--src-layers", nargs="+", default=None, help=f"source layers (default: all); {LAYERS_HELP}")
    p.add_argument("--tgt-layers", nargs="+", default=None, help=f"target layers (default: all); {LAYERS_HELP}")
    p.add_argument("--grid", default="full", choices=GRIDS,
                   help="full: every source × target layer; cross: the last source into every target and every "
                        "source into target 0 (2N − 1: what the bounds SourceLast and TargetFirst need)")
    p.add_argument("--candidates", nargs="+", default=None,
                   help="strings whose first-token log-probs are recorded, e.g. A B C")
    p.add_argument("--mode", default="generate", choices=MODES,
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
    p.add_argument("--screen", type=_at_least(1), default=None, metavar="K",
                   help="run only each item's K best cells of the gradient screen (see `xtl screen`), plus "
                        "vanilla; needs --candidates (default: every cell)")
    _variant(p, axis=True)
    p.add_argument("--source-langs", nargs="+", default=None, metavar="LANG",
                   help="mix several sources: each item's parallel prompts in these languages (xnli, xquad), "
                        "their weighted mean transplanted, e.g. zh ja")
    p.add_argument("--weights", nargs="+", type=float, default=None,
                   help="the --source-langs' weights in their order (default equal), normalised to sum 1")

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
    p.add_argument("--task", default=None, action=_Spelled, old=("--data",),
                   help=f"override the task the store recorded; {TASK_HELP}")
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
                       help="the paper's Tables 1-4 and 8 (and Figures 2-4) from stores, as Markdown, CSV and LaTeX")
    p.add_argument("stores", nargs="+", help=f"{STORE_HELP}: PilotSet N² sweeps for Tables 1 and 4, "
                   "coarse runs for Tables 2 and 3, an `xtl eval --cot` folder for the CoT rows")
    p.add_argument("--table", type=int, nargs="*", default=None, choices=[1, 2, 3, 4, 8],
                   help="which tables (default: 1-4, or none when --figure is given); 8: entropy-based "
                        "selection per language for stores of several source languages and models")
    p.add_argument("--figure", type=int, nargs="*", default=None, choices=[2, 3, 4],
                   help="also write the paper's Figures 2 (win/tie/lose), 3 (layer-wise gains), 4 (upper "
                        "bounds) as standalone HTML; no number: all three")
    p.add_argument("--first-layer", type=int, default=1, choices=[0, 1],
                   help="number of the first layer on the figures' axes (the paper's: 1)")
    p.add_argument("--out", default="xtl-tables", help="folder for table<N>.md/.csv/.tex")
    p.add_argument("--plotlyjs", default="inline", choices=PLOTLYJS,
                   help="figures: plotly.js inlined in each file (standalone, 4.8 MB each), one plotly.min.js "
                        "shared by the folder's files, or from plotly's CDN")
    p.add_argument("--data-root", default=None, help="data folder (default: the one each store recorded)")
    _model_options(p, model_default="")
    p.set_defaults(model=None)
    _scoring(p)

    p = sub.add_parser("select", formatter_class=fmt,
                       help="cross-validate instance-aware layer selection strategies on swept stores")
    p.add_argument("stores", nargs="+", help=f"{STORE_HELP}: a full or --grid cross sweep")
    p.add_argument("--strategy", nargs="+", default=None,
                   help="strategies (default: coarse entropy best-on-train agreement entropy-cross learned "
                        "learned-logistic); also vanilla, margin-cross, loglik-cross")
    p.add_argument("--cv", type=_at_least(2), default=5, help="folds over items")
    p.add_argument("--by-language", action="store_true", help="leave one language out instead of --cv folds")
    p.add_argument("--seed", type=int, default=0, help="fold shuffle and learned strategies' seed")
    p.add_argument("--out", default="xtl-select", help="folder for the tables and chosen-layer heatmaps")
    p.add_argument("--plotlyjs", default="inline", choices=PLOTLYJS,
                   help="heatmaps: plotly.js inlined in each file (standalone), one shared plotly.min.js, or the CDN")
    p.add_argument("--data-root", default=None, help="data folder (default: the one each store recorded)")
    _scoring(p)

    p = sub.add_parser("sft", formatter_class=fmt,
                       help="the paper's ML-SFT baseline: fine-tune a model on multilingual instruction pairs")
    p.add_argument("--model", required=False, default=None,
                   help="the base model: a Hugging Face folder or hub name (not a GGUF file)")
    p.add_argument("--data", default=None,
                   help="JSONL or Parquet with Aya's fields inputs, targets, language, or CohereForAI/aya_dataset")
    p.add_argument("--out", default=None, help="folder for the fine-tuned model (resumable)")
    p.add_argument("--n", type=_at_least(1), default=SFT["n"], help="pairs to select, stratified over languages")
    p.add_argument("--langs", nargs="*", default=None, help="train on these languages only (default: all)")
    p.add_argument("--seed", type=int, default=SFT["seed"], help="selection, shuffling and initialisation seed")
    p.add_argument("--epochs", type=float, default=SFT["epochs"], help="passes over the selected pairs")
    p.add_argument("--max-steps", type=_at_least(1), default=None, help="stop after this many optimiser steps")
    p.add_argument("--batch-size", type=_at_least(1), default=SFT["batch_size"], help="global batch (all devices together)")
    p.add_argument("--micro-batch-size", type=_at_least(1), default=None,
                   help="per device (default: the batch, at most 4); the rest is gradient accumulation")
    p.add_argument("--lr", type=float, default=SFT["lr"], help="peak learning rate (linear warm-up and decay)")
    p.add_argument("--warmup-ratio", type=float, default=SFT["warmup_ratio"], help="share of the steps spent warming up")
    p.add_argument("--dtype", default=SFT["dtype"], choices=SFT_DTYPES,
                   help="mixed precision of training, and the dtype the weights are saved in")
    p.add_argument("--weights-dtype", default=SFT["weights_dtype"], choices=WEIGHT_DTYPES,
                   help="the weights while training: float32 (mixed precision, the paper's) or bfloat16 (half the "
                        "memory of weights, gradients and Adam states; updates below bfloat16's resolution are lost)")
    p.add_argument("--gradient-checkpointing", action="store_true",
                   help="recompute activations in the backward pass: less memory, about a third more time")
    p.add_argument("--max-length", type=_at_least(8), default=SFT["max_length"], help="tokens per example (prompt + response)")
    p.add_argument("--chat", dest="chat", action="store_true", default=None,
                   help="frame pairs with the chat template (default: when the tokenizer has one)")
    p.add_argument("--no-chat", dest="chat", action="store_false", default=None, help="frame pairs as Human: … Assistant:")
    p.add_argument("--lora", action="store_true", help="LoRA through peft instead of full fine-tuning (cheaper; "
                   "not the paper's recipe)")
    p.add_argument("--lora-r", type=_at_least(1), default=SFT["lora_r"], help="LoRA rank")
    p.add_argument("--save-steps", type=_at_least(1), default=SFT["save_steps"], help="checkpoint every this many steps")
    p.add_argument("--accelerate-configs", action="store_true",
                   help="list the shipped accelerate configs (1 GPU, 8 GPUs DDP, DeepSpeed ZeRO-3, FSDP) and exit")

    p = sub.add_parser("screen", formatter_class=fmt,
                       help="estimate every cell's change of the gold answer's margin from one backward pass per item")
    _model_options(p, DEMO_MODEL)
    p.add_argument("--site", default="mlp", help="attn | mlp | block | heads:0,3 | attn-authors")
    p.add_argument("--chat", action=argparse.BooleanOptionalAction, default=None,
                   help="apply the tokenizer's chat template (default: as an xtl sft model was trained, else no)")
    _data(p)
    p.add_argument("--candidates", nargs="+", default=None,
                   help="answer strings whose first tokens compete, e.g. 1 2 3 (default: the task's)")
    p.add_argument("--src-layers", nargs="+", default=None, help=f"source layers (default: all); {LAYERS_HELP}")
    p.add_argument("--tgt-layers", nargs="+", default=None, help=f"target layers (default: all); {LAYERS_HELP}")
    p.add_argument("--top", type=_at_least(1), default=5, metavar="K", help="best-estimated cells printed per item")
    p.add_argument("--out", default=None, help="write every estimate to this .csv or .parquet file")

    p = sub.add_parser("lens", formatter_class=fmt, help="logit lens of one prompt, vanilla or transplanted")
    _common(p)
    p.add_argument("--source", default=None, help="text file of the source prompt, for a transplanted lens")
    p.add_argument("--target", required=True, action=_Spelled, old=("--prompt",),
                   help="text file of the prompt whose lens is shown (the target, when transplanted)")
    p.add_argument("--src-layer", type=int, default=None, help="source layer of the transplant")
    p.add_argument("--tgt-layer", type=int, default=None, help="target layer of the transplant")
    p.add_argument("--positions", default="generated", choices=POSITIONS,
                   help="decode the last prompt position or every generated step")
    p.add_argument("--k", type=_at_least(1), default=5, help="top tokens per cell")
    p.add_argument("--track", nargs="*", default=None, help="tokens to track, e.g. A B")
    p.add_argument("--sublayers", action="store_true", help="also decode after attention / MLP")
    p.add_argument("--out", default=None, help="write the heatmap to this HTML file")
    return parser


