"""The results table and the store's manifest, written down once.

Every row of a results table is one item x configuration (source layer, target layer), plus one
vanilla row per item (layers -1). :data:`COLUMNS` declares each column: its name, type,
meaning and the stage that writes it; writers build rows with these names and readers look
them up here. :class:`SweepSettings` is a sweep's settings: what a store's ``manifest.json``
holds and what every shard of the store was computed with.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping, NamedTuple, Sequence

__all__ = ["cross_configs", "Column", "COLUMNS", "SWEEP", "EVALUATION", "VARIANT", "column_names", "SweepSettings",
           "SELECTION", "RECORDED_ONLY", "Config", "VANILLA", "describe_columns", "with_defaults", "sources_label"]


class Column(NamedTuple):
    """One column of the results table."""

    name: str
    dtype: str  # pandas / numpy kind: "str", "int", "bool", "float", "list[int]", "list[float]"
    meaning: str
    writer: str  # the stage that writes it: "engine" or "evaluation"
    default: Any = None  # the value of a store written before the column existed (None: always written)


SWEEP: tuple[Column, ...] = (
    Column("item_key", "str", "the item's key in the store: dataset/lang/id", "engine"),
    Column("item_id", "str", "the item's id within its dataset and language", "engine"),
    Column("dataset", "str", "the task the item comes from ('' for ad-hoc pairs)", "engine"),
    Column("lang", "str", "the item's language (the target prompt's, or the culture's)", "engine"),
    Column("gold", "str", "the gold answer ('' when unknown)", "engine"),
    Column("model", "str", "the model's name as given to load_model", "engine"),
    Column("n_layers", "int", "the model's depth N", "engine"),
    Column("site", "str", "what was transplanted: attn, mlp, block, heads:..., attn-authors", "engine"),
    Column("mode", "str", "generate (greedy responses) or logits (first-token statistics only)", "engine"),
    Column("src_layer", "int", "source layer i (-1 on the vanilla row)", "engine"),
    Column("tgt_layer", "int", "target layer j (-1 on the vanilla row)", "engine"),
    Column("alpha", "float", "blend weight of the source: a_t <- (1 - alpha) a_t + alpha a_s (1: replace)", "engine", 1.0),
    Column("span", "int", "layers transplanted: i..i+span-1 into j..j+span-1", "engine", 1),
    Column("positions", "int", "last prompt positions transplanted, aligned from the end", "engine", 1),
    Column("sources", "str", "several sources mixed: zh,ja (equal weights) or zh:0.7,ja:0.3 ('' one source)",
           "engine", ""),
    Column("is_vanilla", "bool", "the unpatched run of the item", "engine"),
    Column("response", "str", "the greedy response ('' in logits mode)", "engine"),
    Column("token_ids", "list[int]", "the response's token ids, stop token excluded", "engine"),
    Column("n_tokens", "int", "len(token_ids)", "engine"),
    Column("stopped", "bool", "the response ended at a stop token (not at max_new_tokens)", "engine"),
    Column("loglik", "float", "sum of the response tokens' log-probs (NaN in logits mode)", "engine"),
    Column("entropy", "float", "entropy of the first generated token's distribution (nats)", "engine"),
    Column("margin", "float", "top-1 minus top-2 logit of the first generated token", "engine"),
    Column("cand_logprobs", "list[float]", "first-token log-prob of each sweep candidate", "engine"),
    Column("gold_margin", "float", "the gold option's first-token logit minus the best other option's, over the "
           "candidates that are options of the item (NaN without such candidates)", "engine", float("nan")),
    Column("screen_estimate", "float", "the gradient screen's estimated change of the gold first-token margin "
           "(sweep(screen=K); NaN without a screen and on the vanilla row)", "engine", float("nan")),
)
EVALUATION: tuple[Column, ...] = (
    Column("correct", "bool", "the response (logits mode: the highest-scoring candidate) is right", "evaluation"),
    Column("answer", "str", "logits mode: the highest-scoring candidate; generate mode: ''", "evaluation"),
    Column("rules", "str", "the scoring rules used: authors or lenient", "evaluation"),
    Column("out_lang_pred", "str", "lid.176 label of the whole response (None when empty)", "evaluation"),
    Column("lang_ok", "float", "1.0 when the response is in the expected output language (NaN in logits mode)", "evaluation"),
    Column("group", "str", "resource group of the item's language: high, mid or low", "evaluation"),
    Column("lid_model", "str", "the language-ID model of `out_lang_pred`: lid.176.ftz (built in) or a file", "evaluation"),
    Column("groups", "str", "the grouping `group` follows: paper (its table headers) or lang2tax", "evaluation"),
    Column("ppl", "float", "response perplexity under the unpatched model (NaN without a model)", "evaluation"),
)
COLUMNS: tuple[Column, ...] = SWEEP + EVALUATION
#: The transplant variant's columns (docs/extensions.md); a row of an older store has their defaults.
VARIANT: tuple[Column, ...] = tuple(c for c in SWEEP if c.name in ("alpha", "span", "positions", "sources"))


def sources_label(names: Sequence[str], weights: Sequence[float] | None = None) -> str:
    """The results table's ``sources`` value: ``zh,ja`` (equal weights) or ``zh:0.7,ja:0.3``."""
    import math

    if not names:
        return ""
    if weights is None or all(math.isclose(w, weights[0]) for w in weights):
        return ",".join(names)
    return ",".join(f"{n}:{w:g}" for n, w in zip(names, weights))


