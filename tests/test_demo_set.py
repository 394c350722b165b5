"""The demo set's pieces on hand-built tables (the cross-fitted pair, shuffled bounds, margin
gains, the finding on a coarse grid) and `xtl demo` with its set on the tiny model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xtl.analysis.bounds import shuffled_bounds, upper_bounds
from xtl.analysis.finding import finding_of, reading
from xtl.analysis.grids import Grid
from xtl.analysis.margins import gold_margins, margin_panel
from xtl.analysis.selection import cross_fit
from xtl.errors import XtlError
from xtl.interpret.showcase import set_layers
from xtl.tasks.demo_set import load_demo_set
from helpers import run_cli


def _grid(correct, vanilla, items, langs, layers=(0, 1), n_layers=2) -> Grid:
    c = np.array(correct, float)
    return Grid(c, np.array(vanilla, float), list(items), list(langs), [""] * len(items), list(layers), list(layers),
                n_layers)


def test_cross_fit_chooses_on_one_half_and_scores_on_the_other():
    # questions q1, q3 form one half, q2, q4 the other; cells [src][tgt]
    cells = {"q1": [[1, 0], [0, 0]], "q3": [[1, 0], [0, 1]], "q2": [[0, 0], [0, 1]], "q4": [[1, 0], [0, 1]]}
    keys = [f"demo/de/{q}" for q in cells]
    g = _grid(list(cells.values()), [1, 0, 0, 0], keys, ["de"] * 4)
    cf = cross_fit(g)
    a, b = cf.folds
    assert (a.src_layer, a.tgt_layer) == (0, 0) and a.pilot_accuracy == 100.0  # best on q1, q3
    assert (b.src_layer, b.tgt_layer) == (1, 1) and b.pilot_accuracy == 100.0  # best on q2, q4
    # q1, q3 scored by (1, 1): 0 and 1; q2, q4 by (0, 0): 0 and 1; the in-sample best would say 75
    assert cf.accuracy == 50.0 and cf.vanilla == 25.0 and cf.gain == 25.0


def test_cross_fit_keeps_a_questions_translations_together():
    keys = ["demo/de/q1", "demo/es/q1", "demo/de/q2", "demo/es/q2"]
    cells = [[[1, 0], [0, 0]], [[1, 0], [0, 0]], [[0, 0], [0, 1]], [[0, 0], [0, 1]]]
    cf = cross_fit(_grid(cells, [0, 0, 0, 0], keys, ["de", "es", "de", "es"]))
    assert {(f.src_layer, f.tgt_layer) for f in cf.folds} == {(0, 0), (1, 1)}
    assert cf.accuracy == 0.0  # each question's pick never helps the other question
    with pytest.raises(Exception, match="two different questions"):
        cross_fit(_grid(cells[:2], [0, 0], keys[:2], ["de", "es"]))


def test_shuffled_bounds_keep_each_configurations_count_of_fixes():
    # two de items: (0, 0) and (0, 1) each fix item 0 only; nothing else is right
    de = [[[1, 1], [0, 0]], [[0, 0], [0, 0]]]
    g = _grid(de, [0, 0], ["demo/de/q1", "demo/de/q2"], ["de", "de"])
    real, shuffled = upper_bounds(g), shuffled_bounds(g)
    assert real.oracle == 50.0 and shuffled.oracle == pytest.approx(75.0)  # 1 - (1/2)(1/2)
    assert real.target_first == 50.0 and shuffled.target_first == pytest.approx(50.0)
    assert real.source_last == 0.0 and shuffled.source_last == 0.0
    # the same counts on other items: the real bound moves, the shuffled one does not
    moved = _grid([[[1, 0], [0, 0]], [[0, 1], [0, 0]]], [0, 0], ["demo/de/q1", "demo/de/q2"], ["de", "de"])
    assert upper_bounds(moved).oracle == 100.0 and shuffled_bounds(moved).oracle == pytest.approx(75.0)


def test_shuffled_bounds_shuffle_within_each_language():
    de = [[[1, 1], [0, 0]], [[0, 0], [0, 0]]]
    es = [[[0, 0], [0, 1]], [[0, 0], [0, 1]]]  # (1, 1) fixes both es items: nothing left to chance
    g = _grid(de + es, [0] * 4, ["demo/de/q1", "demo/de/q2", "demo/es/q1", "demo/es/q2"], ["de", "de", "es", "es"])
    s = shuffled_bounds(g)
    assert s.oracle == pytest.approx((75.0 + 100.0) / 2)  # the mean over languages, as the paper's
    assert s.source_last == pytest.approx((0.0 + 100.0) / 2)
    assert s.source == pytest.approx([(75.0 + 0.0) / 2, 50.0])
    assert "shuffled" in s.grid


def test_finding_on_a_coarse_grid_bounds_the_swept_layers():
    c = np.zeros((2, 3, 3))
    c[0, 2, 1] = 1  # source 3 (the last) -> target 2 fixes q1
    c[1, 0, 0] = 1  # source 0 -> target 0 fixes q2
    g = Grid(c, np.zeros(2), ["demo/de/q1", "demo/de/q2"], ["de", "de"], ["", ""], [0, 2, 3], [0, 2, 3], 4)
    assert np.isnan(upper_bounds(g).oracle)  # not the full 4 x 4
    f = finding_of(g)
    assert f.coarse == (0, 2, 3)
    assert f.bounds.oracle == 100.0 and f.bounds.source_last == 50.0 and f.bounds.target_first == 50.0
    assert f.bounds.src_layers == [0, 2, 3] and "of 4 layers" in f.bounds.grid
    assert f.shuffled.oracle == pytest.approx(75.0)
    text = f.summary()
    assert "swept layers 0, 2, 3" in text and "SourceLast  : 50.0% upper bound" in text
    assert "swept grid  : 100.0% upper bound" in text and "full grid" not in text
    assert f.rows()[-1][0] == "swept grid (any of 3²)"
    full = finding_of(_grid([[[1, 0], [0, 0]], [[0, 0], [0, 1]]], [0, 0], ["demo/de/q1", "demo/de/q2"], ["de", "de"]))
    assert full.coarse is None and full.bounds.oracle == 100.0
    assert full.rows()[-1][0] == "full grid (any of N²)" and "full grid   : 100.0%" in full.summary()


def test_the_reading_says_which_side_of_the_shuffled_bound_it_is():
    assert "lies 12.0 points above its shuffled twin: different configurations fix different items" in reading(62.0, 50.0)
    assert "lies 20.0 points below its shuffled twin: the configurations keep fixing the same items" in reading(30.0, 50.0)
    assert "near its shuffled twin: the right answers spread like noise" in reading(52.0, 50.0)
    assert "near its shuffled twin" in reading(45.0, 50.0)             # within 5 points either side
    assert "not computable" in reading(float("nan"), 50.0)


def test_a_saturated_bound_hands_the_reading_to_the_next_one():
    """The any-configuration bound at 100 % beside 100 % shuffled says nothing; SourceLast speaks."""
    c = np.zeros((2, 3, 3))
    c[:, :, 0] = 1      # target 0: every source fixes both items (TargetFirst 100, shuffled 100)
    c[0, 2, 1] = 1      # the last source fixes q1 into target 1 as well
    g = Grid(c, np.zeros(2), ["demo/de/q1", "demo/de/q2"], ["de", "de"], ["", ""], [0, 1, 2], [0, 1, 2], 3)
    f = finding_of(g)
    assert f.bounds.oracle == 100.0 and f.shuffled.oracle == pytest.approx(100.0)
    assert f.bounds.source_last == 100.0 and f.shuffled.source_last == pytest.approx(100.0)
    assert "every bound and its shuffled twin reach 100%" in f.summary()
    c2 = np.zeros((4, 3, 3))
    c2[:, 2, 0] = 1     # source 2 -> target 0 fixes every item; nothing else fixes any
    c2[0, 2, 1] = c2[0, 2, 2] = 1                     # the last source fixes q1 three times over
    g2 = Grid(c2, np.zeros(4), [f"demo/de/q{k}" for k in range(4)], ["de"] * 4, [""] * 4, [0, 1, 2], [0, 1, 2], 3)
    f2 = finding_of(g2)
    assert f2.bounds.source_last == 100.0 and f2.reading().startswith("every bound")  # all saturated at 100
    c3 = np.zeros((4, 3, 3))
    c3[:2, 2, :] = 1    # the last source fixes q0 and q1 into every target: the same two items, 3 times
    c3[:2, 0, 0] = 1
    g3 = Grid(c3, np.zeros(4), [f"demo/de/q{k}" for k in range(4)], ["de"] * 4, [""] * 4, [0, 1, 2], [0, 1, 2], 3)
    f3 = finding_of(g3)
    # any-configuration bound: 4 configurations right on 2 of 4 items; shuffled 1 - (1/2)^4 = 93.75 %
    assert f3.bounds.oracle == 50.0 and f3.shuffled.oracle == pytest.approx(93.75)
    assert "the full grid bound lies 43.8 points below its shuffled twin" in f3.reading()


def _table(rows):
    return pd.DataFrame(rows, columns=["item_key", "lang", "src_layer", "tgt_layer", "is_vanilla", "gold",
                                       "cand_logprobs", "correct"])


def test_margin_gain_is_the_gold_margin_minus_vanillas():
    rows = [("demo/de/q1", "de", -1, -1, True, "B", [-1.0, -2.0, -3.0], False),   # margin -1
            ("demo/de/q1", "de", 0, 0, False, "B", [-2.0, -0.5, -4.0], True),    # +1.5
            ("demo/de/q1", "de", 0, 1, False, "B", [-1.0, -3.0, -2.0], False),   # -2
            ("demo/de/q2", "de", -1, -1, True, "A", [-1.0, -1.5, -9.0], True),   # +0.5
            ("demo/de/q2", "de", 0, 0, False, "A", [-1.0, -1.0, -9.0], False),   # 0
            ("demo/de/q2", "de", 0, 1, False, "A", [-0.5, -3.0, -2.5], True)]    # +2
    df = _table(rows)
    assert gold_margins(df, [" (A", " (B", " (C"]) == pytest.approx([-1.0, 1.5, -2.0, 0.5, 0.0, 2.0])
    p = margin_panel(df, ["A", "B", "C"])
    assert p.src_layers == [0] and p.tgt_layers == [0, 1]
    assert p.gain == pytest.approx(np.array([[(2.5 + -0.5) / 2, (-1.0 + 1.5) / 2]]))
    assert p.vanilla == pytest.approx(-0.25) and p.at(0, 1) == pytest.approx(0.25)
    assert p.accuracy == pytest.approx(np.array([[50.0, 50.0]]))
    assert margin_panel(df.assign(gold="D"), ["A", "B", "C"]) is None  # no gold among the candidates


def test_set_layers_and_the_sets_bad_input():
    assert set_layers(18) == [0, 3, 6, 9, 12, 15, 17] and set_layers(4, 1) == [0, 1, 2, 3]
    assert set_layers(4, 3) == [0, 3]
    assert len(load_demo_set(["de", "zh"], 3)) == 6
    with pytest.raises(Exception, match="no language 'fr'"):
        load_demo_set(["fr"])
    with pytest.raises(Exception, match="10 questions per language, not 11"):
        load_demo_set(None, 11)


def test_demo_command_sweeps_the_set(tiny_folder, tmp_path):
    out = tmp_path / "demo.html"
    res = run_cli("demo", "--model", str(tiny_folder), "--device", "cpu", "--max-new-tokens", "2", "--out", str(out),
                  "--items", "2", "--langs", "de", "zh")
    assert res.returncode == 0, res.stderr
    text = res.stdout
    assert "4 items, de zh" in text
    for label in ("vanilla     : ", "best pair   : ", "SourceLast  : ", "TargetFirst : ", "swept grid  : "):
        assert text.count(label) >= 1, label
    assert "upper bound (right answers shuffled across items: " in text
    assert "layers      : every bound over the swept layers 0, 3" in text   # 4 layers, every 3rd + the last
    assert "\033[" not in text                                         # a pipe gets no colour codes
    page = out.read_text(encoding="utf-8")
    assert "Demo set" in page and "SourceLast" in page and "the source layer down" in page


@pytest.mark.parametrize("args, message", [(["--items", "11"], "10 questions per language"),
                                           (["--langs", "fr"], "no language 'fr'"),
                                           (["--no-set", "--items", "3"], "leave them out with --no-set")])
def test_demo_set_bad_input_is_one_line(tiny_folder, args, message):
    res = run_cli("demo", "--model", str(tiny_folder), "--device", "cpu", *args)
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_the_grid_is_coloured_where_asked_and_never_in_a_pipe(tiny_folder, tmp_path, monkeypatch):
    from xtl.cli.commands import use_color

    res = run_cli("demo", "--model", str(tiny_folder), "--device", "cpu", "--max-new-tokens", "2", "--no-set",
                  "--out", str(tmp_path / "d.html"), "--color", "always")
    assert res.returncode == 0, res.stderr
    grid = [line for line in res.stdout.splitlines() if "\033[48;5;" in line]
    assert len(grid) == 4 and all(line.count("\033[0m") == 4 for line in grid)   # 4 x 4 cells, each reset
    assert "colour: red loss, grey about none, blue gain" in res.stdout
    page = (tmp_path / "d.html").read_text(encoding="utf-8")
    assert "\033[48;5;" not in page and "= large loss  - loss  . about none" in page  # the page: the plain grid
    assert use_color("never") is False and use_color("always") is True
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_color("auto") is True
    monkeypatch.setenv("NO_COLOR", "1")
    assert use_color("auto") is False


def test_the_set_is_scored_by_the_authors_rule_where_asked(tiny_folder, tmp_path):
    res = run_cli("demo", "--model", str(tiny_folder), "--device", "cpu", "--max-new-tokens", "2", "--mode", "generate",
                  "--items", "2", "--langs", "de", "--out", str(tmp_path / "g.html"))
    assert res.returncode == 0, res.stderr
    assert "2 items, de; the authors' rule on the greedy response)" in res.stdout
    assert "(the authors' rule on the greedy response); gold margin" in res.stdout
    bad = run_cli("demo", "--model", str(tiny_folder), "--mode", "sample")
    assert bad.returncode == 2 and "--mode" in bad.stderr


def test_auto_mode_generates_where_prompts_go_through_the_chat_template(tiny_models):
    from xtl.interpret.showcase import demo_mode

    _, model = tiny_models["llama"]
    assert demo_mode(model, "auto", None) == "logits" and demo_mode(model, "auto", False) == "logits"
    assert demo_mode(model, "auto", True) == "generate"
    assert demo_mode(model, "generate", None) == "generate" and demo_mode(model, "logits", True) == "logits"
    with pytest.raises(Exception, match="mode"):
        demo_mode(model, "sample", None)


def test_a_vocabulary_without_the_option_letters_is_refused_before_any_sweep(tiny_models, monkeypatch):
    import xtl.interpret.showcase as showcase
    from xtl.interpret.showcase import check_option_letters, demo

    _, model = tiny_models["llama"]
    check_option_letters(model, ("A", "B", "C"))                    # the tiny tokenizer has them

    class Unk:                                                       # maps every letter but A to <unk>
        unk_token_id = 0

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [5 if text == "A" else 0]}

        def decode(self, ids):
            return "<unk>" if ids == [0] else "A"

    class OneUnk(Unk):                                               # maps only C to <unk>
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [{"A": 5, "B": 6}.get(text, 0)]}

    class Stub:
        cfg = model.cfg

    for tok, message in ((Unk(), "distinct first tokens"), (OneUnk(), r"lacks the demo set's option letter\(s\) C")):
        stub = Stub()
        stub.tokenizer = tok
        with pytest.raises(XtlError, match=message) as err:
            check_option_letters(stub, ("A", "B", "C"))
        assert "--no-set" in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setattr(showcase, "check_option_letters", lambda m, labels: (_ for _ in ()).throw(XtlError("no letters")))
    monkeypatch.setattr(showcase, "case_study", lambda *a, **k: pytest.fail("swept before the check"))
    with pytest.raises(XtlError, match="no letters"):
        demo(model, progress=False)


def test_a_gold_margin_column_without_values_or_candidates_gives_no_panel():
    df = _table([("demo/de/q1", "de", -1, -1, True, "B", None, False), ("demo/de/q1", "de", 0, 0, False, "B", None, True)])
    bare = df.drop(columns=["gold", "cand_logprobs"]).assign(gold_margin=float("nan"))
    assert margin_panel(bare) is None                 # a sweep in generate mode: the column is there, all NaN
    assert np.isnan(gold_margins(bare)).all()
