"""Re-execute the notebooks in place, as they are committed: figures as HTML + PNG (see
xtl.use_in_notebook), live widgets' state left out (it would embed plotly.js, ~5 MB, for a
view that needs a kernel anyway).

    cd notebooks && XTL_DATA=../../shared/data python execute.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent

for name in sys.argv[1:] or ["case_study.ipynb", "explore_sweep.ipynb"]:
    path = HERE / name
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
    print(f"{name}: {path.stat().st_size / 1e3:.0f} kB")
