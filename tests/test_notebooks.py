"""The notebooks and examples run end to end on the demo model, so they cannot rot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.demo


@pytest.mark.parametrize("name", ["case_study.ipynb", "explore_sweep.ipynb"])
def test_notebook_executes(name, demo_model, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from helpers import SHARED_DATA

    if SHARED_DATA.is_dir():
        monkeypatch.setenv("XTL_DATA", str(SHARED_DATA))
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "strip outputs before committing"
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
    figures = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
               if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(figures) >= 2


#: What each example must print (and the files it must write), beyond exiting cleanly.
EXPECTED = {
    "byo_jsonl_task.py": (["item_id", "capital", "river", "transplanted", "delta"], []),
    "lens_case_study.py": (["source vanilla", "target vanilla", "transplanted", "configurations answer",
                            "over-guidance cells"], ["lens-transplanted.html", "case-study-grid.html"]),
    "single_transplant.py": (["vanilla     :", "transplanted:"], []),
    "sweep_report.py": (["vanilla", "Headline(", "report:"], ["xnli-attn-report.html"]),
}


def test_every_example_has_expectations():
    assert set(EXPECTED) == {p.name for p in (ROOT / "examples").glob("*.py")}


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "examples").glob("*.py")))
def test_example_runs(script, demo_model, tmp_path):
    env = {**os.environ}
    from helpers import SHARED_DATA

    if SHARED_DATA.is_dir():
        env["XTL_DATA"] = str(SHARED_DATA)
    elif "XTL_DATA" in (ROOT / "examples" / script).read_text(encoding="utf-8"):
        pytest.skip(f"{script} needs the benchmark data at {SHARED_DATA}")
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    printed, written = EXPECTED[script]
    missing = [text for text in printed if text not in proc.stdout]
    assert not missing, f"{script} did not print {missing}: {proc.stdout[-1500:]}"
    assert all((tmp_path / f).stat().st_size > 1000 for f in written)
