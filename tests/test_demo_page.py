"""The demo's page in a real browser at 900 px: nothing scrolls sideways, every figure draws, its
title shows in full, and no two cell labels or axis labels lie on top of each other."""

from __future__ import annotations

import shutil

import pytest

from helpers import run_cli
from test_report import _chromium, _driver

pytestmark = pytest.mark.skipif(_chromium() is None or shutil.which("chromedriver") is None,
                                reason="headless browser test needs Debian's chromium and chromium-driver")

#: For each figure: its type, the title's and the figure's horizontal extent, and the pairs of
#: cell labels (heatmap text, bar text) and of tick labels whose boxes overlap.
_MEASURE = """
function boxes(gd, sel) { return Array.from(gd.querySelectorAll(sel)).filter(e => e.textContent.trim())
  .map(e => e.getBoundingClientRect()).filter(b => b.width > 0); }
function overlaps(bs) { let n = 0;
  for (let a = 0; a < bs.length; a++) for (let b = a + 1; b < bs.length; b++) {
    const p = bs[a], q = bs[b];
    if (Math.min(p.right, q.right) - Math.max(p.left, q.left) > 1 && Math.min(p.bottom, q.bottom) - Math.max(p.top, q.top) > 1) n++; }
  return n; }
return Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => {
  const svg = gd.querySelector('.main-svg').getBoundingClientRect(), t = gd.querySelector('.gtitle');
  const tb = t ? t.getBoundingClientRect() : svg;
  return {type: gd._fullData.length ? gd._fullData[0].type : null, drawn: gd.querySelectorAll('.main-svg').length > 0,
          title: [tb.left, tb.right], plot: [svg.left, svg.right],
          cells: overlaps(boxes(gd, '.heatmap-label, .textpoint text, .point text')),
          xticks: overlaps(boxes(gd, '.xtick text')), yticks: overlaps(boxes(gd, '.ytick text'))};
});
"""


def test_the_demo_page_reads_at_900_px(tiny_folder, tmp_path):
    page = tmp_path / "demo.html"
    res = run_cli("demo", "--model", str(tiny_folder), "--device", "cpu", "--max-new-tokens", "6", "--out", str(page),
                  "--items", "2", "--langs", "de", "zh", "--set-step", "1")
    assert res.returncode == 0, res.stderr
    driver = _driver(tmp_path, height=1000, width=900)
    try:
        driver.get(page.as_uri())
        inner, scroll = driver.execute_script("return [window.innerWidth, document.documentElement.scrollWidth]")
        assert scroll <= inner, f"the page scrolls sideways at {inner} px ({scroll} px wide)"
        figures = driver.execute_script(_MEASURE)
        # the question's margin gain, two lenses, the set's accuracy and margin gain, the bounds' bars
        assert [f["type"] for f in figures] == ["heatmap"] * 5 + ["bar"] and all(f["drawn"] for f in figures)
        for f in figures:
            assert f["title"][1] <= f["plot"][1] + 1, f"a {f['type']} title is cut at the right: {f}"
            assert f["cells"] == 0 and f["xticks"] == 0 and f["yticks"] == 0, f
        assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(900, height + 100)
        assert driver.save_screenshot(str(tmp_path / "demo-900.png"))
        assert (tmp_path / "demo-900.png").stat().st_size > 20_000
    finally:
        driver.quit()
