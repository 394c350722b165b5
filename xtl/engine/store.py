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
import shlex
import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from xtl.engine import claims
from xtl.errors import StoreError
from xtl.hashing import digest
from xtl.schema import SELECTION, SweepSettings, with_defaults

__all__ = ["ResultsStore", "read_store", "read_manifest", "read_settings", "check_writable_dir", "MANIFEST",
           "shard_settings", "check_shards", "complete", "SELECTION"]

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
        data = settings.to_dict()
        if settings.model_identity is None:
            log.info("the model %r has no identity (weights built in memory, or a hub name): %s cannot tell it "
                     "from another model of that name", settings.model, self.path)
        created = False
        if not manifest.exists():
            check_shards(self.path, settings, manifest=False)
            created = claims.create_exclusive(manifest, json.dumps(data, indent=2))  # one creator wins
        if not created:
            have = read_settings(self.path)
            diff = have.differences(settings)
            if diff:
                raise StoreError(_other_settings(self.path, diff))
            check_shards(self.path, have)
            if read_manifest(self.path) != data:  # the selection grew, or an older manifest is filled in
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
    def claim(self, item_key: str) -> bool:
        """Claim an item for this process; False while another running process holds it (see
        :mod:`xtl.engine.claims`: a claim of a process that is gone, or whose pid was reused, is
        taken over)."""
        return claims.claim(self.claim_file(item_key))

    def claimant(self, item_key: str) -> "claims.Claim | None":
        """Who holds the claim of an item (None when nobody does)."""
        return claims.holder(self.claim_file(item_key))

    def claim_file(self, item_key: str) -> Path:
        """The claim file of an item (what to delete by hand if its process is known to be gone)."""
        return self.path / _shard_name(item_key).replace(".parquet", ".claim")

    def release(self, item_key: str) -> None:
        """Drop this process's claim of an item (after writing it, or on the way out)."""
        claims.release(self.claim_file(item_key))


