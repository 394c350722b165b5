"""`xtl sft`, the paper's ML-SFT baseline, on a tiny random-weight Llama and a tiny
multilingual instruction file written here."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("accelerate")

import xtl  # noqa: E402
from helpers import PROMPTS, run_cli  # noqa: E402
from xtl.errors import DataError, ModelSpecError, XtlError  # noqa: E402
from xtl.training.data import Pair, read_pairs, select_pairs  # noqa: E402

#: Train fast and deterministically: float32 on the CPU, a large learning rate, few steps.
FAST = dict(dtype="float32", lr=2e-3, warmup_ratio=0.0, batch_size=4, max_length=96, save_steps=1000)


def _pairs(tmp_path, n_per_lang=(12, 8, 4)):
    rows = []
    for lang, count in zip(("German", "Swahili", "Chinese"), n_per_lang):
        for k in range(count):
            rows.append({"inputs": f"{lang} question {k}: say ok", "targets": "ok ok ok", "language": lang})
    path = tmp_path / "aya.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    return path


def _weights(folder):
    from safetensors.numpy import load_file

    return load_file(str(folder / "model.safetensors"))


def test_stratified_selection_is_proportional_and_seeded():
    pairs = [Pair(f"{l}{k}", "q", "a", l) for l, n in (("de", 30), ("sw", 20), ("zh", 10)) for k in range(n)]
    picked = select_pairs(pairs, 12, seed=1)
    counts = {l: sum(p.language == l for p in picked) for l in ("de", "sw", "zh")}
    assert counts == {"de": 6, "sw": 4, "zh": 2}
    assert [p.id for p in select_pairs(pairs, 12, seed=1)] == [p.id for p in picked]
    assert [p.id for p in select_pairs(pairs, 12, seed=2)] != [p.id for p in picked]
    assert len(select_pairs(pairs, 1000)) == 60                      # all of them
    assert {p.language for p in select_pairs(pairs, 3, seed=0)} == {"de", "sw", "zh"}  # one each
    assert {p.language for p in select_pairs(pairs, 5, langs=["sw"])} == {"sw"}
    with pytest.raises(DataError, match=r"no pairs in \['fr'\]; it has de, sw, zh"):
        select_pairs(pairs, 5, langs=["fr"])


def test_pairs_without_the_needed_fields_name_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"inputs": "q", "targets": "a", "language": "de"}\n{"inputs": "q", "language": "de"}\n',
                    encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.jsonl:line 2: field 'targets' is missing or empty"):
        read_pairs(str(path))


def test_only_response_tokens_carry_loss_and_the_prompt_is_evaluations(tiny_folder, tiny_models):
    """Prompt tokens are exactly what xtl's evaluation feeds the model for this frame (so the
    model is evaluated the way it was trained) and all labelled -100; the response and EOS are
    the labels; and the model's loss on the example is the mean NLL of those tokens only."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from xtl.patching.prompts import tokenize
    from xtl.training.finetune import frame_example

    tok = AutoTokenizer.from_pretrained(tiny_folder)
    _, hooked = tiny_models["llama"]
    ex = frame_example(tok, Pair("0", "Wie heißt die Hauptstadt?", "Berlin", "de"), chat=False, max_length=512)
    prompt = tokenize(hooked, "Human: Wie heißt die Hauptstadt?\n\nAssistant:").tolist()
    answer = tok(" Berlin", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert ex["input_ids"] == prompt + answer
    assert ex["labels"] == [-100] * len(prompt) + answer
    model = AutoModelForCausalLM.from_pretrained(tiny_folder, dtype=torch.float32)
    ids, labels = torch.tensor([ex["input_ids"]]), torch.tensor([ex["labels"]])
    with torch.no_grad():
        loss = model(input_ids=ids, labels=labels).loss
        logp = model(input_ids=ids).logits.log_softmax(-1)[0, :-1]
    targets = ids[0, 1:]
    nll = -logp[torch.arange(len(targets)), targets]
    assert float(loss) == pytest.approx(float(nll[len(prompt) - 1:].mean()), rel=1e-5)
    assert float(loss) != pytest.approx(float(nll.mean()), rel=1e-3)    # prompt tokens would change it
    assert frame_example(tok, Pair("1", "x" * 600, "y", "de"), chat=False, max_length=64) is None


def test_sft_learns_saves_a_loadable_model_and_records_the_run(tiny_folder, tmp_path, caplog):
    out = tmp_path / "sft"
    with caplog.at_level("INFO", logger="xtl"):
        res = xtl.sft(str(tiny_folder), str(_pairs(tmp_path)), out, n=18, max_steps=8, progress=False, **FAST)
    assert "18 pairs in 3 languages: German 9, Swahili 6, Chinese 3" in caplog.text
    assert res.steps == 8 and len(res.losses) == 8 and res.losses[-1] < res.losses[0]
    manifest = json.loads((out / "xtl-sft.json").read_text())
    assert manifest["finished"] and manifest["base_model"] == str(tiny_folder) and len(manifest["data_sha256"]) == 64
    assert manifest["settings"]["lr"] == FAST["lr"] and manifest["prompt_frame"] == "Human: … Assistant:"
    assert manifest["losses"] == res.losses and manifest["wall_s"] > 0
    assert len(json.loads((out / "selection.json").read_text())) == 18
    model = xtl.load_model(out)
    assert model.xtl_sft["sft_base"] == str(tiny_folder)
    tr = xtl.transplant(model, PROMPTS["en"], PROMPTS["zh"], 1, 0, "mlp", max_new_tokens=3)
    assert len(tr.tokens) >= 1
    df = xtl.sweep(model, [(PROMPTS["zh"], PROMPTS["en"])], src_layers=[], tgt_layers=[], store=tmp_path / "st",
                   progress=False)
    assert xtl.engine.read_settings(tmp_path / "st").extra["sft_base"] == str(tiny_folder) and len(df) == 1
    again = xtl.sft(str(tiny_folder), str(_pairs(tmp_path)), out, n=18, max_steps=8, progress=False, **FAST)
    assert again.steps == 8 and again.losses == res.losses          # a finished run is not redone


def test_same_seed_same_weights_and_a_resumed_run_equals_an_uninterrupted_one(tiny_folder, tmp_path):
    from transformers import TrainerCallback

    data = str(_pairs(tmp_path))
    kw = dict(n=16, max_steps=6, progress=False, **FAST)
    a = xtl.sft(str(tiny_folder), data, tmp_path / "a", **kw)
    b = xtl.sft(str(tiny_folder), data, tmp_path / "b", **kw)
    wa, wb = _weights(a.folder), _weights(b.folder)
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)

    class StopAt3(TrainerCallback):  # what Ctrl-C does: a checkpoint at the end of the step, then stop
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                control.should_save = control.should_training_stop = True
            return control

    with pytest.raises(KeyboardInterrupt, match="stopped at step 3 of 6"):
        xtl.sft(str(tiny_folder), data, tmp_path / "c", callbacks=[StopAt3()], **kw)
    assert (tmp_path / "c" / "checkpoints" / "checkpoint-3").is_dir()
    with pytest.raises(ModelSpecError, match="unfinished `xtl sft` run"):
        xtl.load_model(tmp_path / "c")                              # nothing half-trained looks finished
    c = xtl.sft(str(tiny_folder), data, tmp_path / "c", **kw)
    assert c.resumed and c.steps == 6
    wc = _weights(c.folder)
    assert all(np.allclose(wa[k], wc[k], rtol=0, atol=1e-6) for k in wa)


