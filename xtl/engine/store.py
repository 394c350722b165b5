"""Results store: one Parquet shard per finished item plus a manifest of the sweep's settings.

An item's rows are written atomically (temporary file, then rename), so a sweep killed at any
moment loses at most the item in flight, never duplicates a row, and resumes where it stopped.
A shard that cannot be read (a disk that filled up, a file cut short by hand) does not count as
finished: the next run redoes it. Settings that only choose *which* items run (``limit``,
``langs``) may change between runs, so a store can grow; settings that change a result may not.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import pandas as pd

from xtl.errors import StoreError
from xtl.hashing import digest
from xtl.schema import SELECTION, SweepSettings

__all__ = ["ResultsStore", "read_store", "read_manifest", "read_settings", "check_writable_dir", "MANIFEST", "shard_settings", "complete",
           "SELECTION"]

log = logging.getLogger("xtl")

MANIFEST = "manifest.json"


def _shard_name(item_key: str) -> str:
    return "item-" + digest(item_key, length=20) + ".parquet"


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


class ResultsStore:
    """A directory of per-item Parquet shards; state lives on disk only."""

    def __init__(self, path: str | os.PathLike, settings: SweepSettings):
        self.path = check_writable_dir(path)
        manifest = self.path / MANIFEST
        _remove_dead_partials(self.path)
        if not manifest.exists():
            _check_orphan_shards(self.path, settings)
        if manifest.exists():
            diff = read_settings(self.path).differences(settings)
            if diff:
                detail = "; ".join(f"{k}: store {_show(a)}, now {_show(b)}" for k, (a, b) in diff.items())
                raise StoreError(
                    f"{self.path} holds a sweep with other settings ({detail}); "
                    "use a new --out directory or the same settings to resume")
        data = settings.to_dict()
        if not manifest.exists() or read_manifest(self.path) != data:
            tmp = manifest.with_name(f"{MANIFEST}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, indent=2))
            tmp.replace(manifest)
        self.settings = settings

    def has(self, item_key: str) -> bool:
        """Whether the item's shard exists and can be read (a broken one is redone)."""
        return _readable(self.path / _shard_name(item_key))

    def write(self, item_key: str, rows: list[dict[str, Any]]) -> None:
        """Write one item's rows as its shard, atomically; the shard carries the settings it was
        computed with in its Parquet metadata (``xtl.settings``)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        target = self.path / _shard_name(item_key)
        tmp = target.with_name(f"{target.stem}.{os.getpid()}.partial")
        table = pa.Table.from_pandas(pd.DataFrame(rows), preserve_index=False)
        meta = {**(table.schema.metadata or {}), SHARD_SETTINGS: json.dumps(self.settings.to_dict()).encode()}
        try:
            pq.write_table(table.replace_schema_metadata(meta), tmp)
            tmp.replace(target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"cannot write {target.name} into {self.path} ({exc.strerror or exc}); make room "
                             "and run the same command again: the finished items are kept") from exc

    # ------------------------------------------------------------ sharing work between processes
    def _claim_path(self, item_key: str) -> Path:
        return self.path / _shard_name(item_key).replace(".parquet", ".claim")

    def claim(self, item_key: str) -> bool:
        """Claim an item for this process; False while another live process holds it.

        A claim is a file created atomically (``O_EXCL``) that names its process and host. A
        claim whose process is gone (same host), that cannot be read, or that is older than
        :data:`STALE_CLAIM_S` (another host) is taken over.
        """
        path = self._claim_path(item_key)
        me = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()})
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not _stale(path):
                    return False
                path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(me)
            return True
        return False

    def release(self, item_key: str) -> None:
        """Drop this process's claim of an item (after writing it, or on the way out)."""
        path = self._claim_path(item_key)
        try:
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink(missing_ok=True)
        except (OSError, ValueError):
            pass


#: A claim from another host older than this is taken to belong to a dead worker.
STALE_CLAIM_S = 3600.0


def _stale(path: Path) -> bool:
    try:
        info = json.loads(path.read_text())
        pid, host, when = int(info["pid"]), str(info["host"]), float(info["time"])
    except (OSError, ValueError, KeyError, TypeError):
        return True
    if host == socket.gethostname():
        if pid == os.getpid():
            return True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    return time.time() - when > STALE_CLAIM_S


def check_writable_dir(path: str | os.PathLike) -> Path:
    """Create the folder ``path`` (or check it), with a clear error when it cannot be one."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise StoreError(f"{path} is a file, not a folder; give out (--out) a new or existing folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the folder {path} ({exc.strerror or exc}); "
                         "choose an out (--out) you can write to") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise StoreError(f"the folder {path} is not writable; choose an out (--out) you can write to")
    return path


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The settings a store recorded, with a clear error for a missing or corrupted manifest."""
    manifest = Path(path) / MANIFEST
    if not manifest.exists():
        raise StoreError(f"{path} is not an xtl results store (no {MANIFEST}); run `xtl sweep` first")
    try:
        settings = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"{manifest} is corrupted ({exc}); restore it, or sweep into a new --out "
                         "(the item shards beside it are intact)") from exc
    if not isinstance(settings, dict):
        raise StoreError(f"{manifest} is corrupted (not a JSON object); restore it or use a new --out")
    return settings


