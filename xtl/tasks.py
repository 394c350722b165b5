"""Tasks as data: the paper's PilotSets / unseen sets, XCOPA, and a generic parallel JSONL format.

Every loader yields :class:`Item` records with source prompt, target prompt, gold answer,
language and the transplant direction the paper uses: English -> other for XNLI and XQuAD,
culture language -> English for GlobalOpinionQA.

Get the data by cloning the authors' repository (https://github.com/YYF-Tommy/XTransplant) and
pointing ``root`` (or ``$XTL_DATA``) at its ``data/`` folder.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from xtl.errors import DataError

__all__ = ["Item", "load_task", "content_id", "shard", "parse_shard", "TASKS", "data_root", "TEMPLATES", "render_prompt", "cot_items",
           "COT_SUFFIX", "cot_suffix", "XCOPA_LANGS", "load_mkqa", "load_culturalbench"]


@dataclass(frozen=True)
class Item:
    """One parallel item; ``source`` is transplanted into ``target``."""

    id: str
    dataset: str
    lang: str
    source: str
    target: str
    gold: str
    kind: str  # "choice" or "qa"
    options: dict[str, str] = field(default_factory=dict)  # label -> option word in target language
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Unique key of the item across datasets and languages (the results store's item_key)."""
        return f"{self.dataset}/{self.lang}/{self.id}"

    @property
    def out_lang(self) -> str:
        """The language the response should be in: the target prompt's language."""
        return self.meta.get("out_lang") or ("en" if self.dataset == "globalopinionqa" else self.lang)


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data folder: ``root``, else ``$XTL_DATA``; must hold XNLI/, XQuAD/, ... folders."""
    value = root or os.environ.get("XTL_DATA")
    if not value:
        raise DataError("no data root; pass --data-root DIR or set XTL_DATA to the authors' data/ "
                        "folder (git clone https://github.com/YYF-Tommy/XTransplant)")
    path = Path(value).expanduser()
    if not path.is_dir():
        raise DataError(f"data root {path} is not a directory")
    return path


def read_jsonl(path: Path) -> list[Any]:
    """JSON Lines, with the file and line named on a malformed line."""
    if not path.exists():
        raise DataError(f"missing data file {path}")
    rows = []
    with path.open(encoding="utf-8") as handle:
        for n, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{n}: malformed JSON line ({exc.msg})") from exc
    return rows


def _parallel(paths: dict[str, Path]) -> None:
    counts = {name: sum(1 for line in p.open(encoding="utf-8") if line.strip()) for name, p in paths.items()}
    if len(set(counts.values())) > 1:
        detail = ", ".join(f"{p} has {counts[n]}" for n, p in paths.items())
        raise DataError(f"parallel files differ in line count: {detail}")


def _langs(folder: Path, pattern: str, langs: list[str] | None) -> list[str]:
    found = sorted(p.name[len(pattern.split('{')[0]):-len(pattern.split('}')[1])]
                   for p in folder.glob(pattern.replace("{lang}", "*")))
    if langs:
        missing = [l for l in langs if l not in found]
        if missing:
            raise DataError(f"language(s) {missing} missing in {folder}; available: {', '.join(found)}")
        return list(langs)
    return found


def _split(root: Path, dataset: str, unseen: bool) -> Path:
    sub = f"{dataset}_unseen" if unseen else f"{dataset}_sample"
    folder = root / dataset / sub
    if not folder.is_dir():
        raise DataError(f"{folder} not found; is the data root the authors' data/ folder?")
    return folder


def load_xnli(root: Path, langs=None, limit=None, unseen=False) -> list[Item]:
    folder = _split(root, "XNLI", unseen)
    en = read_jsonl(folder / "split" / "en.json")
    items = []
    for lang in _langs(folder / "split", "{lang}.json", langs):
        files = {"split": folder / "split" / f"{lang}.json", "ans": folder / "ans" / f"{lang}.json"}
        _parallel({**files, "en": folder / "split" / "en.json"})
        prompts, golds = read_jsonl(files["split"]), read_jsonl(files["ans"])
        words = read_jsonl(folder / "ans_lang" / f"{lang}.json")[0]
        for k, (src, tgt, gold) in enumerate(zip(en, prompts, golds)):
            if limit is not None and k >= limit:
                break
            items.append(Item(f"{k}", "xnli", lang, src, tgt, str(gold), "choice",
                              {str(a): w for a, w in words.items()}))
    return items


def load_xquad(root: Path, langs=None, limit=None, unseen=False) -> list[Item]:
    folder = _split(root, "XQuAD", unseen)
    en = read_jsonl(folder / "split" / "xquad.en.json")
    items = []
    for lang in _langs(folder / "split", "xquad.{lang}.json", langs):
        files = {"split": folder / "split" / f"xquad.{lang}.json", "ans": folder / "ans" / f"xquad.{lang}.json"}
        _parallel({**files, "en": folder / "split" / "xquad.en.json"})
        for k, (src, tgt, gold) in enumerate(zip(en, read_jsonl(files["split"]), read_jsonl(files["ans"]))):
            if limit is not None and k >= limit:
                break
            items.append(Item(f"{k}", "xquad", lang, src, tgt, str(gold), "qa"))
    return items


def load_globalopinionqa(root: Path, langs=None, limit=None, unseen=False) -> list[Item]:
    folder = _split(root, "GlobalOpinionQA", unseen)
    items = []
    for lang in _langs(folder / "split", "{lang}.json", langs):
        files = {"split": folder / "split" / f"{lang}.json", "translated": folder / "translated" / f"{lang}.json"}
        _parallel(files)
        for k, (row, translated) in enumerate(zip(read_jsonl(files["split"]), read_jsonl(files["translated"]))):
            if limit is not None and k >= limit:
                break
            probs = row["label"]
            gold = chr(ord("A") + max(range(len(probs)), key=probs.__getitem__))
            options = {chr(ord("A") + n): chr(ord("A") + n) for n in range(len(probs))}
            items.append(Item(f"{k}", "globalopinionqa", lang, translated, row["input_text"], gold,
                              "choice", options, {"country": row.get("country"), "label": probs,
                                                   "out_lang": "en"}))
    return items


XCOPA_PROMPT = ("You are assigned to complete a two-category classification task.\n\n"
                "Premise: {premise}\nOptions: (1) {choice1}\n(2) {choice2}\n\n"
                "Please determine which of the two options is more likely to be the {question} of "
                "the given premise.\n\nYour Answer:")


#: The paper's XCOPA target languages (Table 3); et, qu and th are there on request.
XCOPA_LANGS = ("ht", "id", "it", "sw", "ta", "tr", "vi", "zh")


def load_xcopa(root: Path, langs=None, limit=None, unseen=False, pivot: str = "en",
               split: str = "test") -> list[Item]:
    """XCOPA, transplanted from the English COPA original (``pivot``) into each language.

    Every prompt, source and target, asks for the English COPA question type of its ``idx``:
    the XCOPA files' own ``question`` field is wrong in several languages (th says "effect"
    throughout). The pivot language is never its own target.
    """
    folder = root / "data" if (root / "data").is_dir() else root
    found = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    pivot_file = folder / pivot / f"{split}.{pivot}.jsonl"
    if not pivot_file.exists():
        raise DataError(f"missing XCOPA source-language file {pivot_file}; XCOPA is transplanted "
                        f"from {pivot} (the English COPA originals aligned to XCOPA's idx)")
    pivot_rows = {r["idx"]: r for r in read_jsonl(pivot_file)}
    use = list(langs) if langs else [l for l in XCOPA_LANGS if l in found]
    items = []
    for lang in use:
        if lang == pivot:
            raise DataError(f"XCOPA's source language {pivot!r} cannot be a target (it would be "
                            "transplanted into itself); leave it out of the languages")
        if lang not in found:
            raise DataError(f"XCOPA language {lang!r} missing in {folder}; available: "
                            f"{', '.join(l for l in found if l != pivot)}")
        for k, row in enumerate(read_jsonl(folder / lang / f"{split}.{lang}.jsonl")):
            if limit is not None and k >= limit:
                break
            src = pivot_rows.get(row["idx"])
            if src is None:
                raise DataError(f"{folder / lang}: idx {row['idx']} has no parallel {pivot} item")
            question = src["question"]
            items.append(Item(str(row["idx"]), "xcopa", lang, XCOPA_PROMPT.format(**src),
                              XCOPA_PROMPT.format(**{**row, "question": question}),
                              str(row["label"] + 1), "choice", {"1": "1", "2": "2"},
                              {"pivot": pivot, "src_lang": pivot, "question": question,
                               "file_question": row.get("question")}))
    return items


def content_id(source: str, target: str) -> str:
    """The id of an item given without one: a hash of its content, so that different items
    never share a key in a results store (a position would)."""
    import hashlib

    return "h" + hashlib.sha1(f"{source}\0{target}".encode("utf-8")).hexdigest()[:16]


def _check_row(path: Path, n: int, row: Any) -> None:
    """A JSONL task line must be an object with fields of the right types."""
    where = f"{path}:{n}"
    if not isinstance(row, dict):
        raise DataError(f"{where}: each line must be a JSON object with source, target and gold, "
                        f"not {type(row).__name__} {json.dumps(row, ensure_ascii=False)[:40]}")
    missing = [k for k in ("source", "target", "gold") if k not in row]
    if missing:
        raise DataError(f"{where}: missing field(s) {missing}; each line needs source, target, gold")
    for key in ("source", "target"):
        if not isinstance(row[key], str) or not row[key].strip():
            raise DataError(f"{where}: {key!r} must be a non-empty string (the prompt text), "
                            f"not {json.dumps(row[key], ensure_ascii=False)[:40]}")
    if isinstance(row["gold"], bool) or not isinstance(row["gold"], (str, int, float)) or str(row["gold"]) == "":
        raise DataError(f"{where}: 'gold' must be the answer as a string (or a number), "
                        f"not {json.dumps(row['gold'])}")
    for key in ("lang", "out_lang"):
        if key in row and not isinstance(row[key], str):
            raise DataError(f"{where}: {key!r} must be a language code string, not {json.dumps(row[key])}")
    if "id" in row and (isinstance(row["id"], bool) or not isinstance(row["id"], (str, int))):
        raise DataError(f"{where}: 'id' must be a string or an integer, not {json.dumps(row['id'])}")
    options = row.get("options", {})
    if not isinstance(options, dict) or not all(isinstance(v, (str, int)) for v in options.values()):
        raise DataError(f"{where}: 'options' must be an object of label -> option text, e.g. "
                        f'{{"A": "Osaka", "B": "Tokyo"}}, not {json.dumps(options, ensure_ascii=False)[:40]}')
    if row.get("kind", "qa") not in ("qa", "choice"):
        raise DataError(f"{where}: kind must be 'qa' or 'choice', not {row.get('kind')!r}")


def parse_shard(spec: str) -> tuple[int, int]:
    """``"2/8"`` -> (2, 8): shard K of N, 1 <= K <= N."""
    try:
        k, n = (int(x) for x in str(spec).split("/"))
    except ValueError:
        raise DataError(f"bad shard {spec!r}; write K/N, e.g. 2/8 for the second of eight shards") from None
    if not 1 <= k <= n:
        raise DataError(f"bad shard {spec!r}; K must be between 1 and N, e.g. 1/{max(n, 1)}")
    return k, n


def shard(items: list[Item], spec: str) -> list[Item]:
    """Shard K of N of ``items`` (``"K/N"``), chosen by a hash of each item's key: stable when the
    list grows (a larger limit, more languages), the same on every machine, so a scheduler's
    job array (SLURM ``--array=1-N``) can run the shards into one store."""
    import hashlib

    k, n = parse_shard(spec)
    return [it for it in items if int(hashlib.sha1(it.key.encode("utf-8")).hexdigest(), 16) % n == k - 1]


def load_jsonl_task(path: Path, langs=None, limit=None, unseen=False) -> list[Item]:
    """Generic format: one JSON object per line with source, target, gold[, lang, id, kind,
    options, out_lang]. Items without an id are keyed by a hash of their content; two lines with
    the same id (and language) are refused."""
    items, per_lang, seen = [], {}, {}
    for n, row in enumerate(read_jsonl(path), 1):
        _check_row(path, n, row)
        lang = row.get("lang", "")
        item_id = str(row["id"]) if "id" in row else content_id(row["source"], row["target"])
        if (lang, item_id) in seen:
            what = f"id {item_id!r}" if "id" in row else "source and target"
            raise DataError(f"{path}: lines {seen[lang, item_id]} and {n} have the same {what}"
                            f"{f' in language {lang!r}' if lang else ''}; every item needs its own id")
        seen[lang, item_id] = n
        if langs and lang not in langs:
            continue
        per_lang[lang] = per_lang.get(lang, 0) + 1
        if limit is not None and per_lang[lang] > limit:
            continue
        items.append(Item(item_id, path.stem, lang, row["source"], row["target"], str(row["gold"]),
                          row.get("kind", "qa"), {str(k): str(v) for k, v in row.get("options", {}).items()},
                          {"out_lang": row.get("out_lang", lang)}))
    return items


# ---------------------------------------------------------------- Table 5 templates and CoT
TEMPLATES = {
    "xnli": ("Human: What do you think is the relationship between the premise and the hypothesis?"
             "\n\nPremise: {premise}\nHypothesis: {hypothesis}\n\n(1) Entail \n(2) Neutral\n"
             "(3) Contradict\n\nAssistant: If I had to select one of the options, my answer would be:"),
    "xquad": ("Human: Please answer these questions only based on the given context.\n\n"
              "Context: {context}\nQuestion: {question}\n\nAssistant: My answer would be:"),
    "globalopinionqa": ("Human: How would someone from {country} answer the following question:\n"
                        "{question}\nHere are the options:\n{options}\nAssistant: If I had to "
                        "select one of the options, my answer would be:"),
    "xcopa": XCOPA_PROMPT,
}


def render_prompt(task: str, **fields: Any) -> str:
    """A paper prompt (Table 5, English version; XCOPA from section D) filled from raw fields.

    ``options`` for GlobalOpinionQA may be a list of strings; it is lettered (A), (B), ...
    """
    if task not in TEMPLATES:
        raise DataError(f"no template for {task!r}; templates exist for {', '.join(TEMPLATES)}")
    if task == "globalopinionqa" and isinstance(fields.get("options"), (list, tuple)):
        fields["options"] = "\n".join(f"({chr(65 + k)}) {o}" for k, o in enumerate(fields["options"]))
    try:
        return TEMPLATES[task].format(**fields)
    except KeyError as exc:
        raise DataError(f"the {task} template needs the field {exc.args[0]!r}") from None


#: "Let's think step by step" in each language (section F's CoT baseline), by language code.
COT_SUFFIX = {
    "en": "Let's think step by step.", "zh": "让我们一步一步地思考。", "zh-CN": "让我们一步一步地思考。",
    "ar": "دعونا نفكر خطوة بخطوة.", "bg": "Нека помислим стъпка по стъпка.",
    "de": "Lass uns Schritt für Schritt denken.", "el": "Ας σκεφτούμε βήμα προς βήμα.",
    "es": "Pensemos paso a paso.", "fr": "Réfléchissons étape par étape.",
    "hi": "आइए चरण दर चरण सोचें।", "ru": "Давайте подумаем шаг за шагом.",
    "sw": "Hebu tufikirie hatua kwa hatua.", "th": "ลองคิดทีละขั้นตอน", "tr": "Adım adım düşünelim.",
    "ur": "آئیے قدم بہ قدم سوچتے ہیں۔", "vi": "Hãy suy nghĩ từng bước một.",
    "ro": "Să ne gândim pas cu pas.", "am": "ደረጃ በደረጃ እናስብ።",
    "id": "Mari berpikir langkah demi langkah.", "ja": "段階的に考えてみましょう。",
    "pt": "Vamos pensar passo a passo.", "sv": "Låt oss tänka steg för steg.",
    "tl": "Pag-isipan natin nang hakbang-hakbang.", "uk": "Давайте подумаємо крок за кроком.",
    "it": "Pensiamo passo dopo passo.", "ht": "Ann reflechi etap pa etap.",
    "ta": "படிப்படியாக யோசிப்போம்.", "et": "Mõtleme samm-sammult.", "ko": "단계별로 생각해 봅시다.",
    "nl": "Laten we stap voor stap nadenken.", "bn": "চলুন ধাপে ধাপে চিন্তা করি।",
    "fi": "Ajatellaan askel askeleelta.", "he": "בואו נחשוב צעד אחר צעד.",
    "hu": "Gondolkodjunk lépésről lépésre.", "no": "La oss tenke steg for steg.",
    "da": "Lad os tænke trin for trin.", "km": "ចូរយើងគិតម្តងមួយជំហាន។",
    "qu": "Paso pasomanta yuyaymanasun.",
    "ms": "Mari kita fikir langkah demi langkah.", "pl": "Pomyślmy krok po kroku.",
}

#: New tokens under CoT (section F).
COT_MAX_NEW_TOKENS = 200


def base_language(lang: str) -> str:
    """A language code without its region: ``zh-CN``, MKQA's ``zh_cn`` -> ``zh``."""
    return re.split(r"[-_]", str(lang))[0].lower()


