"""The notebooks and examples run end to end on the demo model, so they cannot rot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ["case_study.ipynb", "explore_sweep.ipynb"]
PLOTLY_JSON = "application/vnd.plotly.v1+json"


def _outputs(nb):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def _figures(nb):
    """Outputs that hold a plotly figure, in whatever form."""
    return [o for o in _outputs(nb) if PLOTLY_JSON in o.get("data", {})
            or "Plotly.newPlot" in "".join(o.get("data", {}).get("text/html", ""))]


def _renders_without_kernel(fig_output, static: bool) -> list[str]:
    data = fig_output["data"]
    problems = [] if "Plotly.newPlot" in "".join(data.get("text/html", "")) else ["no plotly HTML"]
    if static and "image/png" not in data:
        problems.append("no PNG")
    return problems


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebooks_show_their_figures_without_a_kernel(name):
    """The notebooks are committed executed, so GitHub and nbviewer show them; each figure is
    plotly HTML plus a PNG (never plotly's JSON mime type alone), and the files stay small."""
    nbformat = pytest.importorskip("nbformat")
    path = ROOT / "notebooks" / name
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), f"run it: jupyter nbconvert --to notebook --execute --inplace {path}"
    figures = _figures(nb)
    assert len(figures) >= 2
    assert [p for f in figures for p in _renders_without_kernel(f, static=True)] == []
    assert not any(PLOTLY_JSON in o.get("data", {}) for o in _outputs(nb))
    assert not [o for o in _outputs(nb) if o.output_type == "stream" and o.name == "stderr"], "no red stderr blocks"
    assert path.stat().st_size < 1_000_000


def test_a_failed_static_image_keeps_the_figure_and_warns_once(monkeypatch):
    """kaleido failing at display time (``JavascriptError: kaleido_scopes is not defined`` on a
    busy machine) must not end a notebook: the figure keeps its HTML, one warning says why."""
    import warnings

    import plotly.graph_objects as go
    import plotly.io as pio
    import plotly.io._base_renderers as base

    from xtl.figures import use_in_notebook

    def broken(*args, **kwargs):
        raise RuntimeError("JavascriptError: kaleido_scopes is not defined")

    monkeypatch.setattr(pio.renderers, "default", pio.renderers.default)
    monkeypatch.setattr(base, "to_image", broken)
    spec = use_in_notebook(static=True)
    fig = go.Figure(go.Bar(y=[1, 2]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bundles = [pio.renderers._build_mime_bundle(fig.to_dict(), renderers_string=spec) for _ in range(3)]
    for bundle in bundles:
        assert "Plotly.newPlot" in bundle["text/html"] and "image/png" not in bundle
    assert len([w for w in caught if "without its static PNG" in str(w.message)]) == 1


@pytest.mark.demo
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes(name, demo_model, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from helpers import SHARED_DATA

    from xtl.figures import can_export_images

    if SHARED_DATA.is_dir():
        monkeypatch.setenv("XTL_DATA", str(SHARED_DATA))
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [o for o in _outputs(nb) if o.output_type == "error"]
    assert errors == []
    figures = _figures(nb)
    assert len(figures) >= 2
    assert [p for f in figures for p in _renders_without_kernel(f, static=can_export_images())] == []
    stderr = "".join(o.text for o in _outputs(nb) if o.output_type == "stream" and o.name == "stderr")
    assert "TqdmWarning" not in stderr and "IProgress not found" not in stderr
    if name == "explore_sweep.ipynb":  # the sweep's progress is a widget bar, not text on stderr
        assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in _outputs(nb))


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
@pytest.mark.demo
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
