"""Figures and the one-page report, checked in a real headless Chromium when one is installed."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from xtl import analysis as an
from xtl.analysis.views import gain_panels, layer_gains
from xtl.figures import plots
from xtl.figures.report import build_report

from test_analysis import C, LANGS, VAN, table


def test_computation_never_imports_plotting():
    code = "import sys, xtl, xtl.analysis, xtl.evaluation, xtl.engine; print('plotly' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_scoring_selecting_and_tables_never_import_torch():
    """Issue 30 §7: `xtl select` took 30 s on 216 rows, most of it importing torch and
    TransformerLens through perplexity, which a store without a model never uses."""
    code = ("import sys, xtl.evaluation.evaluated, xtl.strategies.protocol, xtl.analysis.tables, "
            "xtl.figures.report; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_figures_carry_the_numbers():
    g = an.grid(table(C, VAN, LANGS))
    fig = plots.gain_heatmap(gain_panels(g))
    np.testing.assert_allclose(fig.data[0].z, an.gain_matrix(g))
    assert fig.data[0].zmid == 0 and len(fig.data) == 3            # all + two languages
    assert fig.layout.updatemenus[0].buttons[1].label == "de"
    ub = plots.upper_bound_curves(an.upper_bounds(g))
    np.testing.assert_allclose(ub.data[0].y, an.upper_bounds(g)["source"])
    bars = plots.wtl_bars({"attn": an.win_tie_lose(g)})
    assert [t.y[0] for t in bars.data] == [1, 4, 4]
    assert plots.lang_layer_heatmap(layer_gains(g)).data[0].z.shape == (2, 3)


def test_the_former_flat_modules_are_gone():
    """Issue 30: one home per stage; the eight aliases were removed."""
    import importlib

    for name in ("report", "plots", "store", "tables", "metrics", "distributed", "fastpath", "checkpoint"):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(f"xtl.{name}")


@pytest.fixture
def report(tmp_path):
    df = table(C, VAN, LANGS, ["high", "high", "low", "low"])
    return build_report(df, tmp_path / "report.html", "test report")


def test_report_is_self_contained(report):
    text = report.read_text(encoding="utf-8")
    assert text.count("Plotly.newPlot") == 5
    assert "<script src=\"http" not in text                       # plotly.js inlined, no CDN
    assert "Accuracy by language" in text and "Table 4" in text


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def _driver(tmp_path, height: int = 900, width: int = 1200):
    """Headless Debian Chromium through selenium, with the browser's console log kept."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = _chromium()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={width},{height}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


@pytest.mark.skipif(_chromium() is None or shutil.which("chromedriver") is None,
                    reason="headless browser test needs Debian's chromium and chromium-driver")
def test_report_renders_in_headless_chromium(report, tmp_path):
    driver = _driver(tmp_path)
    try:
        driver.get(report.as_uri())
        rendered = driver.execute_script(
            "return Array.from(document.querySelectorAll('.js-plotly-plot'))"
            ".map(d => d.querySelectorAll('.main-svg').length > 0 && d._fullData.length > 0)")
        assert rendered == [True] * 5
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
        assert driver.save_screenshot(str(tmp_path / "report.png"))
        assert (tmp_path / "report.png").stat().st_size > 10_000
    finally:
        driver.quit()


def test_the_margin_gain_heatmap_stands_beside_the_accuracy_one_with_exact_values(tmp_path):
    """gold margin = item k's vanilla margin k/4 plus (source - target): the gain of cell (i, j) is
    exactly i - j in every language; the accuracy heatmap's best cell is marked on it."""
    df = table(C, VAN, LANGS, ["high", "high", "low", "low"])
    k = df["item_key"].str.rsplit("/", n=1).str[-1].astype(int)
    df["gold_margin"] = k / 4 + np.where(df["is_vanilla"], 0, df["src_layer"] - df["tgt_layer"])
    path = build_report(df, tmp_path / "m.html")
    page = path.read_text(encoding="utf-8")
    assert page.count("Plotly.newPlot") == 6
    assert page.index("Gain over vanilla, source × target") < page.index("Gold-margin gain over vanilla") \
        < page.index("Upper bounds over layers")
    from xtl.analysis.margins import margin_panel

    panel = margin_panel(df)
    np.testing.assert_allclose(panel.gain, np.subtract.outer([0, 1, 2], [0, 1, 2]))
    assert panel.vanilla == pytest.approx(np.mean([np.mean([0, .25]), np.mean([.5, .75])]))
    fig = plots.margin_heatmap(panel)
    assert fig.layout.title.text.startswith("Gold margin gain over vanilla")
    from xtl.analysis.margins import margin_panels

    df.loc[df["lang"] == "sw", "gold_margin"] *= 2        # sw's gains double: (i - j) * 2
    panels = margin_panels(df)
    assert [p.name for p in panels] == ["all", "de", "sw"]
    np.testing.assert_allclose(panels[1].gain, np.subtract.outer([0, 1, 2], [0, 1, 2]))
    np.testing.assert_allclose(panels[2].gain, 2 * np.subtract.outer([0, 1, 2], [0, 1, 2]))
    np.testing.assert_allclose(panels[0].gain, 1.5 * np.subtract.outer([0, 1, 2], [0, 1, 2]))  # the languages' mean
    fig = plots.margin_heatmap(panels)
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["all", "de", "sw"]
    assert [t.visible for t in fig.data] == [True, False, False]
    without = build_report(table(C, VAN, LANGS), tmp_path / "n.html").read_text(encoding="utf-8")
    assert "Gold-margin gain" not in without                      # no options recorded: no margin figure