def with_defaults(df: Any) -> Any:
    """``df`` (a results table) with every column that has a default and is missing filled in with
    it (a store written before the column existed reads as the default's run); ``df`` itself is
    not changed."""
    missing = [c for c in COLUMNS if c.default is not None and c.name not in df.columns]
    if not missing or df.empty:
        return df
    return df.assign(**{c.name: c.default for c in missing})


def column_names(stage: str | None = None) -> list[str]:
    """Names of the columns written by ``stage`` (``"engine"``, ``"evaluation"``), or all."""
    return [c.name for c in COLUMNS if stage is None or c.writer == stage]


def describe_columns() -> str:
    """The schema as a Markdown table (docs/architecture.md and the reference list it)."""
    lines = ["| column | type | meaning | written by |", "|---|---|---|---|"]
    lines += [f"| `{c.name}` | {c.dtype} | {c.meaning} | {c.writer} |" for c in COLUMNS]
    return "\n".join(lines)


class Config(NamedTuple):
    """One configuration: source layer i into target layer j (the order used everywhere)."""

    src: int
    tgt: int


def cross_configs(src_layers: Sequence[int], tgt_layers: Sequence[int]) -> list[Config]:
    """The last source layer into every target and every source into the first target: the
    2N − 1 configurations the bounds SourceLast and TargetFirst need (``grid="cross"``)."""
    if not (src_layers and tgt_layers):
        return []
    last, first = max(src_layers), min(tgt_layers)
    return sorted({Config(last, j) for j in tgt_layers} | {Config(i, first) for i in src_layers})


#: The vanilla configuration (no transplant).
VANILLA = Config(-1, -1)

#: Settings that select items rather than change results: a store may grow along them.
SELECTION = ("limit", "langs", "data_root")
#: Settings recorded for the record only.
RECORDED_ONLY = ("xtl_version", "tl_version")


def _same_file(a: Any, b: Any) -> bool:
    """Two data specs that name one JSONL file (relative paths resolved here)."""
    from pathlib import Path

    files = [x for x in (a, b) if isinstance(x, str) and x.endswith((".jsonl", ".json"))]
    return len(files) == 2 and Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def _tuple(value: Any) -> tuple | None:
    return None if value is None else tuple(value)