def cot_suffix(lang: str) -> str | None:
    """The CoT suffix of a language code, regional variants (``zh_cn``, ``zh-TW``) included."""
    return COT_SUFFIX.get(lang) or COT_SUFFIX.get(base_language(lang))


def cot_items(items: list[Item]) -> list[Item]:
    """The CoT baseline: each prompt gets "Let's think step by step" in its own language,
    appended after the prompt (separated by a space)."""
    from dataclasses import replace

    out = []
    for item in items:
        src_lang = "en" if item.dataset in ("xnli", "xquad") else item.meta.get("src_lang", item.lang)
        missing = [l for l in (item.out_lang, src_lang) if cot_suffix(l) is None]
        if missing:
            raise DataError(f"no CoT suffix for language(s) {missing}; add them to xtl.tasks.COT_SUFFIX")
        out.append(replace(item, source=f"{item.source} {cot_suffix(src_lang)}",
                           target=f"{item.target} {cot_suffix(item.out_lang)}",
                           meta={**item.meta, "cot": True}))
    return out


# ---------------------------------------------------------------- hub datasets (MKQA, CulturalBench)
def _hub(dataset, name: str, config: str | None = None, split: str = "train"):
    if dataset is not None:
        return dataset
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - declared dependency
        raise DataError("loading from the hub needs the datasets package") from exc
    try:
        return datasets.load_dataset(name, config, split=split)
    except Exception as exc:  # noqa: BLE001 - any hub failure becomes one clear message
        raise DataError(f"cannot load {name} from the Hugging Face Hub ({type(exc).__name__}); "
                        "check your connection or pass a local datasets.Dataset") from exc