def test_light_report_loads_plotly_once_beside_the_page(tmp_path):
    df = table(C, VAN, LANGS, ["high", "high", "low", "low"]).assign(ppl=float("nan"))
    full = build_report(df, tmp_path / "full.html")
    light = build_report(df, tmp_path / "light" / "a.html", light=True)
    build_report(df, tmp_path / "light" / "b.html", light=True)
    js = tmp_path / "light" / "plotly.min.js"
    assert js.exists() and js.stat().st_size > 1_000_000
    page = light.read_text(encoding="utf-8")
    assert '<script src="plotly.min.js"></script>' in page and page.count("Plotly.newPlot") == 5
    assert light.stat().st_size < full.stat().st_size - 1_000_000
    assert "no model was given" in page                   # all-NaN perplexity says why


def test_report_wording_and_layer_categories(tmp_path):
    one = table(C[:1], VAN[:1], ["de"], ["high"])
    page = build_report(one, tmp_path / "one.html").read_text(encoding="utf-8")
    assert "1 item, 1 language" in page and "1 languages" not in page
    assert ".tbl td, .tbl th { text-align: right; }" in page
    df = table(C, VAN, LANGS)
    sub = df[df.is_vanilla | df.src_layer.isin([0, 2])]
    fig = plots.lang_layer_heatmap(layer_gains(an.grid(sub)))
    assert fig.layout.xaxis.type == "category" and list(fig.data[0].x) == [0, 2]


def test_a_partial_grid_says_why_the_bound_curves_are_missing(tmp_path):
    df = table(C, VAN, LANGS, ["high", "high", "low", "low"])
    part = df[df.is_vanilla | ((df.src_layer > 0) & (df.tgt_layer > 0))]
    page = build_report(part, tmp_path / "p.html").read_text(encoding="utf-8")
    assert page.count("Plotly.newPlot") == 4 and "Not drawn: no source layer was swept" in page
    assert "<th>index</th>" not in page


def test_figures_fit_the_window(tmp_path):
    from xtl.figures.plots import lens_heatmap, save

    z = np.random.default_rng(0).random((3, 22))
    text = np.full(z.shape, "tok", dtype=object)
    fig = lens_heatmap({"top-1 probability": z}, text, text, [f"{k}" for k in range(22)], ["L0", "L1", "L2"], "lens")
    assert fig.layout.width is None and fig.layout.autosize            # no fixed 2,000+ px page
    page = save(fig, tmp_path / "lens.html").read_text(encoding="utf-8")
    assert '"responsive": true' in page and "100%" in page
    two = plots.lang_layer_heatmap(layer_gains(an.grid(table(C, VAN, LANGS))))
    assert two.layout.height >= 320 and two.data[0].colorbar.nticks == 5   # colour-bar ticks stay apart


def test_report_has_the_cross_validated_selection_table(report):
    html = report.read_text(encoding="utf-8")
    section = html[html.index("Instance-aware layer selection (cross-validated)"):]
    for row in ("<td>Vanilla</td>", "<td>coarse</td>", "<td>entropy-based</td>", "<td>agreement</td>",
                "<td>TargetFirst</td>"):
        assert row in section
    assert "4-fold cross-validation over items" in section