def test_lora_is_merged_into_a_plain_model_folder(tiny_folder, tmp_path):
    pytest.importorskip("peft")
    res = xtl.sft(str(tiny_folder), str(_pairs(tmp_path)), tmp_path / "lora", n=8, max_steps=2,
                           lora=True, lora_r=4, progress=False, **{**FAST, "lr": 1e-2})
    base, tuned = _weights(tiny_folder), _weights(res.folder)
    assert set(base) == set(tuned) and any(not np.allclose(base[k], tuned[k]) for k in base)
    assert xtl.load_model(res.folder).xtl_sft["sft_lora"] is True


def test_bad_input_is_refused_before_training(tiny_folder, tmp_path):
    data = str(_pairs(tmp_path))
    for model, message in (("gemma-3-270m-q4km", "quantised GGUF model, which cannot be fine-tuned"),
                           (str(tmp_path / "m.gguf"), "quantised GGUF")):
        with pytest.raises(ModelSpecError, match=message):
            xtl.sft(model, data, tmp_path / "x", max_steps=1, **FAST)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(XtlError, match="already holds other files"):
        xtl.sft(str(tiny_folder), data, busy, max_steps=1, **FAST)
    with pytest.raises(DataError, match=r"no pairs in \['French'\]"):
        xtl.sft(str(tiny_folder), data, tmp_path / "y", langs=["French"], max_steps=1, **FAST)
    with pytest.raises(XtlError, match="float16 training needs a GPU"):
        xtl.sft(str(tiny_folder), data, tmp_path / "z", max_steps=1, **{**FAST, "dtype": "float16"})
    with pytest.raises(XtlError, match="lr must be a positive number"):
        xtl.sft(str(tiny_folder), data, tmp_path / "z", **{**FAST, "lr": -1.0})
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists() and not (tmp_path / "z").exists()
    proc = run_cli("sft", "--model", str(tiny_folder))
    assert proc.returncode == 2 and "xtl sft needs --data, --out" in proc.stderr
    proc = run_cli("sft", "--model", str(tiny_folder), "--data", str(tmp_path / "missing.jsonl"), "--out",
                   str(tmp_path / "w"))
    assert proc.returncode == 2 and "missing.jsonl does not exist" in proc.stderr
    proc = run_cli("sft", "--accelerate-configs")
    assert proc.returncode == 0 and proc.stdout.count("accelerate launch --config_file") == 4
    from xtl.training.configs import ACCELERATE_CONFIGS, accelerate_config

    assert all(accelerate_config(name).is_file() for name in ACCELERATE_CONFIGS)


def test_table4_takes_the_ml_sft_row_from_a_store_of_the_tuned_model():
    from test_tables import _run

    from xtl.analysis import tables as tb

    base = _run(model="base-7b", store="runs/xnli-attn")
    tuned_df = base.df[base.df.is_vanilla].assign(correct=[True, True, False, True])
    tuned = tb.Run(tuned_df, {"site": "attn", "n_layers": 3, "model": "base-7b-sft", "sft_base": "base-7b",
                              "store": "runs/xnli-sft"})
    t4 = tb.paper_table(4, [base, tuned])
    (caption, frame), = t4.blocks                           # one block: the tuned model is compared to its base
    assert caption == "XNLI PilotSet" and "ML-SFT" in frame.index
    assert frame.loc["ML-SFT", "High"] == pytest.approx(200 / 3) and frame.loc["ML-SFT", "Low"] == 100
    assert frame.loc["Vanilla", "High"] == pytest.approx(100 / 3)
    assert any("fine-tuned from base-7b by xtl sft" in n for n in t4.notes)