def load_mkqa(langs=None, limit=None, dataset=None, source_lang: str = "en") -> list[Item]:
    """MKQA (``apple/mkqa``) as generative QA, English -> other language like XQuAD.

    ``dataset``: a ``datasets.Dataset`` with MKQA's schema (``example_id``, ``queries`` and
    ``answers`` keyed by language); default: the hub's. Items without a text answer are skipped.
    """
    ds = _hub(dataset, "apple/mkqa")
    template = "Human: Please answer the following question.\n\nQuestion: {q}\n\nAssistant: My answer would be:"
    items, per_lang = [], {}
    for n, row in enumerate(ds):
        for field_ in ("queries", "answers"):
            if field_ not in row:
                raise DataError(f"MKQA row {n} lacks {field_!r}; pass a dataset with MKQA's schema")
        use = langs or sorted(l for l in row["queries"] if l != source_lang)
        for lang in use:
            if lang not in row["queries"]:
                raise DataError(f"MKQA has no language {lang!r}; available: {', '.join(sorted(row['queries']))}")
            answers = [a.get("text") for a in row["answers"].get(lang, []) if a.get("text")]
            if not answers or per_lang.get(lang, 0) >= (limit or 10**12):
                continue
            per_lang[lang] = per_lang.get(lang, 0) + 1
            items.append(Item(str(row.get("example_id", n)), "mkqa", lang,
                              template.format(q=row["queries"][source_lang]),
                              template.format(q=row["queries"][lang]), answers[0], "qa",
                              meta={"src_lang": source_lang}))
    return items


