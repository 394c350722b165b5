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
    tr = xtl.transplant(model, source=PROMPTS["zh"], target=PROMPTS["en"], src_layer=1, tgt_layer=0, site="mlp",
                        max_new_tokens=3)
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
    with pytest.raises(XtlError, match="lr must be a finite positive number"):
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
    # Issue 30 §7: a transplanted store of the tuned model keeps its own selection and bound rows,
    # and alone it is titled by the tuned model, as Table 8 names it
    swept = tb.Run(base.df, {"site": "attn", "n_layers": 3, "model": "base-7b-sft", "sft_base": "base-7b",
                             "store": "runs/xnli-sft-attn"})
    (caption, frame), = tb.paper_table(4, [base, swept]).blocks
    assert {"Entropy-based (attn, ML-SFT)", "SourceLast (attn, ML-SFT)", "TargetFirst (attn, ML-SFT)",
            "SourceLast (attn)"} <= set(frame.index)
    (caption, frame), = tb.paper_table(4, [swept]).blocks
    assert caption == "XNLI PilotSet · base-7b-sft (ML-SFT of base-7b)"
    t8 = tb.paper_table(8, [swept])
    assert any(label.startswith("base-7b-sft (ML-SFT of base-7b)") for label in t8.blocks[0][1].index)


_LAUNCHED = """
import json, sys
import xtl
folder, data, out = sys.argv[1:4]
res = xtl.sft(folder, data, out, n=16, max_steps=3, progress=False, micro_batch_size=2, dtype="float32", lr=2e-3,
              warmup_ratio=0.0, batch_size=4, max_length=96, save_steps=1000)
print("RESULT", json.dumps(res.losses))
"""