@dataclass(frozen=True)
class SweepSettings:
    """Everything a sweep's results depend on (plus the item selection); a store's manifest.

    ``extra`` holds settings a caller adds (e.g. ``{"note": ...}``); they are recorded and
    checked on resume like the others.
    """

    model: str  # the name shown (a folder's or file's last component); model_identity tells weights apart
    n_layers: int
    site: str
    src_layers: tuple[int, ...]
    tgt_layers: tuple[int, ...]
    max_new_tokens: int = 20
    mode: str = "generate"
    candidates: tuple[str, ...] = ()
    chat: bool = False
    grid: str = "full"  # "full": src_layers × tgt_layers; "cross": the 2N − 1 the bounds need
    alpha: tuple[float, ...] = (1.0,)  # the blend axis: one run of the grid per value
    span: int = 1  # layers i..i+span-1 into j..j+span-1 (configurations it would leave the model by are not run)
    positions: int = 1  # the last prompt positions transplanted
    source_langs: tuple[str, ...] = ()  # several sources mixed (the items' parallel prompts); () one source
    weights: tuple[float, ...] | None = None  # the sources' normalised weights (None: equal)
    data: str | None = None  # the task spec (the manifest's key since 0.1; read it as .task)
    langs: tuple[str, ...] | None = None
    limit: int | None = None
    data_root: str | None = None
    cot: bool = False
    dtype: str | None = None  # the model's dtype: it changes results (None: an older store)
    device: str | None = None  # the device type, cpu or cuda (None: an older store)
    backend: str | None = None  # "hooked" or "bridge": their numerics differ in the last bits (None: an older store)
    tl_version: str | None = None  # TransformerLens' version: recorded, not checked
    xtl_version: str | None = None  # recorded, not checked
    data_sha256: str | None = None  # a data file's content hash: an edited file does not resume the store
    model_identity: str | None = None  # a fingerprint of the model's files (None: built in memory, a hub name, older store)
    engine: str | None = None  # "shared-prefix" or "per-step": the path that computed the rows (None: an older store)
    screen: int | None = None  # run only each item's K best cells of the gradient screen (None: every cell)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("src_layers", "tgt_layers", "candidates", "langs", "alpha", "source_langs", "weights"):
            object.__setattr__(self, name, _tuple(getattr(self, name)))
        object.__setattr__(self, "extra", dict(self.extra))

    @property
    def task(self) -> str | None:
        """The task spec the sweep ran (``xnli``, ``my_task.jsonl``), stored under the key ``data``."""
        return self.data

    @property
    def configs(self) -> list["Config"]:
        """The (source, target) configurations swept: every pair of ``src_layers`` ×
        ``tgt_layers``, or with ``grid="cross"`` the last source into every target and every
        source into the first target (2N − 1). With ``span`` > 1, configurations whose span
        would leave the model (``i`` or ``j`` above ``N - span``) are not run."""
        if self.grid == "cross":
            configs = cross_configs(self.src_layers, self.tgt_layers)
        else:
            configs = [Config(i, j) for i in self.src_layers for j in self.tgt_layers]
        if self.span > 1:
            last = self.n_layers - self.span
            configs = [c for c in configs if c.src <= last and c.tgt <= last]
        return configs

    @property
    def configs_per_item(self) -> int:
        """Rows per item: every (source, target) configuration (the ``screen`` best of them) for
        every alpha, plus vanilla."""
        n = len(self.configs)
        return (n if self.screen is None else min(n, self.screen)) * len(self.alpha) + 1

    @property
    def sources_label(self) -> str:
        """The results table's ``sources`` value of this sweep ('' for one source)."""
        return sources_label(self.source_langs, self.weights)

    def to_dict(self) -> dict[str, Any]:
        """The manifest as JSON-ready data (``extra`` flattened into the top level)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        out = json.loads(json.dumps({**out, **self.extra}, default=str))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SweepSettings":
        """Settings from a manifest; keys this version does not know go to ``extra``."""
        known = {f.name for f in fields(cls)} - {"extra"}
        kwargs = {k: v for k, v in data.items() if k in known}
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**kwargs, extra={**kwargs.pop("extra", {}), **extra})

    def differences(self, other: "SweepSettings", ignore: Sequence[str] = SELECTION) -> dict[str, tuple[Any, Any]]:
        """Settings that differ from ``other``, as name -> (this value, other value). A dtype,
        device, backend or model identity one side did not record (an older xtl, a model built in
        memory) differs from nothing."""
        a, b = self.to_dict(), other.to_dict()
        unknown = {k for k in ("dtype", "device", "backend", "data", "data_sha256", "model_identity", "engine")
                   if a.get(k) is None or b.get(k) is None}
        if _same_file(a.get("data"), b.get("data")):
            unknown.add("data")
        return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b))
                if k not in (*ignore, *RECORDED_ONLY, *unknown) and a.get(k) != b.get(k)}

    def replace(self, **changes: Any) -> "SweepSettings":
        """A copy with some settings changed."""
        return SweepSettings(**{**asdict(self), **changes})
