"""The demo model's first conversion: xtl's quick path against transformers' GGUF loader.

Each way runs in a fresh process on a fresh cache folder (the GGUF file itself is assembled once,
beforehand): the quick path (:func:`xtl.models.ggufread.convert_fast`, its phases timed) and,
with ``--compare``, transformers' ``from_pretrained(gguf_file=...)`` path that xtl used before.
Then it checks that both folders hold the same config, tokenizer and tensors (bitwise).

    python benchmarks/first_run.py [--compare] [--gguf PATH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import json, sys, time, logging
start = time.perf_counter()
import torch, transformers  # imports are timed apart from the conversion
from pathlib import Path
from xtl.models import ggufread
from xtl.models.gguf import _convert_with_transformers
imported = time.perf_counter()
laps = {}
class Grab(logging.Handler):
    def emit(self, record):
        if "quick GGUF conversion" in record.getMessage():
            laps["phases"] = record.getMessage().split(": ", 1)[1]
logging.getLogger("xtl").addHandler(Grab()); logging.getLogger("xtl").setLevel(logging.INFO)
gguf, out, way = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
out.mkdir(parents=True)
if way == "quick":
    assert ggufread.convert_fast(gguf, out)
else:
    _convert_with_transformers(gguf, out)
done = time.perf_counter()
print(json.dumps({"imports_s": imported - start, "convert_s": done - imported, **laps}))
"""


def run(gguf: Path, out: Path, way: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(gguf), str(out), way], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def same(a: Path, b: Path) -> bool:
    import torch
    from safetensors.torch import load_file

    ca, cb = (json.loads((d / "config.json").read_text()) for d in (a, b))
    drop = {"_name_or_path", "transformers_version"}
    if {k: v for k, v in ca.items() if k not in drop} != {k: v for k, v in cb.items() if k not in drop}:
        return False
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if json.loads((a / name).read_text()) != json.loads((b / name).read_text()):
            return False
    ta, tb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return set(ta) == set(tb) and all(ta[k].dtype == tb[k].dtype and torch.equal(ta[k], tb[k]) for k in ta)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", default=None, help="a GGUF file (default: the demo model's)")
    ap.add_argument("--compare", action="store_true", help="also convert through transformers' GGUF loader")
    args = ap.parse_args()
    if args.gguf:
        gguf = Path(args.gguf)
    else:
        from xtl.models.gguf import demo_gguf_path

        gguf = demo_gguf_path()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        quick = run(gguf, Path(tmp) / "quick", "quick")
        print(f"quick path      : {quick['convert_s']:6.1f} s ({quick.get('phases', '')}); "
              f"imports {quick['imports_s']:.1f} s; process {time.perf_counter() - start:.1f} s", flush=True)
        if args.compare:
            start = time.perf_counter()
            ref = run(gguf, Path(tmp) / "ref", "transformers")
            print(f"transformers    : {ref['convert_s']:6.1f} s; imports {ref['imports_s']:.1f} s; "
                  f"process {time.perf_counter() - start:.1f} s")
            print(f"transformers / quick: {ref['convert_s'] / quick['convert_s']:.1f}x; same config, tokenizer "
                  f"and tensors: {same(Path(tmp) / 'quick', Path(tmp) / 'ref')}")


if __name__ == "__main__":
    main()