def test_two_processes_train_the_same_model_as_one(tiny_folder, tmp_path):
    """DDP on two CPU processes (gloo; the shipped DDP config with --cpu and 2 processes) saves a
    folder that loads and equals one process with the same global batch and seed; the manifest and
    the selection are written once, by the main process."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from safetensors.numpy import load_file

    from xtl.training.configs import accelerate_config as config_path

    script = tmp_path / "train.py"
    script.write_text(_LAUNCHED, encoding="utf-8")
    # identical examples: a sharded sampler and a single one order examples differently, so only
    # with one example repeated do the two runs see the same batches; what is compared is then the
    # gradient reduction over ranks and the gathered save
    path = tmp_path / "same.jsonl"
    path.write_text("\n".join(json.dumps({"inputs": "German question: say ok", "targets": "ok ok ok",
                                          "language": "German"}) for _ in range(20)), encoding="utf-8")
    data = str(path)
    launcher = Path(sys.executable).parent / "accelerate"  # no --cpu: that launches one process; gloo on CPU
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    two = subprocess.run([str(launcher), "launch", "--config_file", str(config_path("ddp-8gpu")),
                          "--num_processes", "2", "--mixed_precision", "no", str(script), str(tiny_folder), data,
                          str(tmp_path / "two")], capture_output=True, text=True, timeout=600, env=env)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("RESULT") == 2                           # both ranks ran the run
    one = subprocess.run([sys.executable, str(script), str(tiny_folder), data, str(tmp_path / "one")],
                         capture_output=True, text=True, timeout=600, env=env)
    assert one.returncode == 0, one.stderr[-3000:]
    a, b = load_file(str(tmp_path / "one" / "model.safetensors")), load_file(str(tmp_path / "two" / "model.safetensors"))
    assert a.keys() == b.keys() and all(np.allclose(a[k], b[k], rtol=0, atol=1e-6) for k in a)
    manifest = json.loads((tmp_path / "two" / "xtl-sft.json").read_text())
    assert manifest["finished"] and manifest["steps"] == 3
    single = json.loads((tmp_path / "one" / "xtl-sft.json").read_text())
    assert manifest["losses"] == pytest.approx(single["losses"], abs=1e-4)   # per-token means, not x ranks
    assert not list((tmp_path / "two").glob("*.partial"))
    model = xtl.load_model(tmp_path / "two", device="cpu")
    assert model.xtl_sft["sft_base"] == str(tiny_folder)


def test_each_shipped_accelerate_config_is_accepted_by_accelerate(tmp_path):
    from accelerate.commands.config.config_args import load_config_from_file

    from xtl.training.configs import accelerate_config as config_path

    kinds = {"one-gpu": "NO", "ddp-8gpu": "MULTI_GPU", "fsdp-8gpu": "FSDP", "deepspeed-zero3-8gpu": "DEEPSPEED"}
    for name, kind in kinds.items():
        cfg = load_config_from_file(str(config_path(name)))
        assert cfg.distributed_type.name == kind, name
        assert cfg.num_processes == (1 if name == "one-gpu" else 8), name
    typo = tmp_path / "typo.yaml"
    typo.write_text(config_path("ddp-8gpu").read_text() + "num_processs: 8\n")
    with pytest.raises((TypeError, ValueError), match="num_processs"):
        load_config_from_file(str(typo))                             # the check can fail


def test_the_learning_rate_inside_the_warm_up_follows_the_ratio(tiny_folder, tmp_path):
    from xtl.training.finetune import total_steps, warmup_steps

    assert warmup_steps(0.03, 100) == 3 and warmup_steps(0.0, 100) == 0 and warmup_steps(0.5, 5) == 3
    from transformers import TrainerCallback

    lrs = []

    class Record(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "learning_rate" in logs:
                lrs.append(float(logs["learning_rate"]))

    kw = {**FAST, "warmup_ratio": 0.5}
    xtl.sft(str(tiny_folder), str(_pairs(tmp_path)), tmp_path / "warm", n=16, max_steps=4, progress=False,
            callbacks=[Record()], **kw)
    # 4 steps, warm-up ratio 0.5 -> 2 warm-up steps: steps 1-3 run at 0, half the peak, the peak
    assert lrs[:3] == pytest.approx([0.0, FAST["lr"] / 2, FAST["lr"]])
    from xtl.training.finetune import SftSettings

    assert total_steps(SftSettings(model="m", data="d", max_steps=None, epochs=2, batch_size=4), 10) == 6


def test_a_model_trained_with_the_chat_template_is_evaluated_with_it(tmp_path, caplog):
    """The chat branch: the frame is recorded (with the template's hash), and sweeps, transplant
    and the lens of the folder use it by default; overriding it warns, naming both frames."""
    import hashlib
    import warnings

    from helpers import byte_tokenizer, tiny_hf

    template = "{% for m in messages %}<bos>user: {{ m['content'] }}\nassistant:{% endfor %}"
    base = tmp_path / "chat-base"
    tok = byte_tokenizer()
    tok.chat_template = template
    tiny_hf("llama").save_pretrained(base)
    tok.save_pretrained(base)
    out = tmp_path / "chat-sft"
    xtl.sft(str(base), str(_pairs(tmp_path)), out, n=8, max_steps=2, progress=False, **FAST)
    manifest = json.loads((out / "xtl-sft.json").read_text())
    assert manifest["chat"] is True and manifest["prompt_frame"] == "chat template"
    assert manifest["chat_template_sha256"] == hashlib.sha256(template.encode()).hexdigest()
    model = xtl.load_model(out, device="cpu")
    with caplog.at_level("INFO", logger="xtl"):
        df = xtl.sweep(model, [(PROMPTS["zh"], PROMPTS["en"])], src_layers=[], tgt_layers=[], store=tmp_path / "st",
                       max_new_tokens=3, progress=False)
    assert "fine-tuned with it" in caplog.text
    assert xtl.engine.read_settings(tmp_path / "st").chat is True
    assert list(df["token_ids"].iloc[0]) == xtl.vanilla(model, PROMPTS["en"], max_new_tokens=3, chat=True).tokens
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        xtl.vanilla(model, PROMPTS["en"], max_new_tokens=3, chat=False)
    assert any("fine-tuned with the chat template, but chat=False" in str(w.message) for w in seen)
    # the same folder on the bridge: the manifest travels, the frame is the training one, tokens as on hooked
    bridged = xtl.load_model(out, dtype="float64", device="cpu", backend="bridge")
    hooked = xtl.load_model(out, dtype="float64", device="cpu", backend="hooked")
    assert bridged.xtl_sft["sft_chat"] is True
    assert xtl.vanilla(bridged, PROMPTS["en"], max_new_tokens=4).tokens \
        == xtl.vanilla(bridged, PROMPTS["en"], max_new_tokens=4, chat=True).tokens \
        == xtl.vanilla(hooked, PROMPTS["en"], max_new_tokens=4).tokens


def test_a_failed_start_never_blocks_the_corrected_command_and_max_steps_extends_a_run(tiny_folder, tmp_path):
    """Issue 30 §7: bfloat16 on a CPU trains (transformers' use_cpu); a run that stopped before its
    first checkpoint is replaced by a corrected command; a larger --max-steps extends a run."""
    data = str(_pairs(tmp_path))
    out = tmp_path / "run"
    out.mkdir()
    (out / "xtl-sft.json").write_text(json.dumps({"settings": {"dtype": "bfloat16"}, "finished": False}))
    first = xtl.sft(str(tiny_folder), data, out, n=8, max_steps=2, progress=False, **FAST)
    assert first.steps == 2 and json.loads((out / "xtl-sft.json").read_text())["settings"]["dtype"] == "float32"
    two = _weights(out)
    longer = xtl.sft(str(tiny_folder), data, out, n=8, max_steps=4, progress=False, **FAST)
    assert longer.steps == 4 and longer.resumed and len(longer.losses) == 4
    assert longer.losses[:2] == first.losses
    assert any(not np.array_equal(two[k], v) for k, v in _weights(out).items())
    with pytest.raises(XtlError, match=r"holds a run of other settings \(lr: .*a larger --max-steps alone"):
        xtl.sft(str(tiny_folder), data, out, n=8, max_steps=8, progress=False, **{**FAST, "lr": 1e-3})
    bf16 = xtl.sft(str(tiny_folder), data, tmp_path / "bf16", n=8, max_steps=1, progress=False,
                   **{**FAST, "dtype": "bfloat16"})
    assert bf16.steps == 1 and json.loads((bf16.folder / "config.json").read_text())["dtype"] == "bfloat16"


def test_a_base_model_that_does_not_exist_is_named(tmp_path):
    data = str(_pairs(tmp_path))
    with pytest.raises(ModelSpecError, match=r"base model folder .*nowhere does not exist"):
        xtl.sft(str(tmp_path / "nowhere"), data, tmp_path / "o", max_steps=1, **FAST)
    with pytest.raises(ModelSpecError, match=r"base model 'no-such-org/no-such-model' was not found: it is not a local "
                                             r"folder \(looked in .*\) and the Hugging Face Hub did not provide it"):
        xtl.sft("no-such-org/no-such-model", data, tmp_path / "o", max_steps=1, **FAST)
    assert not (tmp_path / "o").exists()


def test_wrong_types_and_non_finite_numbers_are_refused_in_one_line(tiny_folder, tmp_path):
    """Issue 37 §2–3: every float option refuses inf and NaN (``--lr inf`` trained to NaN weights
    and reported a fine-tuned model), and wrong-typed arguments say so instead of a traceback."""
    data = str(_pairs(tmp_path))
    bad = {"lr": (float("inf"), float("nan"), True), "epochs": (float("inf"), float("nan")),
           "warmup_ratio": (float("nan"), float("-inf")), "n": ("3", 2.0), "langs": ("German", [1]),
           "seed": (None, 1.5), "chat": ("yes",), "lora": (1,), "dtype": (["float32"],),
           "weights_dtype": ("float16",), "gradient_checkpointing": ("no",)}
    for name, values in bad.items():
        for value in values:
            with pytest.raises(XtlError, match=rf"^{name} must be "):
                xtl.sft(str(tiny_folder), data, tmp_path / "x", **{**FAST, name: value})
    with pytest.raises(XtlError, match="bfloat16 weights train in bfloat16; use dtype='bfloat16'"):
        xtl.sft(str(tiny_folder), data, tmp_path / "x", **{**FAST, "weights_dtype": "bfloat16"})
    for args, message in (((None, None, None), "sft's model must be a Hugging Face folder or hub name"),
                          ((str(tiny_folder), 3, "o"), "sft's data must be a JSONL/Parquet file"),
                          ((str(tiny_folder), data, None), "sft's out must be the folder"),
                          ((str(tiny_folder), data, ""), "sft's out must be the folder")):
        with pytest.raises(XtlError, match=message):
            xtl.sft(*args)
    with pytest.raises(XtlError, match="sft's callbacks must be a list"):
        xtl.sft(str(tiny_folder), data, tmp_path / "x", callbacks=object())
    with pytest.raises(XtlError, match="sft's progress must be True or False"):
        xtl.sft(str(tiny_folder), data, tmp_path / "x", progress="no")
    for flag, value in (("--lr", "inf"), ("--epochs", "nan"), ("--warmup-ratio", "inf")):
        proc = run_cli("sft", "--model", tiny_folder, "--data", data, "--out", tmp_path / "x", flag, value)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "must be a" in proc.stderr, proc.stderr
    assert not (tmp_path / "x").exists()


def test_a_loss_that_becomes_nan_stops_the_run_naming_the_step(tiny_folder, tmp_path):
    """The Trainer would log a NaN loss as the window's mean and go on to save a finished-looking
    folder of NaN weights; the run stops at the step, keeps no checkpoint of it and is unfinished."""
    import torch
    from transformers import TrainerCallback

    from xtl.errors import TrainingError

    class Poison(TrainerCallback):  # NaN weights from the third step on, as a learning rate far too high does
        def on_step_begin(self, args, state, control, model=None, **kwargs):
            if state.global_step == 2:
                with torch.no_grad():
                    next(model.parameters()).fill_(float("nan"))

    out = tmp_path / "nan"
    with pytest.raises(TrainingError, match=r"the loss became nan at step 3, so training stopped; train again with a "
                                            r"lower learning rate \(--lr, now 0.002\) into another --out"):
        xtl.sft(str(tiny_folder), str(_pairs(tmp_path)), out, n=16, max_steps=5, progress=False, callbacks=[Poison()],
                **{**FAST, "save_steps": 1})
    manifest = json.loads((out / "xtl-sft.json").read_text())
    assert manifest["finished"] is False and manifest["diverged_at_step"] == 3 and manifest["steps"] == 3
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-1", "checkpoint-2"]
    assert not (out / "model.safetensors").exists()
    with pytest.raises(ModelSpecError, match="unfinished `xtl sft` run"):
        xtl.load_model(out)


def test_fractional_epochs_set_the_total_and_warm_up_steps(tiny_folder, tmp_path):
    """1.5 epochs of 16 examples at batch 4: 6 steps, not int(1.5) × 4 = 4; a warm-up ratio of
    0.5 is then 3 steps (learning rates 0, 1/3, 2/3 of the peak, then the peak)."""
    from transformers import TrainerCallback

    from xtl.training.finetune import SftSettings, total_steps

    assert total_steps(SftSettings(model="m", data="d", epochs=1.5, batch_size=4), 16) == 6
    assert total_steps(SftSettings(model="m", data="d", epochs=0.3, batch_size=4), 16) == 2   # rounded up
    lrs = []

    class Record(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "learning_rate" in logs:
                lrs.append(float(logs["learning_rate"]))

    res = xtl.sft(str(tiny_folder), str(_pairs(tmp_path)), tmp_path / "ep", n=16, epochs=1.5, progress=False,
                  callbacks=[Record()], **{**FAST, "warmup_ratio": 0.5})
    assert res.steps == 6 and len(res.losses) == 6
    assert lrs[:4] == pytest.approx([0.0, FAST["lr"] / 3, 2 * FAST["lr"] / 3, FAST["lr"]])


def test_bf16_weights_and_gradient_checkpointing_and_the_memory_said_before_training(tiny_folder, tmp_path, caplog):
    """bfloat16 weights (2 + 2 + 4 bytes per parameter instead of 4 + 4 + 8) and gradient
    checkpointing are on while training, and the model states' memory is logged before it."""
    import torch
    from transformers import TrainerCallback

    from xtl.training.memory import state_memory

    seen = []

    class Look(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            seen.append((next(model.parameters()).dtype, model.is_gradient_checkpointing))

    with caplog.at_level("INFO", logger="xtl"):
        res = xtl.sft(str(tiny_folder), str(_pairs(tmp_path)), tmp_path / "bf", n=8, max_steps=2, progress=False,
                      callbacks=[Look()], **{**FAST, "dtype": "bfloat16", "weights_dtype": "bfloat16",
                                             "gradient_checkpointing": True})
    assert res.steps == 2 and all(np.isfinite(res.losses)) and seen == [(torch.bfloat16, True)] * 2
    params = sum(v.size for v in _weights(tiny_folder).values())
    need = state_memory(params, params, "bfloat16")
    assert need.total == 8 * params and f"the model states need about {need.total / 1e6:.1f} MB (weights " \
        f"{2 * params / 1e6:.1f} + gradients {2 * params / 1e6:.1f} + Adam states {4 * params / 1e6:.1f}, bfloat16 " \
        "weights), before activations" in caplog.text
    seven = state_memory(7 * 10**9, 7 * 10**9)                       # the 7B full fine-tune
    assert (seven.weights, seven.gradients, seven.optimizer, seven.total) == (28e9, 28e9, 56e9, 112e9)
    assert "about 112.0 GB (weights 28.0 + gradients 28.0 + Adam states 56.0, float32 weights)" in seven.describe()
    assert state_memory(7 * 10**9, 7 * 10**9, "bfloat16").total == 56e9
    assert state_memory(7 * 10**9, 7 * 10**9, shards=8).per_device == 14e9
    assert state_memory(7 * 10**9, 10**7, "bfloat16").total == 14e9 + 6 * 10**7     # LoRA: frozen weights + adapters