def test_without_scikit_learn_the_selection_section_shows_the_rest_and_says_why(tmp_path, monkeypatch):
    """Issue 30 §3: the section stays, with the strategies that need no scikit-learn, and names the
    ones left out and what to install."""
    import sys

    monkeypatch.setitem(sys.modules, "sklearn", None)
    df = table(C, VAN, LANGS, ["high", "high", "low", "low"])
    html = build_report(df, tmp_path / "report.html", "test report").read_text(encoding="utf-8")
    section = html[html.index("Instance-aware layer selection (cross-validated)"):]
    assert "<td>coarse</td>" in section and "<td>entropy-based</td>" in section
    assert "Not run: learned needs scikit-learn (pip install &#x27;xtl[select]&#x27;)." in section
    assert "Not run: learned (logistic) needs scikit-learn" in section


def _click_cell(driver, div: str, src: int, tgt: int) -> None:
    """A real mouse click on heatmap ``div``'s cell (source ``src``, target ``tgt``)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    gd = driver.find_element(By.ID, div)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", gd)
    # the pixel centre of the cell relative to the plot's top-left corner
    x, y = driver.execute_script(
        "var L = arguments[0]._fullLayout; return [L._size.l + L.xaxis.l2p(L.xaxis.d2l(arguments[2])),"
        " L._size.t + L.yaxis.l2p(L.yaxis.d2l(arguments[1]))];", gd, str(src), str(tgt))
    size = gd.size
    ActionChains(driver).move_to_element_with_offset(gd, x - size["width"] / 2, y - size["height"] / 2) \
        .pause(0.3).click().perform()


@pytest.mark.skipif(_chromium() is None or shutil.which("chromedriver") is None,
                    reason="headless browser test needs Debian's chromium and chromium-driver")
def test_clicking_a_margin_heatmap_cell_lists_its_items_too(tmp_path):
    df = table(C, VAN, LANGS, ["high", "high", "low", "low"])
    df["gold_margin"] = np.where(df["is_vanilla"], 0.0, df["src_layer"] - df["tgt_layer"])
    page = build_report(df, tmp_path / "m.html")
    driver = _driver(tmp_path, height=2400)
    from selenium.webdriver.common.by import By

    try:
        driver.get(page.as_uri())
        assert "Gold first-token margin gain" in driver.find_element(By.ID, "fig1").text
        _click_cell(driver, "fig1", 1, 0)
        assert "source 1 → target 0: 4 items" in driver.find_element(By.ID, "xtl-cell-title").text
        assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
    finally:
        driver.quit()


@pytest.mark.skipif(_chromium() is None or shutil.which("chromedriver") is None,
                    reason="headless browser test needs Debian's chromium and chromium-driver")
def test_clicking_a_heatmap_cell_lists_its_items(report, tmp_path):
    """A real click on the gain heatmap's cell (source 0, target 0) in headless Chromium shows
    that configuration's items, fixed first, with their answers; the table is on screen."""
    driver = _driver(tmp_path, height=2400)
    from selenium.webdriver.common.by import By

    try:
        driver.get(report.as_uri())
        _click_cell(driver, "fig0", 0, 0)
        table = driver.find_element(By.ID, "xtl-cell-table")
        rows = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
                for tr in table.find_elements(By.TAG_NAME, "tr")[1:]]
        # C[1, 0, :] = 1 with vanilla wrong: item t/de/1 fixed; item t/sw/2 (vanilla right) broken
        assert [(r[0], r[5]) for r in rows] == [("t/de/1", "fixed"), ("t/sw/2", "broken"), ("t/de/0", "right"),
                                               ("t/sw/3", "wrong")]
        assert rows[0][3] == "v" and rows[0][4] == "r00"
        assert "source 0 → target 0: 4 items — 1 fixed, 1 broken" in driver.find_element(By.ID, "xtl-cell-title").text
        assert table.is_displayed()
        assert driver.save_screenshot(str(tmp_path / "clicked.png"))
        assert (tmp_path / "clicked.png").stat().st_size > 10_000
    finally:
        driver.quit()


def test_a_best_configuration_that_only_ties_vanilla_is_not_called_best(tmp_path):
    """Issue 30 §7: the report named (0, 0) "best configuration" at gain +0.0."""
    tie = np.zeros((4, 3, 3), int)
    tie[[0, 2]] = 1                                   # every configuration answers as vanilla does
    text = build_report(table(tie, VAN, LANGS), tmp_path / "tie.html", "tie").read_text(encoding="utf-8")
    assert "none beats vanilla: the best configurations only tie it" in text
    below = np.zeros((4, 3, 3), int)
    below[0] = 1
    text = build_report(table(below, VAN, LANGS), tmp_path / "below.html", "below").read_text(encoding="utf-8")
    assert "none reaches vanilla" in text
    text = build_report(table(C, VAN, LANGS), tmp_path / "gain.html", "gain").read_text(encoding="utf-8")
    assert "none beats" not in text and "none reaches" not in text