def load_culturalbench(langs=None, limit=None, dataset=None,
                       country_lang: dict[str, str] | None = None) -> list[Item]:
    """CulturalBench-Easy (``kellycyy/CulturalBench``) as 4-way multiple choice, culture
    language -> English like GlobalOpinionQA.

    CulturalBench is English-only, so the source prompt must come with the data: a column
    ``translated_prompt`` holding the prompt in the culture's language. ``country_lang`` maps
    the ``country`` column to a language code.
    """
    ds = _hub(dataset, "kellycyy/CulturalBench", "CulturalBench-Easy", "test")
    mapping = country_lang or {}
    items, per_lang = [], {}
    for n, row in enumerate(ds):
        need = ["prompt_question", "prompt_option_a", "prompt_option_b", "prompt_option_c",
                "prompt_option_d", "answer", "country", "translated_prompt"]
        missing = [k for k in need if k not in row]
        if missing:
            raise DataError(f"CulturalBench row {n} lacks {missing}; the culture-language source "
                            "prompt goes in a 'translated_prompt' column")
        lang = mapping.get(row["country"])
        if lang is None:
            raise DataError(f"CulturalBench row {n}: no language for country {row['country']!r}; "
                            "pass country_lang={country: code}")
        if (langs and lang not in langs) or per_lang.get(lang, 0) >= (limit or 10**12):
            continue
        per_lang[lang] = per_lang.get(lang, 0) + 1
        options = [row[f"prompt_option_{c}"] for c in "abcd"]
        target = render_prompt("globalopinionqa", country=row["country"], question=row["prompt_question"],
                               options=options)
        items.append(Item(str(row.get("data_idx", n)), "culturalbench", lang, row["translated_prompt"],
                          target, str(row["answer"]).strip().upper(), "choice",
                          {c: c for c in "ABCD"}, {"out_lang": "en", "src_lang": lang}))
    return items


