"""The documentation builds with MkDocs in strict mode (warnings fail)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_docs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "index.html").exists()


def test_readme_links_resolve():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    import re

    for target in re.findall(r"\]\(([^)#:]+)\)", text):
        assert (ROOT / target).exists(), f"README links to missing {target}"


def test_every_documented_dotted_name_resolves():
    """Issue 30 §7: `xtl.analysis.tables.paper_table(...)`, as docs/guide.md wrote it, raised
    AttributeError unless the submodule had been imported. Every `xtl.a.b.c` the README and the
    docs name resolves by attribute access after a plain `import xtl` (in a fresh interpreter, so
    that nothing imported by other tests helps)."""
    import re
    import subprocess
    import sys

    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    names = sorted({m.group(0) for path in texts
                    for m in re.finditer(r"(?<![\w./-])xtl(?:\.[A-Za-z_]\w*)+(?![\w-])", path.read_text(encoding="utf-8"))
                    if not re.match(r"\.(py|md|json|html|gguf|toml|yaml)\b", path.read_text(encoding="utf-8")[m.end():m.end() + 6])})
    names = [n for n in names if n not in {"xtl.settings"}]  # the Parquet metadata key of a store's shards
    assert len(names) > 30, names
    code = ("import sys, xtl\nbad = []\nfor name in sys.argv[1:]:\n    obj = xtl\n"
            "    try:\n        for part in name.split('.')[1:]:\n            obj = getattr(obj, part)\n"
            "    except Exception as exc:\n        bad.append(f'{name}: {type(exc).__name__}: {exc}')\n"
            "print('\\n'.join(bad))")
    proc = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "", proc.stdout