#: Parquet metadata key of the settings a shard was computed with.
SHARD_SETTINGS = b"xtl.settings"


def shard_settings(shard: Path) -> SweepSettings | None:
    """The settings a shard records (None for shards written before xtl 0.3)."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(shard).metadata or {}
    raw = meta.get(SHARD_SETTINGS)
    return SweepSettings.from_dict(json.loads(raw)) if raw else None


def _check_orphan_shards(path: Path, settings: SweepSettings) -> None:
    """Shards without a manifest (it was deleted) must be of these settings, or be refused."""
    for shard in sorted(path.glob("item-*.parquet"))[:1]:
        try:
            theirs = shard_settings(shard)
            if theirs is None:
                row = pd.read_parquet(shard, columns=["model", "site"]).iloc[0]
                theirs = settings.replace(model=str(row["model"]), site=str(row["site"]))
        except Exception:  # noqa: BLE001 - an unreadable shard is redone, not judged
            continue
        diff = theirs.differences(settings)
        if diff:
            detail = "; ".join(f"{k}: shards {_show(a)}, now {_show(b)}" for k, (a, b) in diff.items())
            raise StoreError(f"{path} has no {MANIFEST} but holds shards of other settings ({detail}); "
                             "rerun with the shards' settings, or sweep into a new --out")


#: A temporary shard this old whose process is not running here is left over from a failed write.
STALE_PARTIAL_S = 600.0


def _remove_dead_partials(path: Path) -> None:
    """Delete temporary shards (``*.PID.partial``) of failed writes: older than
    :data:`STALE_PARTIAL_S` and of no live process of this host (a write takes seconds; the age
    spares a live writer on another host sharing the folder)."""
    for tmp in path.glob("item-*.partial"):
        try:
            pid = int(tmp.suffixes[-2].lstrip("."))
            old = time.time() - tmp.stat().st_mtime > STALE_PARTIAL_S
        except (ValueError, IndexError, OSError):
            continue
        if pid == os.getpid() or not old:
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
            log.info("removed %s, left by a process that ended mid-write", tmp.name)
        except PermissionError:
            pass


def complete(path: str | os.PathLike, expected: dict[str, Any], keys: list[str]) -> bool:
    """Whether the store at ``path`` already holds every item of ``keys``, computed with the
    ``expected`` settings (the ones known without loading the model; layers may be None for
    all, or negative). A cheap look before a model is loaded: False whenever in doubt."""
    path = Path(path)
    if not (path / MANIFEST).exists():
        return False
    try:
        have = read_settings(path)
    except StoreError:
        return False
    n = have.n_layers
    want = dict(expected)
    for name in ("src_layers", "tgt_layers"):
        layers = want.get(name)
        if layers is not None and any(not -n <= x < n for x in layers):
            return False
        want[name] = tuple(sorted({x % n for x in layers})) if layers is not None else tuple(range(n))
    if have.replace(**{k: v for k, v in want.items() if v is not None or k in ("data",)}).differences(have):
        return False
    return all(_readable(path / _shard_name(k)) for k in keys)


def read_settings(path: str | os.PathLike) -> SweepSettings:
    """A store's settings as a :class:`xtl.schema.SweepSettings` (older manifests included)."""
    data = read_manifest(path)
    try:
        return SweepSettings.from_dict(data)
    except TypeError as exc:
        raise StoreError(f"{Path(path) / MANIFEST} lacks settings this xtl needs ({exc}); "
                         "restore it, or sweep into a new --out") from exc


def _readable(shard: Path) -> bool:
    if not shard.exists():
        return False
    try:
        import pyarrow.parquet as pq

        pq.read_metadata(shard)
        return True
    except Exception:  # noqa: BLE001 - any failure: the shard must be redone
        return False


def read_store(path: str | os.PathLike) -> pd.DataFrame:
    """All rows of a store as one tidy DataFrame (vanilla rows have layers -1)."""
    if not isinstance(path, (str, os.PathLike)):
        raise StoreError(f"give the store's folder (a path), not {type(path).__name__}")
    path = Path(path)
    read_manifest(path)
    shards = sorted(path.glob("item-*.parquet"))
    if not shards:
        return pd.DataFrame()
    frames = []
    for shard in shards:
        try:
            frames.append(pd.read_parquet(shard))
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds for a bad file
            raise StoreError(f"{shard} is unreadable ({type(exc).__name__}); rerun the sweep command "
                             "that wrote the store to redo that item, or delete the file") from exc
    return pd.concat(frames, ignore_index=True)