def test_figures_can_share_one_plotly_js(tmp_path):
    """Issue 30 §7: every figure file embedded plotly.js (4.8 MB each); standalone stays the default."""
    g = an.grid(table(C, VAN, LANGS))
    fig = plots.gain_heatmap(gain_panels(g))
    alone = plots.save(fig, tmp_path / "alone" / "a.html")
    assert alone.stat().st_size > 3_000_000 and not (alone.parent / "plotly.min.js").exists()
    for name in ("a.html", "b.html"):
        plots.save(fig, tmp_path / "shared" / name, plotlyjs="shared")
    shared = tmp_path / "shared"
    assert (shared / "plotly.min.js").stat().st_size > 3_000_000
    assert all((shared / n).stat().st_size < 200_000 and 'src="plotly.min.js"' in (shared / n).read_text()
               for n in ("a.html", "b.html"))
    assert "cdn.plot.ly" in plots.save(fig, tmp_path / "c.html", plotlyjs="cdn").read_text()
    from xtl.errors import XtlError

    with pytest.raises(XtlError, match="shared"):
        plots.save(fig, tmp_path / "d.html", plotlyjs="sharde")


#: Text that ended the report's embedded JSON early, or commented out the rest of the page.
NASTY = "<!--<script>x</script><b>&amp;</b> \u2028"


@pytest.fixture
def nasty_report(tmp_path):
    """A report whose item ids, languages, golds and responses all hold :data:`NASTY`."""
    df = table(C, VAN, LANGS, ["high", "high", "low", "low"])
    df = df.assign(item_key=NASTY + df["item_key"], lang=df["lang"] + NASTY, gold=NASTY,
                   response=NASTY + df["response"])
    return df, build_report(df, tmp_path / "nasty.html", "title " + NASTY)


def test_embedded_json_holds_no_raw_angle_bracket_and_round_trips(nasty_report):
    """Issue 37 §4: only "</" was escaped, so "<!--<script" swallowed the rest of the page."""
    import html
    import json
    from html.parser import HTMLParser

    from xtl.analysis.cells import cell_index
    from xtl.figures.report import PER_CELL

    df, path = nasty_report

    class Blocks(HTMLParser):
        def __init__(self):
            super().__init__()
            self.inside, self.blocks = False, []

        def handle_starttag(self, tag, attrs):
            self.inside = tag == "script" and ("type", "application/json") in attrs
            if self.inside:
                self.blocks.append("")

        def handle_endtag(self, tag):
            self.inside = False

        def handle_data(self, data):
            if self.inside:
                self.blocks[-1] += data

    parser = Blocks()
    page = path.read_text(encoding="utf-8")
    parser.feed(page)
    assert len(parser.blocks) == 1
    for block in parser.blocks:
        assert not set("<>&\u2028") & set(block)
    assert json.loads(parser.blocks[0]) == cell_index(df, PER_CELL)
    assert NASTY not in page.replace(html.escape(NASTY), "")         # elsewhere only as escaped text


@pytest.mark.skipif(_chromium() is None or shutil.which("chromedriver") is None,
                    reason="headless browser test needs Debian's chromium and chromium-driver")
def test_the_page_shows_any_text_as_text_in_headless_chromium(nasty_report, tmp_path):
    """Every section renders and a cell's items show the text as written, whatever it holds."""
    df, path = nasty_report
    driver = _driver(tmp_path, height=2400)
    from selenium.webdriver.common.by import By

    try:
        driver.get(path.as_uri())
        rendered = driver.execute_script(
            "return Array.from(document.querySelectorAll('.js-plotly-plot'))"
            ".map(d => d.querySelectorAll('.main-svg').length > 0 && d._fullData.length > 0)")
        assert rendered == [True] * 5
        heads = [h.text for h in driver.find_elements(By.TAG_NAME, "h2")]
        assert "Instance-aware layer selection (cross-validated)" in heads and "Win / tie / lose" in heads
        driver.execute_script("window.xtlShowCell(0, 0);")
        cells = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
                 for tr in driver.find_element(By.ID, "xtl-cell-table").find_elements(By.TAG_NAME, "tr")[1:]]
        shown = NASTY.replace("\u2028", " ").strip()
        assert len(cells) == 4 and all(r[0].startswith(shown) and r[2] == shown and r[4].startswith(shown)
                                       for r in cells), cells
        assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
    finally:
        driver.quit()