def check_writable_dir(path: str | os.PathLike) -> Path:
    """Create the folder ``path`` (or check it), with a clear error when it cannot be one."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise StoreError(f"a store is a folder: give its path (a str or Path), not {path!r}")
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

    raw = (pq.read_schema(shard).metadata or {}).get(SHARD_SETTINGS)
    return SweepSettings.from_dict(json.loads(raw)) if raw else None


#: Columns without which a Parquet file in a store is not one of its shards.
_SHARD_COLUMNS = ("item_key", "src_layer", "tgt_layer", "is_vanilla", "response", "model", "site")


class _Judge:
    """Each shard's settings against the store's (``reference``): the differences, per shard;
    shards that record the same settings are judged once."""

    def __init__(self, path: Path, reference: SweepSettings):
        self.path, self.reference = path, reference
        self.seen: dict[Any, dict[str, tuple[Any, Any]]] = {}
        self.bad: dict[Path, dict[str, tuple[Any, Any]]] = {}
        self.count = 0

    def __call__(self, shard: Path, schema: Any, legacy: Callable[[], list[dict[str, Any]]]) -> None:
        """Judge one shard from its Parquet ``schema``; ``legacy()`` gives its first row (as
        ``[row]``), read only for a shard without recorded settings."""
        missing = [c for c in _SHARD_COLUMNS if c not in schema.names]
        if missing:
            raise StoreError(f"{shard} is not a shard of an xtl results store (it lacks the column(s) "
                             f"{', '.join(missing)}); move it out of {self.path}")
        self.count += 1
        raw = (schema.metadata or {}).get(SHARD_SETTINGS)
        key = raw
        if raw is None:  # written before xtl 0.3: its model and site columns say what it is
            rows = legacy()
            if not rows:
                raise StoreError(f"{shard} holds no rows, so it is no item's shard; move it out of {self.path}")
            key = (str(rows[0]["model"]), str(rows[0]["site"]))
        if key not in self.seen:
            try:
                theirs = (SweepSettings.from_dict(json.loads(raw)) if raw is not None
                          else self.reference.replace(model=key[0], site=key[1]))
            except (ValueError, TypeError) as exc:
                raise StoreError(f"{shard} carries unreadable settings ({exc}); move it out of {self.path}, "
                                 "or delete it so that the sweep redoes its item") from exc
            self.seen[key] = self.reference.differences(theirs)
        if self.seen[key]:
            self.bad[shard] = self.seen[key]

    def verdict(self, manifest: bool = True) -> None:
        """Refuse the store when a shard differs: with ``manifest`` False, the reference is the
        settings of a sweep into a store whose manifest is lost."""
        if not self.bad:
            return
        first, diff = next(iter(self.bad.items()))
        if not manifest:
            detail = "; ".join(f"{k}: shards {_show(b)}, now {_show(a)}" for k, (a, b) in diff.items())
            raise StoreError(f"{self.path} has no {MANIFEST} but holds shards of other settings ({detail}); "
                             "rerun with the shards' settings, or sweep into a new --out")
        detail = "; ".join(f"{k}: manifest {_show(a)}, shard {_show(b)}" for k, (a, b) in diff.items())
        if len(self.bad) == self.count and len({json.dumps(d, default=str) for d in self.bad.values()}) == 1:
            shards = "its only shard" if self.count == 1 else f"all {self.count} shards"
            raise StoreError(f"{self.path / MANIFEST} disagrees with {shards} ({detail}): it was edited; restore "
                             f"the shards' settings in it, or sweep into a new --out")
        more = f" (and {len(self.bad) - 1} more shard(s))" if len(self.bad) > 1 else ""
        raise StoreError(f"{first.name} in {self.path} holds rows of another run ({detail}){more}; move it out "
                         "of the store, or sweep into a new --out")


def check_shards(path: str | os.PathLike, settings: SweepSettings, manifest: bool = True) -> None:
    """Refuse a store holding a shard of other ``settings`` (the store's; ``manifest=False``: a
    new sweep's, into a store whose manifest is lost) or a Parquet file that is not a shard.
    Reads each shard's metadata only; an unreadable shard is redone by the sweep, not judged."""
    import pyarrow.parquet as pq

    path = Path(path)
    judge = _Judge(path, settings)
    for shard in sorted(path.glob("item-*.parquet")):
        try:
            schema = pq.read_schema(shard)
        except Exception:  # noqa: BLE001 - pyarrow raises several kinds for a file cut short
            continue
        judge(shard, schema, lambda: pq.read_table(shard, columns=["model", "site"]).slice(0, 1).to_pylist())
    judge.verdict(manifest)


def _flag(name: str, value: Any) -> str | None:
    """The ``xtl sweep`` option that asks for ``value`` of the setting ``name`` (None: no flag)."""
    if name == "chat":
        return "--chat" if value else "--no-chat"
    flags = {"site": "--site", "max_new_tokens": "--max-new-tokens", "mode": "--mode", "dtype": "--dtype",
             "backend": "--backend", "grid": "--grid", "src_layers": "--src-layers", "tgt_layers": "--tgt-layers",
             "candidates": "--candidates", "data": "--task"}
    if name not in flags or value is None:
        return None
    values = value if isinstance(value, (list, tuple)) else [value]
    return " ".join([flags[name], *(shlex.quote(str(v)) for v in values)])


def _other_settings(path: Path, diff: dict[str, tuple[Any, Any]]) -> str:
    """The refusal of a sweep whose settings differ from a store's: each setting with both
    values (store, now) and the options that match the store."""
    detail = "; ".join(f"{k}: store {_show(a)}, now {_show(b)}" for k, (a, b) in diff.items())
    flags = [f for f in (_flag(k, a) for k, (a, _) in diff.items()) if f]
    if "model_identity" in diff:
        flags.append("--model giving the weights the store was swept with")
    match = f" ({', '.join(flags)})" if flags else ""
    return (f"{path} holds a sweep with other settings ({detail}); resume it with the store's settings{match}, "
            "or use a new --out directory")


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
    all, or negative; None: not known yet). A cheap look before a model is loaded: False
    whenever in doubt. Settings that differ from the store's, or a shard of another run, are
    refused here as the sweep would refuse them (:class:`StoreError`), finished or not."""
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
    known = {k: v for k, v in want.items() if v is not None or k in ("data",)}
    diff = have.differences(have.replace(**known))
    if diff:
        raise StoreError(_other_settings(path, diff))
    check_shards(path, have)
    if any(want.get(k) is None and getattr(have, k) is not None for k in ("backend", "model_identity", "chat")):
        return False  # what the spec resolves to is known only once the model loads
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
    """All rows of a store as one tidy DataFrame (vanilla rows have layers -1). Every shard is
    checked against the manifest: a shard of another run, a file that is not a shard, or one
    (item, source, target) in two shards is refused, naming the file."""
    import pyarrow.parquet as pq

    if not isinstance(path, (str, os.PathLike)):
        raise StoreError(f"give the store's folder (a path), not {type(path).__name__}")
    path = Path(path)
    judge = _Judge(path, read_settings(path))
    shards = sorted(path.glob("item-*.parquet"))
    frames = []
    for shard in shards:
        try:
            table = pq.read_table(shard)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds for a bad file
            raise StoreError(f"{shard} is unreadable ({type(exc).__name__}); rerun the sweep command "
                             "that wrote the store to redo that item, or delete the file") from exc
        judge(shard, table.schema, lambda: table.slice(0, 1).to_pylist())
        frames.append(table.to_pandas())
    judge.verdict()
    if not frames:
        return pd.DataFrame()
    df = with_defaults(pd.concat(frames, ignore_index=True))
    _refuse_repeats(path, df, [s for s, f in zip(shards, frames) for _ in range(len(f))])
    return with_defaults(df)


def _refuse_repeats(path: Path, df: pd.DataFrame, files: list[Path]) -> None:
    """One (item, source, target) in two rows of a store: name the shard(s) that hold them."""
    twice = df.duplicated(["item_key", "src_layer", "tgt_layer", "alpha"], keep=False)
    if not twice.any():
        return
    rows = df[twice]
    first = rows.iloc[0]
    same = rows[(rows["item_key"] == first["item_key"]) & (rows["src_layer"] == first["src_layer"])
                & (rows["tgt_layer"] == first["tgt_layer"])]
    names = sorted({files[k].name for k in same.index})
    where = f"{names[0]} and {names[1]}" if len(names) > 1 else f"{names[0]} (twice)"
    raise StoreError(f"{path} holds item {first['item_key']} ({int(first['src_layer'])}, {int(first['tgt_layer'])}) "
                     f"in {where}; a shard copied under another name, or written by hand: move one out of the store")
