"""`xtl demo`: the built-in pair's whole grid scored, the best configuration, the page; and the
CaseStudy pieces it prints (best by gold margin, the text grid) on hand-built arrays."""

from __future__ import annotations

import numpy as np
import pytest

import xtl
from xtl.interpret.case import CaseStudy
from helpers import run_cli


def _case(correct, margin=None, vanilla=False):
    correct = np.array(correct, bool)
    responses = np.array([[f"r{a}{b}" for b in range(correct.shape[1])] for a in range(correct.shape[0])], dtype=object)
    return CaseStudy("mlp", "B", correct, responses, "van", vanilla, list(range(correct.shape[0])),
                     list(range(correct.shape[1])), None if margin is None else np.array(margin, float), -1.0)


def test_best_is_the_right_configuration_with_the_largest_gold_margin():
    case = _case([[0, 1, 0], [1, 0, 0], [0, 0, 1]], [[9.0, 0.5, 3.0], [2.0, 8.0, 1.0], [0.0, 0.0, 1.5]])
    assert case.best == (1, 0)  # 2.0 is the largest margin among the right ones (9.0 and 8.0 are wrong)
    assert case.response(1, 0) == "r10"
    assert _case([[0, 1], [1, 0]]).best == (0, 1)  # no margins: the first right one
    none_right = _case([[0, 0], [0, 0]], [[1.0, 2.0], [3.0, 4.0]])
    assert none_right.best is None and none_right.closest == (1, 1)


def test_text_grid_marks_right_wrong_and_best():
    case = _case([[0, 1, 0], [1, 0, 0]], [[0.0, 1.0, 0.0], [2.0, 0.0, 0.0]])
    assert case.text_grid(case.best).splitlines() == ["   012", "0  .#.", "1  @.."]
    wide = _case(np.zeros((12, 12)))
    lines = wide.text_grid().splitlines()
    assert lines[0].strip() == "1" and lines[1] == "    012345678901" and lines[-1] == "11  ............"


def test_demo_command_sweeps_scores_and_writes_the_page(tiny_folder, tmp_path):
    out = tmp_path / "page" / "demo.html"
    res = run_cli("demo", "--model", str(tiny_folder), "--device", "cpu", "--max-new-tokens", "3", "--out", str(out),
                  "--no-set")
    assert res.returncode == 0, res.stderr
    text = res.stdout
    assert "vanilla     : " in text and " of 16 configurations" in text and "the demo set" not in text
    import re

    # the margin-gain grid: two characters a cell, a shade then the shade again, ✓ (right) or @ (best/closest)
    grid = [m.group(2) for m in (re.match(r"^\s*(\d+)\s+([=\-.+#✓@]+)$", line) for line in text.splitlines()) if m]
    assert len(grid) == 4 and all(len(cells) == 8 for cells in grid), grid
    marks = "".join(cells[1::2] for cells in grid)
    assert all(cells[0::2].strip("=-.+#") == "" for cells in grid)
    right = int(text.split("right       : ")[1].split()[0])
    assert marks.count("@") == 1 and right == marks.count("✓") + (1 if "best        : source" in text else 0)
    if right == 0:
        assert "no configuration answers this question right" in text and "closest     : source layer" in text
        assert "(still wrong)" in text
    else:
        assert "best        : source layer" in text
    assert "large gain (largest |gain|" in text
    page = out.read_text(encoding="utf-8")
    assert "plotly" in page and "Logit lens" in page and "how far each configuration moves the gold option" in page


def test_demo_on_hand_picked_results_says_what_was_fixed(tiny_folder):
    model = xtl.load_model(tiny_folder, dtype="float64", device="cpu")
    result = xtl.interpret.demo(model, max_new_tokens=2, progress=False)
    n = model.cfg.n_layers
    assert result.case.correct.shape == (n, n) and result.n_configs == n * n
    assert result.case.margin is not None and np.isfinite(result.case.margin).all()
    # the margins are the sweep's own first-token log-probs: recompute one from a transplant
    cand = [model.tokenizer(c, add_special_tokens=False)["input_ids"][0] for c in ("A", "B", "C")]
    res = xtl.transplant(model, source=result.pair["source"], target=result.pair["target"], src_layer=2, tgt_layer=1,
                         site="mlp", max_new_tokens=1)
    lp = res.first_logprobs[cand].double()
    assert result.case.margin[2, 1] == pytest.approx(float(lp[1] - max(lp[0], lp[2])), abs=1e-5)


def test_demo_bad_input_is_one_line_before_loading(tiny_folder, tmp_path, monkeypatch):
    monkeypatch.setattr(xtl.models, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    for args, message in [(["--site", "heads:9"], "head"),
                          (["--chat"], "no chat template"),
                          (["--out", str(tmp_path)], "is a folder")]:
        res = run_cli("demo", "--model", str(tiny_folder), *args)
        assert res.returncode == 2, (args, res.stderr)
        assert message in res.stderr and "Traceback" not in res.stderr, (args, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