TASKS: dict[str, Callable[..., list[Item]]] = {
    "xnli": load_xnli, "xquad": load_xquad, "globalopinionqa": load_globalopinionqa,
    "xcopa": load_xcopa,
}


def load_task(spec: str, langs: list[str] | None = None, limit: int | None = None,
              root: str | os.PathLike | None = None) -> list[Item]:
    """Items of a registered task (``xnli``, ``xnli:unseen``, ``xquad``, ``globalopinionqa``,
    ``xcopa``; ``mkqa`` from the hub) or of a parallel JSONL file."""
    if spec.endswith((".jsonl", ".json")):
        if not Path(spec).is_file():
            raise DataError(f"data file {spec} does not exist; give the path of a JSON Lines task "
                            "file (one object per line with source, target, gold)")
        return load_jsonl_task(Path(spec), langs, limit)
    name, _, variant = spec.lower().partition(":")
    if name == "mkqa":
        return load_mkqa(langs, limit)
    if name not in TASKS:
        close = difflib.get_close_matches(name, list(TASKS) + ["mkqa"], n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise DataError(f"unknown task {spec!r}; use one of {', '.join(TASKS)} or a .jsonl file.{hint}")
    base = data_root(root)
    if name == "xcopa" and (base / "xcopa").is_dir():
        base = base / "xcopa"
    elif name != "xcopa" and (base / "xtransplant").is_dir():
        base = base / "xtransplant"
    return TASKS[name](base, langs=langs, limit=limit, unseen=variant == "unseen")
